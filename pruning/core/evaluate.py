"""Evaluate a mask on one of three weight sets, on the test split (or a stratified subset of it).

final            θf * mask: ordinary pruning of the trained model.
init             θ0 * mask: the mask on the untrained weights (a "supermask").
signed-constant  sign(θ0) * std(θ0 of the layer) * mask: Zhou et al.'s best supermask variant.
Non-prunable parameters (biases, normalisation) come from θf for ``final``, θ0 otherwise.
A unit-granularity mask removes whole units: their biases and the batch-norm scale and shift
right after them go too (``removed_units``), so a removed unit outputs 0, not relu(bias).
``bn_recalibrate``: evaluate with batch-norm statistics re-estimated for the pruned network on
that many training images (``batchnorm.py``; the model itself is never changed).
"""

from dataclasses import dataclass, field
import time

import numpy as np

from .. import memo
from .. import data
from ..errors import PruningError
from .masks import check_type, validate
from .prune import check_model
from .selection import check_whole

WEIGHT_SETS = ("final", "init", "signed-constant")


def check_weights(weights: str) -> str:
    if not isinstance(weights, str) or weights not in WEIGHT_SETS:
        raise PruningError(f"unknown weights {weights!r:.40}; choose one of: {', '.join(WEIGHT_SETS)}")
    return weights


def check_mask(model, mask) -> None:
    """A mask (name -> bool array) that fits ``model``, or None (dense)."""
    if mask is None:
        return
    check_type(mask)
    validate(mask, {name: spec.shape for name, spec in model.specs.items()})


def _std(w: np.ndarray) -> float:
    """Standard deviation of the finite weights, in float64 and scaled so that it cannot overflow."""
    finite = w[np.isfinite(w)].astype(np.float64)
    scale = np.abs(finite).max(initial=0.0)
    return float(scale * (finite / scale).std()) if scale > 0 else 0.0


@memo.lru(maxsize=4)
def _signed_constant(model) -> dict:
    """name -> sign(θ0) * std(θ0 of the tensor), read-only: computed once per model, not per mask."""
    out = {}
    for name, w in model.weights("init").items():
        out[name] = (np.sign(w) * _std(w)).astype(w.dtype)
        out[name].setflags(write=False)
    return out


def masked_weights(model, mask: dict | None, weights: str = "final") -> dict:
    """name -> the prunable tensor that the forward pass uses (a new array; the model is untouched)."""
    check_model(model)
    check_weights(weights)
    check_mask(model, mask)
    if weights != "final" and "init" not in model.states:
        raise PruningError(f"model {model.name!r} has no initial weights, so {weights!r} is unavailable")
    base = "final" if weights == "final" else "init"
    source = _signed_constant(model) if weights == "signed-constant" else model.weights(base)
    out = {}
    for name, w in source.items():
        # not w * mask: NaN * 0 is NaN
        out[name] = w if mask is None else np.where(mask[name], w, np.zeros((), w.dtype))
    if mask is not None and getattr(mask, "meta", {}).get("granularity") == "unit":
        out.update(removed_units(model, mask, base))
    return out


def removed_units(model, mask: dict, base: str) -> dict:
    """A unit-granularity mask removes units: their bias (and a batch norm's scale and shift right
    after them) become 0, so that a removed unit outputs nothing, not relu(bias).  name -> the
    unit parameters of weight set ``base`` with removed units zeroed."""
    out = {}
    for name, spec in model.specs.items():
        if not spec.unit_params:
            continue
        keep = spec.to_canonical(np.asarray(mask[name]))
        alive = keep.reshape(keep.shape[0], -1).any(axis=1)  # (units,)
        for p in spec.unit_params:
            value = model.states[base][p]
            if value.shape == alive.shape:
                out[p] = np.where(alive, value, np.zeros((), value.dtype))
    return out


@memo.lru(maxsize=8)
def inputs(model, limit=None):
    """(prepared inputs, labels, indices) of the test split or its stratified subset."""
    x, y = data.load(model.dataset, "test")
    idx = data.stratified_indices(y, limit)
    return model.prepare(x[idx]), y[idx], idx


def forget() -> None:
    """Drop every cached batch of prepared inputs and signed-constant weights (they hold references
    to models)."""
    inputs.cache_clear()
    _signed_constant.cache_clear()


@dataclass
class Evaluation:
    accuracy: float
    n: int
    predictions: np.ndarray = field(repr=False)  # (n,) predicted classes
    labels: np.ndarray = field(repr=False)  # (n,) true classes
    indices: np.ndarray = field(repr=False)  # (n,) positions in the test split
    seconds: float = 0.0
    device: str = "cpu"
    warnings: list = field(default_factory=list)  # for the user: non-finite weights or outputs
    recalibration: dict | None = None  # {"images", "seed"} when batch-norm statistics were re-estimated

    @property
    def confusion(self) -> np.ndarray:
        """(classes, classes): row = true class, column = predicted class."""
        k = int(max(self.labels.max(initial=0), self.predictions.max(initial=0))) + 1
        k = max(k, 10)
        return np.bincount(self.labels.astype(np.int64) * k + self.predictions, minlength=k * k).reshape(k, k)

    @property
    def per_class(self) -> np.ndarray:
        c = self.confusion
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(c) / c.sum(axis=1)


def evaluate(model, mask: dict | None = None, weights: str = "final", limit: int | None = None,
             bn_recalibrate: int | bool | None = None, bn_seed: int = 0) -> Evaluation:
    """Accuracy of ``model`` with ``mask`` applied to weight set ``weights`` (None = dense).
    ``bn_recalibrate``: a number of training images (True: ``batchnorm.DEFAULT_IMAGES``) on which
    the batch-norm statistics are re-estimated first, drawn with ``bn_seed``; None/False: not."""
    from . import batchnorm  # it imports this module

    check_model(model)
    check_mask(model, mask)
    if limit is not None:
        limit = check_whole(limit, "limit", 1)
    bn_images = batchnorm.check_images(bn_recalibrate)
    start = time.perf_counter()
    recalibration = None
    if bn_images:
        stats = batchnorm.statistics(model, mask, weights, bn_images, bn_seed)  # checks the data first
        recalibration = {"images": bn_images, "seed": int(bn_seed)}
    x, y, idx = inputs(model, limit)
    prunable = masked_weights(model, mask, weights)
    if recalibration:
        prunable.update(stats)
    logits = model.logits(prunable, "final" if weights == "final" else "init", x)  # (n, classes)
    notes = list(getattr(model, "warnings", []))
    bad = int((~np.isfinite(logits)).any(axis=1).sum())
    if bad:
        notes.append(f"{bad} of {len(y)} outputs hold NaN or infinite logits")
    logits = np.nan_to_num(logits, nan=-np.inf)
    pred = logits.argmax(axis=1)
    return Evaluation(accuracy=float(np.mean(pred == y)), n=int(len(y)), predictions=pred, labels=y,
                      indices=idx, seconds=time.perf_counter() - start, device=str(model.device), warnings=notes,
                      recalibration=recalibration)

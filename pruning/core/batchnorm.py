"""Batch-norm recalibration: re-estimate a pruned network's batch-norm statistics, no gradient step.

Pruning changes what every layer outputs, but a batch norm keeps normalising with the running mean
and variance of the dense network.  Li et al. 2020 (EagleEye, "adaptive batch normalization",
ECCV, arXiv:2007.02491) reset these statistics after pruning and re-estimate them from a few forward passes over
training data, with every weight frozen; ``torch.optim.swa_utils.update_bn`` does the same for
averaged weights (momentum None: a cumulative average over batches).  Here:

- images: ``images`` training images (default ``DEFAULT_IMAGES``), class-stratified and drawn with
  ``seed`` (``calibration_indices``), so a setting always sees the same images;
- one forward pass in training mode over all of them as a single batch (the adapter's
  ``batch_norm_statistics``): each batch norm's new running mean and variance are exactly the mean
  and unbiased variance of its input over those images, with the batch norms before it normalising
  by their own statistics of the same images (``update_bn`` with one batch);
- functional: the statistics are new arrays, cached per (model, mask contents, weight set, images,
  seed) and passed to the forward pass with the masked kernels; the loaded model never changes.

Only the running statistics change; the affine scale and shift stay those of the weight set.
Training data come from ``PRUNING_DATA_DIR`` only (nothing is downloaded).
"""

from collections import OrderedDict
import hashlib
import threading

import numpy as np

from .. import memo
from .. import data
from ..errors import DatasetUnavailable, PruningError
from ..models.adapter import recalibration_unavailable
from .evaluate import check_mask, check_weights, masked_weights
from .prune import check_model
from .selection import check_whole

DEFAULT_IMAGES = 2000  # training images (a setting; EagleEye re-estimates on a few training batches)
MIN_IMAGES = 2  # a variance needs two values
MAX_IMAGES = 10000  # one batch: ResNet-20 holds a few (images, 16, 32, 32) float32 tensors at once
CACHE_SIZE = 256  # statistics of this many (model, mask, weights, images, seed); a few KB each

_cache: OrderedDict = OrderedDict()
_lock = threading.Lock()


def check_images(value) -> int | None:
    """The number of calibration images asked for: None or False = no recalibration, True = the
    default, else a whole number >= MIN_IMAGES."""
    if value is None or value is False:
        return None
    if value is True:
        return DEFAULT_IMAGES
    return check_whole(value, "bn_recalibrate (training images)", MIN_IMAGES, MAX_IMAGES)


def check_available(model) -> None:
    """PruningError if ``model`` cannot be recalibrated; DatasetUnavailable if its training split is
    not in ``PRUNING_DATA_DIR``."""
    why = recalibration_unavailable(model)
    if why:
        raise PruningError(f"batch-norm recalibration does not apply: {why}")
    if not data.available(model.dataset, "train"):
        raise DatasetUnavailable(f"batch-norm recalibration needs the {model.dataset} training split: set "
                                 f"{data.ENV} to a directory holding {model.dataset}.npz with x_train and y_train")


def calibration_indices(y: np.ndarray, images: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``images`` examples drawn at random with ``seed``, class-stratified: each
    class in proportion to its share (``data.stratified_indices`` on a seeded permutation)."""
    order = np.random.default_rng(seed).permutation(len(y))  # (n,)
    return np.sort(order[data.stratified_indices(y[order], images)])


@memo.lru(maxsize=4)
def calibration_inputs(model, images: int, seed: int = 0):
    """The prepared calibration images of ``model`` (as its first layer takes them)."""
    x, y = data.load(model.dataset, "train")
    return model.prepare(x[calibration_indices(y, images, seed)])


def mask_key(mask: dict | None) -> str:
    """A fingerprint of a mask's contents (equal masks, equal keys); "dense" for None."""
    if mask is None:
        return "dense"
    h = hashlib.sha256()
    for name in sorted(mask):
        keep = np.asarray(mask[name], dtype=bool)
        h.update(name.encode() + repr(keep.shape).encode() + np.packbits(keep).tobytes())
    h.update(repr(getattr(mask, "meta", {}).get("granularity")).encode())  # unit masks also zero BN params
    return h.hexdigest()


def statistics(model, mask: dict | None = None, weights: str = "final", images: int = DEFAULT_IMAGES,
               seed: int = 0) -> dict:
    """Re-estimated batch-norm running statistics of ``model`` with ``mask`` on weight set ``weights``:
    name (``{layer}.running_mean``, ``{layer}.running_var``) -> read-only array (channels,).  Cached."""
    check_model(model)
    check_weights(weights)
    check_mask(model, mask)
    images = check_images(images) or DEFAULT_IMAGES
    seed = check_whole(seed, "seed", 0)
    check_available(model)
    key = (model, mask_key(mask), weights, images, seed)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    base = "final" if weights == "final" else "init"
    stats = model.batch_norm_statistics(masked_weights(model, mask, weights), base,
                                        calibration_inputs(model, images, seed))
    for arr in stats.values():
        arr.setflags(write=False)
    with _lock:
        _cache[key] = stats
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return stats


def forget() -> None:
    """Drop every cached statistic and calibration batch (they hold references to models)."""
    with _lock:
        _cache.clear()
    calibration_inputs.cache_clear()

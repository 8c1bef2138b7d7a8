"""Learned supermasks: train a score per weight by gradient while the weights stay frozen at θ0.

Method: edge-popup (Ramanujan et al. 2020, "What's hidden in a randomly weighted neural
network?", CVPR 2020, section 3).  Every prunable weight w_uv has a score s_uv; the forward pass
uses w_uv * h(s_uv), where h keeps "the edges corresponding to the top-k% highest scores" of each
layer (ranked by |s|, as in the authors' code ``GetSubnet``: ``scores.abs()``) and zeroes the rest.
h has no useful gradient, so the backward pass is the straight-through estimator: the gradient
reaching h(s_uv) is passed to s_uv unchanged, i.e. ∂L/∂s_uv = ∂L/∂I_v · w_uv · Z_u, for pruned
edges too, so an edge whose score rises above the k-th enters the subnetwork ("pops up").  Only
the scores are trained; weights, biases and batch-norm statistics stay those of θ0, and the
result is a plain mask (the top k of |s| per layer) on θ0.

Scores start as in the authors' code (Kaiming uniform with a = √5: U(-1/√fan_in, 1/√fan_in)),
drawn here in NumPy from ``seed`` in the canonical layout, so twin PyTorch and Keras models start
from the same scores; ``seed`` also orders the training data.  The recipe follows the paper's
CIFAR-10 one (SGD, momentum 0.9, cosine decay, batch 128), with weight decay 5e-4 on the scores,
a learning rate of 0.3 instead of 0.1 (the score gradient is scaled by |w|: on MNIST 0.1 learned
slowly in the few epochs a CPU allows, and 1.0 made the loss rise) and a few epochs (3 for the
shipped masks) instead of 100.  Every layer, the output layer included,
keeps the same fraction ``keep`` (exactly ``n - round((1 - keep) * n)`` of its ``n`` weights,
the engine's own per-layer selection).

The framework glue (the forward pass with h, the optimiser loop) is ``supermask_torch.py`` and
``supermask_keras.py``; the adapter registry (``models/adapter.py``) names it for each framework.
"""

from dataclasses import dataclass, field
import time

import numpy as np

from .. import data
from ..core.evaluate import evaluate
from ..core.masks import Mask
from ..core.prune import check_model
from ..core.selection import MAX_WHOLE, check_fraction, check_whole, cut, rank
from ..errors import DatasetUnavailable, PruningError
from ..models.adapter import adapter

METHOD = "edge-popup"
PAPER = "Ramanujan et al. 2020, What's hidden in a randomly weighted neural network?"
DEFAULTS = {"optimizer": "sgd", "lr": 0.3, "momentum": 0.9, "weight_decay": 5e-4, "schedule": "cosine",
            "batch_size": 128}
MAX_EPOCHS = 10_000


@dataclass
class Learned:
    mask: Mask  # the top-k of |scores| per layer, native layout
    scores: dict = field(repr=False)  # name -> trained scores (native layout, float32)
    history: list = field(default_factory=list)  # per epoch: {"epoch", "loss", "accuracy"}


def check_keep(keep) -> float:
    keep = check_fraction(keep, "keep")
    if keep <= 0:
        raise PruningError("keep must be above 0 (the fraction of each layer's weights kept)")
    return keep


def initial_scores(model, seed: int) -> dict:
    """name -> scores in the native layout: U(-1/√fan_in, 1/√fan_in), drawn in canonical layout."""
    rng = np.random.default_rng([seed, 17])
    scores = {}
    for name, spec in model.specs.items():
        shape = spec.canonical_shape  # (out, in, *spatial)
        bound = 1.0 / np.sqrt(max(int(np.prod(shape[1:])), 1))
        scores[name] = np.ascontiguousarray(spec.to_native(rng.uniform(-bound, bound, shape).astype(np.float32)))
    return scores


def kept_counts(model, keep: float) -> dict:
    """name -> how many weights each layer keeps (the engine's rounding, selection.cut)."""
    return {name: spec.size - round((1 - keep) * spec.size) for name, spec in model.specs.items()}


def scores_mask(model, scores: dict, keep: float, meta=None) -> Mask:
    """The top ``keep`` of |scores| in every layer, by the engine's selection (exact counts)."""
    canonical = {name: spec.to_canonical(np.abs(np.asarray(scores[name], dtype=np.float64)))
                 for name, spec in model.specs.items()}
    keeps = cut(rank(canonical, scope="layer", output_name=model.output_name), 1 - keep)
    return Mask({name: model.specs[name].to_native(k) for name, k in keeps.items()}, meta)


def backend(model):
    """The framework's supermask glue, found through the model's adapter."""
    glue = adapter(model).supermasking()
    if glue is None:
        raise PruningError(f"learned supermasks are not available for {adapter(model).label} models")
    return glue


def learn_supermask(model, keep=0.5, epochs=3, seed=0, **options) -> Mask:
    """The edge-popup supermask of ``model`` (a loaded model or a zoo name) on its θ0 keeping
    ``keep`` of every layer: a plain mask whose ``meta`` says method, keep, epochs, seed, data and
    the test accuracy on θ0.  ``options``: as ``learn``."""
    if isinstance(model, str):
        from ..models.zoo import load_model

        model = load_model(model)
    return learn(model, keep, epochs, seed, **options).mask


def learn(model, keep=0.5, epochs=3, seed=0, *, limit=None, eval_limit=None, hyper=None,
          on_epoch=None, train=None) -> Learned:
    """Learn an edge-popup supermask on ``model``'s θ0 keeping ``keep`` of every layer; the mask,
    the trained scores and the per-epoch history.

    limit       train on the first ``limit`` training examples only (tests, smoke runs)
    eval_limit  measure each epoch's accuracy on a class-stratified test subset of that size
    hyper       overrides of DEFAULTS (optimizer "sgd" or "adam", lr, momentum, weight_decay,
                schedule "cosine" or "constant", batch_size)
    on_epoch    called with each epoch's {"epoch", "loss", "accuracy"}
    train       (x, y): train on these uint8 images and labels instead of the training split
    The returned mask's ``meta`` says method, keep, epochs, seed, data and accuracy (on the full
    test split, weights θ0).
    """
    check_model(model)
    keep = check_keep(keep)
    epochs = check_whole(epochs, "epochs", 1, MAX_EPOCHS)
    seed = check_whole(seed, "seed", 0, MAX_WHOLE)
    if limit is not None:
        limit = check_whole(limit, "limit", 1)
    hyper = {**DEFAULTS, **(hyper or {})}
    if hasattr(model, "remote_retrain"):
        raise PruningError("learned supermasks are not available for uploaded models")
    if "init" not in model.states:
        raise PruningError(f"model {model.name!r} has no initial weights θ0 to learn a supermask on")
    glue = backend(model)
    for split in ("train", "test") if train is None else ("test",):  # checked here: data.load would download
        if not data.available(model.dataset, split):
            raise DatasetUnavailable(f"learning a supermask needs the {model.dataset} {split} split: set "
                                     f"{data.ENV} to a directory holding {model.dataset}.npz")
    x, y = data.load(model.dataset, "train") if train is None else train
    if limit:
        x, y = x[:limit], y[:limit]
    meta = {"model": model.name, "framework": model.framework, "method": METHOD, "paper": PAPER,
            "criterion": "learned_supermask", "scope": "layer", "granularity": "weight", "weights": "init",
            "keep": keep, "sparsity": None, "epochs": epochs, "seed": seed,
            "data": {"dataset": model.dataset, "split": "train" if train is None else "given arrays",
                     "train_examples": int(len(y))}, "hyper": hyper,
            "weights_sha256": dict(model.info.get("sha256", {}))}
    history = []
    start = time.perf_counter()

    def epoch_done(epoch, loss, scores):
        mask = scores_mask(model, scores, keep)
        acc = evaluate(model, mask, weights="init", limit=eval_limit).accuracy
        history.append({"epoch": epoch, "loss": float(loss), "accuracy": acc})
        if on_epoch:
            on_epoch(history[-1])

    scores = glue.train_scores(model, initial_scores(model, seed), kept_counts(model, keep), x, y,
                               epochs=epochs, seed=seed, hyper=hyper, on_epoch=epoch_done)
    mask = scores_mask(model, scores, keep)
    result = evaluate(model, mask, weights="init")
    mask.meta = meta | {"sparsity": mask.sparsity, "accuracy": result.accuracy, "test_n": result.n,
                        "history": history, "seconds": round(time.perf_counter() - start, 1)}
    return Learned(mask, {k: np.asarray(v, dtype=np.float32) for k, v in scores.items()}, history)

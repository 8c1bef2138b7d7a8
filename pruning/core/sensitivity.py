"""Per-layer sensitivity: prune one layer at a time, the rest dense, and measure the accuracy.

``scan`` prunes each prunable tensor alone at each sparsity of a grid with a criterion (default
``large_final``, magnitude pruning), leaving every other tensor dense, and evaluates the model:
the table (layers x sparsities -> accuracy) shows which layers take how much pruning.  This is the
sensitivity analysis of Han et al. 2015 ("Learning both Weights and Connections", Fig. 6), of
Distiller's ``perform_sensitivity_analysis`` and of NNI's ``SensitivityAnalysis`` ("prunes a layer
once a time, and the other layers are set to their original weights").

``suggest_budgets`` turns a table into per-layer budgets (name -> fraction pruned) for a target
overall sparsity, for the ``sensitivity`` scope of ``compute_mask``.  The rule:

1. Each layer's accuracy drop ``d(s) = dense - accuracy(s)`` is made non-decreasing in s (its running
   maximum, starting from d(0) = 0) and read as a piecewise-linear curve between the scanned
   sparsities.  For an accuracy-drop tolerance t, the layer's budget s(t) is the largest sparsity
   up to which the drop stays within t (the first crossing of t, linearly interpolated; the largest
   scanned sparsity when the drop never exceeds t).  Thresholding each layer's sensitivity curve
   is the approach of Han et al. (per-layer thresholds from the sensitivity scan) and of NNI's
   SensitivityPruner (each layer at the largest sparsity within an accuracy-loss threshold).
2. The overall sparsity sum_i n_i s_i(t) / sum_i n_i (n_i: the layer's weights) grows with t.  The
   tolerance is bisected until two tolerances t_lo < t_hi, a hair apart, bracket the target, and
   the budgets are blended linearly between s(t_lo) and s(t_hi) so that the parameter-weighted
   overall sparsity equals the target (the blend only matters where a flat stretch of some curve
   makes s(t) jump).  When even t = 0 prunes more than the target (layers whose accuracy does not
   drop), every zero-tolerance budget is scaled down by the same factor.
3. The budgets are rounded to whole weights, k_i / n_i, with sum_i k_i = round(target * N) by
   largest remainders: the mask they give has exactly the target's number of pruned weights.
A target above the overall sparsity of the largest scanned sparsities (every layer at the end of
the grid) is refused: the scan says nothing about sparser layers.

What a one-layer-at-a-time scan cannot see: interactions between layers.  Each row is measured
with all other layers dense, so the drops of two layers do not add up to the drop of pruning both
(errors compound through the network, or cancel).  Coupled layers are the clearest case: in a
residual block the two convolutions' output is added to the shortcut, so pruning one conv changes
what the block adds to the identity path while the other conv and the next block compensate or
not; the scan measures neither pairing.  The budgets are a heuristic starting point, not a
guarantee: evaluate the resulting mask (the explorer does, and shows the real accuracy).
"""

import math
import time

import numpy as np

from ..errors import PruningError
from .criteria import CRITERIA
from .evaluate import evaluate
from .masks import Mask
from .prune import check_model, compute_mask
from .selection import check_fraction, check_whole

SPARSITIES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
CAVEAT = ("One layer at a time, the rest dense: the scan cannot see interactions between layers (two layers' "
          "drops do not add up; in residual blocks pruning one conv changes what its block adds to the shortcut). "
          "The budgets are a starting point: the accuracy of the mask they give is measured, not predicted.")


def check_sparsities(sparsities) -> list:
    """A non-empty, strictly increasing list of fractions in (0, 1]."""
    if isinstance(sparsities, str):
        sparsities = [p for p in sparsities.split(",") if p.strip()]
    try:
        values = [check_fraction(p, "sparsity") for p in sparsities]
    except TypeError:
        raise PruningError(f"sparsities must be a list of numbers in (0, 1], got {sparsities!r:.40}") from None
    if not values or len(values) > 100:
        raise PruningError("give 1 to 100 sparsities in (0, 1], e.g. 0.5,0.9,0.99")
    if values[0] <= 0 or any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise PruningError("sparsities must be increasing and above 0 (the dense accuracy is measured anyway)")
    return values


def scan(model, sparsities=SPARSITIES, criterion="large_final", *, weights="final", limit=None, seed=0,
         progress=None) -> dict:
    """The sensitivity table of ``model``: each prunable tensor pruned alone (the rest dense) at each
    of ``sparsities`` by ``criterion`` (its layer-scope ranking), evaluated on ``limit`` class-
    stratified test images (None: all).  ``progress(done, total)`` is called after each evaluation.

    Returns a plain, JSON-ready dict: model, criterion, weights, seed, limit, n (images),
    dense_accuracy, sparsities, total (prunable weights), layers: [{name, parameters, accuracy:
    [one per sparsity]}] in the model's tensor order, seconds, and the caveat (what it cannot see).
    """
    check_model(model)
    sparsities = check_sparsities(sparsities)
    if not isinstance(criterion, str) or criterion not in CRITERIA:
        raise PruningError(f"unknown criterion {criterion!r:.40}; choose one of: {', '.join(CRITERIA)}")
    limit = None if limit is None else check_whole(limit, "limit", 1)
    seed = check_whole(seed, "seed")
    start = time.perf_counter()
    dense = evaluate(model, None, weights, limit=limit)
    total_steps = len(model.specs) * len(sparsities)
    done = 0
    ones = {name: np.ones(spec.shape, dtype=bool) for name, spec in model.specs.items()}
    full = [compute_mask(model, criterion, s, scope="layer", seed=seed) for s in sparsities]  # every layer at s
    layers = []
    for name, spec in model.specs.items():
        row = []
        for mask in full:
            alone = Mask({**ones, name: mask[name]}, {**mask.meta, "only": name})
            row.append(evaluate(model, alone, weights, limit=limit).accuracy)
            done += 1
            if progress is not None:
                progress(done, total_steps)
        layers.append({"name": name, "parameters": spec.size, "accuracy": row})
    return {"model": model.name, "criterion": criterion, "weights": weights, "seed": seed, "limit": limit,
            "n": dense.n, "dense_accuracy": dense.accuracy, "sparsities": sparsities,
            "total": sum(spec.size for spec in model.specs.values()), "layers": layers,
            "seconds": round(time.perf_counter() - start, 1), "caveat": CAVEAT}


def sensitivity(model, sparsities=SPARSITIES, criterion="large_final", limit=None, *, weights="final", seed=0,
                progress=None) -> dict:
    """``scan`` of a loaded model or a zoo model's name (the public ``pruning.sensitivity``)."""
    if isinstance(model, str):
        from ..models.zoo import load_model

        model = load_model(model)
    return scan(model, sparsities, criterion, weights=weights, limit=limit, seed=seed, progress=progress)


def check_table(table) -> dict:
    """A table as ``scan`` returns it (or read back from JSON), checked enough to derive budgets."""
    try:
        sparsities = check_sparsities(table["sparsities"])
        dense = float(table["dense_accuracy"])
        layers = table["layers"]
        if not layers:
            raise ValueError
        for layer in layers:
            if len(layer["accuracy"]) != len(sparsities) or check_whole(layer["parameters"], "parameters", 1) < 1:
                raise ValueError
            if not all(math.isfinite(float(a)) for a in layer["accuracy"]):
                raise ValueError
    except (TypeError, KeyError, ValueError, IndexError):  # PruningError included
        raise PruningError("not a sensitivity table (as pruning.sensitivity returns): it needs sparsities, "
                           "dense_accuracy and layers with name, parameters and one accuracy per sparsity") from None
    if not math.isfinite(dense):
        raise PruningError("not a sensitivity table: its dense accuracy is not a number")
    return table


def _curves(table) -> tuple:
    """(sizes (layers,), grid (k+1,) starting at 0, drops (layers, k+1): running max of the drop)."""
    sizes = np.array([int(layer["parameters"]) for layer in table["layers"]], dtype=np.float64)
    grid = np.array([0.0, *map(float, table["sparsities"])])
    acc = np.array([[float(a) for a in layer["accuracy"]] for layer in table["layers"]])  # (layers, k)
    drop = np.maximum(float(table["dense_accuracy"]) - acc, 0.0)
    drops = np.maximum.accumulate(np.concatenate([np.zeros((len(sizes), 1)), drop], axis=1), axis=1)
    return sizes, grid, drops


def layer_budgets(table, tolerance: float) -> np.ndarray:
    """Each layer's largest sparsity whose (running-maximum) accuracy drop stays within ``tolerance``
    (linear between scanned sparsities), shape (layers,)."""
    _, grid, drops = _curves(table)
    out = np.empty(len(drops))
    for i, d in enumerate(drops):
        over = np.flatnonzero(d > tolerance)  # d[0] = 0 <= tolerance for tolerance >= 0
        if over.size == 0:
            out[i] = grid[-1]
            continue
        j = over[0]  # d[j-1] <= tolerance < d[j]
        out[i] = grid[j - 1] + (tolerance - d[j - 1]) / (d[j] - d[j - 1]) * (grid[j] - grid[j - 1])
    return out


def _whole(sizes: np.ndarray, budgets: np.ndarray, target_pruned: int) -> np.ndarray:
    """Pruned weights per layer (integers, each within its layer) summing to ``target_pruned``:
    floor of the exact counts, then the largest remainders get one more."""
    exact = np.clip(budgets, 0.0, 1.0) * sizes
    k = np.floor(exact + 1e-9).astype(np.int64)
    k = np.minimum(k, sizes.astype(np.int64))
    left = target_pruned - int(k.sum())
    room = sizes.astype(np.int64) - k
    order = np.argsort(-(exact - k), kind="stable")
    step = 1 if left > 0 else -1
    for i in (order if left > 0 else order[::-1]):
        if left == 0:
            break
        if (step > 0 and room[i] > 0) or (step < 0 and k[i] > 0):
            k[i] += step
            left -= step
    return k


def plan(table, target) -> dict:
    """Per-layer budgets for overall sparsity ``target`` (the rule in this module's docstring).

    Returns {"budgets": name -> fraction pruned (whole weights: k / n), "tolerance": the accuracy
    drop allowed per layer (a fraction; the blend of two when they bracket the target), "sparsity":
    the budgets' overall sparsity (round(target * N) / N), "predicted_drop": name -> the layer's
    scanned drop at its budget (alone, the rest dense)}.
    """
    table = check_table(table)
    target = check_fraction(target, "target sparsity")
    sizes, grid, drops = _curves(table)
    total = sizes.sum()
    overall = lambda b: float((sizes * b).sum() / total)  # noqa: E731
    most = overall(np.full(len(sizes), grid[-1]))
    if target > most + 1e-12:
        raise PruningError(f"target sparsity {target:.4g} is above what the scan covers ({most:.4g}, every layer at "
                           f"{grid[-1]:.4g}); scan higher sparsities or choose a lower target")
    zero = layer_budgets(table, 0.0)
    if overall(zero) >= target:  # scale the zero-tolerance budgets down
        scale = target / overall(zero) if overall(zero) > 0 else 0.0
        budgets, tolerance = zero * scale, 0.0
    else:
        lo, hi = 0.0, float(drops.max()) + 1.0  # overall(lo) < target <= overall(hi) = most
        for _ in range(100):
            mid = (lo + hi) / 2
            if overall(layer_budgets(table, mid)) < target:
                lo = mid
            else:
                hi = mid
            if hi - lo < 1e-12:
                break
        b_lo, b_hi = layer_budgets(table, lo), layer_budgets(table, hi)
        o_lo, o_hi = overall(b_lo), overall(b_hi)
        w = 1.0 if o_hi == o_lo else (target - o_lo) / (o_hi - o_lo)
        budgets, tolerance = b_lo + w * (b_hi - b_lo), lo + w * (hi - lo)
    k = _whole(sizes, budgets, round(target * total))
    names = [layer["name"] for layer in table["layers"]]
    fractions = {name: int(ki) / int(n) for name, ki, n in zip(names, k, sizes, strict=True)}
    predicted = {name: float(np.interp(fractions[name], grid, d)) for name, d in zip(names, drops, strict=True)}
    return {"budgets": fractions, "tolerance": float(tolerance), "sparsity": float(k.sum() / total),
            "predicted_drop": predicted}


def suggest_budgets(table, target) -> dict:
    """name -> fraction pruned of each layer, for overall sparsity ``target`` (see ``plan``); pass it
    to ``compute_mask(model, strategy, scope="sensitivity", budgets=...)``."""
    return plan(table, target)["budgets"]


"""Plain numbers behind the explorer's charts: model size, weight histograms and samples,
first-layer mask images, prediction changes, per-layer warnings and the precomputed sweeps.

Every function takes a loaded model and/or a mask (dict name -> bool array, True = kept) or
evaluations, and returns plain Python / NumPy data; nothing here draws or imports Streamlit.
"""

import csv
import io

import numpy as np

from .. import memo
from .criteria import resolve_alias
from .selection import parse_granularity
from ..models.zoo import ZOO

NEARLY_EMPTY = 0.99  # a layer with at least this fraction pruned is flagged


def fixed_sparsity(granularity: str) -> float | None:
    """The sparsity an N:M pattern fixes (1 - N/M), or None when the sparsity is free."""
    g = parse_granularity(granularity)
    return 1 - g.n / g.m if g.kind == "nm" else None


def default_limit(dataset: str, device: str) -> int | None:
    """Evaluation set size: the full test set (None) for MNIST-like data or on a GPU, else a
    500-image stratified subset (CIFAR-10 on a CPU: a ResNet-20 takes seconds per 1,000 images)."""
    return None if dataset in ("mnist", "fashion_mnist") or str(device).startswith("cuda") else 500


def parameter_count(model) -> tuple:
    """(total, prunable) parameters: from a zoo model's model.json, else counted from θf."""
    recorded = model.info.get("parameters") or {}
    prunable = sum(spec.size for spec in model.specs.values())
    total = recorded.get("total") or sum(int(np.size(a)) for a in model.states["final"].values())
    return int(max(total, prunable)), int(prunable)


def model_size(model, mask: dict) -> dict:
    """Bytes to store the model dense vs sparse (non-prunable parameters are stored dense in all).

    dense    every parameter as float32 (4 bytes).
    bitmask  one bit per prunable weight + the kept weights as float32.
    csr      per tensor, rows = output units: kept values (float32) + column indices (int32)
             + row pointers (int32, rows + 1).
    """
    total, prunable = parameter_count(model)
    rest = (total - prunable) * 4
    kept = sum(int(np.count_nonzero(keep)) for keep in mask.values())
    bits = sum((int(keep.size) + 7) // 8 for keep in mask.values())
    rows = sum(int(model.specs[name].canonical_shape[0]) for name in mask)
    return {"dense": total * 4, "bitmask": rest + bits + kept * 4,
            "csr": rest + kept * 8 + (rows + len(mask)) * 4, "kept": kept, "prunable": prunable}


def nearly_empty_layers(mask: dict, threshold: float = NEARLY_EMPTY) -> list:
    """Names of the tensors with at least ``threshold`` of their weights pruned."""
    return [name for name, keep in mask.items() if keep.size and 1 - np.count_nonzero(keep) / keep.size >= threshold]


def report_csv(report: dict) -> str:
    """The per-layer rows of ``pruning.report(mask)`` as CSV text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["name", "shape", "total", "kept", "pruned", "sparsity"])
    for row in report["layers"]:
        shape = "x".join(str(d) for d in row["shape"])
        writer.writerow([row["name"], shape, row["total"], row["kept"], row["pruned"], f"{row['sparsity']:.6f}"])
    return out.getvalue()


def weight_histogram(model, mask: dict, name: str, bins: int = 60) -> dict:
    """Histogram counts of one tensor's trained ("final") and initial ("init") weights, split into
    kept and pruned: {set: {"edges": (bins+1,), "kept": (bins,), "pruned": (bins,)}}."""
    keep = np.asarray(mask[name], dtype=bool)
    out = {}
    for which in ("final", "init"):
        if which not in model.states:
            continue
        w = np.asarray(model.weights(which)[name], dtype=np.float64)
        edges = np.histogram_bin_edges(w, bins=bins)
        out[which] = {"edges": edges, "kept": np.histogram(w[keep], edges)[0],
                      "pruned": np.histogram(w[~keep], edges)[0]}
    return out


def weight_sample(model, mask: dict, name: str, max_points: int = 20000, seed: int = 0) -> dict:
    """θ0, θf and kept flags of at most ``max_points`` weights of one tensor (a seeded uniform
    sample, so a big layer stays light to draw); ``total`` is the tensor's size."""
    final = np.asarray(model.weights("final")[name]).reshape(-1)
    init = np.asarray(model.weights("init")[name]).reshape(-1) if "init" in model.states else final
    keep = np.asarray(mask[name], dtype=bool).reshape(-1)
    idx = _sample(final.size, max_points, seed) if final.size > max_points else slice(None)
    return {"init": init[idx], "final": final[idx], "kept": keep[idx], "total": int(final.size)}


@memo.lru(maxsize=32)
def _sample(size: int, points: int, seed: int) -> np.ndarray:
    """Sorted indices of ``points`` of ``size`` items, drawn once per (size, points, seed): drawing
    them takes memory in proportion to ``size`` (17 MB for Conv-4's 2.1-million-weight layer), and
    a class of sessions moving the slider at once would each draw the same ones."""
    idx = np.sort(np.random.default_rng(seed).choice(size, points, replace=False))
    idx.setflags(write=False)
    return idx


def first_layer_images(model, mask: dict, count: int = 8, image_shape=(28, 28), units=None) -> dict | None:
    """Pictures of the first layer's mask.

    Dense first layer over ``image_shape`` pixels: {"kind": "dense", "units": the ``count``
    hidden units with the most kept weights, "masks": (count, h, w) bool, "kept": kept per unit,
    "coverage": (h, w), the fraction of all units keeping each pixel}.
    Convolution: {"kind": "conv", "units": the first ``count`` filters, "filters": (count, kh, kw)
    or (count, kh, kw, 3) of θf × mask, "kept": kept per filter}.  None for anything else.
    ``units`` (dense only) fixes the hidden units shown, e.g. the same ones in every round of IMP.
    """
    name = next(iter(model.specs))
    spec = model.specs[name]
    keep = spec.to_canonical(np.asarray(mask[name], dtype=bool))
    pixels = int(np.prod(image_shape))
    if keep.ndim == 2 and keep.shape[1] == pixels:
        kept = keep.sum(axis=1)
        units = np.argsort(-kept, kind="stable")[:count] if units is None else np.asarray(units, dtype=int)
        return {"kind": "dense", "units": units.tolist(), "masks": keep[units].reshape(-1, *image_shape),
                "kept": kept[units].tolist(), "coverage": keep.mean(axis=0).reshape(image_shape)}
    if keep.ndim == 4:
        w = spec.to_canonical(np.asarray(model.weights("final")[name])) * keep  # (out, in, kh, kw)
        units = list(range(min(count, w.shape[0])))
        filters = w[units]
        filters = filters[:, 0] if filters.shape[1] != 3 else np.moveaxis(filters, 1, -1)
        return {"kind": "conv", "units": units, "filters": filters,
                "kept": [int(keep[u].sum()) for u in units], "size": int(keep[0].size)}
    return None


def compare(dense, pruned, count: int = 8) -> dict:
    """How pruning changed the predictions, from two Evaluations on the same test images.

    Returns per-class accuracy before and after, the change of the confusion matrix (row = true
    class), counts of images that broke (right -> wrong) and got fixed, and up to ``count``
    changed images (broken first): dicts of test-split index, label, dense and pruned prediction.
    """
    if not np.array_equal(dense.indices, pruned.indices):
        raise ValueError("the two evaluations ran on different test images")
    y, before, after = dense.labels, dense.predictions, pruned.predictions
    broken = np.flatnonzero((before == y) & (after != y))
    fixed = np.flatnonzero((before != y) & (after == y))
    other = np.flatnonzero((before != after) & (before != y) & (after != y))
    picks = np.concatenate([broken, fixed, other])[:count]
    changed = [{"index": int(dense.indices[i]), "label": int(y[i]), "dense": int(before[i]),
                "pruned": int(after[i])} for i in picks]
    return {"per_class_dense": dense.per_class, "per_class_pruned": pruned.per_class,
            "confusion_change": pruned.confusion.astype(np.int64) - dense.confusion.astype(np.int64),
            "broken": int(broken.size), "fixed": int(fixed.size),
            "changed": int(np.count_nonzero(before != after)), "examples": changed}


def sweep(name: str) -> list | None:
    """The precomputed rows of ``pretrained/<name>/sweep.csv`` (None if the file does not exist).
    Alias strategies (smallest_weights...) are reported under their criterion."""
    path = ZOO / str(name) / "sweep.csv"
    if not path.is_file():
        return None
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            strategy, fixed = resolve_alias(row["strategy"])
            row["scope"] = fixed or row["scope"]
            rows.append({"strategy": strategy, "scope": row["scope"], "granularity": row["granularity"],
                         "weights": row["weights"], "sparsity": float(row["sparsity"]),
                         "accuracy": float(row["accuracy"])})
    return rows


def sweep_curves(rows: list, strategies, scope: str, granularity: str, weights: str) -> dict:
    """{strategy: {"sparsity": [...], "accuracy": [...]}} for one scope, granularity and weight
    set, sorted by sparsity, accuracy averaged over seeds; strategies without rows are left out."""
    curves = {}
    for strategy in strategies:
        points = {}
        for r in rows:
            if (r["strategy"], r["scope"], r["granularity"], r["weights"]) == (strategy, scope, granularity, weights):
                points.setdefault(round(r["sparsity"], 6), []).append(r["accuracy"])
        if points:
            xs = sorted(points)
            curves[strategy] = {"sparsity": xs, "accuracy": [float(np.mean(points[x])) for x in xs]}
    return curves

"""How much two masks of the same model agree: the weights each keeps and the Jaccard overlap.

    overlap(mask_a, mask_b)["jaccard"]   # |A ∩ B| / |A ∪ B| of the kept weights, 1.0 = identical

Used by ``pruning.compare_masks``, ``python -m pruning compare`` and the explorer's Compare tab.
"""

import numpy as np

from ..errors import PruningError, quote


def _check(mask_a, mask_b) -> None:
    """Both masks: dicts of boolean arrays with the same tensor names and shapes (one-line error otherwise)."""
    for label, mask in (("A", mask_a), ("B", mask_b)):
        if not isinstance(mask, dict):
            raise PruningError(f"mask {label} is not a mask (a dict of tensor name -> boolean array)")
        for name, keep in mask.items():
            if not isinstance(keep, np.ndarray) or keep.dtype != np.bool_:
                raise PruningError(f"mask {label}: {quote(name)} is not a boolean array")
    only_a = [quote(n) for n in mask_a if n not in mask_b]
    only_b = [quote(n) for n in mask_b if n not in mask_a]
    if only_a or only_b:
        raise PruningError("the masks have different tensors: only in A: " + (", ".join(only_a) or "none")
                           + "; only in B: " + (", ".join(only_b) or "none"))
    for name, keep in mask_a.items():
        if keep.shape != mask_b[name].shape:
            raise PruningError(f"{quote(name)} has shape {keep.shape} in mask A but {mask_b[name].shape} in mask B")


def _counts(total: int, kept_a: int, kept_b: int, both: int) -> dict:
    """The counts of one tensor (or of all), their sparsities and the Jaccard index of the kept weights."""
    union = kept_a + kept_b - both
    return {"total": total, "kept_a": kept_a, "kept_b": kept_b, "kept_both": both,
            "sparsity_a": 1 - kept_a / total if total else 0.0, "sparsity_b": 1 - kept_b / total if total else 0.0,
            "jaccard": both / union if union else 1.0}  # both keep nothing: they agree


def overlap(mask_a, mask_b) -> dict:
    """The overlap of two masks of the same model (name -> bool array, True = kept).

    Returns {"total", "kept_a", "kept_b", "kept_both", "sparsity_a", "sparsity_b", "jaccard",
    "layers": [the same per tensor, with "name", in mask A's order]}, where
    jaccard = |A ∩ B| / |A ∪ B| of the kept weights (1.0 when neither keeps any).
    Raises PruningError when the masks differ in tensor names or shapes.
    """
    _check(mask_a, mask_b)
    layers = []
    for name, a in mask_a.items():
        b = mask_b[name]  # same shape as a
        layers.append({"name": name, **_counts(int(a.size), int(np.count_nonzero(a)), int(np.count_nonzero(b)),
                                               int(np.count_nonzero(a & b)))})
    overall = _counts(*(sum(row[key] for row in layers) for key in ("total", "kept_a", "kept_b", "kept_both")))
    return {**overall, "layers": layers}

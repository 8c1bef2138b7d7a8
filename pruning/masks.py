"""Masks: a plain dict of tensor name -> boolean array (True = kept), with metadata.

Saved as ``.npz``: one boolean array per tensor keyed by its framework name, plus ``__meta__``,
a JSON string (model, strategy, scope, granularity, requested and actual sparsity, seed, and the
sha256 of the weight files the mask was computed from).  Files are written atomically.
"""

import json
import zipfile

import numpy as np

from .errors import PruningError
from .io import atomic_write

META_KEY = "__meta__"
MAX_UNPACKED = 256 * 2**20  # a mask file's arrays in total, before any is decompressed (zip bombs)


class Mask(dict):
    """name -> bool array; ``meta`` holds how the mask was made."""

    def __init__(self, arrays=(), meta=None):
        super().__init__(arrays)
        self.meta = dict(meta or {})

    @property
    def sparsity(self) -> float:
        return report(self)["sparsity"]


def report(mask: dict) -> dict:
    """Per-tensor and overall counts and fractions of pruned weights."""
    layers = []
    for name, keep in mask.items():
        total, kept = int(keep.size), int(np.count_nonzero(keep))
        layers.append({"name": name, "shape": list(keep.shape), "total": total, "kept": kept,
                       "pruned": total - kept, "sparsity": (total - kept) / total if total else 0.0})
    total = sum(row["total"] for row in layers)
    kept = sum(row["kept"] for row in layers)
    return {"total": total, "kept": kept, "pruned": total - kept,
            "sparsity": (total - kept) / total if total else 0.0, "layers": layers}


def validate(mask: dict, shapes: dict) -> None:
    """Raise one error naming every missing, unexpected, misshapen or non-boolean tensor."""
    problems = []
    for name in shapes:
        if name not in mask:
            problems.append(f"missing {name}")
    for name, arr in mask.items():
        if name not in shapes:
            problems.append(f"unexpected {name} (not a prunable tensor of this model)")
            continue
        if tuple(arr.shape) != tuple(shapes[name]):
            problems.append(f"{name} has shape {tuple(arr.shape)}, the model's is {tuple(shapes[name])}")
        if arr.dtype != np.bool_:
            problems.append(f"{name} has dtype {arr.dtype}, expected bool")
    if problems:
        raise PruningError("mask does not match the model: " + "; ".join(problems))


def save(mask: Mask, path) -> None:
    """Write ``mask`` as .npz (atomically: a failed write leaves no file)."""
    meta = json.dumps(getattr(mask, "meta", {}), sort_keys=True)
    arrays = {name: np.asarray(arr, dtype=bool) for name, arr in mask.items()}
    if META_KEY in arrays:
        raise PruningError(f"{META_KEY!r} is reserved and cannot name a tensor")
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays, **{META_KEY: np.array(meta)}))


def load(path, shapes: dict | None = None) -> Mask:
    """Read a mask saved by ``save``; with ``shapes`` (name -> shape) also validate it."""
    try:
        with zipfile.ZipFile(path) as z:
            if sum(i.file_size for i in z.infolist()) > MAX_UNPACKED:
                raise PruningError(f"mask file {path} unpacks to more than {MAX_UNPACKED // 2**20} MB")
        if hasattr(path, "seek"):  # an uploaded file object
            path.seek(0)
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k != META_KEY}
            meta = json.loads(str(data[META_KEY])) if META_KEY in data.files else {}
    except PruningError:
        raise
    except FileNotFoundError:
        raise PruningError(f"mask file not found: {path}") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, json.JSONDecodeError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise PruningError(f"cannot read mask file {path}: not a valid .npz mask ({reason})") from None
    if not isinstance(meta, dict):
        raise PruningError(f"cannot read mask file {path}: not a valid .npz mask (its {META_KEY} is not a JSON object)")
    mask = Mask(arrays, meta)
    if shapes is not None:
        validate(mask, shapes)
    return mask

"""Masks: a plain dict of tensor name -> boolean array (True = kept), with metadata.

Saved as ``.npz``: one boolean array per tensor keyed by its framework name, plus ``__meta__``,
a JSON string (model, strategy, scope, granularity, requested and actual sparsity, seed, and the
sha256 of the weight files the mask was computed from).  Files are written atomically.
"""

import io
import json
import os

import numpy as np

from ..errors import PruningError, quote
from ..fileio import atomic_write
from ..uploads.readers.archive import HEAD_BYTES, read_zip
from ..uploads.readers.common import first_line, json_depth

META_KEY = "__meta__"
MAX_UNPACKED = 256 * 2**20  # a mask file's arrays in total, before any is decompressed (zip bombs)
MAX_META = 64 * 2**10  # bytes of the __meta__ member
MAX_META_DEPTH = 20  # nesting of __meta__'s JSON
ARRAY_KINDS = "biuf"  # bool, int, uint, float: the dtypes a mask file may hold


class Mask(dict):
    """name -> bool array; ``meta`` holds how the mask was made."""

    def __init__(self, arrays=(), meta=None):
        super().__init__(arrays)
        self.meta = dict(meta or {})

    @property
    def sparsity(self) -> float:
        return report(self)["sparsity"]


def check_type(mask) -> None:
    """A mask is a dict of name -> boolean (or 0/1 numeric) numpy array, as ``compute_mask`` returns."""
    if not isinstance(mask, dict) or not all(isinstance(n, str) and isinstance(v, np.ndarray)
                                             and v.dtype.kind in ARRAY_KINDS for n, v in mask.items()):
        raise PruningError("a mask must be a dict of name -> boolean numpy array, as pruning.compute_mask returns")


def report(mask: dict) -> dict:
    """Per-tensor and overall counts and fractions of pruned weights."""
    check_type(mask)
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
    """Raise one error naming every missing, unexpected, misshapen or non-boolean tensor (names
    come from users' files: they are quoted, errors.quote)."""
    problems = []
    for name in shapes:
        if name not in mask:
            problems.append(f"missing {quote(name)}")
    for name, arr in mask.items():
        if name not in shapes:
            problems.append(f"unexpected {quote(name)} (not a prunable tensor of this model)")
            continue
        if tuple(arr.shape) != tuple(shapes[name]):
            problems.append(f"{quote(name)} has shape {tuple(arr.shape)}, the model's is {tuple(shapes[name])}")
        if arr.dtype != np.bool_:
            problems.append(f"{quote(name)} has dtype {arr.dtype}, expected bool")
    if problems:
        raise PruningError("mask does not match the model: " + "; ".join(problems))


def save(mask: Mask, path) -> None:
    """Write ``mask`` as .npz (atomically: a failed write leaves no file)."""
    check_type(mask)
    meta = json.dumps(getattr(mask, "meta", {}), sort_keys=True)
    arrays = {name: np.asarray(arr, dtype=bool) for name, arr in mask.items()}
    if META_KEY in arrays:
        raise PruningError(f"{META_KEY!r} is reserved and cannot name a tensor")
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays, **{META_KEY: np.array(meta)}))


def _npy_header(f, name: str, label: str):
    """(shape, dtype) of a .npy member read from ``f``, once it shows format 1.0 or 2.0, a plain
    dtype (``__meta__``: a string) and a shape of non-negative sizes."""
    version = np.lib.format.read_magic(f)
    if version not in ((1, 0), (2, 0)):
        raise PruningError(f"{label}: {name} uses .npy format {version}; only 1.0 and 2.0 are accepted")
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read_header(f)
    kinds = "U" if name == META_KEY + ".npy" else ARRAY_KINDS
    if dtype.kind not in kinds or dtype.hasobject or dtype.fields or dtype.subdtype:
        raise PruningError(f"{label}: {name} holds {dtype} values; only bool, int, uint and float arrays are accepted")
    if any(not isinstance(n, int) or n < 0 for n in shape):
        raise PruningError(f"{label}: {name} declares the shape {shape}")
    return shape, dtype


def _npy_size(f, name: str, label: str, size: int) -> None:
    """Refuse a .npy member of ``size`` bytes whose header declares another amount of data."""
    shape, dtype = _npy_header(f, name, label)
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes != size - f.tell():
        raise PruningError(f"{label}: {name} declares {nbytes} bytes of data (shape {shape}) but holds "
                           f"{size - f.tell()}")


def _header_end(head: bytes) -> int:
    """Where a .npy header says it ends (magic, version, length field, header), 0 if ``head`` does
    not start like one."""
    if not head.startswith(b"\x93NUMPY") or len(head) < 12:
        return 0
    if head[6] == 1:
        return 10 + int.from_bytes(head[8:10], "little")
    return 12 + int.from_bytes(head[8:12], "little")


def _npy_head(label: str):
    """``read_zip``'s ``head`` check for a mask: each .npy header, judged against the member's
    declared size before the member is unpacked (its header must fit in the first HEAD_BYTES)."""
    def check(name: str, head: bytes, declared: int) -> None:
        try:
            _npy_size(io.BytesIO(head), name, label, declared)
        except PruningError:
            raise
        except (ValueError, EOFError) as exc:
            if _header_end(head) > HEAD_BYTES:
                raise PruningError(f"{label}: the .npy header of {name} is over {HEAD_BYTES} bytes") from None
            raise PruningError(f"cannot read {label}: not a valid .npz mask ({first_line(exc)})") from None
    return check


def _npy_array(data: bytes, name: str, label: str) -> np.ndarray:
    """The array of one .npy member, once its header shows a plain dtype and a shape that
    matches the member's size (nothing is allocated for a header that lies)."""
    f = io.BytesIO(data)
    _npy_size(f, name, label, len(data))
    f.seek(0)
    return np.lib.format.read_array(f, allow_pickle=False)


def _meta(data: bytes, label: str) -> dict:
    """``__meta__``: a JSON object of at most MAX_META bytes, nested at most MAX_META_DEPTH deep."""
    if len(data) > MAX_META:
        raise PruningError(f"{label}: its {META_KEY} is over {MAX_META // 2**10} KB")
    text = str(_npy_array(data, META_KEY + ".npy", label))
    if json_depth(text) > MAX_META_DEPTH:
        raise PruningError(f"{label}: its {META_KEY} nests deeper than {MAX_META_DEPTH} levels")
    meta = json.loads(text)
    if not isinstance(meta, dict):
        raise PruningError(f"cannot read {label}: not a valid .npz mask (its {META_KEY} is not a JSON object)")
    return meta


def load(path, shapes: dict | None = None) -> Mask:
    """Read a mask saved by ``save`` (a path or an uploaded file object); with ``shapes``
    (name -> shape) also validate it.  The zip is vetted by ``readers.archive.read_zip``: only
    .npy members, at most MAX_UNPACKED bytes in all; each .npy header is checked against the
    member's declared size before the member is unpacked, and again against its bytes before the
    array is made; ``__meta__`` must be a small, shallow JSON object."""
    if not (hasattr(path, "read") or isinstance(path, (str, os.PathLike))):  # an int would open a descriptor
        raise PruningError(f"cannot read {path!r:.60}: not a file path")
    label = f"mask file {path}"
    try:
        f = path if hasattr(path, "read") else open(path, "rb")
    except FileNotFoundError:
        raise PruningError(f"mask file not found: {path}") from None
    except OSError as exc:
        raise PruningError(f"cannot read {label}: not a valid .npz mask ({exc.strerror or exc})") from None
    try:
        # a valid mask of one value compresses ~1000:1 (deflate's ceiling), so no ratio test here:
        # MAX_UNPACKED bounds a bomb
        members = read_zip(f, label, ".npz mask", allow=lambda name: name.endswith(".npy"),
                           why="only .npy arrays are accepted in a mask file", max_member=MAX_UNPACKED,
                           max_total=MAX_UNPACKED, max_ratio=None, head=_npy_head(label))
        meta = _meta(members.pop(META_KEY + ".npy"), label) if META_KEY + ".npy" in members else {}
        arrays = {name[:-4]: _npy_array(data, name, label) for name, data in members.items()}
    except PruningError:
        raise
    except (OSError, ValueError, EOFError) as exc:  # a header numpy cannot parse, JSON that is not JSON
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise PruningError(f"cannot read {label}: not a valid .npz mask ({reason})") from None
    finally:
        if f is not path:
            f.close()
    mask = Mask(arrays, meta)
    if shapes is not None:
        validate(mask, shapes)
    return mask

""".safetensors: a state dict of a zoo architecture (torch_nets.py), recognised from its keys and shapes.

The header is parsed and checked here first (its length, its JSON, every tensor's dtype, shape and
place in the file), the zoo architecture is matched from the header's names and shapes alone, and
only then are the tensors loaded.
"""

from functools import lru_cache
import json
import math
from pathlib import Path

from ...errors import PruningError, quote

MAX_HEADER = 16 * 2**20  # bytes of JSON header
MAX_TENSORS = 1000
MAX_RANK = 8
ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def _bad(path, reason: str) -> PruningError:
    return PruningError(f"cannot read {Path(path).name}: not a valid .safetensors file ({reason})")


def _unique(pairs: list) -> dict:
    """A JSON object's pairs as a dict, refusing a name given twice."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"{quote(key)} appears twice")
        out[key] = value
    return out


def _check_entry(path, name: str, entry, data_size: int) -> tuple:
    """The shape of one header entry, after checking its dtype, shape and data offsets."""
    what = f"tensor {quote(name)}"
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise _bad(path, f"{what} is not described by exactly dtype, shape and data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in ITEMSIZE:
        raise _bad(path, f"{what} has dtype {quote(dtype)}; accepted: {', '.join(ITEMSIZE)}")
    if (not isinstance(shape, list) or len(shape) > MAX_RANK
            or not all(type(d) is int and d >= 0 for d in shape)):
        raise _bad(path, f"{what} has shape {quote(shape)}; expected at most {MAX_RANK} non-negative integers")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_size):
        raise _bad(path, f"{what} has data_offsets {quote(offsets)}, outside the data section (0 to {data_size})")
    need = math.prod(shape) * ITEMSIZE[dtype]
    if offsets[1] - offsets[0] != need:
        raise _bad(path, f"{what} has {offsets[1] - offsets[0]} bytes of data; its shape and dtype need {need}")
    return tuple(shape)


def read_header(path) -> dict:
    """name -> shape of every tensor in a .safetensors file, from its header alone (no tensor is
    read), or a one-line PruningError: the header's length (8 bytes, little-endian) is at most
    MAX_HEADER and within the file; it is a JSON object of at most MAX_TENSORS tensors, each with a
    dtype from ITEMSIZE, a shape of non-negative integers and data offsets inside the data section,
    as long as shape and dtype need, overlapping no other tensor's."""
    name = Path(path).name
    try:
        size = Path(path).stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise _bad(path, "shorter than the 8 bytes that give its header's length")
            n = int.from_bytes(head, "little")
            if n > MAX_HEADER:
                size, cap = f"{n / 2**20:.0f} MB", f"{MAX_HEADER / 2**20:.0f} MB"
                if size == cap:  # 16 MB + 1 byte: exact counts, not "16 MB; the limit is 16 MB"
                    size, cap = f"{n:,} bytes", f"{cap} ({MAX_HEADER:,} bytes)"
                raise PruningError(f"{name} declares a header of {size}; the limit is {cap}")
            if 8 + n > size:
                raise _bad(path, f"its header of {n} bytes runs past the end of the file ({size} bytes)")
            raw = f.read(n)
    except OSError as exc:  # its message would show the server's path
        raise _bad(path, quote(exc.strerror or type(exc).__name__)) from None
    try:
        header = json.loads(raw, object_pairs_hook=_unique)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _bad(path, f"its header is not JSON: {quote(exc, 120)}") from None
    if not isinstance(header, dict):
        raise _bad(path, "its header is not a JSON object")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise _bad(path, "its __metadata__ is not an object of strings")
    if len(header) > MAX_TENSORS:
        raise PruningError(f"{name} holds {len(header)} tensors; the limit is {MAX_TENSORS}")
    data_size = size - 8 - n
    shapes = {key: _check_entry(path, key, entry, data_size) for key, entry in header.items()}
    spans = sorted((entry["data_offsets"], key) for key, entry in header.items())
    for (first, a), (second, b) in zip(spans, spans[1:], strict=False):  # each span and the next
        if second[0] < first[1]:
            raise _bad(path, f"tensors {quote(a)} and {quote(b)} overlap")
    return shapes


@lru_cache(maxsize=None)
def _zoo_shapes(architecture: str) -> dict:
    from ...models.torch_nets import ARCHITECTURES

    return {k: tuple(v.shape) for k, v in ARCHITECTURES[architecture]().state_dict().items()}


def _differences(expected: dict, got: dict) -> list:
    """What differs between two name -> shape dicts; ``expected`` holds a zoo architecture's names,
    shown as they are, and names only in ``got`` (from a user's file) are quoted."""
    optional = [k for k in expected if k.endswith("num_batches_tracked")]
    problems = [f"missing {k}" for k in expected if k not in got and k not in optional]
    problems += [f"unexpected {quote(k)}" for k in got if k not in expected]
    problems += [f"{k} has shape {got[k]}, expected {s}" for k, s in expected.items() if k in got and got[k] != s]
    return problems


def read_safetensors(path, shapes: dict | None = None) -> dict:
    """name -> numpy array; floating tensors as float32.  ``shapes``: the header's, if already read."""
    shapes = read_header(path) if shapes is None else shapes
    try:
        from safetensors.torch import load_file

        state = load_file(str(path))
        state = {k: (v.float() if v.is_floating_point() else v).numpy() for k, v in state.items()}
    except Exception as exc:  # noqa: BLE001 - a user's file: any failure is bad input
        raise _bad(path, quote(str(exc).strip() or type(exc).__name__, 120)) from None
    if {k: v.shape for k, v in state.items()} != shapes:
        raise _bad(path, "its tensors differ from its header")
    return state


def match_architecture(shapes: dict, architecture: str | None = None) -> str:
    """The zoo architecture whose state dict has exactly these names and shapes (name -> shape)."""
    from ...models.torch_nets import ARCHITECTURES

    if architecture is not None and architecture not in ARCHITECTURES:
        raise PruningError(f"unknown architecture {architecture!r}; choose one of: {', '.join(ARCHITECTURES)}")
    got = {k: tuple(s) for k, s in shapes.items()}
    diffs = {a: _differences(_zoo_shapes(a), got) for a in ([architecture] if architecture else ARCHITECTURES)}
    for a, problems in diffs.items():
        if not problems:
            return a
    best = min(diffs, key=lambda a: len(diffs[a]))
    shown = "; ".join(diffs[best][:4]) + ("; ..." if len(diffs[best]) > 4 else "")
    which = (f"architecture {best}" if architecture
             else f"any zoo architecture ({', '.join(ARCHITECTURES)}); closest, {best}")
    raise PruningError(f"the state dict does not match {which}: {shown}")


def safetensors_model(name, info, path, init_path, architecture):
    """A TorchModel; both headers are checked and matched before any tensor is loaded."""
    from ...models.torch_model import TorchModel

    shapes = {"final": read_header(path)}
    info["architecture"] = match_architecture(shapes["final"], architecture)
    if init_path is not None:
        shapes["init"] = read_header(init_path)
        problems = _differences(shapes["final"], shapes["init"])
        if problems:
            raise PruningError(f"the init file does not match the model: {'; '.join(problems[:4])}")
    paths = {"final": path, "init": init_path}
    states = {which: read_safetensors(paths[which], s) for which, s in shapes.items()}
    return TorchModel(name, info, states)

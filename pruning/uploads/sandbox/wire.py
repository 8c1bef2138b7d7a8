"""The messages between the server and a sandboxed worker: a JSON header and raw arrays, no pickle.

One message on a pipe:

    8 bytes   header length n, little-endian
    n bytes   JSON object; its "arrays" lists {"key", "dtype", "shape"} of each array that follows
    ...       each array's raw C-order bytes, in that order

The server reads what a worker sends as if it came from the visitor (a worker may have been
subverted by the file it read), so ``read`` trusts nothing: the header length and the total size
are capped, dtypes come from a short list of plain numeric types (never object), shapes are
lists of non-negative ints, and every byte count is computed from dtype and shape and checked
before anything is allocated.  A deadline bounds each read: a silent worker is a timeout, not a
hang.
"""

import json
import os
import select
import time

import numpy as np

MAX_HEADER = 4 * 2**20  # bytes of JSON
DTYPES = ("|b1", "|u1", "|i1", "<i2", "<i4", "<i8", "<u4", "<f2", "<f4", "<f8")  # what may cross


class WireError(Exception):
    """A malformed message, a closed pipe or a deadline passed: the worker is not to be trusted."""


class Timeout(WireError):
    pass


def encode(header: dict, arrays: dict | None = None) -> list:
    """The message as a list of buffers (header + arrays) for ``write``."""
    arrays = {k: np.ascontiguousarray(v) for k, v in (arrays or {}).items()}
    for k, v in arrays.items():
        if v.dtype.str not in DTYPES:
            raise TypeError(f"array {k!r} has dtype {v.dtype}, which does not cross the wire")
    header = {**header, "arrays": [{"key": k, "dtype": v.dtype.str, "shape": list(v.shape)} for k, v in arrays.items()]}
    head = json.dumps(header, allow_nan=False).encode()
    return [len(head).to_bytes(8, "little"), head, *(memoryview(v).cast("B") for v in arrays.values())]


def _wait(fd: int, deadline: float | None, writing: bool = False) -> None:
    if deadline is not None:
        left = deadline - time.monotonic()
        if writing:
            ready = select.select([], [fd], [], max(left, 0))[1]
        else:
            ready = select.select([fd], [], [], max(left, 0))[0]
        if left <= 0 or not ready:
            raise Timeout("no answer before the deadline")


def write(fd: int, header: dict, arrays: dict | None = None, *, deadline: float | None = None) -> None:
    """Send one message; with a deadline (and ``fd`` non-blocking), a reader that stops reading is
    a Timeout, not a hang."""
    for part in encode(header, arrays):
        view = memoryview(part).cast("B")
        while view.nbytes:
            _wait(fd, deadline, writing=True)
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:  # a non-blocking pipe that filled up: wait again
                pass


def _read_into(fd: int, buffer: memoryview, deadline: float | None) -> None:
    while buffer.nbytes:
        _wait(fd, deadline)
        n = os.readv(fd, [buffer])
        if n == 0:
            raise WireError("the pipe closed")
        buffer = buffer[n:]


def _array_meta(entry, budget: int) -> tuple:
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
        raise WireError("malformed array entry")
    dtype, shape = entry.get("dtype"), entry.get("shape")
    if dtype not in DTYPES:
        raise WireError(f"dtype {str(dtype)[:20]!r} is not accepted")
    if not isinstance(shape, list) or len(shape) > 8 or not all(type(d) is int and 0 <= d < 2**40 for d in shape):
        raise WireError("malformed shape")
    nbytes = int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize
    if nbytes > budget:
        raise WireError("the arrays are larger than allowed")
    return entry["key"], np.dtype(dtype), tuple(shape), nbytes


def read(fd: int, *, deadline: float | None = None, max_bytes: int = 2**31, max_header: int = MAX_HEADER) -> tuple:
    """(header dict, {key: array}) of the next message; WireError for anything malformed."""
    size = bytearray(8)
    _read_into(fd, memoryview(size), deadline)
    n = int.from_bytes(size, "little")
    if not 0 < n <= max_header:
        raise WireError("header length out of range")
    head = bytearray(n)
    _read_into(fd, memoryview(head), deadline)
    try:
        header = json.loads(head)
    except (ValueError, RecursionError):
        raise WireError("header is not JSON") from None
    entries = header.get("arrays") if isinstance(header, dict) else None
    if not isinstance(entries, list) or len(entries) > 100_000:
        raise WireError("malformed header")
    arrays, budget = {}, max_bytes
    for entry in entries:
        key, dtype, shape, nbytes = _array_meta(entry, budget)
        budget -= nbytes
        arr = np.empty(shape, dtype)
        _read_into(fd, memoryview(arr).cast("B") if nbytes else memoryview(b""), deadline)
        arrays[key] = arr
    return header, arrays

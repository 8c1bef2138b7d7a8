"""What every reader of a user's file shares: one-line failure messages, and quiet loading."""

from contextlib import contextmanager
import logging
from pathlib import Path
import re
import threading
import warnings

from ...errors import PruningError, quote

MAX_BYTES = 200 * 2**20  # per file
MAX_UNPACKED = 4 * MAX_BYTES  # the members of a .keras or .pt2 zip, in total (zip bombs)
MAX_MEMBERS = 1000  # members of one zip archive (archive.py)
MAX_RATIO = 200  # a zip member over RATIO_ABOVE bytes may unpack to at most this many times its packed size
RATIO_ABOVE = 2**20
EVAL_BATCH = 1000  # images per forward pass of a .pt2 program with a dynamic batch
MAX_INTERMEDIATE = 256 * 2**20  # bytes of a .pt2 program's largest tensor, at its evaluation batch
MAX_FLOPS_PER_IMAGE = 2 * 10**9  # a .pt2 program's work per image (FLOPs + elements written); ResNet-20: 0.08e9


# one token: a JSON string (its closing quote optional, so an unterminated one is consumed once and
# the scan stays linear) or a bracket
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')


def json_depth(text: str) -> int:
    """How deeply ``text``'s JSON arrays and objects nest, counted without parsing it (brackets
    inside strings do not count), in one linear pass."""
    depth = deepest = 0
    for token in _TOKEN.finditer(text):
        ch = token.group()
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def first_line(exc) -> str:
    """The first line of a library's error, quoted (``errors.quote``): it may repeat names from
    the user's file, which must not reach the page as Markdown."""
    return quote((str(exc).strip().splitlines() or [type(exc).__name__])[0], 200)


def fail(path, what, exc) -> PruningError:
    return PruningError(f"cannot read {Path(path).name}: not a valid {what} ({first_line(exc)})")


_LOADING = threading.RLock()


@contextmanager
def quiet():
    """Silence library warnings and log records while a user's file is read; one file at a time
    (``warnings.catch_warnings`` is not thread-safe, and this bounds the memory in use)."""
    with _LOADING, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.CRITICAL)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)

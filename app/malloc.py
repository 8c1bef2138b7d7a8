"""glibc's malloc, bounded for a server whose sessions evaluate networks in many threads at once.

With glibc's defaults every thread that allocates may get an arena of its own (up to 8 per core),
and memory freed in an arena stays with the process.  Streamlit runs each session's script in its
own thread, so after a class's worth of sessions evaluating CIFAR-10 networks the server holds far
more than any moment needs (measured in docs/performance.md, part j).  Two bounds, neither of which
costs a slider move measurable CPU:

- at most 2 arenas from the first script run on (``mallopt(M_ARENA_MAX, 2)``; an explicit
  ``MALLOC_ARENA_MAX`` in the environment wins).  This bounds only what is still to come: glibc
  fixes its arena limit once threads have made arenas, and Streamlit's threads have by then.
  Measured (server on one core, 30 websocket sessions opening ``cifar10-conv4-keras`` and then
  ``cifar10-conv4-torch``, 2026-11-30): a peak of 3.0-3.2 GB with this call (also with 1 arena
  asked), 2.2 GB with ``MALLOC_ARENA_MAX=1`` in the environment at start.  So the deployments
  (deploy/Dockerfile, Procfile, deploy/replicas.sh) start the server with ``MALLOC_ARENA_MAX=1``;
  this call is what a plain ``streamlit run app`` gets;
- free memory is handed back to the OS (``malloc_trim(0)``) after a script run, at most once every
  ``PRUNING_MALLOC_TRIM_SECONDS`` (default 10; 0: never): trimming after every run would make the
  next evaluation fault its pages in again.

(A low mmap threshold, the other usual remedy, made every move about 14% more CPU here.)  With
another C library (macOS, musl) nothing is done.
"""

import ctypes
import os
import threading
import time

M_ARENA_MAX = -8  # glibc's malloc.h
TRIM_EVERY = float(os.environ.get("PRUNING_MALLOC_TRIM_SECONDS", "10"))


def _glibc():
    try:
        libc = ctypes.CDLL(None)  # the C library the process already uses
        libc.gnu_get_libc_version  # noqa: B018  glibc only
        return libc
    except (OSError, AttributeError):
        return None


LIBC = _glibc()
_lock = threading.Lock()
_last_trim = float("-inf")


def limit_arenas(arenas: int = 2) -> bool:
    """At most ``arenas`` malloc arenas from now on; False where it does not apply."""
    if LIBC is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return LIBC.mallopt(M_ARENA_MAX, arenas) == 1


def trim_now_and_then(now: float | None = None) -> bool:
    """``malloc_trim(0)`` unless one ran within the last TRIM_EVERY seconds; True if it ran."""
    global _last_trim
    if LIBC is None or TRIM_EVERY <= 0:
        return False
    now = time.monotonic() if now is None else now
    with _lock:
        if now - _last_trim < TRIM_EVERY:
            return False
        _last_trim = now
    LIBC.malloc_trim(0)
    return True

"""Turns: at most as many page runs compute at once as the server has cores; the others wait in line.

Streamlit runs each session's script in a thread of its own. When a class moves its sliders at
once, thirty threads share the cores (the GIL switches between them every few milliseconds), so
every page advances at a thirtieth of its speed and shows its first number only when nearly all
the others are done too; thirty half-finished pages also hold their working memory at once. In
turn, first come first served, a page takes its own time plus its wait (docs/performance.md, "A
class at once").

A long task that a student starts on purpose (a sensitivity scan, a live retraining, Measure, the
check of an uploaded file, batch-norm recalibration) steps out of line with ``aside()``: it then
shares the cores with the pages in turn instead of stalling them.  Never call ``aside()`` inside a
cached function: the thread would wait for a turn while holding the cache's lock for that key.

``PRUNING_TURNS`` sets how many pages compute at once (default: the cores this server may use;
0: no turns).
"""

from contextlib import contextmanager
import os
import threading

TURNS = int(os.environ.get("PRUNING_TURNS", str(len(os.sched_getaffinity(0)))))
_turns = threading.BoundedSemaphore(max(TURNS, 1))
_local = threading.local()


@contextmanager
def turn():
    """Run the page in a turn: wait while TURNS other pages compute."""
    if TURNS <= 0 or getattr(_local, "held", False):
        yield
        return
    _turns.acquire()
    _local.held = True
    try:
        yield
    finally:
        if _local.held:
            _local.held = False
            _turns.release()


@contextmanager
def aside():
    """Step out of line for a long task the student started: the turn goes to the next page
    meanwhile, and this page waits for a turn again afterwards."""
    held = getattr(_local, "held", False)
    if held:
        _local.held = False
        _turns.release()
    try:
        yield
    finally:
        if held:
            _turns.acquire()
            _local.held = True

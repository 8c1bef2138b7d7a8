"""Turns: at most as many page runs compute at once as the server has cores; the others wait in line.

Streamlit runs each session's script in a thread of its own. When a class moves its sliders at
once, thirty threads share the cores (the GIL switches between them every few milliseconds), so
every page advances at a thirtieth of its speed and shows its first number only when nearly all
the others are done too; thirty half-finished pages also hold their working memory at once. In
turn, a page takes its own time plus its wait (docs/performance.md, "A class at once").

The line is first come first served. A server may let headlines go first (``HEADLINE_LEAD`` > 0):
once a page has shown its headline accuracy (``headline_shown()``), it gives its turn up and waits
again for the rest (controls, charts, tabs) as if it had arrived ``HEADLINE_LEAD`` seconds later,
so the pages that have not yet shown a number go first. A student then sees the accuracy of a move
after the headlines ahead of it, not after the whole pages ahead of it; a page that arrives more
than the lead later does not go first, so every page still finishes. It is off by default: the
whole page comes later and more half-done pages hold memory at once (docs/performance.md,
"Headlines first").

A long task that a student starts on purpose (a sensitivity scan, a live retraining, Measure, the
check of an uploaded file, batch-norm recalibration) steps out of line with ``aside()``: it then
shares the cores with the pages in turn instead of stalling them (after the headline, it queues
again with the lead).  Never call ``aside()`` or
``headline_shown()`` inside a cached function: the thread would wait for a turn while holding the
cache's lock for that key.

``PRUNING_TURNS`` sets how many pages compute at once (default: the cores this server may use;
0: no turns); ``PRUNING_HEADLINE_LEAD`` the lead in seconds (default 0: strictly in order).
"""

from contextlib import contextmanager
import heapq
import itertools
import math
import os
import threading
from time import monotonic

TURNS = int(os.environ.get("PRUNING_TURNS", str(len(os.sched_getaffinity(0)))))
HEADLINE_LEAD = float(os.environ.get("PRUNING_HEADLINE_LEAD", "0"))
if not 0 <= HEADLINE_LEAD < math.inf:
    raise ValueError(f"PRUNING_HEADLINE_LEAD must be a number of seconds, 0 or more, not {HEADLINE_LEAD}")


class Line:
    """``places`` holders at once; the waiters are served in the order of their place in line (the
    smallest first), which is their arrival time unless they ask to queue later."""

    def __init__(self, places: int):
        self._places = self._free = places
        self._waiting: list[tuple[float, int]] = []  # heap of (place in line, tie-break)
        self._ties = itertools.count()
        self._changed = threading.Condition()

    def acquire(self, blocking: bool = True, later: float = 0.0) -> bool:
        with self._changed:
            if not blocking:
                if self._free and not self._waiting:
                    self._free -= 1
                    return True
                return False
            me = (monotonic() + later, next(self._ties))
            heapq.heappush(self._waiting, me)
            try:
                self._changed.wait_for(lambda: self._free and self._waiting[0] == me)
            finally:
                self._waiting.remove(me)  # served, or interrupted while waiting
                heapq.heapify(self._waiting)
                self._changed.notify_all()  # the next in line may have a place now
            self._free -= 1
            return True

    def release(self):
        with self._changed:
            if self._free >= self._places:
                raise ValueError("Line released more often than acquired")
            self._free += 1
            self._changed.notify_all()


_turns = Line(max(TURNS, 1))
_local = threading.local()


def _take(later: float = 0.0):
    _turns.acquire(later=later)
    _local.held = True


def _give():
    if getattr(_local, "held", False):
        _local.held = False
        _turns.release()


@contextmanager
def turn():
    """Run the page in a turn: wait while TURNS other pages compute."""
    if TURNS <= 0 or getattr(_local, "held", False):
        yield
        return
    _local.later = 0.0
    _take()
    try:
        yield
    finally:
        _give()


def headline_shown():
    """The page's headline is on its way to the browser: the pages that have not shown theirs may go
    first (up to HEADLINE_LEAD seconds); the rest of this page waits for its turn again."""
    if getattr(_local, "held", False) and HEADLINE_LEAD > 0:
        _give()
        _local.later = HEADLINE_LEAD
        _take(HEADLINE_LEAD)


@contextmanager
def aside():
    """Step out of line for a long task the student started: the turn goes to the next page
    meanwhile, and this page waits for a turn again afterwards."""
    held, later = getattr(_local, "held", False), getattr(_local, "later", 0.0)
    _give()
    try:
        yield
    finally:
        if held:
            _local.later = later
            _take(later)

"""Identical requests from different sessions computed once.

``st.cache_data`` is shared by every session of a server, but two sessions that miss the same key
at the same moment (a class moving to the same preset) would both compute it.  ``Coalescer`` lets
the first caller of a key compute while the others wait for its result (or its exception), like
Go's ``singleflight``; the result itself is kept by the cache around it, not here.
"""

import threading


class _Pending:
    def __init__(self):
        self.done = threading.Event()
        self.result = self.error = None


class Coalescer:
    """``coalescer(key, fn)``: ``fn()``, computed once for all concurrent callers of ``key``."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pending = {}  # key -> _Pending of the call in flight
        self.computed = 0  # calls of fn, for tests and benchmarks
        self.waiting = 0  # callers waiting for another's result right now

    def __call__(self, key, fn):
        with self._lock:
            pending = self._pending.get(key)
            leader = pending is None
            if leader:
                pending = self._pending[key] = _Pending()
                self.computed += 1
            else:
                self.waiting += 1
        if not leader:
            pending.done.wait()
            with self._lock:
                self.waiting -= 1
            if pending.error is not None:
                raise pending.error
            return pending.result
        try:
            pending.result = fn()
            return pending.result
        except BaseException as exc:
            pending.error = exc
            raise
        finally:
            with self._lock:
                del self._pending[key]
            pending.done.set()

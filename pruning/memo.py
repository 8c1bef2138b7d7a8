"""``@memo.lru(maxsize)``: ``functools.lru_cache`` that computes each key once, however many
threads ask for it at the same moment.

``functools.lru_cache`` is thread-safe, but every thread that misses a key computes it.  In the
hosted explorer a class opens a model together, and every session that missed a ranking would
sort the same scores: for CIFAR-10 Conv-4's 2.4 million weights, 1.5 s of CPU and about 115 MB
each (measured for the random control's ranking).  Here the first caller of a key computes it
while later callers of that key wait for its value (like Go's ``singleflight``); if it raises,
each waiter tries in turn, so nothing is cached and nobody waits forever.

    @memo.lru(maxsize=16)
    def ranking(model, criterion, ...): ...
    ranking.cache_clear()

Arguments must be hashable, as for ``lru_cache``; ``maxsize=None`` keeps every value.
"""

from collections import OrderedDict
import functools
import threading


def lru(maxsize: int | None = 128):
    def decorate(fn):
        values, pending, lock = OrderedDict(), {}, threading.Lock()  # key -> value; key -> Event of its computation

        @functools.wraps(fn)
        def cached(*args, **kwargs):
            key = (args, tuple(sorted(kwargs.items()))) if kwargs else args
            while True:
                with lock:
                    if key in values:
                        values.move_to_end(key)
                        return values[key]
                    computing = pending.get(key)
                    if computing is None:
                        computing = pending[key] = threading.Event()
                        break  # this caller computes
                computing.wait()  # another caller computes: take its value (or try again if it failed)
            try:
                value = fn(*args, **kwargs)
                with lock:
                    values[key] = value
                    if maxsize is not None and len(values) > maxsize:
                        values.popitem(last=False)
                return value
            finally:
                with lock:
                    del pending[key]
                computing.set()

        def cache_clear():
            with lock:
                values.clear()

        cached.cache_clear = cache_clear
        cached.cache_len = lambda: len(values)
        return cached

    return decorate

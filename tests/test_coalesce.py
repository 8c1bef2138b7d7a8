"""app/coalesce.py: identical concurrent requests (two sessions missing the same cache key at
once) are computed once; different keys do not wait for each other; an error reaches every caller."""

from pathlib import Path
import sys
import threading
import time

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "app"))
from coalesce import Coalescer  # noqa: E402


def until(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_two_threads_same_key_compute_once():
    once, started, release, calls, got = Coalescer(), threading.Event(), threading.Event(), [], {}

    def slow():
        calls.append(1)
        started.set()
        release.wait(10)
        return object()  # a fresh object per computation: both callers must get the same one

    first = threading.Thread(target=lambda: got.setdefault("first", once("k", slow)))
    first.start()
    started.wait(10)
    second = threading.Thread(target=lambda: got.setdefault("second", once("k", slow)))
    second.start()
    until(lambda: once.waiting == 1)  # the second caller waits for the first's result
    release.set()
    first.join(10)
    second.join(10)
    assert len(calls) == 1 and once.computed == 1
    assert got["first"] is got["second"]
    assert once("k", lambda: "again") == "again"  # nothing is kept once the call is done (the cache keeps results)


def test_different_keys_do_not_wait():
    once, release = Coalescer(), threading.Event()
    blocked = threading.Thread(target=lambda: once("a", lambda: release.wait(10)))
    blocked.start()
    until(lambda: once.computed == 1)
    assert once("b", lambda: 2) == 2  # answered while "a" is still being computed
    release.set()
    blocked.join(10)
    assert once.computed == 2


def test_error_reaches_every_caller():
    once, started, release, errors = Coalescer(), threading.Event(), threading.Event(), []

    def broken():
        started.set()
        release.wait(10)
        raise ValueError("bad setting")

    def call():
        try:
            once("k", broken)
        except ValueError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=call)]
    threads[0].start()
    started.wait(10)
    threads.append(threading.Thread(target=call))
    threads[1].start()
    until(lambda: once.waiting == 1)
    release.set()
    for t in threads:
        t.join(10)
    assert errors == ["bad setting", "bad setting"] and once.computed == 1
    with pytest.raises(KeyError):
        once("k", lambda: {}["x"])  # the failed call left nothing behind

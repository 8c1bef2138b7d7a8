"""pruning/memo.py: an LRU cache that computes a key once however many threads ask at once."""

import threading
import time

import pytest

from pruning import memo


def test_values_are_kept_and_the_least_recently_used_goes_first():
    calls = []

    @memo.lru(maxsize=2)
    def square(x, *, plus=0):
        calls.append(x)
        return x * x + plus

    assert [square(2), square(3), square(2), square(2, plus=1)] == [4, 9, 4, 5]
    assert calls == [2, 3, 2] and square.cache_len() == 2  # (2, plus=1) is its own key; 3 was evicted
    square(3)
    assert calls == [2, 3, 2, 3]
    square.cache_clear()
    assert square.cache_len() == 0


def test_threads_missing_the_same_key_at_once_compute_it_once():
    calls, start = [], threading.Barrier(8)

    @memo.lru(maxsize=4)
    def slow(x):
        calls.append(x)
        time.sleep(0.2)
        return [x]

    results = []

    def ask():
        start.wait()
        results.append(slow(1))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and len(results) == 8 and all(r is results[0] for r in results)


def test_a_failure_is_not_cached_and_the_waiters_try_again():
    calls, start = [], threading.Barrier(4)

    @memo.lru(maxsize=None)
    def flaky(x):
        calls.append(x)
        time.sleep(0.1)
        if len(calls) == 1:
            raise ValueError("first call fails")
        return x

    outcomes = []

    def ask():
        start.wait()
        try:
            outcomes.append(flaky(7))
        except ValueError:
            outcomes.append("error")

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    assert sorted(outcomes, key=str) == [7, 7, 7, "error"] and len(calls) == 2
    with pytest.raises(TypeError):
        flaky([1])  # unhashable arguments, as with functools.lru_cache

"""The gate's verdict cache: TTL, LRU bound, what is kept, and single-flight."""

from __future__ import annotations

import threading
import time

import pytest

from keyless.server.gate.cache import Undecided, VerdictCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _cache(size: int = 2, clock=None) -> VerdictCache[str]:
    keep = {"pass": 60.0, "fail": 5.0, "error": 0.0}
    return VerdictCache(size=size, keep=lambda v: keep[v], clock=clock or time.monotonic)


def test_a_kept_value_is_served_until_its_ttl():
    clock = Clock()
    cache = _cache(clock=clock)
    calls = []
    compute = lambda: calls.append(1) or "pass"  # noqa: E731
    assert cache.get_or_compute("k", compute, deadline=clock() + 1) == ("pass", False)
    assert cache.get_or_compute("k", compute, deadline=clock() + 1) == ("pass", True)
    clock.now += 59.9
    assert cache.get("k") == "pass"
    clock.now += 0.2
    assert cache.get("k") is None
    assert cache.get_or_compute("k", compute, deadline=clock() + 1) == ("pass", False)
    assert len(calls) == 2


def test_keep_decides_per_value_and_errors_are_never_kept():
    clock = Clock()
    cache = _cache(clock=clock)
    cache.get_or_compute("f", lambda: "fail", deadline=clock() + 1)
    cache.get_or_compute("e", lambda: "error", deadline=clock() + 1)
    assert cache.get("f") == "fail"
    assert cache.get("e") is None
    clock.now += 5
    assert cache.get("f") is None


def test_least_recently_used_goes_first():
    clock = Clock()
    cache = _cache(size=2, clock=clock)
    for key in ("a", "b"):
        cache.get_or_compute(key, lambda: "pass", deadline=clock() + 1)
    assert cache.get("a") == "pass"  # a is now the most recent
    cache.get_or_compute("c", lambda: "pass", deadline=clock() + 1)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("pass", None, "pass")
    assert len(cache) == 2


def test_size_zero_keeps_nothing():
    cache = _cache(size=0)
    cache.get_or_compute("a", lambda: "pass", deadline=time.monotonic() + 1)
    assert cache.get("a") is None and len(cache) == 0


def test_an_exception_reaches_the_caller_and_is_not_kept():
    cache = _cache()

    def broken() -> str:
        raise RuntimeError("registry on fire")

    with pytest.raises(RuntimeError, match="registry on fire"):
        cache.get_or_compute("a", broken, deadline=time.monotonic() + 1)
    assert cache.get_or_compute("a", lambda: "pass", deadline=time.monotonic() + 1) == (
        "pass",
        False,
    )


def test_concurrent_misses_share_one_computation():
    cache = _cache()
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow() -> str:
        calls.append(1)
        started.set()
        release.wait(10)
        return "pass"

    results: list = []

    def call() -> None:
        results.append(cache.get_or_compute("k", slow, deadline=time.monotonic() + 10))

    first = threading.Thread(target=call)
    first.start()
    assert started.wait(10)
    others = [threading.Thread(target=call) for _ in range(7)]
    for thread in others:
        thread.start()
    time.sleep(0.2)  # most reach the wait; a late one finds the kept value instead
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert len(calls) == 1
    assert [value for value, _ in results] == ["pass"] * 8


def test_a_waiter_gives_up_at_its_deadline():
    cache = _cache()
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(10)
        return "pass"

    owner = threading.Thread(
        target=lambda: cache.get_or_compute("k", slow, deadline=time.monotonic() + 10)
    )
    owner.start()
    assert started.wait(10)
    with pytest.raises(Undecided):
        cache.get_or_compute("k", lambda: "pass", deadline=time.monotonic() + 0.1)
    release.set()
    owner.join(10)
    assert cache.get("k") == "pass"

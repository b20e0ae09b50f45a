"""The gate's verification cache: LRU with a TTL, and single-flight for concurrent misses.

Admission latency is dominated by registry round trips and signature checks, and a cluster
admits the same digests over and over (every replica of a Deployment, every container of a pod
built from one image). So verdicts are kept, keyed by what decides them (the policies' and trust
material's fingerprint and the names the image is matched under), for `ttl` seconds:

- positive verdicts (`pass`) by default; negative ones (`fail`, `warn`) only when
  `negative_ttl` > 0, and shorter, so that a newly signed image is admitted soon;
- `error` (could not decide) is never kept: the next admission tries again;
- concurrent lookups of one key wait for the one verification in flight instead of starting
  their own (single-flight); a waiter gives up at its own deadline.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

V = TypeVar("V")


class Undecided(Exception):
    """The value was not computed before the caller's deadline."""


@dataclass
class _Flight(Generic[V]):
    done: threading.Event = field(default_factory=threading.Event)
    value: V | None = None
    error: BaseException | None = None


class VerdictCache(Generic[V]):
    """A bounded LRU map with per-entry expiry and single-flight computation; thread-safe.

    `keep(value)` returns how long a computed value may be kept (0: not at all). `size` 0
    disables keeping values, but concurrent computations of one key are still shared.
    """

    def __init__(
        self,
        *,
        size: int,
        keep: Callable[[V], float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if size < 0:
            raise ValueError("the cache size must not be negative")
        self.size = size
        self._keep = keep
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._flights: dict[Hashable, _Flight[V]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: Hashable) -> V | None:
        """The kept value for `key`, if any and not expired."""
        with self._lock:
            return self._lookup(key)

    def get_or_compute(
        self, key: Hashable, compute: Callable[[], V], *, deadline: float
    ) -> tuple[V, bool]:
        """The value for `key` and whether it came from the cache.

        On a miss, the first caller runs `compute` (in its own thread) and keeps its result as
        `keep` says; callers arriving meanwhile wait for that result until `deadline` (a
        `clock()` value). An exception from `compute` reaches every waiter and is not kept.

        Raises:
            Undecided: the deadline passed while waiting for another caller's computation.
        """
        with self._lock:
            value = self._lookup(key)
            if value is not None:
                return value, True
            flight = self._flights.get(key)
            owner = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not owner:
            if not flight.done.wait(max(0.0, deadline - self._clock())):
                raise Undecided(key)
            if flight.error is not None:
                raise flight.error
            assert flight.value is not None
            return flight.value, False
        try:
            value = compute()
        except BaseException as exc:
            flight.error = exc
            with self._lock:
                self._flights.pop(key, None)
            flight.done.set()
            raise
        flight.value = value
        ttl = self._keep(value) if self.size else 0.0
        with self._lock:
            self._flights.pop(key, None)
            if ttl > 0:
                self._entries[key] = (self._clock() + ttl, value)
                self._entries.move_to_end(key)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        flight.done.set()
        return value, False

    def _lookup(self, key: Hashable) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

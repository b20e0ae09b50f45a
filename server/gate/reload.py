"""Policies that reload: the files are read again on an interval, and a changed set that loads
cleanly replaces the old one at once; one that does not load keeps the old set.

A bad edit never leaves the gate with no policies or half a policy set: the whole set is
loaded and checked as at start-up (`load_policy_set`), the problems are logged one line each,
and `keyless_gate_policy_reload_failing` stays 1 until a good set is on disk again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from keyless.client.policy import Evaluator, PolicyFileError

if TYPE_CHECKING:
    from keyless.client.policy import PolicySet
    from keyless.server.gate.gate import Gate

log = logging.getLogger("keyless.gate")


class PolicyReloader:
    """Reads the policies with `load` every `interval` seconds and swaps a changed set into
    `gate`, judged by the evaluator `evaluate` makes of it."""

    def __init__(
        self,
        gate: Gate,
        load: Callable[[], PolicySet],
        evaluate: Callable[[PolicySet], Evaluator],
        *,
        interval: float,
    ) -> None:
        self._gate = gate
        self._load = load
        self._evaluate = evaluate
        self._interval = interval
        self._stop = threading.Event()

    def start(self) -> None:
        thread = threading.Thread(target=self._loop, name="keyless-gate-reload", daemon=True)
        thread.start()

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> bool:
        """Load the policies once; True when a changed set was swapped in."""
        metrics = self._gate.metrics
        try:
            policies = self._load()
        except PolicyFileError as exc:
            for problem in exc.problems:
                log.error("keyless gate: policy reload refused, the old policies stay: %s", problem)
            metrics.policy_reloads.labels(result="refused").inc()
            metrics.policy_reload_failing.set(1)
            return False
        metrics.policy_reload_failing.set(0)
        if policies.fingerprint == self._gate.evaluator.fingerprint:
            return False
        self._gate.swap(self._evaluate(policies))
        metrics.policy_reloads.labels(result="reloaded").inc()
        for line in policies.warnings:
            log.warning("keyless gate: %s", line)
        count = len(policies.policies)
        log.info(
            "keyless gate: policies reloaded (%d polic%s, fingerprint %s)",
            count,
            "y" if count == 1 else "ies",
            policies.fingerprint[:16],
        )
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.check()
            except Exception:  # a bug must not end reloading for the life of the gate
                log.exception("keyless gate: policy reload failed")

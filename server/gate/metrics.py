"""The gate's Prometheus metrics, in a registry of its own (one per gate, so that two gates in
one process, as in the tests, do not collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class GateMetrics:
    """`keyless_gate_admissions_total{webhook,result}`, `keyless_gate_verify_seconds`,
    `keyless_gate_cache_hits_total`, `keyless_gate_cache_misses_total`,
    `keyless_gate_policy_reloads_total{result}`, `keyless_gate_policy_reload_failing`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.admissions = Counter(
            "keyless_gate_admissions",
            "AdmissionReview answers, by webhook and result "
            "(allowed, patched, warned, denied, invalid; skipped: DELETE, CONNECT, objects "
            "being deleted)",
            ["webhook", "result"],
            registry=self.registry,
        )
        self.verify_seconds = Histogram(
            "keyless_gate_verify_seconds",
            "Time to judge one image digest on a cache miss (signatures read and verified)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.cache_hits = Counter(
            "keyless_gate_cache_hits", "Verdicts answered from the cache", registry=self.registry
        )
        self.cache_misses = Counter(
            "keyless_gate_cache_misses",
            "Verdicts computed (or awaited from a concurrent admission)",
            registry=self.registry,
        )

        self.policy_reloads = Counter(
            "keyless_gate_policy_reloads",
            "Policy files read again and found changed: reloaded, or refused (the old stay)",
            ["result"],
            registry=self.registry,
        )
        self.policy_reload_failing = Gauge(
            "keyless_gate_policy_reload_failing",
            "1 while the policy files on disk do not load (the gate judges by the last good set)",
            registry=self.registry,
        )

    def admission(self, webhook: str, result: str) -> None:
        self.admissions.labels(webhook=webhook, result=result).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

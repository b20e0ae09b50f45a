"""`/metrics`: Prometheus metrics for every service on the origin, summed over gunicorn workers.

The services count their own events (`ca.metrics`, `tlog.metrics`, `tsa.metrics`); this module
adds the HTTP request metrics and the exposition. Names follow Fulcio's and Rekor's where one
exists, so their dashboards work: Go's client exposes their counters without `_total`, so those
few are exposed under their exact names (untyped) rather than prometheus-client's `NAME_total`.

Under `keyless serve` the master sets `PROMETHEUS_MULTIPROC_DIR` (server.wsgi) before any metric
exists, each worker writes its counts there, and `/metrics` reads them all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from flask import Flask, Response, g, request
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric

# Go-named counters: exposed exactly as Fulcio and Rekor expose them.
UPSTREAM_COUNTERS = frozenset(
    {"fulcio_new_certs", "rekor_new_entries", "rekor_v2_new_hashedrekord_entries"}
)
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

REQUESTS = Counter(
    "http_requests", "HTTP requests by route, method and status", ["route", "method", "code"]
)
REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by route and method",
    ["route", "method"],
    buckets=_BUCKETS,
)
# Fulcio's and Rekor's latency histograms (seconds), for their services' routes only.
FULCIO_LATENCY = Histogram(
    "fulcio_api_latency",
    "CA request latency by route and status",
    ["method", "code"],
    buckets=_BUCKETS,
)
REKOR_LATENCY = Histogram(
    "rekor_api_latency",
    "Log request latency by route and status",
    ["path", "code"],
    buckets=_BUCKETS,
)
_REKOR_BLUEPRINTS = frozenset({"rekor", "rekor_v2"})


def init_app(app: Flask) -> None:
    """Count and time every request of `app`, and serve `/metrics`."""
    app.before_request(_start)
    app.after_request(_count)
    app.add_url_rule("/metrics", "metrics", _metrics, methods=["GET"])


def _start() -> None:
    g.keyless_started = time.perf_counter()


def _count(response: Response) -> Response:
    # The route's pattern, never the raw path: a label per distinct URL would grow unbounded.
    route = request.url_rule.rule if request.url_rule else "unmatched"
    code = str(response.status_code)
    REQUESTS.labels(route=route, method=request.method, code=code).inc()
    started = g.get("keyless_started")
    if started is not None:
        seconds = time.perf_counter() - started
        REQUEST_SECONDS.labels(route=route, method=request.method).observe(seconds)
        if request.blueprint == "ca":
            FULCIO_LATENCY.labels(method=route, code=code).observe(seconds)
        elif request.blueprint in _REKOR_BLUEPRINTS:
            REKOR_LATENCY.labels(path=route, code=code).observe(seconds)
    return response


def _metrics() -> Response:
    return Response(exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)


def exposition() -> bytes:
    """The text exposition: every worker's metrics in multiprocess mode, else this process's."""
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return generate_latest(_UpstreamNames(registry))  # type: ignore[arg-type]


class _UpstreamNames:
    """A collector view that exposes UPSTREAM_COUNTERS under their bare names."""

    def __init__(self, source: CollectorRegistry) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        for family in self._source.collect():
            if family.type != "counter" or family.name not in UPSTREAM_COUNTERS:
                yield family
                continue
            bare = Metric(family.name, family.documentation, "unknown")
            for sample in family.samples:
                if sample.name == f"{family.name}_total":
                    bare.add_sample(family.name, sample.labels, sample.value)
            yield bare

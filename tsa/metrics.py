"""The timestamp authority's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter

TIMESTAMPS = Counter(
    "keyless_tsa_timestamps",
    "Timestamp requests by result: granted, rejected (a TimeStampResp with a failure), or "
    "refused (415 or 413 before parsing)",
    ["result"],
)

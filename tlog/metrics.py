"""The logs' Prometheus metrics, named as Rekor names them where Rekor has one.

Counters live in prometheus-client's default registry; under gunicorn the server turns on its
multiprocess mode, so every worker's counts are summed by `/metrics`.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Rekor v1 (pkg/api/metrics.go) and Rekor v2 (internal/server/metrics.go) counter names.
NEW_ENTRIES = Counter("rekor_new_entries", "Entries appended to the Rekor v1 log")
V2_NEW_ENTRIES = Counter(
    "rekor_v2_new_hashedrekord_entries", "hashedrekord entries appended to the Rekor v2 log"
)
CT_SUBMISSIONS = Counter(
    "keyless_ct_submissions",
    "add-chain and add-pre-chain requests to the CT log over HTTP, by endpoint and result "
    "(logged, or the refusal's reason)",
    ["endpoint", "result"],
)
COMMIT_SECONDS = Histogram(
    "keyless_tlog_commit_seconds",
    "Time to commit one group of appends (entries, tree nodes and signed head), every log",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
COMMIT_FAILURES = Counter(
    "keyless_tlog_commit_failures", "Group commits that failed (nothing was appended)"
)

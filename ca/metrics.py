"""The CA's Prometheus metrics: Fulcio's `fulcio_new_certs`, and refusals by reason."""

from __future__ import annotations

from prometheus_client import Counter

NEW_CERTS = Counter("fulcio_new_certs", "Certificates issued")
REFUSALS = Counter(
    "keyless_ca_refusals",
    "signingCert requests answered without a certificate, by the error's reason "
    "(token-invalid, pop-invalid, ct-log-failed, ...)",
    ["reason"],
)
CT_SUBMISSIONS = Counter(
    "keyless_ca_ct_submissions",
    "The CA's submissions to its CT log (in-process or remote), by result: logged or failed",
    ["result"],
)

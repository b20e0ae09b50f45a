"""Errors of the timestamp authority: a refused request, or a chain or ceremony that breaks a
rule. Each kind's HTTP status is a class attribute."""

from __future__ import annotations

from keyless.core.errors import Error, Reason


class TSAError(Error):
    """Base of every expected failure of the timestamp authority."""

    reason = Reason.TSA_ERROR


class Rejected(TSAError):
    """A request the TSA refuses (HTTP 400), answered with a `TimeStampResp` of status
    rejection; `failure` is the asn1crypto name of its PKIFailureInfo bit (RFC 3161 §2.4.2)."""

    status = 400
    reason = Reason.TIMESTAMP_REJECTED

    def __init__(self, message: str, *, failure: str) -> None:
        super().__init__(message)
        self.failure = failure

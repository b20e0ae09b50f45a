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


class RequestTooLargeError(Rejected):
    """A request larger than its format allows, refused unread (HTTP 413)."""

    status = 413
    reason = Reason.TOO_LARGE

    def __init__(self, message: str) -> None:
        super().__init__(message, failure="bad_data_format")


class UnsupportedMediaTypeError(TSAError):
    """A request that is neither a DER `TimeStampReq` nor Sigstore's JSON (HTTP 415)."""

    status = 415
    reason = Reason.UNSUPPORTED_MEDIA_TYPE

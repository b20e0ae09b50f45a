"""The client half of an RFC 3161 timestamp authority: a signed time for a signature.

A Rekor v2 entry carries no signed time (no inclusion promise, `integratedTime` 0), so a
signature logged there is timestamped first, as sigstore-python 4.x does: the request's
message imprint is SHA-256 over the signature bytes, with a fresh nonce and the certificate
asked for. The reply is checked here only for what ties it to this request (granted, same
imprint, same nonce); its signature and chain are checked by the verifier against the trusted
root, which is where trust in a TSA comes from.
"""

from __future__ import annotations

import hashlib

import requests

from keyless.client.errors import NetworkError, ServiceRefusedError
from keyless.client.http import new_session, request
from keyless.core.errors import Reason

QUERY_TYPE = "application/timestamp-query"
_GRANTED = (0, 1)  # PKIStatus granted, grantedWithMods


class TimestampClient:
    """A timestamp authority at its full URL (a SigningConfig's `tsaUrls[].url`)."""

    def __init__(self, url: str, *, session: requests.Session | None = None) -> None:
        self.url = url
        self._session = session or new_session()

    def timestamp(self, signature: bytes) -> bytes:
        """A DER `TimeStampResp` over SHA-256(`signature`), as a bundle stores it.

        Raises:
            ServiceRefusedError: the TSA refused, or granted something not for this request.
            NetworkError: the TSA is unreachable or answered something that is not a reply.
        """
        from rfc3161_client import HashAlgorithm, TimestampRequestBuilder, decode_timestamp_response

        query = (
            TimestampRequestBuilder()
            .data(signature)
            .hash_algorithm(HashAlgorithm.SHA256)  # the builder's default is SHA-512
            .nonce(nonce=True)
            .build()
        )
        response, body = request(
            self._session,
            "POST",
            self.url,
            what="the timestamp authority",
            data=query.as_bytes(),
            headers={"Content-Type": QUERY_TYPE},
        )
        try:
            reply = decode_timestamp_response(body)
            status = reply.status
            info = reply.tst_info if status in _GRANTED else None
        except ValueError as exc:
            if response.status_code != 200:
                raise ServiceRefusedError(
                    f"the timestamp authority at {self.url} refused the request "
                    f"(HTTP {response.status_code})",
                    reason=Reason.TSA_REFUSED,
                ) from exc
            raise NetworkError(
                f"the timestamp authority at {self.url} answered something that is not a "
                "timestamp reply"
            ) from exc
        if info is None or response.status_code != 200:
            detail = reply.status_string or [f"status {status}"]
            raise ServiceRefusedError(
                f"the timestamp authority at {self.url} refused the request "
                f"(HTTP {response.status_code}): {'; '.join(detail)[:200]}",
                reason=Reason.TSA_REFUSED,
            )
        if info.nonce != query.nonce:
            raise ServiceRefusedError(
                f"the timestamp authority at {self.url} answered with another request's nonce",
                reason=Reason.TSA_MISMATCH,
            )
        if info.message_imprint.message != hashlib.sha256(signature).digest():
            raise ServiceRefusedError(
                f"the timestamp authority at {self.url} timestamped another message",
                reason=Reason.TSA_MISMATCH,
            )
        return body

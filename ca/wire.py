"""Fulcio's JSON wire formats (v2 and legacy v1): parse requests, render responses and errors.

No Flask and no crypto decisions here: bytes in, a `SigningRequest` out, and plain dicts and
strings back. Both lowerCamel and snake_case field names are accepted and unknown fields are
ignored, as protojson does (fulcio.md §1.1).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from keyless import strictjson
from keyless.ca.errors import CAError, RequestError
from keyless.ca.issuance import IssuedCertificate, SigningRequest
from keyless.core.encoding import b64encode, protojson_b64decode
from keyless.core.errors import Reason

DEFAULT_MAX_REQUEST_BYTES = 256 * 1024
MAX_FIELD_CHARS = 128 * 1024
ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"
ERROR_DOMAIN = "keyless.dev"


def parse_v2_request(body: bytes, *, authorization: str | None) -> SigningRequest:
    """A v2 CreateSigningCertificateRequest; the token falls back to `Authorization: Bearer`.

    Raises:
        RequestError: malformed JSON, wrong field types, or both key forms at once.
    """
    document = _json_object(body)
    credentials = _object(document, "credentials", "credentials")
    token = _string(credentials, "oidcIdentityToken", "oidc_identity_token")
    if not token:
        token = _token_from_header(authorization)
    key_request = _object(document, "publicKeyRequest", "public_key_request")
    csr = _bytes(document, "certificateSigningRequest", "certificate_signing_request")
    if key_request and csr is not None:
        raise RequestError(
            "proto: oneof key is already set",
            reason=Reason.REQUEST_MALFORMED,
            detail="both key forms",
        )
    if csr is not None:
        return SigningRequest(token=token, csr=csr)
    public_key = _object(key_request, "publicKey", "public_key")
    content = _string(public_key, "content", "content")
    return SigningRequest(
        token=token,
        public_key=content.encode() if content else None,
        proof_of_possession=_bytes(key_request, "proofOfPossession", "proof_of_possession"),
    )


def parse_v1_request(body: bytes, *, authorization: str | None) -> SigningRequest:
    """A legacy v1 CertificateRequest; the token comes only from `Authorization: Bearer`.

    Raises:
        RequestError: malformed JSON or wrong field types.
    """
    document = _json_object(body)
    token = _token_from_header(authorization)
    csr = _bytes(document, "certificateSigningRequest", "certificate_signing_request")
    if csr is not None:
        return SigningRequest(token=token, csr=csr)
    public_key = _object(document, "publicKey", "public_key")
    return SigningRequest(
        token=token,
        public_key=_bytes(public_key, "content", "content"),
        proof_of_possession=_bytes(document, "signedEmailAddress", "signed_email_address"),
    )


def render_v2_certificate(issued: IssuedCertificate) -> dict[str, Any]:
    """The v2 SigningCertificate JSON: PEMs trimmed, leaf first, root last."""
    chain = {"certificates": [_pem(cert).strip() for cert in issued.chain]}
    if issued.embedded:
        return {"signedCertificateEmbeddedSct": {"chain": chain}}
    return {
        "signedCertificateDetachedSct": {
            "chain": chain,
            "signedCertificateTimestamp": b64encode(detached_sct(issued)),
        }
    }


def render_v1_certificate(issued: IssuedCertificate) -> tuple[str, dict[str, str]]:
    """The legacy v1 body (PEM chain, trimmed) and headers (`SCT` when detached and logged)."""
    body = "\n".join(_pem(cert).strip() for cert in issued.chain)
    headers = {}
    if not issued.embedded and issued.sct is not None:
        headers["SCT"] = b64encode(detached_sct(issued))
    return body, headers


def detached_sct(issued: IssuedCertificate) -> bytes:
    """The detached SCT as Fulcio sends it: the JSON AddChainResponse bytes (empty if none)."""
    if issued.sct is None:
        return b""
    return json.dumps(issued.sct.to_add_chain_response(), separators=(",", ":")).encode()


def render_trust_bundle(chains: Sequence[Sequence[x509.Certificate]]) -> dict[str, Any]:
    """The v2 TrustBundle JSON: each chain from the issuing CA to the root, PEMs untrimmed."""
    return {"chains": [{"certificates": [_pem(cert) for cert in chain]} for chain in chains]}


def render_root_cert(chains: Sequence[Sequence[x509.Certificate]]) -> str:
    """The legacy v1 rootCert body: every certificate of every chain, trimmed, joined."""
    return "\n".join(_pem(cert).strip() for chain in chains for cert in chain)


def render_configuration(issuers: list[dict[str, Any]]) -> dict[str, Any]:
    """The v2 Configuration JSON."""
    return {"issuers": issuers}


def render_error(error: CAError) -> dict[str, Any]:
    """Fulcio's error body, with the reason (and detail) as a google.rpc.ErrorInfo."""
    metadata = {"detail": error.detail} if error.detail else {}
    info: dict[str, Any] = {
        "@type": ERROR_INFO_TYPE,
        "reason": error.reason,
        "domain": ERROR_DOMAIN,
    }
    if metadata:
        info["metadata"] = metadata
    return {"code": error.code, "message": error.message, "details": [info]}


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _token_from_header(authorization: str | None) -> str:
    """The token of `Authorization: Bearer <token>`; "" for none or another scheme.

    Fulcio strips a literal, case-sensitive "Bearer " (fulcio.md §1.1); RFC 7235 §2.1 makes the
    scheme case-insensitive, and clients that send `bearer` must not be refused.
    """
    scheme, _, token = (authorization or "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _json_object(body: bytes) -> Mapping[str, Any]:
    try:
        document = strictjson.loads(body)
    except strictjson.JSONError as exc:
        raise RequestError(
            "The request body is not valid JSON",
            reason=Reason.REQUEST_MALFORMED,
            detail=str(exc)[:200],
        ) from exc
    if not isinstance(document, dict):
        raise RequestError(
            "The request body must be a JSON object", reason=Reason.REQUEST_MALFORMED
        )
    return document


def _field(document: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = document.get(camel)
    if value is None:
        value = document.get(snake)
    return value


def _object(document: Mapping[str, Any], camel: str, snake: str) -> Mapping[str, Any]:
    value = _field(document, camel, snake)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _type_error(camel, "an object")
    return value


def _string(document: Mapping[str, Any], camel: str, snake: str) -> str:
    value = _field(document, camel, snake)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_FIELD_CHARS:
        raise _type_error(camel, "a string")
    return value


def _bytes(document: Mapping[str, Any], camel: str, snake: str) -> bytes | None:
    """A protojson `bytes` field: standard or URL-safe base64, padding optional."""
    text = _string(document, camel, snake)
    if not text:
        return None
    try:
        return protojson_b64decode(text)
    except ValueError as exc:
        raise _type_error(camel, "base64") from exc


def _type_error(name: str, kind: str) -> RequestError:
    return RequestError(
        f"invalid value for field {name!r}: expected {kind}", reason=Reason.REQUEST_MALFORMED
    )

"""Timestamp requests: DER `TimeStampReq` (RFC 3161 §2.4.1) and Sigstore's JSON form. Pure.

Every refusal is a `Rejected` carrying the PKIFailureInfo bit RFC 3161 defines for it, so the
authority can answer with a `TimeStampResp` of status rejection instead of an HTTP error page:

- badAlg: a hash algorithm other than SHA-256/384/512 (SHA-1 included);
- badDataFormat: not DER, trailing bytes, a digest of the wrong length, not JSON;
- badRequest: a wrong version, an oversized nonce, an unknown JSON field;
- unacceptedPolicy / unacceptedExtension: a policy this TSA does not serve, any extension.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from asn1crypto import core, tsp

from keyless.core.encoding import b64decode
from keyless.tsa.errors import Rejected

MAX_DER_REQUEST_BYTES = 4 * 1024
MAX_JSON_REQUEST_BYTES = 1024  # sigstore/timestamp-authority's limit
MAX_NONCE_BITS = 256
DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}
_JSON_FIELDS = {"artifactHash", "hashAlgorithm", "certificates", "nonce", "tsaPolicyOID"}
_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)


@dataclass(frozen=True)
class TimestampRequest:
    """A checked request: what to timestamp, and what the client asked for."""

    hash_algorithm: str  # "sha256", "sha384" or "sha512"
    digest: bytes
    nonce: int | None = None
    policy: str | None = None  # dotted OID, None: the TSA's default
    cert_req: bool = False


def _check_digest(algorithm: str, digest: bytes) -> None:
    if algorithm not in DIGEST_SIZES:
        raise Rejected(
            f"hash algorithm {algorithm[:64]} is not accepted: use SHA-256/384/512",
            failure="bad_alg",
        )
    if len(digest) != DIGEST_SIZES[algorithm]:
        raise Rejected(
            f"message imprint is {len(digest)} bytes, {algorithm} digests are "
            f"{DIGEST_SIZES[algorithm]}",
            failure="bad_data_format",
        )


def _check_nonce(nonce: int | None) -> None:
    if nonce is not None and nonce.bit_length() > MAX_NONCE_BITS:
        raise Rejected(f"nonce is longer than {MAX_NONCE_BITS} bits", failure="bad_request")


def parse_der_request(der: bytes) -> TimestampRequest:
    """Parse and check a DER `TimeStampReq`.

    Raises:
        Rejected: the request is malformed or asks for something this TSA refuses.
    """
    if len(der) > MAX_DER_REQUEST_BYTES:
        raise Rejected(
            f"request is larger than {MAX_DER_REQUEST_BYTES} bytes", failure="bad_data_format"
        )
    if not der:
        raise Rejected("request is empty", failure="bad_data_format")
    try:
        request = tsp.TimeStampReq.load(der, strict=True)
        fields = request.native
        # BER that is not DER is refused: a TSA signs exactly what it parsed.
        canonical = request.dump(force=True) == der
    except _PARSE_ERRORS as exc:
        raise Rejected("request is not a DER TimeStampReq", failure="bad_data_format") from exc
    if not canonical:
        raise Rejected("request is not DER-encoded", failure="bad_data_format")
    if fields["version"] != "v1":
        raise Rejected("request version must be 1", failure="bad_request")
    imprint = request["message_imprint"]
    algorithm_id = imprint["hash_algorithm"]
    parameters = algorithm_id["parameters"]
    if not isinstance(parameters, core.Void | core.Null):
        raise Rejected("hash algorithm parameters must be absent or NULL", failure="bad_alg")
    algorithm = algorithm_id["algorithm"].native
    digest = imprint["hashed_message"].native
    _check_digest(algorithm, digest)
    nonce = fields["nonce"]
    _check_nonce(nonce)
    if fields["extensions"]:
        raise Rejected("request extensions are not accepted", failure="unaccepted_extensions")
    return TimestampRequest(
        hash_algorithm=algorithm,
        digest=digest,
        nonce=nonce,
        policy=request["req_policy"].dotted if fields["req_policy"] is not None else None,
        cert_req=bool(fields["cert_req"]),
    )


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise Rejected("JSON request has a duplicate field", failure="bad_data_format")
    return result


def parse_json_request(body: bytes) -> TimestampRequest:
    """Parse and check Sigstore's JSON request (`artifactHash`, `hashAlgorithm`, `nonce`, ...).

    Raises:
        Rejected: the request is malformed or asks for something this TSA refuses.
    """
    if len(body) > MAX_JSON_REQUEST_BYTES:
        raise Rejected(
            f"JSON request is larger than {MAX_JSON_REQUEST_BYTES} bytes", failure="bad_data_format"
        )
    try:
        value = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Rejected("request is not valid JSON", failure="bad_data_format") from exc
    if not isinstance(value, dict):
        raise Rejected("JSON request must be an object", failure="bad_data_format")
    unknown = sorted(set(value) - _JSON_FIELDS)
    if unknown:
        raise Rejected(f"JSON request has unknown field {unknown[0][:64]!r}", failure="bad_request")
    algorithm = value.get("hashAlgorithm", "sha256")
    if not isinstance(algorithm, str):
        raise Rejected("hashAlgorithm must be a string", failure="bad_alg")
    artifact_hash = value.get("artifactHash")
    if not isinstance(artifact_hash, str) or not artifact_hash:
        raise Rejected("artifactHash must be a base64 digest", failure="bad_data_format")
    try:
        digest = b64decode(artifact_hash)
    except ValueError as exc:
        raise Rejected("artifactHash is not valid base64", failure="bad_data_format") from exc
    _check_digest(algorithm.lower(), digest)
    nonce = value.get("nonce")
    if nonce is not None and (isinstance(nonce, bool) or not isinstance(nonce, int)):
        raise Rejected("nonce must be an integer", failure="bad_request")
    _check_nonce(nonce)
    certificates = value.get("certificates", False)
    if not isinstance(certificates, bool):
        raise Rejected("certificates must be true or false", failure="bad_request")
    policy = value.get("tsaPolicyOID")
    if policy is not None:
        policy = _dotted_oid(policy)
    return TimestampRequest(
        hash_algorithm=algorithm.lower(),
        digest=digest,
        nonce=nonce,
        policy=policy,
        cert_req=certificates,
    )


def _dotted_oid(value: object) -> str:
    if not isinstance(value, str) or len(value) > 128:
        raise Rejected("tsaPolicyOID must be a dotted OID", failure="bad_request")
    try:
        dotted: str = core.ObjectIdentifier(value).dotted
        return dotted
    except _PARSE_ERRORS as exc:
        raise Rejected("tsaPolicyOID must be a dotted OID", failure="bad_request") from exc

"""Log body consistency: the logged entry is about this signature, this key and this artifact.

Without this check a valid entry for *another* signing could be attached to a bundle (the
CVE-2022-36056 family). Rekor v2 bodies (hashedrekord and dsse 0.0.2) are parsed with
sigstore-models; Rekor v1 bodies
(hashedrekord 0.0.1, dsse 0.0.1, intoto 0.0.2) have no model there, so they are read with
`json` and every field used is type-checked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keyless.client.verify.errors import VerificationError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

CHECK = "log-body"

REKOR_V2_KINDS = frozenset({("hashedrekord", "0.0.2"), ("dsse", "0.0.2")})
SUPPORTED_KINDS = REKOR_V2_KINDS | {
    ("hashedrekord", "0.0.1"),
    ("dsse", "0.0.1"),
    ("intoto", "0.0.2"),
}
# Digest algorithms by their Rekor v1 (hashedrekord `data.hash.algorithm`) and protobuf names.
V1_ALGORITHMS = {"sha256": "sha256", "sha384": "sha384", "sha512": "sha512"}
V2_ALGORITHMS = {"SHA2_256": "sha256", "SHA2_384": "sha384", "SHA2_512": "sha512"}


@dataclass(frozen=True)
class Signed:
    """What the bundle claims was logged: the verification key, the signature and its subject."""

    key_der: bytes  # DER SPKI of the signing key (leaf's key, or the managed key)
    leaf_der: bytes | None  # DER of the leaf certificate, None for managed keys
    key_details: str  # e.g. PKIX_ECDSA_P256_SHA_256, for Rekor v2 verifiers
    signature: bytes
    digest: bytes  # digest of the artifact (hashedrekord) or SHA-256 of the PAE (DSSE, Rekor v2)
    payload: bytes | None  # DSSE payload, None for message signatures
    digest_algorithm: str = "sha256"  # the algorithm of `digest`


def check_entry_body(body: bytes, *, kind: str, version: str, signed: Signed) -> None:
    """Check that the canonicalized log body records exactly the bundle's signing.

    Raises:
        VerificationError("log-body"): unsupported kind, malformed body, or any mismatch.
    """
    if (kind, version) not in SUPPORTED_KINDS:
        raise VerificationError(CHECK, f"unsupported log entry kind {kind}/{version}")
    if (kind, version) in REKOR_V2_KINDS:
        _check_rekor_v2(body, kind, signed)
        return
    doc = _json(body)
    if _get(doc, "kind", str) != kind or _get(doc, "apiVersion", str) != version:
        raise VerificationError(CHECK, f"log body is not a {kind}/{version} entry as announced")
    spec = _get(doc, "spec", dict)
    if kind == "hashedrekord":
        _check_hashedrekord_v1(spec, signed)
    elif kind == "dsse":
        _check_dsse_v1(spec, signed)
    else:
        _check_intoto_v2(spec, signed)


def _check_hashedrekord_v1(spec: dict[str, Any], signed: Signed) -> None:
    if signed.payload is not None:
        raise VerificationError(CHECK, "a DSSE bundle cannot be backed by a hashedrekord/0.0.1")
    hashed = _get(_get(spec, "data", dict), "hash", dict)
    algorithm = _get(hashed, "algorithm", str)
    if V1_ALGORITHMS.get(algorithm) != signed.digest_algorithm:
        raise VerificationError(
            CHECK, f"log entry hash algorithm {algorithm} is not {signed.digest_algorithm}"
        )
    logged = _get(hashed, "value", str)
    if logged != signed.digest.hex():
        raise VerificationError(
            CHECK,
            f"log entry is for artifact {algorithm}:{logged}, not "
            f"{signed.digest_algorithm}:{signed.digest.hex()}",
        )
    signature = _get(spec, "signature", dict)
    if _b64(_get(signature, "content", str)) != signed.signature:
        raise VerificationError(CHECK, "log entry signature does not match the bundle signature")
    pem = _b64(_get(_get(signature, "publicKey", dict), "content", str))
    _check_pem_key(pem, signed)


def _check_dsse_v1(spec: dict[str, Any], signed: Signed) -> None:
    if signed.payload is None:
        raise VerificationError(
            CHECK, "a message-signature bundle cannot be backed by a dsse entry"
        )
    payload_hash = _get(spec, "payloadHash", dict)
    if _get(payload_hash, "algorithm", str) != "sha256":
        raise VerificationError(CHECK, "log entry payload hash algorithm is not sha256")
    if _get(payload_hash, "value", str) != hashlib.sha256(signed.payload).hexdigest():
        raise VerificationError(CHECK, "log entry payload hash does not match the DSSE payload")
    # The envelope hash covers uncanonicalized JSON we do not have, so it cannot be checked;
    # the payload hash and the signature list below bind the entry to this envelope.
    signatures = _get(spec, "signatures", list)
    if len(signatures) != 1 or not isinstance(signatures[0], dict):
        raise VerificationError(CHECK, "log entry must record exactly one DSSE signature")
    if _b64(_get(signatures[0], "signature", str)) != signed.signature:
        raise VerificationError(CHECK, "log entry signature does not match the DSSE signature")
    _check_pem_key(_b64(_get(signatures[0], "verifier", str)), signed)


def _check_intoto_v2(spec: dict[str, Any], signed: Signed) -> None:
    if signed.payload is None:
        raise VerificationError(CHECK, "a message-signature bundle cannot be backed by intoto")
    content = _get(spec, "content", dict)
    payload_hash = _get(content, "payloadHash", dict)
    if (
        _get(payload_hash, "algorithm", str) != "sha256"
        or _get(payload_hash, "value", str) != hashlib.sha256(signed.payload).hexdigest()
    ):
        raise VerificationError(CHECK, "log entry payload hash does not match the DSSE payload")
    envelope = _get(content, "envelope", dict)
    # intoto/0.0.2 stores the payload and signatures base64-encoded twice.
    if _b64_twice(_get(envelope, "payload", str)) != signed.payload:
        raise VerificationError(CHECK, "log entry envelope payload does not match the bundle")
    signatures = _get(envelope, "signatures", list)
    if len(signatures) != 1 or not isinstance(signatures[0], dict):
        raise VerificationError(CHECK, "log entry must record exactly one DSSE signature")
    if _b64_twice(_get(signatures[0], "sig", str)) != signed.signature:
        raise VerificationError(CHECK, "log entry signature does not match the DSSE signature")
    _check_pem_key(_b64(_get(signatures[0], "publicKey", str)), signed)


def _check_rekor_v2(body: bytes, kind: str, signed: Signed) -> None:
    from pydantic import ValidationError
    from sigstore_models.rekor.v2.entry import Entry

    try:
        entry = Entry.from_json(body)
    except ValidationError as exc:
        raise VerificationError(CHECK, "log body is not a valid Rekor v2 entry") from exc
    if entry.kind != kind or entry.api_version != "0.0.2":
        raise VerificationError(CHECK, f"log body is not a {kind}/0.0.2 entry as announced")
    if kind == "hashedrekord":
        record = entry.spec.hashed_rekord_v002
        if record is None:
            raise VerificationError(CHECK, "log body has no hashedRekordV002 spec")
        _check_hashedrekord_v2(record, signed)
        return
    dsse = entry.spec.dsse_v002
    if dsse is None:
        raise VerificationError(CHECK, "log body has no dsseV002 spec")
    if signed.payload is None:
        raise VerificationError(
            CHECK, "a message-signature bundle cannot be backed by a dsse entry"
        )
    algorithm = V2_ALGORITHMS.get(dsse.payload_hash.algorithm.value)
    if algorithm is None:
        raise VerificationError(
            CHECK, f"log entry payload hash algorithm {dsse.payload_hash.algorithm.value}"
        )
    if dsse.payload_hash.digest != hashlib.new(algorithm, signed.payload).digest():
        raise VerificationError(CHECK, "log entry payload hash does not match the DSSE payload")
    if len(dsse.signatures) != 1:
        raise VerificationError(CHECK, "log entry must record exactly one DSSE signature")
    if dsse.signatures[0].content != signed.signature:
        raise VerificationError(CHECK, "log entry signature does not match the DSSE signature")
    _check_v2_verifier(dsse.signatures[0].verifier, signed)


def _check_hashedrekord_v2(record: Any, signed: Signed) -> None:
    algorithm = record.data.algorithm.value
    if V2_ALGORITHMS.get(algorithm) != signed.digest_algorithm:
        raise VerificationError(CHECK, f"log entry digest algorithm {algorithm}")
    if record.data.digest != signed.digest:
        what = "PAE of the DSSE envelope" if signed.payload is not None else "artifact"
        raise VerificationError(
            CHECK, f"log entry digest {record.data.digest.hex()} does not match the {what}"
        )
    if record.signature.content != signed.signature:
        raise VerificationError(CHECK, "log entry signature does not match the bundle signature")
    _check_v2_verifier(record.signature.verifier, signed)


def _check_v2_verifier(verifier: Any, signed: Signed) -> None:
    """A Rekor v2 verifier must name the bundle's key details and certificate (or key)."""
    if verifier.key_details.value != signed.key_details:
        raise VerificationError(
            CHECK, f"log entry key details {verifier.key_details.value} != {signed.key_details}"
        )
    if verifier.x509_certificate is not None:
        if verifier.x509_certificate.raw_bytes != signed.leaf_der:
            raise VerificationError(CHECK, "log entry certificate is not the bundle certificate")
    elif verifier.public_key is None or verifier.public_key.raw_bytes != signed.key_der:
        raise VerificationError(CHECK, "log entry public key is not the verification key")


def _check_pem_key(pem: bytes, signed: Signed) -> None:
    """The logged PEM (certificate or public key) must hold the bundle's key material."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if signed.leaf_der is not None and _pem_body(pem, b"CERTIFICATE") == signed.leaf_der:
        return
    try:
        if signed.leaf_der is not None:
            logged = x509.load_pem_x509_certificate(pem)
            matches = logged.public_bytes(serialization.Encoding.DER) == signed.leaf_der
        else:
            key: PublicKeyTypes = serialization.load_pem_public_key(pem)
            matches = _spki(key) == signed.key_der
    except ValueError as exc:
        raise VerificationError(CHECK, "log entry key material is not valid PEM") from exc
    if not matches:
        what = "certificate" if signed.leaf_der is not None else "public key"
        raise VerificationError(CHECK, f"log entry {what} is not the bundle's {what}")


def _pem_body(pem: bytes, label: bytes) -> bytes | None:
    """The DER of a PEM text that is exactly one `label` block and nothing else, or None.

    The fast path of `_check_pem_key`: a logged certificate is the bundle's leaf when its
    bytes are the leaf's DER, with no need to parse it (that parse and re-encode cost a
    measurable share of each verification in bench/verify.py). Anything else, None, goes
    the slow way through cryptography's PEM reader, which decides.
    """
    begin, end = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    lines = pem.strip().split(b"\n")
    if len(lines) < 3 or lines[0] != begin or lines[-1] != end:
        return None
    try:
        return base64.b64decode(b"".join(lines[1:-1]), validate=True)
    except ValueError:
        return None


def _spki(key: PublicKeyTypes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise VerificationError(CHECK, "log body is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise VerificationError(CHECK, "log body is not a JSON object")
    return doc


def _get(doc: dict[str, Any], key: str, kind: type) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind):
        raise VerificationError(
            CHECK, f"log body field {key!r} is missing or not a {kind.__name__}"
        )
    return value


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VerificationError(CHECK, "log body holds invalid base64") from exc


def _b64_twice(text: str) -> bytes | None:
    """Undo intoto/0.0.2's double base64; None when the inner layer is not base64 (mismatch)."""
    inner = _b64(text)
    try:
        return base64.b64decode(inner, validate=True)
    except (binascii.Error, ValueError):
        return None

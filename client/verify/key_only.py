"""Key signatures judged by the key alone, with no transparency log evidence required.

cosign's `--insecure-ignore-tlog` and policy-controller's `key:` authorities without a `ctlog`
accept a signature that verifies with the pinned key and names the artifact, logged or not:
the key is what is trusted, the log only makes each use of it visible. keyless does the same in
exactly those two cases, and only after the full verification (log evidence included) failed,
so a logged signature is still reported with its log entry. A bundle read here needs no entry
and no timestamp, which `client.bundle` refuses, so its few fields are read strictly here.

Raises `VerificationError` with the checks' usual names (`bundle`, `key-material`,
`message-digest`, `dsse`, `signature`).
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from keyless.client.verify.artifact import Artifact
from keyless.client.verify.dsse import check_subject
from keyless.client.verify.errors import BundleError, VerificationError
from keyless.client.verify.verifier import check_signature
from keyless.core.dsse import pae
from keyless.core.errors import Reason

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

MAX_BUNDLE_BYTES = 1024 * 1024


def check_bundle_by_key(
    data: bytes | str,
    *,
    sha256: bytes,
    key: PublicKeyTypes,
    predicate_type: str | None = None,
) -> str:
    """Check a managed-key bundle's signature over the artifact whose SHA-256 is `sha256`;
    returns what it signs: the DSSE payload type, or `message-signature`. With
    `predicate_type`, a DSSE statement must be of that type (an image signature is cosign's
    `https://sigstore.dev/cosign/sign/v1`, not any attestation about the image).

    Raises:
        VerificationError: not a managed-key bundle, not about this artifact, or a signature
            the key does not verify.
    """
    from keyless.client.bundle import MEDIA_TYPE_VERSIONS
    from keyless.strictjson import JSONError, loads

    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(detail=f"bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        document = loads(data.encode() if isinstance(data, str) else data, what="bundle")
    except JSONError as exc:
        raise BundleError(detail=str(exc)) from exc
    if not isinstance(document, dict) or document.get("mediaType") not in MEDIA_TYPE_VERSIONS:
        raise BundleError(detail="not a Sigstore bundle of a known media type")
    material = _object(document, "verificationMaterial")
    if "publicKey" not in material:
        raise VerificationError(
            reason=Reason.KEY_MATERIAL,
            detail="bundle carries a signing certificate; verify it by identity, not with --key",
        )
    artifact = Artifact.from_sha256(sha256)
    if "dsseEnvelope" in document:
        envelope = _object(document, "dsseEnvelope")
        payload_type = envelope.get("payloadType")
        signatures = envelope.get("signatures")
        if not isinstance(payload_type, str) or not isinstance(signatures, list):
            raise BundleError(detail="malformed DSSE envelope")
        if len(signatures) != 1 or not isinstance(signatures[0], dict):
            raise BundleError(detail="a DSSE envelope must carry exactly one signature")
        payload = _b64(envelope.get("payload"), "DSSE payload")
        check_subject(payload_type, payload, artifact=artifact)
        if predicate_type is not None:
            _check_predicate(payload, predicate_type)
        signature = _b64(signatures[0].get("sig"), "DSSE signature")
        check_signature(
            key, signature, pae(payload_type, payload), prehashed=False, algorithm="sha256"
        )
        return payload_type
    message = _object(document, "messageSignature")
    digest = _object(message, "messageDigest")
    if digest.get("algorithm") != "SHA2_256":
        raise VerificationError(
            reason=Reason.MESSAGE_DIGEST, detail="only SHA2_256 message digests are read here"
        )
    stated = _b64(digest.get("digest"), "message digest")
    if stated != sha256:
        raise VerificationError(
            reason=Reason.MESSAGE_DIGEST,
            detail=f"bundle message digest {stated.hex()} is not the artifact's sha256 "
            f"{sha256.hex()}",
        )
    signature = _b64(message.get("signature"), "signature")
    check_signature(key, signature, sha256, prehashed=True, algorithm="sha256")
    return "message-signature"


def check_payload_by_key(payload: bytes, signature: bytes, *, key: PublicKeyTypes) -> None:
    """Check a cosign v2 signature (over SHA-256 of the simple-signing payload) with `key`.

    Raises:
        VerificationError("signature"): the key does not verify it.
    """
    check_signature(key, signature, payload, prehashed=False, algorithm="sha256")


def _check_predicate(payload: bytes, predicate_type: str) -> None:
    import json

    found = json.loads(payload).get("predicateType")  # a statement: check_subject read it
    if found != predicate_type:
        raise VerificationError(
            reason=Reason.DSSE, detail=f"it is an attestation ({found}), not a signature"
        )


def _object(holder: dict[str, Any], name: str) -> dict[str, Any]:
    value = holder.get(name)
    if not isinstance(value, dict):
        raise BundleError(detail=f"malformed bundle: {name} is missing or not an object")
    return value


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise BundleError(detail=f"malformed bundle: no {what}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BundleError(detail=f"malformed bundle: the {what} is not base64") from exc

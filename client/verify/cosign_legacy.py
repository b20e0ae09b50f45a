"""cosign v2 image signatures (the `sha256-<hex>.sig` layers) turned into verifiable bundles.

A cosign v2 signature carries its payload, signature, certificate and the log's signed entry
timestamp, but not the inclusion proof and checkpoint a bundle needs. So its entry is fetched
from the log the trusted root names for its log ID (`LogEntrySource`), required to be the very
entry the annotation names, and the whole is checked like any bundle by `client.verify`: the
logged signature, key and payload digest must be this signature's.

What cosign prints of a verified signature (`keyless verify -o cosign`) is read here too: the
payload's claims (`read_simple_signing`) and the log's signed entry timestamp in the shape of
cosign's `dev.sigstore.cosign/bundle` annotation (`RekorBundle`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from keyless.client.bundle import Bundle
from keyless.client.errors import ClientError, NetworkError
from keyless.client.oci.signatures import COSIGN_PAYLOAD_TYPE
from keyless.core.encoding import b64decode, b64encode

if TYPE_CHECKING:
    from sigstore_models.rekor.v1 import TransparencyLogEntry

    from keyless.client.oci import LegacySignature
    from keyless.client.trust import LogKey, TrustedRoot

_BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


class LogEntrySource(Protocol):
    """Fetches a log entry, with inclusion proof and checkpoint, by its index."""

    def fetch(self, base_url: str, log_index: int) -> TransparencyLogEntry:
        """The entry at `log_index` of the Rekor v1 log at `base_url`."""
        ...


class RekorEntries:
    """`LogEntrySource` over Rekor v1's `GET /api/v1/log/entries?logIndex=`."""

    def __init__(self) -> None:
        from keyless.client.http import new_session

        self._session = new_session()

    def fetch(self, base_url: str, log_index: int) -> TransparencyLogEntry:
        from keyless.client.http import json_body, request
        from keyless.client.sign.rekor import entry_from_response

        url = f"{base_url.rstrip('/')}/api/v1/log/entries?logIndex={log_index}"
        response, body = request(self._session, "GET", url, what="the transparency log")
        if response.status_code != 200:
            raise NetworkError(
                f"the transparency log has no entry {log_index} ({url}: HTTP "
                f"{response.status_code})"
            )
        return entry_from_response(json_body(body, what="the transparency log"))


@dataclass(frozen=True)
class SimpleSigning:
    """What a cosign simple-signing payload claims: the digest it signs, the repository it
    names (`docker-reference`) and its `optional` annotations."""

    digest: str
    # As Go's encoding/json reads them into cosign's struct: "" for a reference that is
    # absent or not a string, None for an `optional` that is absent, null or not an object.
    docker_reference: str
    optional: dict[str, Any] | None


def read_simple_signing(payload: bytes) -> SimpleSigning:
    """The claims of a cosign simple-signing payload.

    Raises:
        ClientError: the payload is not a cosign container image signature.
    """
    try:
        document = json.loads(payload)
        critical = document["critical"]
        kind = critical["type"]
        digest = critical["image"]["docker-manifest-digest"]
    except (ValueError, UnicodeDecodeError, RecursionError, KeyError, TypeError) as exc:
        raise ClientError("its payload is not a simple-signing document") from exc
    if kind != COSIGN_PAYLOAD_TYPE or not isinstance(digest, str):
        raise ClientError("its payload is not a cosign container image signature")
    identity = critical.get("identity")
    reference = identity.get("docker-reference") if isinstance(identity, dict) else None
    optional = document.get("optional")
    return SimpleSigning(
        digest=digest,
        docker_reference=reference if isinstance(reference, str) else "",
        optional=optional if isinstance(optional, dict) else None,
    )


@dataclass(frozen=True)
class RekorBundle:
    """A log entry's signed entry timestamp with what it signs, as cosign v2 keeps it in the
    `dev.sigstore.cosign/bundle` annotation (cosign's `bundle.RekorBundle`)."""

    signed_entry_timestamp: bytes
    body: bytes
    integrated_time: int
    log_index: int
    log_id: bytes

    def to_json(self) -> dict[str, Any]:
        """The annotation's JSON fields, in the order cosign's structs marshal them."""
        return {
            "SignedEntryTimestamp": b64encode(self.signed_entry_timestamp),
            "Payload": {
                "body": b64encode(self.body),
                "integratedTime": self.integrated_time,
                "logIndex": self.log_index,
                "logID": self.log_id.hex(),
            },
        }


def rekor_bundle(
    entry: TransparencyLogEntry, *, log: LogKey | None, annotation: str | None = None
) -> RekorBundle | None:
    """The SET of a verified log entry as cosign v2 stores it; None for an entry without one
    (Rekor v2 signs checkpoints, not entries).

    A log signs a new SET each time an entry is read, so the SET of a cosign v2 signature's
    own `annotation` (what cosign prints) is used when it verifies with the log's key over
    this entry; otherwise the verified entry's.
    """
    from cryptography.exceptions import InvalidSignature

    from keyless.client.verify.transparency import set_payload

    promise = entry.inclusion_promise
    if promise is None or entry.integrated_time is None:
        return None
    found = RekorBundle(
        signed_entry_timestamp=promise.signed_entry_timestamp,
        body=entry.canonicalized_body,
        integrated_time=entry.integrated_time,
        log_index=entry.log_index,
        log_id=entry.log_id.key_id,
    )
    if annotation is None or log is None:
        return found
    try:
        signed = b64decode(json.loads(annotation)["SignedEntryTimestamp"])
        log.verify(
            signed,
            set_payload(
                body=found.body,
                integrated_time=found.integrated_time,
                log_id=found.log_id,
                log_index=found.log_index,
            ),
        )
    except (ValueError, RecursionError, KeyError, TypeError, InvalidSignature):
        return found
    return RekorBundle(signed, found.body, found.integrated_time, found.log_index, found.log_id)


def legacy_bundle(
    signature: LegacySignature, *, trusted_root: TrustedRoot, entries: LogEntrySource
) -> Bundle:
    """A v0.3 bundle for a cosign v2 signature, with its entry fetched from the log.

    A signature made with a certificate gets it as the bundle's `certificate`; one made with
    a managed key (`cosign sign --key`, no certificate annotation) gets `publicKey`, and is
    verified with the key the caller pins.

    Raises:
        ClientError: no log evidence, malformed annotations, a log not in the trusted root,
            or a log entry other than the one named.
        NetworkError: the log cannot be reached or has no such entry.
        VerificationError: the result is not a well-formed bundle.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if signature.rekor_bundle is None:
        raise ClientError("it carries no transparency log evidence")
    material: dict[str, object] = {"publicKey": {"hint": None}}
    try:
        if signature.certificate is not None:
            leaf = x509.load_pem_x509_certificate(signature.certificate.encode())
            der = leaf.public_bytes(serialization.Encoding.DER)
            material = {"certificate": {"rawBytes": b64encode(der)}}
        raw_signature = b64decode(signature.signature)
    except ValueError as exc:
        raise ClientError("its certificate or signature is malformed") from exc
    log_id, log_index, body = _rekor_annotation(signature.rekor_bundle)
    log = trusted_root.tlogs.get(log_id)
    if log is None:
        raise ClientError(f"it is logged in a log not in the trusted root ({log_id.hex()})")
    entry = entries.fetch(log.base_url, log_index)
    if entry.log_id.key_id != log_id or entry.canonicalized_body != body:
        raise ClientError(f"log entry {log_index} is not the entry the signature names")
    sha256 = hashlib.sha256(signature.payload).digest()
    # Checked as any bundle is: read from its JSON.
    return Bundle.from_json(
        json.dumps(
            {
                "mediaType": _BUNDLE_MEDIA_TYPE,
                "verificationMaterial": {**material, "tlogEntries": [entry.to_dict()]},
                "messageSignature": {
                    "messageDigest": {"algorithm": "SHA2_256", "digest": b64encode(sha256)},
                    "signature": b64encode(raw_signature),
                },
            }
        )
    )


def _rekor_annotation(text: str) -> tuple[bytes, int, bytes]:
    """Log ID, log index and body from cosign's `dev.sigstore.cosign/bundle` annotation.

    Raises:
        ClientError: the annotation is malformed.
    """
    try:
        payload = json.loads(text)["Payload"]
        log_id = bytes.fromhex(payload["logID"])
        log_index = payload["logIndex"]
        body = b64decode(payload["body"])
    except (ValueError, RecursionError, KeyError, TypeError) as exc:
        raise ClientError("its transparency log annotation is malformed") from exc
    if isinstance(log_index, bool) or not isinstance(log_index, int) or not 0 <= log_index < 2**63:
        raise ClientError("its transparency log annotation has an invalid log index")
    return log_id, log_index, body

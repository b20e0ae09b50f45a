"""Signing with a long-lived key (`keyless sign --key`): the bundles cosign v3 writes for it.

A managed-key bundle v0.3 carries `verificationMaterial.publicKey.hint` (base64 of the SHA-256
of the key's DER SPKI, as sigstore-go and cosign v3 write it) instead of a certificate. As
cosign does by default, the signature is logged: in a Rekor v1 log as `hashedrekord` 0.0.1 (a
message signature, the PEM public key as its verifier) or `dsse` 0.0.1 (a DSSE envelope); in a
Rekor v2 log, after an RFC 3161 timestamp, as `hashedrekord` 0.0.2 with a `publicKey` verifier.
With the upload turned off (`--no-tlog-upload`) nothing is logged: the bundle has no entry and
only the timestamp, if a TSA was asked, and verifies only with `--insecure-ignore-tlog` or under
a policy that ignores the log.

When a trusted root is at hand, a logged bundle is verified with the key before it is returned,
as keyless signing does.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from keyless.client.keys.algorithms import key_hint, public_pem, spki_der
from keyless.client.oci import LegacySignature
from keyless.client.sign.rekor import LogClient, LogV2Client, hashedrekord_entry
from keyless.client.sign.signer import (
    BUNDLE_MEDIA_TYPE,
    MAX_DSSE_PAYLOAD_BYTES,
    UnverifiedBundleError,
    dsse_entry,
)
from keyless.core.dsse import pae

if TYPE_CHECKING:
    from sigstore_models.rekor.v1 import TransparencyLogEntry

    from keyless.client.keys import KeySigner
    from keyless.client.sign.timestamping import TimestampClient
    from keyless.client.trust import TrustedRoot


@dataclass(frozen=True)
class KeySigningResult:
    """A key-signed bundle, the raw signature, its log entry (None: not logged) and the key
    reference that signed."""

    bundle_json: str
    signature: bytes
    entry: TransparencyLogEntry | None
    key: str

    @property
    def log_index(self) -> int | None:
        return int(self.entry.log_index) if self.entry is not None else None

    def to_json(self) -> str:
        return self.bundle_json


class KeyBundleSigner:
    """Signs digests and DSSE payloads with one long-lived key, logging each signature."""

    def __init__(
        self,
        key: KeySigner,
        *,
        log: LogClient | LogV2Client | None,
        timestamper: TimestampClient | None = None,
        trusted_root: TrustedRoot | None = None,
    ) -> None:
        """`log` None: nothing is logged (`--no-tlog-upload`); a v2 `log` needs a
        `timestamper` (its entries carry no signed time)."""
        if isinstance(log, LogV2Client) and timestamper is None:
            raise ValueError("a Rekor v2 log needs a timestamp authority")
        self.key = key
        self.log = log
        self._timestamper = timestamper
        self._trusted_root = trusted_root

    def sign_digest(self, sha256: bytes) -> KeySigningResult:
        """Sign a SHA-256 digest (a message signature).

        Raises:
            ServiceRefusedError, NetworkError: the TSA or the log refused or failed.
            UnverifiedBundleError: the logged bundle does not verify against the trusted root.
        """
        if len(sha256) != 32:
            raise ValueError("a SHA-256 digest is 32 bytes")
        signature = self.key.sign_digest(sha256)
        content = {
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": _b64(sha256)},
                "signature": _b64(signature),
            }
        }
        entry = None
        if isinstance(self.log, LogClient):
            pem = public_pem(self.key.public_key)
            entry = self.log.upload(
                hashedrekord_entry(digest=sha256, signature=signature, certificate_pem=pem)
            )
        return self._finish(signature, content, entry=entry, v2_digest=sha256, subject=sha256)

    def sign_dsse(
        self, payload: bytes, *, payload_type: str, subject_sha256: bytes
    ) -> KeySigningResult:
        """Sign `payload` as a DSSE envelope (an in-toto statement about `subject_sha256`).

        Raises:
            ServiceRefusedError, NetworkError: the TSA or the log refused or failed.
            UnverifiedBundleError: the logged bundle does not verify against the trusted root.
        """
        if len(payload) > MAX_DSSE_PAYLOAD_BYTES:
            raise ValueError(f"a DSSE payload is at most {MAX_DSSE_PAYLOAD_BYTES} bytes")
        signed = pae(payload_type, payload)
        signature = self.key.sign(signed)
        envelope = {
            "payload": _b64(payload),
            "payloadType": payload_type,
            "signatures": [{"sig": _b64(signature)}],
        }
        entry = None
        if isinstance(self.log, LogClient):
            pem = public_pem(self.key.public_key)
            entry = self.log.upload(dsse_entry(envelope, certificate_pem=pem))
        return self._finish(
            signature,
            {"dsseEnvelope": envelope},
            entry=entry,
            v2_digest=hashlib.sha256(signed).digest(),
            subject=subject_sha256,
        )

    def legacy_signature(self, result: KeySigningResult, payload: bytes) -> LegacySignature:
        """cosign v2's `.sig` layer for a key signature over `payload`: no certificate, and the
        log's bundle annotation when it was logged in a v1 log."""
        entry = result.entry
        rekor_bundle = None
        if entry is not None and entry.inclusion_promise is not None:
            rekor_bundle = json.dumps(
                {
                    "SignedEntryTimestamp": _b64(entry.inclusion_promise.signed_entry_timestamp),
                    "Payload": {
                        "body": _b64(entry.canonicalized_body),
                        "integratedTime": int(entry.integrated_time),
                        "logIndex": int(entry.log_index),
                        "logID": entry.log_id.key_id.hex(),
                    },
                },
                separators=(",", ":"),
            )
        return LegacySignature(
            payload=payload, signature=_b64(result.signature), rekor_bundle=rekor_bundle
        )

    def _finish(
        self,
        signature: bytes,
        content: dict[str, Any],
        *,
        entry: TransparencyLogEntry | None,
        v2_digest: bytes,
        subject: bytes,
    ) -> KeySigningResult:
        """Timestamp and log in a v2 log; wrap in a bundle; verify it when a root is at hand."""
        timestamp = None
        if self._timestamper is not None:
            timestamp = self._timestamper.timestamp(signature)
        if isinstance(self.log, LogV2Client):
            entry = self.log.upload_hashedrekord(
                digest=v2_digest,
                signature=signature,
                public_key_der=spki_der(self.key.public_key),
                key_details=_key_details(self.key.public_key),
            )
        material: dict[str, Any] = {
            "publicKey": {"hint": key_hint(self.key.public_key)},
            "tlogEntries": [entry.to_dict()] if entry is not None else [],
        }
        if timestamp is not None:
            material["timestampVerificationData"] = {
                "rfc3161Timestamps": [{"signedTimestamp": _b64(timestamp)}]
            }
        document = {"mediaType": BUNDLE_MEDIA_TYPE, "verificationMaterial": material, **content}
        result = KeySigningResult(json.dumps(document), signature, entry, self.key.reference)
        if self._trusted_root is not None and (entry is not None or timestamp is not None):
            self._check(result, subject)
        return result

    def _check(self, result: KeySigningResult, subject: bytes) -> None:
        from keyless.client.bundle import Bundle
        from keyless.client.verify import VerificationError, Verifier

        if self._trusted_root is None:
            return
        try:
            Verifier(self._trusted_root).verify_with_key(
                Bundle.from_json(result.bundle_json),
                sha256=subject,
                key=self.key.public_key,
                now=datetime.now(UTC),
            )
        except VerificationError as exc:
            raise UnverifiedBundleError(result, exc) from exc  # type: ignore[arg-type]


def _key_details(key: Any) -> str:
    """The protobuf-specs PublicKeyDetails of a signing key (P-256 or RSA, SHA-256)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    if isinstance(key, rsa.RSAPublicKey):
        return f"PKIX_RSA_PKCS1V15_{key.key_size}_SHA256"
    return "PKIX_ECDSA_P256_SHA_256"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()

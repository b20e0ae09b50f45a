"""Keyless signing: an identity token in, logged Sigstore bundles v0.3 out.

The key is an ephemeral P-256 key that lives only in this process's memory. The flow:
certificate from the CA (the CSR is the proof of possession) -> signature -> log entry ->
bundle. In a Rekor v1 log, a message signature over a SHA-256 digest is logged as
`hashedrekord` 0.0.1 and a DSSE envelope (cosign v3's image signature is one) as `dsse` 0.0.1
(rekor-bundle.md §1.10). A Rekor v2 log gives no signed time, so the signature is first
timestamped at the TSA (RFC 3161, over the signature bytes), then logged as `hashedrekord`
0.0.2 (a DSSE envelope as one over SHA-256 of its PAE, as sigstore-python 4.5 does); the
timestamp goes in the bundle's `timestampVerificationData`.
When a trusted root is at hand, each new bundle is verified before it is returned, so a
misconfigured server is caught at signing time rather than at the deploy gate.

`EphemeralSigner` holds one key and its certificate, so an image can be signed in several
forms (bundle, cosign v2 legacy signature, each platform of an index) with one CA round trip.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from sigstore_models.bundle.v1 import Bundle as WireBundle
from sigstore_models.rekor.v1 import TransparencyLogEntry

from keyless.client.bundle import Bundle
from keyless.client.errors import ClientError
from keyless.client.oci import LegacySignature
from keyless.client.services import Services
from keyless.client.sign.fulcio import CAClient
from keyless.client.sign.rekor import LogClient, LogV2Client, hashedrekord_entry
from keyless.client.sign.timestamping import TimestampClient
from keyless.client.trust import TrustedRoot
from keyless.client.verify import AllOf, Identity, Issuer, VerificationError, Verifier
from keyless.client.verify.policy import certificate_identities, certificate_issuer
from keyless.client.wire.bundle import TransparencyLogEntry as BundleLogEntry
from keyless.core.dsse import pae
from keyless.core.encoding import b64encode
from keyless.core.errors import Reason
from keyless.core.keys import key_details
from keyless.oidc.acquire import check_not_expired

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
MAX_DSSE_PAYLOAD_BYTES = 1024 * 1024


@dataclass(frozen=True)
class SigningResult:
    """What was signed, by whom, and where it is logged."""

    bundle: Bundle
    identity: str
    issuer: str
    log_index: int
    wire: WireBundle  # the sigstore-models bundle, which `to_json` writes

    @property
    def entry(self) -> BundleLogEntry | None:
        """The log entry as the bundle holds it."""
        return self.bundle.entry

    def to_json(self) -> str:
        return self.wire.to_json()


class UnverifiedBundleError(ClientError):
    """Signed and logged, but the new bundle does not verify against the trusted root.

    The log entry exists whatever happens next, so the bundle travels with the error for the
    caller to keep: the trusted root may be the wrong one, not the bundle.
    """

    def __init__(self, result: SigningResult, cause: VerificationError) -> None:
        super().__init__(
            f"signed and logged (log index {result.log_index}), but the new bundle does not "
            f"verify against the trusted root: {cause.message}",
            reason=Reason.UNVERIFIED_BUNDLE,
            hint="check that the trusted root belongs to the deployment that signed; "
            "the saved bundle verifies once the right root is trusted",
        )
        self.result = result


class EphemeralSigner:
    """One ephemeral key, certified for the token's identity, signing one or more things.

    The certificate lives 15 minutes or so; a signer is meant for one command, not to be kept.
    """

    def __init__(
        self,
        *,
        token: str,
        ca: CAClient,
        log: LogClient | LogV2Client,
        trusted_root: TrustedRoot | None,
        timestamper: TimestampClient | None = None,
        now: datetime | None = None,
    ) -> None:
        """Get a certificate for a fresh key; a v2 `log` needs a `timestamper`.

        Raises:
            TokenSourceError: the token has already expired.
            ServiceRefusedError, NetworkError: the CA refused or failed.
        """
        if isinstance(log, LogV2Client) and timestamper is None:
            raise ValueError("a Rekor v2 log needs a timestamp authority")
        check_not_expired(token, now=now or datetime.now(UTC))
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._log = log
        self._timestamper = timestamper
        self._verifier = Verifier(trusted_root) if trusted_root is not None else None
        self.chain: tuple[x509.Certificate, ...] = tuple(ca.signing_certificate(token, self._key))
        identities = certificate_identities(self.leaf)
        self.identity = identities[0] if identities else ""
        self.issuer = certificate_issuer(self.leaf) or ""

    @property
    def leaf(self) -> x509.Certificate:
        """The signing certificate."""
        return self.chain[0]

    @property
    def leaf_pem(self) -> bytes:
        return self.leaf.public_bytes(serialization.Encoding.PEM)

    def legacy_signature(self, result: SigningResult, payload: bytes) -> LegacySignature:
        """The cosign v2 layer for a message signature over `payload` (rekor-bundle.md §7.1)."""
        entry = result.entry
        if entry is None or entry.inclusion_promise is None or entry.integrated_time is None:
            raise RuntimeError("a cosign v2 signature needs the log's signed entry timestamp")
        rekor_bundle = {
            "SignedEntryTimestamp": b64encode(entry.inclusion_promise.signed_entry_timestamp),
            "Payload": {
                "body": b64encode(entry.canonicalized_body),
                "integratedTime": int(entry.integrated_time),
                "logIndex": int(entry.log_index),
                "logID": entry.log_id.key_id.hex(),
            },
        }
        chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain[1:])
        return LegacySignature(
            payload=payload,
            signature=b64encode(result.bundle.signature),
            certificate=self.leaf_pem.decode(),
            chain=chain.decode() or None,
            rekor_bundle=json.dumps(rekor_bundle, separators=(",", ":")),
        )

    def sign_digest(self, sha256: bytes) -> SigningResult:
        """Sign a SHA-256 digest (a message signature) and log it as `hashedrekord`.

        Raises:
            ServiceRefusedError, NetworkError: the TSA or the log refused or failed.
            UnverifiedBundleError: the new bundle does not verify against the trusted root.
        """
        if len(sha256) != 32:
            raise ValueError("a SHA-256 digest is 32 bytes")
        signature = self._key.sign(sha256, ec.ECDSA(Prehashed(hashes.SHA256())))
        content = {
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": b64encode(sha256)},
                "signature": b64encode(signature),
            }
        }
        if isinstance(self._log, LogV2Client):
            return self._log_v2(sha256, signature, content, artifact_sha256=sha256)
        entry = self._log.upload(
            hashedrekord_entry(digest=sha256, signature=signature, certificate_pem=self.leaf_pem)
        )
        return self._finish(entry, content, artifact_sha256=sha256)

    def sign_dsse(
        self, payload: bytes, *, payload_type: str, subject_sha256: bytes
    ) -> SigningResult:
        """Sign `payload` as a DSSE envelope and log it (`dsse` 0.0.1 in v1; in v2, a
        `hashedrekord` 0.0.2 over SHA-256 of the PAE, which is what the signature covers).

        `subject_sha256` is the artifact the payload (an in-toto statement) is about; the new
        bundle is verified against it.

        Raises:
            ServiceRefusedError, NetworkError: the TSA or the log refused or failed.
            UnverifiedBundleError: the new bundle does not verify against the trusted root.
        """
        if len(payload) > MAX_DSSE_PAYLOAD_BYTES:
            raise ValueError(f"a DSSE payload is at most {MAX_DSSE_PAYLOAD_BYTES} bytes")
        signed = pae(payload_type, payload)
        signature = self._key.sign(signed, ec.ECDSA(hashes.SHA256()))
        envelope = {
            "payload": b64encode(payload),
            "payloadType": payload_type,
            "signatures": [{"sig": b64encode(signature)}],
        }
        if isinstance(self._log, LogV2Client):
            return self._log_v2(
                hashlib.sha256(signed).digest(),
                signature,
                {"dsseEnvelope": envelope},
                artifact_sha256=subject_sha256,
            )
        entry = self._log.upload(dsse_entry(envelope, certificate_pem=self.leaf_pem))
        return self._finish(entry, {"dsseEnvelope": envelope}, artifact_sha256=subject_sha256)

    def _log_v2(
        self, digest: bytes, signature: bytes, content: dict[str, Any], *, artifact_sha256: bytes
    ) -> SigningResult:
        """Timestamp `signature`, then log it in the v2 log: a TSA that refuses or cannot be
        reached stops the signing before anything is logged."""
        if not isinstance(self._log, LogV2Client) or self._timestamper is None:
            raise ValueError("a Rekor v2 log needs a timestamp authority")
        timestamp = self._timestamper.timestamp(signature)
        entry = self._log.upload_hashedrekord(
            digest=digest,
            signature=signature,
            certificate_der=self.leaf.public_bytes(serialization.Encoding.DER),
            key_details=key_details(self._key.public_key()),
        )
        return self._finish(entry, content, artifact_sha256=artifact_sha256, timestamp=timestamp)

    def _finish(
        self,
        entry: TransparencyLogEntry,
        content: dict[str, Any],
        *,
        artifact_sha256: bytes,
        timestamp: bytes | None = None,
    ) -> SigningResult:
        """Wrap a logged signature (and its RFC 3161 timestamp, if any) in a v0.3 bundle, and
        verify it when a root is at hand."""
        material: dict[str, Any] = {
            "certificate": {
                "rawBytes": b64encode(self.leaf.public_bytes(serialization.Encoding.DER))
            },
            "tlogEntries": [entry.to_dict()],
        }
        if timestamp is not None:
            material["timestampVerificationData"] = {
                "rfc3161Timestamps": [{"signedTimestamp": b64encode(timestamp)}]
            }
        # Parsed from JSON, as readers parse it: sigstore-models refuses enum names and other
        # wire spellings in Python mode (strict), so from_dict would reject a valid bundle.
        wire = WireBundle.from_json(
            json.dumps(
                {
                    "mediaType": BUNDLE_MEDIA_TYPE,
                    "verificationMaterial": material,
                    **content,
                }
            )
        )
        # Read back as every verifier reads it: what is checked below is what is written.
        bundle = Bundle.from_json(wire.to_json())
        result = SigningResult(bundle, self.identity, self.issuer, int(entry.log_index), wire)
        if self._verifier is not None:
            policy = AllOf([Identity(self.identity), Issuer(self.issuer)])
            try:
                self._verifier.verify(
                    result.bundle, sha256=artifact_sha256, policy=policy, now=datetime.now(UTC)
                )
            except VerificationError as exc:
                raise UnverifiedBundleError(result, exc) from exc
        return result


def new_signer(
    endpoints: Services, *, token: str, trusted_root: TrustedRoot | None
) -> EphemeralSigner:
    """A signer for the CA and the log `endpoints` name (with the TSA, for a v2 log): the one
    place the signing commands turn a chosen signing config into clients."""
    log, timestamper = log_clients(endpoints)
    return EphemeralSigner(
        token=token,
        ca=CAClient(endpoints.ca_url),
        log=log,
        timestamper=timestamper,
        trusted_root=trusted_root,
    )


def log_clients(endpoints: Services) -> tuple[LogClient | LogV2Client, TimestampClient | None]:
    """The log the services name, and for a v2 log the TSA that gives its signed time."""
    if endpoints.log_version == 2:
        if endpoints.tsa_url is None:
            raise ValueError("a Rekor v2 log needs a timestamp authority")
        return LogV2Client(endpoints.log_url), TimestampClient(endpoints.tsa_url)
    return LogClient(endpoints.log_url), None


def dsse_entry(envelope: dict[str, Any], *, certificate_pem: bytes) -> dict[str, Any]:
    """A `dsse` 0.0.1 proposed entry: the envelope as a JSON string, and its verifier."""
    return {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "proposedContent": {
                "envelope": json.dumps(envelope, separators=(",", ":")),
                "verifiers": [b64encode(certificate_pem)],
            }
        },
    }

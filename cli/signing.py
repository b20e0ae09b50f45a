"""Keyless signing: an identity token in, a logged Sigstore bundle v0.3 out.

The key is an ephemeral P-256 key that lives only in this process's memory. The flow:
certificate from the CA (the CSR is the proof of possession) -> signature over the artifact's
SHA-256 -> hashedrekord entry in the log -> bundle. When a trusted root is at hand, the new
bundle is verified before it is returned, so a misconfigured server is caught at signing time
rather than at the deploy gate.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from sigstore_models.bundle.v1 import Bundle as WireBundle

from cli.bundle import Bundle
from cli.fulcio_client import CAClient
from cli.rekor_client import LogClient, hashedrekord_entry
from cli.trust import TrustedRoot
from cli.verify import AllOf, Identity, Issuer, Verifier
from cli.verify.policy import certificate_identities, certificate_issuer
from oidc.acquire import check_not_expired

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


@dataclass(frozen=True)
class SigningResult:
    """What was signed, by whom, and where it is logged."""

    bundle: Bundle
    identity: str
    issuer: str
    log_index: int

    def to_json(self) -> str:
        return self.bundle.wire.to_json()


def sign_digest(
    sha256: bytes,
    *,
    token: str,
    ca: CAClient,
    log: LogClient,
    trusted_root: TrustedRoot | None,
    now: datetime | None = None,
) -> SigningResult:
    """Sign a SHA-256 digest as the token's identity and log it.

    Raises:
        TokenSourceError: the token has already expired.
        ServiceRefusedError, NetworkError: the CA or the log refused or failed.
        VerificationError: the new bundle does not verify against `trusted_root`.
    """
    if len(sha256) != 32:
        raise ValueError("a SHA-256 digest is 32 bytes")
    check_not_expired(token, now=now or datetime.now(UTC))
    key = ec.generate_private_key(ec.SECP256R1())
    chain = ca.signing_certificate(token, key)
    leaf = chain[0]
    signature = key.sign(sha256, ec.ECDSA(Prehashed(hashes.SHA256())))
    leaf_pem = leaf.public_bytes(serialization.Encoding.PEM)
    entry = log.upload(
        hashedrekord_entry(digest=sha256, signature=signature, certificate_pem=leaf_pem)
    )
    # Validated the way a reader parses it: from JSON (sigstore-models is strict in Python mode).
    wire = WireBundle.from_json(
        json.dumps(
            {
                "mediaType": BUNDLE_MEDIA_TYPE,
                "verificationMaterial": {
                    "certificate": {
                        "rawBytes": _b64(leaf.public_bytes(serialization.Encoding.DER))
                    },
                    "tlogEntries": [entry.to_dict()],
                },
                "messageSignature": {
                    "messageDigest": {"algorithm": "SHA2_256", "digest": _b64(sha256)},
                    "signature": _b64(signature),
                },
            }
        )
    )
    bundle = Bundle.from_model(wire)
    identity, issuer = _identity(leaf)
    if trusted_root is not None:
        policy = AllOf([Identity(identity), Issuer(issuer)])
        Verifier(trusted_root).verify(bundle, sha256=sha256, policy=policy, now=datetime.now(UTC))
    return SigningResult(bundle, identity, issuer, entry.log_index)


def _identity(leaf: x509.Certificate) -> tuple[str, str]:
    identities = certificate_identities(leaf)
    return (identities[0] if identities else "", certificate_issuer(leaf) or "")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()

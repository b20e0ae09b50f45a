"""Which long-lived keys are allowed, and the byte-level facts about them that bundles carry.

The rules are cosign's (sigstore's `cryptoutils.ValidatePubKey`, which `import-key-pair` and
key loading apply): RSA of 2048 to 4096 bits, ECDSA on P-256, P-384 or P-521, and Ed25519.
Anything else (RSA-1024, P-224, secp256k1) is refused before it can sign or verify.
"""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING

from keyless.client.keys.errors import KeyFileError
from keyless.core.errors import Reason

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

RSA_BITS = (2048, 4096)
EC_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def check_allowed_key(key: PublicKeyTypes, *, source: str) -> None:
    """Refuse a key type or size cosign does not accept.

    Raises:
        KeyFileError: reason `key-type`; the message names `source` and the key.
    """
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, rsa.RSAPublicKey):
        low, high = RSA_BITS
        if not low <= key.key_size <= high:
            raise KeyFileError(
                f"{source} is an RSA-{key.key_size} key; RSA keys of {low} to {high} bits are "
                "supported",
                reason=Reason.KEY_TYPE,
            )
        return
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in EC_CURVES:
            raise KeyFileError(
                f"{source} is an ECDSA key on {key.curve.name}; the curves supported are "
                "P-256, P-384 and P-521",
                reason=Reason.KEY_TYPE,
            )
        return
    if isinstance(key, ed25519.Ed25519PublicKey):
        return
    raise KeyFileError(
        f"{source} holds an unsupported key type ({type(key).__name__.removeprefix('_')}); "
        "RSA, ECDSA and Ed25519 keys are supported",
        reason=Reason.KEY_TYPE,
    )


def describe_key(key: PublicKeyTypes) -> str:
    """`ECDSA P-256`, `RSA-3072` or `Ed25519`, for messages."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {_CURVE_NAMES.get(key.curve.name, key.curve.name)}"
    return "Ed25519"


def spki_der(key: PublicKeyTypes) -> bytes:
    """The key's DER SubjectPublicKeyInfo."""
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_pem(key: PublicKeyTypes) -> bytes:
    """The key as a PKIX `PUBLIC KEY` PEM, as cosign writes `cosign.pub`."""
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_hint(key: PublicKeyTypes) -> str:
    """A bundle's `publicKey.hint`: base64 of the SHA-256 of the DER SPKI (sigstore-go and
    cosign v3 write this; readers treat it as opaque)."""
    return base64.b64encode(hashlib.sha256(spki_der(key)).digest()).decode()

"""The one interface signing code sees for a long-lived key, whatever holds it.

A `KeySigner` signs a message or a precomputed SHA-256 digest and tells its public key; a key in
a file is one, an HSM or a KMS key would be another. Signing code never asks which.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from keyless.client.keys.algorithms import describe_key
from keyless.client.keys.errors import KeyFileError
from keyless.core.errors import Reason

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes


class KeySigner(Protocol):
    """A long-lived signing key; `reference` is how the user named it (for messages)."""

    reference: str

    @property
    def public_key(self) -> PublicKeyTypes:
        """The key that verifies this signer's signatures."""
        ...

    def sign(self, data: bytes) -> bytes:
        """A signature over `data` (hashed with SHA-256)."""
        ...

    def sign_digest(self, sha256: bytes) -> bytes:
        """A signature over data whose SHA-256 digest is `sha256`."""
        ...


class LocalKeySigner:
    """A private key held in this process (decrypted from a cosign key file).

    Signs with what verifiers expect of each key: ECDSA P-256 with SHA-256, RSA with PKCS#1
    v1.5 and SHA-256. P-384, P-521 and Ed25519 keys are refused for signing here: their
    signatures need other digests (SHA-384, SHA-512, Ed25519ph) end to end.
    """

    def __init__(self, key: PrivateKeyTypes, *, reference: str) -> None:
        """Raises KeyFileError (`key-type`) for a key that cannot sign here."""
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        usable = isinstance(key, rsa.RSAPrivateKey) or (
            isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
        )
        if not usable:
            raise KeyFileError(
                f"{reference} is an {describe_key(key.public_key())} key, which cannot sign "
                "here yet; ECDSA P-256 and RSA keys can",
                reason=Reason.KEY_TYPE,
            )
        self._key = key
        self.reference = reference

    @property
    def public_key(self) -> PublicKeyTypes:
        return self._key.public_key()

    def sign(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes

        return self._sign(data, hashes.SHA256())

    def sign_digest(self, sha256: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

        if len(sha256) != 32:
            raise ValueError("a SHA-256 digest is 32 bytes")
        return self._sign(sha256, Prehashed(hashes.SHA256()))

    def _sign(self, data: bytes, algorithm: object) -> bytes:
        from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(data, padding.PKCS1v15(), algorithm)  # type: ignore[arg-type]
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return self._key.sign(data, ec.ECDSA(algorithm))  # type: ignore[arg-type]
        raise TypeError("LocalKeySigner holds an RSA or ECDSA key")

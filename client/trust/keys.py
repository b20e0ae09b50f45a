"""The keys of a trusted root: the signature check each log or CA key makes, by its algorithm.

A trusted root names each key's algorithm (`PublicKeyDetails`: ECDSA with a hash, Ed25519,
RSA PKCS#1 v1.5 or PSS); the check is chosen once per key, since a `LogKey` verifies two or
three signatures per bundle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes


def verifier_for(public_key: PublicKeyTypes, details: str) -> Callable[[bytes, bytes], None]:
    """`verify(signature, data)` for this key with the algorithm `details` names; the
    function raises InvalidSignature. Raises TypeError for a key type no log uses."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    if isinstance(public_key, ec.EllipticCurvePublicKey):
        ec_key, ecdsa = public_key, ec.ECDSA(_hash_for(details))
        return lambda signature, data: ec_key.verify(signature, data, ecdsa)
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return public_key.verify
    if isinstance(public_key, rsa.RSAPublicKey):
        rsa_key, digest = public_key, _hash_for(details)
        pad = (
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
            if "PSS" in details
            else padding.PKCS1v15()
        )
        return lambda signature, data: rsa_key.verify(signature, data, pad, digest)
    raise TypeError(f"unsupported key type {type(public_key).__name__}")


def _hash_for(details: str) -> hashes.HashAlgorithm:
    from cryptography.hazmat.primitives import hashes

    if details.endswith("SHA_384"):
        return hashes.SHA384()
    if details.endswith("SHA_512"):
        return hashes.SHA512()
    return hashes.SHA256()

"""Public keys as Sigstore names them, and one signature check for each scheme keyless uses.

Sigstore's protobuf-specs name a key and its signature scheme together: the `PublicKeyDetails`
PKIX_ECDSA_P256_SHA_256 is an ECDSA key on P-256 whose signatures are over SHA-256. The names
are plain strings here, the values of sigstore-models' enum, so this module needs no pydantic
(a caller holding the enum passes `.value`). Which keys a component accepts (Fulcio's sizes,
Rekor's) is that component's policy and stays with it; what a key's scheme *is* lives here.

Checks raise, as `cryptography`'s do: `InvalidSignature` for a signature that does not
verify; `ValueError`, before anything is verified, for a key or scheme Sigstore has no name for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
# `verify(signature, data)`: returns, or raises cryptography's InvalidSignature.
Verify = Callable[[bytes, bytes], None]

# The hash each curve signs with: its PublicKeyDetails' (FIPS 186-5 pairs them so), which is
# also what Fulcio demands of proofs of possession and CA keys.
CURVE_HASHES: dict[str, str] = {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512"}
# The RSA modulus sizes PublicKeyDetails names; no component takes an RSA key below the first.
RSA_KEY_SIZES = (2048, 3072, 4096)
# Sigstore's HashAlgorithm names (protobuf-specs) for the hashes signatures here are over.
HASH_ALGORITHMS: dict[str, str] = {"SHA2_256": "sha256", "SHA2_384": "sha384", "SHA2_512": "sha512"}

# Algorithm objects are immutable, and building them per signature shows up in profiles.
# The ECDSA ones are made on first use: the first loads OpenSSL, which importing need not.
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}
_PREHASHED = {name: utils.Prehashed(algorithm) for name, algorithm in _HASHES.items()}
_PKCS1V15 = padding.PKCS1v15()
_PSS = {
    name: padding.PSS(mgf=padding.MGF1(algorithm), salt_length=padding.PSS.AUTO)
    for name, algorithm in _HASHES.items()
}


@dataclass(frozen=True)
class Scheme:
    """One PublicKeyDetails: the key it takes and how its signatures are made."""

    details: str
    algorithm: str  # "ecdsa", "rsa-pkcs1v15", "rsa-pss" or "ed25519"
    hash_name: str | None  # None for Ed25519, which hashes inside the scheme
    curve: str | None = None
    key_size: int | None = None

    def matches(self, key: object) -> bool:
        """Whether `key` is the key this scheme names, its curve or modulus size included."""
        if self.algorithm == "ecdsa":
            return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == self.curve
        if self.algorithm == "ed25519":
            return isinstance(key, ed25519.Ed25519PublicKey)
        return isinstance(key, rsa.RSAPublicKey) and key.key_size == self.key_size

    def verifier(self, key: object, *, prehashed: bool = False) -> Verify:
        """`verify(signature, data)` for `key` under this scheme.

        Raises:
            ValueError: `key` is not this scheme's, or it cannot check a digest (Ed25519).
        """
        if not self.matches(key):
            raise ValueError(f"the {describe_key(key)} key does not match {self.details}")
        return signature_verifier(
            key,  # type: ignore[arg-type]  # matches() checked the type
            hash_name=self.hash_name,
            prehashed=prehashed,
            pss=self.algorithm == "rsa-pss",
        )


def _rsa(padding_name: str, algorithm: str) -> tuple[Scheme, ...]:
    return tuple(
        Scheme(f"PKIX_RSA_{padding_name}_{bits}_SHA256", algorithm, "sha256", key_size=bits)
        for bits in RSA_KEY_SIZES
    )


# Every PublicKeyDetails keyless can check, by name. Left out: the deprecated names (PKCS1_*,
# PKIX_RSA_PKCS1V5, PKIX_RSA_PSS and the HMAC one), PKIX_ED25519_PH (cryptography has no
# Ed25519ph) and the post-quantum and LMS schemes.
SCHEMES: dict[str, Scheme] = {
    scheme.details: scheme
    for scheme in (
        Scheme("PKIX_ECDSA_P256_SHA_256", "ecdsa", "sha256", curve="secp256r1"),
        Scheme("PKIX_ECDSA_P384_SHA_384", "ecdsa", "sha384", curve="secp384r1"),
        Scheme("PKIX_ECDSA_P521_SHA_512", "ecdsa", "sha512", curve="secp521r1"),
        Scheme("PKIX_ECDSA_P384_SHA_256", "ecdsa", "sha256", curve="secp384r1"),
        Scheme("PKIX_ECDSA_P521_SHA_256", "ecdsa", "sha256", curve="secp521r1"),
        Scheme("PKIX_ED25519", "ed25519", None),
        *_rsa("PKCS1V15", "rsa-pkcs1v15"),
        *_rsa("PSS", "rsa-pss"),
    )
}
# The name a key goes by when nothing else says (a trusted root, a Rekor v2 verifier): ECDSA
# with its curve's hash, RSA with PKCS#1 v1.5 (as Fulcio, cosign and Rekor sign), Ed25519.
_DEFAULT_DETAILS = (
    "PKIX_ECDSA_P256_SHA_256",
    "PKIX_ECDSA_P384_SHA_384",
    "PKIX_ECDSA_P521_SHA_512",
    "PKIX_ED25519",
    "PKIX_RSA_PKCS1V15_2048_SHA256",
    "PKIX_RSA_PKCS1V15_3072_SHA256",
    "PKIX_RSA_PKCS1V15_4096_SHA256",
)


def key_details(key: object) -> str:
    """The PublicKeyDetails name `key` goes by: P-256, P-384 and P-521 with their curves' hash,
    Ed25519, RSA 2048, 3072 and 4096 with PKCS#1 v1.5 and SHA-256.

    Raises:
        ValueError: a key type, curve or size that Sigstore has no name for.
    """
    for name in _DEFAULT_DETAILS:
        if SCHEMES[name].matches(key):
            return name
    raise ValueError(f"{describe_key(key)} keys have no Sigstore key details")


def describe_key(key: object) -> str:
    """A key's type for messages: "ECDSA secp256r1", "RSA-2048", "Ed25519"."""
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"ECDSA {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "Ed25519"
    return type(key).__name__.lstrip("_")


def curve_hash(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> str:
    """The hash `key`'s curve signs with ("sha256" for P-256, "sha384", "sha512").

    Raises:
        ValueError: a curve Sigstore does not use.
    """
    name = CURVE_HASHES.get(key.curve.name)
    if name is None:
        raise ValueError(f"{describe_key(key)} keys have no Sigstore signature scheme")
    return name


def hash_algorithm(hash_name: str) -> hashes.HashAlgorithm:
    """The (shared) `cryptography` hash for "sha256", "sha384" or "sha512".

    Raises:
        ValueError: another name.
    """
    try:
        return _HASHES[hash_name]
    except KeyError:
        raise ValueError(f"hash {hash_name[:32]!r} is not sha256, sha384 or sha512") from None


def ecdsa(hash_name: str, *, prehashed: bool = False) -> ec.ECDSA:
    """The (shared) ECDSA algorithm over `hash_name`, for signing or verifying; `prehashed`:
    the data is already that hash's digest.

    Raises:
        ValueError: `hash_name` is not sha256, sha384 or sha512.
    """
    hash_algorithm(hash_name)
    return _ecdsa(hash_name, prehashed)


@functools.cache
def _ecdsa(hash_name: str, prehashed: bool) -> ec.ECDSA:
    return ec.ECDSA(_PREHASHED[hash_name] if prehashed else _HASHES[hash_name])


def signature_verifier(
    key: PublicKey, *, hash_name: str | None = None, prehashed: bool = False, pss: bool = False
) -> Verify:
    """`verify(signature, data)` for `key`: ECDSA, RSA (PKCS#1 v1.5, or PSS with `pss`) or
    Ed25519, built once for checking many signatures.

    `hash_name` ("sha256", "sha384", "sha512") is the hash an ECDSA or RSA signature is over;
    None takes the key's own, its curve's for ECDSA and SHA-256 for RSA. Ed25519 fixes its own
    hash (SHA-512, inside the scheme) and ignores `hash_name`. With `prehashed`, `data` is
    already the digest (hashedrekord).

    Raises:
        ValueError: a key type, curve or RSA size (below 2048 bits) with no Sigstore scheme,
            an unknown hash, PSS for a key that is not RSA, or a digest for Ed25519 (which
            signs whole messages).
    """
    if pss and not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"PSS is an RSA padding, not one for {describe_key(key)} keys")
    if isinstance(key, ed25519.Ed25519PublicKey):
        if prehashed:
            raise ValueError("an Ed25519 key signs whole messages, not precomputed digests")
        return key.verify
    if isinstance(key, ec.EllipticCurvePublicKey):
        own = curve_hash(key)  # refuses a curve Sigstore does not use, whatever the hash
        ec_key, algorithm = key, ecdsa(hash_name or own, prehashed=prehashed)
        return lambda signature, data: ec_key.verify(signature, data, algorithm)
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= RSA_KEY_SIZES[0]:
        name = hash_name or "sha256"
        hash_algorithm(name)  # refuses an unknown name
        rsa_key, digest = key, (_PREHASHED if prehashed else _HASHES)[name]
        pad = _PSS[name] if pss else _PKCS1V15
        return lambda signature, data: rsa_key.verify(signature, data, pad, digest)
    raise ValueError(f"{describe_key(key)} keys have no Sigstore signature scheme")


def verify_signature(
    key: PublicKey,
    signature: bytes,
    data: bytes,
    *,
    hash_name: str | None = None,
    prehashed: bool = False,
    pss: bool = False,
) -> None:
    """Check one signature, as `signature_verifier(key, ...)(signature, data)`.

    Raises:
        InvalidSignature: the signature does not verify.
        ValueError: as `signature_verifier`.
    """
    signature_verifier(key, hash_name=hash_name, prehashed=prehashed, pss=pss)(signature, data)

"""core.keys: every key type keyless supports, its PublicKeyDetails and its signature check."""

from __future__ import annotations

import functools
import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa, utils

from keyless.core.keys import (
    SCHEMES,
    curve_hash,
    ecdsa,
    key_details,
    signature_verifier,
    verify_signature,
)

MESSAGE = b"keyless core.keys test message"
HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


@functools.cache
def _private(kind: str):
    if kind.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[4:]))
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(
        {"p256": ec.SECP256R1(), "p384": ec.SECP384R1(), "p521": ec.SECP521R1()}[kind]
    )


def _sign(private, details: str, data: bytes, *, prehashed: bool = False) -> bytes:
    """Signs as the other party would, with cryptography directly (not through core.keys)."""
    scheme = SCHEMES[details]
    if scheme.algorithm == "ed25519":
        return private.sign(data)
    chosen = HASHES[scheme.hash_name]
    if prehashed:
        chosen = utils.Prehashed(chosen)
    if scheme.algorithm == "ecdsa":
        return private.sign(data, ec.ECDSA(chosen))
    if scheme.algorithm == "rsa-pss":
        pss = padding.PSS(mgf=padding.MGF1(HASHES[scheme.hash_name]), salt_length=32)
        return private.sign(data, pss, chosen)
    return private.sign(data, padding.PKCS1v15(), chosen)


# (key, its default PublicKeyDetails, the other names it can sign under)
KEYS = {
    "p256": ("PKIX_ECDSA_P256_SHA_256", ()),
    "p384": ("PKIX_ECDSA_P384_SHA_384", ("PKIX_ECDSA_P384_SHA_256",)),
    "p521": ("PKIX_ECDSA_P521_SHA_512", ("PKIX_ECDSA_P521_SHA_256",)),
    "ed25519": ("PKIX_ED25519", ()),
    "rsa-2048": ("PKIX_RSA_PKCS1V15_2048_SHA256", ("PKIX_RSA_PSS_2048_SHA256",)),
    "rsa-3072": ("PKIX_RSA_PKCS1V15_3072_SHA256", ("PKIX_RSA_PSS_3072_SHA256",)),
    "rsa-4096": ("PKIX_RSA_PKCS1V15_4096_SHA256", ("PKIX_RSA_PSS_4096_SHA256",)),
}


def test_every_scheme_has_a_key_here() -> None:
    named = {default for default, _ in KEYS.values()}
    named |= {other for _, others in KEYS.values() for other in others}
    assert named == set(SCHEMES)


@pytest.mark.parametrize("kind", KEYS)
def test_key_details_names_each_supported_key(kind: str) -> None:
    assert key_details(_private(kind).public_key()) == KEYS[kind][0]


@pytest.mark.parametrize(
    ("kind", "details"),
    [(kind, name) for kind, (default, others) in KEYS.items() for name in (default, *others)],
)
def test_each_scheme_verifies_its_signatures_and_refuses_others(kind: str, details: str) -> None:
    private = _private(kind)
    key = private.public_key()
    check = SCHEMES[details].verifier(key)
    signature = _sign(private, details, MESSAGE)
    check(signature, MESSAGE)
    with pytest.raises(InvalidSignature):
        check(signature, MESSAGE + b"!")
    if SCHEMES[details].algorithm == "ed25519":
        return
    digest = hashlib.new(SCHEMES[details].hash_name, MESSAGE).digest()
    SCHEMES[details].verifier(key, prehashed=True)(
        _sign(private, details, digest, prehashed=True), digest
    )


def test_the_default_hash_follows_the_curve() -> None:
    for kind, name in (("p256", "sha256"), ("p384", "sha384"), ("p521", "sha512")):
        private = _private(kind)
        assert curve_hash(private) == curve_hash(private.public_key()) == name
        signature = private.sign(MESSAGE, ecdsa(name))
        verify_signature(private.public_key(), signature, MESSAGE)
        # The caller may name another hash (a bundle's message digest does).
        other = private.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
        verify_signature(private.public_key(), other, MESSAGE, hash_name="sha256")
        if name != "sha256":
            with pytest.raises(InvalidSignature):
                verify_signature(private.public_key(), other, MESSAGE)


def test_rsa_defaults_to_pkcs1v15_with_sha256() -> None:
    private = _private("rsa-2048")
    signature = private.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    verify_signature(private.public_key(), signature, MESSAGE)
    with pytest.raises(InvalidSignature):
        verify_signature(private.public_key(), signature, MESSAGE, pss=True)


def test_rsa_key_sizes_are_the_callers_policy_above_the_floor() -> None:
    # Rekor takes RSA keys up to 8192 bits: no PublicKeyDetails names them, but a signature
    # by one still checks; below 2048 bits nothing does.
    big = rsa.generate_private_key(public_exponent=65537, key_size=2056)
    verify_signature(
        big.public_key(), big.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA256()), MESSAGE
    )
    with pytest.raises(ValueError, match=r"^RSA-2056 keys have no Sigstore key details$"):
        key_details(big.public_key())


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: ec.generate_private_key(ec.SECP256K1()), "ECDSA secp256k1"),
        (lambda: ec.generate_private_key(ec.SECP224R1()), "ECDSA secp224r1"),
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), "RSA-1024"),
        (lambda: ed448.Ed448PrivateKey.generate(), "Ed448PublicKey"),
        (lambda: dsa.generate_private_key(key_size=2048), "DSAPublicKey"),
    ],
    ids=["secp256k1", "p-224", "rsa-1024", "ed448", "dsa"],
)
def test_keys_sigstore_has_no_scheme_for_are_refused(make, name: str) -> None:
    key = make().public_key()
    with pytest.raises(ValueError) as info:
        key_details(key)
    assert str(info.value) == f"{name} keys have no Sigstore key details"
    with pytest.raises(ValueError) as info:
        signature_verifier(key, hash_name="sha256")
    assert str(info.value) == f"{name} keys have no Sigstore signature scheme"


def test_a_scheme_refuses_a_key_it_does_not_name() -> None:
    with pytest.raises(
        ValueError,
        match=r"^the ECDSA secp384r1 key does not match "
        "PKIX_ECDSA_P256_SHA_256$",
    ):
        SCHEMES["PKIX_ECDSA_P256_SHA_256"].verifier(_private("p384").public_key())
    with pytest.raises(ValueError, match=r"^the RSA-3072 key does not match "):
        SCHEMES["PKIX_RSA_PKCS1V15_2048_SHA256"].verifier(_private("rsa-3072").public_key())
    with pytest.raises(ValueError, match=r"^the Ed25519 key does not match "):
        SCHEMES["PKIX_ECDSA_P256_SHA_256"].verifier(_private("ed25519").public_key())


def test_misuse_is_refused_before_anything_is_verified() -> None:
    ed_key = _private("ed25519").public_key()
    with pytest.raises(ValueError, match=r"^an Ed25519 key signs whole messages"):
        signature_verifier(ed_key, prehashed=True)
    with pytest.raises(ValueError, match=r"^PSS is an RSA padding, not one for Ed25519 keys$"):
        signature_verifier(ed_key, pss=True)
    with pytest.raises(ValueError, match=r"^hash 'md5' is not sha256, sha384 or sha512$"):
        signature_verifier(_private("p256").public_key(), hash_name="md5")
    with pytest.raises(ValueError, match=r"^hash 'sha1' is not sha256, sha384 or sha512$"):
        signature_verifier(_private("rsa-2048").public_key(), hash_name="sha1", prehashed=True)
    with pytest.raises(ValueError, match=r"^hash 'sha1' is not"):
        ecdsa("sha1")

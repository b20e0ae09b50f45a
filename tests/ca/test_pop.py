"""Proof of possession and key checks, directly: each allowed key, each refusal by its defect."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from keyless.ca import RequestError
from keyless.ca.pop import check_csr, check_proof_of_possession, load_csr, load_public_key

CHALLENGE = "alice@example.com"
INSECURE = "The public key supplied in the request is insecure"
UNVERIFIED = "The signature supplied in the request could not be verified"
UNPARSEABLE = "The public key supplied in the request could not be parsed"


def _pem(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


ALLOWED = {
    "p-256": (lambda: ec.generate_private_key(ec.SECP256R1()), ec.ECDSA(hashes.SHA256())),
    "p-384": (lambda: ec.generate_private_key(ec.SECP384R1()), ec.ECDSA(hashes.SHA384())),
    "p-521": (lambda: ec.generate_private_key(ec.SECP521R1()), ec.ECDSA(hashes.SHA512())),
    "rsa-2048": (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), None),
    "rsa-3072": (lambda: rsa.generate_private_key(public_exponent=65537, key_size=3072), None),
    "ed25519": (ed25519.Ed25519PrivateKey.generate, None),
}


def _sign(key, algorithm, message: bytes) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    return key.sign(message, algorithm)


@pytest.mark.parametrize("case", list(ALLOWED))
def test_allowed_key_and_proof_pass(case):
    make, algorithm = ALLOWED[case]
    key = make()
    public = load_public_key(_pem(key))
    assert public == key.public_key()
    check_proof_of_possession(
        public_key=public, signature=_sign(key, algorithm, CHALLENGE.encode()), challenge=CHALLENGE
    )


@pytest.mark.parametrize("case", list(ALLOWED))
def test_allowed_key_in_csr_passes(case):
    make, _ = ALLOWED[case]
    key = make()
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    digest = None if isinstance(key, ed25519.Ed25519PrivateKey) else _csr_hash(key)
    csr = builder.sign(key, digest).public_bytes(serialization.Encoding.PEM)
    assert check_csr(load_csr(csr)) == key.public_key()


def _csr_hash(key):
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[
            key.curve.key_size
        ]
    return hashes.SHA256()


def test_raw_ecdsa_signature_is_accepted():
    key = ec.generate_private_key(ec.SECP256R1())
    r, s = decode_dss_signature(key.sign(CHALLENGE.encode(), ec.ECDSA(hashes.SHA256())))
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    check_proof_of_possession(public_key=key.public_key(), signature=raw, challenge=CHALLENGE)


def test_der_and_pkcs1_key_forms_are_accepted():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pkcs1 = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    assert load_public_key(der) == key.public_key()
    assert load_public_key(pkcs1) == key.public_key()


REFUSED_KEYS = {
    "rsa-1024": lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
    "rsa-2048-e3": lambda: rsa.generate_private_key(public_exponent=3, key_size=2048),
    "rsa-2056": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2056),
    "p-224": lambda: ec.generate_private_key(ec.SECP224R1()),
    "secp256k1": lambda: ec.generate_private_key(ec.SECP256K1()),
    "dsa-2048": lambda: dsa.generate_private_key(key_size=2048),
    "x25519": x25519.X25519PrivateKey.generate,
}


@pytest.mark.parametrize("case", list(REFUSED_KEYS))
def test_key_outside_allow_list_is_insecure(case):
    key = REFUSED_KEYS[case]()
    with pytest.raises(RequestError) as info:
        load_public_key(_pem(key))
    assert info.value.message == INSECURE
    assert info.value.reason == "key-insecure"


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage", b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n"],
    ids=["empty", "garbage", "bad-pem"],
)
def test_unparseable_key(content):
    with pytest.raises(RequestError) as info:
        load_public_key(content)
    assert info.value.message == UNPARSEABLE


def test_oversized_key_is_unparseable():
    with pytest.raises(RequestError) as info:
        load_public_key(b"A" * 100_000)
    assert info.value.message == UNPARSEABLE


@pytest.mark.parametrize(
    ("case", "signature"),
    [("empty-proof", b""), ("oversized-proof", b"\x30" * 5000), ("junk-proof", b"\x01" * 64)],
)
def test_bad_proof_is_refused(case, signature):
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(RequestError) as info:
        check_proof_of_possession(
            public_key=key.public_key(), signature=signature, challenge=CHALLENGE
        )
    assert info.value.message == UNVERIFIED


def test_rsa_pss_proof_is_refused():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    signature = key.sign(CHALLENGE.encode(), pss, hashes.SHA256())
    with pytest.raises(RequestError) as info:
        check_proof_of_possession(
            public_key=key.public_key(), signature=signature, challenge=CHALLENGE
        )
    assert info.value.message == UNVERIFIED


def test_csr_signed_with_rsa_pss_is_unrecognized():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    csr = builder.sign(key, hashes.SHA256(), rsa_padding=pss)
    with pytest.raises(RequestError) as info:
        check_csr(load_csr(csr.public_bytes(serialization.Encoding.PEM)))
    assert info.value.message == "unrecognized signature algorithm: SHA256-RSAPSS"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"invalid",
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    ],
    ids=["empty-csr", "not-pem", "wrong-pem-label", "not-a-csr"],
)
def test_unparseable_csr(data):
    with pytest.raises(RequestError) as info:
        load_csr(data)
    assert info.value.message == "The certificate signing request could not be parsed"


def test_csr_as_raw_der_is_refused():
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    der = csr.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    with pytest.raises(RequestError) as info:
        load_csr(der)
    assert info.value.message == "The certificate signing request could not be parsed"


def test_new_certificate_request_label_is_accepted():
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    pem = csr.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    relabelled = pem.replace(b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST")
    assert check_csr(load_csr(relabelled)) == key.public_key()

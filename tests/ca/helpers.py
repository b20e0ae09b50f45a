"""Client-side helpers for the CA tests: keys, CSRs, requests, and the profile checks."""

from __future__ import annotations

import base64
from datetime import timedelta

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

TOKEN_ERROR = "There was an error processing the identity token"
FULCIO = "1.3.6.1.4.1.57264.1."


def p256():
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def csr_pem(key, *, subject: str = "") -> bytes:
    """A CSR shaped like sigstore-python's: empty subject, BasicConstraints CA:FALSE."""
    name = x509.Name.from_rfc4514_string(subject) if subject else x509.Name([])
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def post_csr(url: str, token: str | None, csr: bytes) -> requests.Response:
    """The v2 request as sigstore-python sends it: CSR in the body, token in the header."""
    headers = {"Accept": "application/pem-certificate-chain"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(
        f"{url}/api/v2/signingCert",
        json={"certificateSigningRequest": b64(csr)},
        headers=headers,
        timeout=30,
    )


def post_public_key(url: str, token: str, key, proof: bytes) -> requests.Response:
    """The v2 request as sigstore-js sends it: token and public key with proof in the body."""
    body = {
        "credentials": {"oidcIdentityToken": token},
        "publicKeyRequest": {
            "publicKey": {"algorithm": "ECDSA", "content": public_pem(key)},
            "proofOfPossession": b64(proof),
        },
    }
    return requests.post(f"{url}/api/v2/signingCert", json=body, timeout=30)


def chain_of(response: requests.Response) -> list[x509.Certificate]:
    assert response.status_code == 200, response.text
    pems = response.json()["signedCertificateEmbeddedSct"]["chain"]["certificates"]
    assert all(not pem.endswith("\n") for pem in pems)
    return [x509.load_pem_x509_certificate(pem.encode()) for pem in pems]


def der_utf8(value: str) -> bytes:
    raw = value.encode()
    if len(raw) < 0x80:
        return b"\x0c" + bytes([len(raw)]) + raw
    size = len(raw).to_bytes((len(raw).bit_length() + 7) // 8, "big")
    return b"\x0c" + bytes([0x80 | len(size)]) + size + raw


def check_profile(
    leaf: x509.Certificate,
    *,
    issuer: x509.Certificate,
    public_key,
    san: x509.GeneralName,
    fulcio: dict[int, bytes],
    validity: timedelta = timedelta(minutes=15),
) -> None:
    """Assert the leaf is exactly the profile: every field, every extension, in order."""
    assert leaf.version == x509.Version.v3
    assert leaf.subject == x509.Name([])
    assert leaf.issuer == issuer.subject
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == validity
    assert leaf.not_valid_before_utc.microsecond == 0
    assert 0 < leaf.serial_number < 2**159
    assert leaf.public_key() == public_key.public_key()
    leaf.verify_directly_issued_by(issuer)
    extensions = list(leaf.extensions)
    oids = [e.oid.dotted_string for e in extensions]
    expected_oids = [
        ExtensionOID.KEY_USAGE.dotted_string,
        ExtensionOID.EXTENDED_KEY_USAGE.dotted_string,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER.dotted_string,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER.dotted_string,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string,
        *(f"{FULCIO}{arc}" for arc in sorted(fulcio)),
        ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS.dotted_string,
    ]
    assert oids == expected_oids
    by_oid = {e.oid.dotted_string: e for e in extensions}
    ku = by_oid[ExtensionOID.KEY_USAGE.dotted_string]
    assert ku.critical
    assert ku.value.public_bytes() == bytes.fromhex("03020780")
    eku = by_oid[ExtensionOID.EXTENDED_KEY_USAGE.dotted_string]
    assert not eku.critical and list(eku.value) == [ExtendedKeyUsageOID.CODE_SIGNING]
    ski = by_oid[ExtensionOID.SUBJECT_KEY_IDENTIFIER.dotted_string].value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(public_key.public_key())
    aki = by_oid[ExtensionOID.AUTHORITY_KEY_IDENTIFIER.dotted_string].value
    issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == issuer_ski.digest
    assert aki.authority_cert_issuer is None and aki.authority_cert_serial_number is None
    san_ext = by_oid[ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string]
    assert san_ext.critical and list(san_ext.value) == [san]
    for arc, value in fulcio.items():
        extension = by_oid[f"{FULCIO}{arc}"]
        assert not extension.critical
        assert extension.value.value == value, arc
    assert not any(e.oid == ExtensionOID.BASIC_CONSTRAINTS for e in extensions)

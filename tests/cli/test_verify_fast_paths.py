"""The shortcuts bench/verify.py's profile led to give exactly the answers of the general code
they bypass: the SET payload written directly, the logged certificate compared as bytes, and
the SCT issuer key hash cached per CA certificate."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from keyless.client.verify import VerificationError
from keyless.client.verify.entry import Signed, check_entry_body
from keyless.client.verify.sct import _key_hash
from keyless.client.verify.transparency import set_payload
from tests.cli.conftest import START
from tests.cli.forge import Instance

_INTEGERS = st.one_of(
    st.integers(min_value=0, max_value=2**63 - 1),
    st.sampled_from([0, 2**53 - 1, 2**53, 2**53 + 1, 2**63 - 1]),
)


@settings(max_examples=200, deadline=None, database=None)
@given(
    body=st.binary(max_size=300),
    integrated_time=_INTEGERS,
    log_id=st.binary(min_size=0, max_size=40),
    log_index=_INTEGERS,
)
def test_set_payload_is_rfc8785(
    body: bytes, integrated_time: int, log_id: bytes, log_index: int
) -> None:
    doc = {
        "body": base64.b64encode(body).decode(),
        "integratedTime": integrated_time,
        "logID": log_id.hex(),
        "logIndex": log_index,
    }
    fields = {
        "body": body,
        "integrated_time": integrated_time,
        "log_id": log_id,
        "log_index": log_index,
    }
    if max(integrated_time, log_index) >= 2**53:
        # Beyond exact doubles RFC 8785 has no answer, and neither has set_payload.
        with pytest.raises(rfc8785.IntegerDomainError):
            rfc8785.dumps(doc)
        with pytest.raises(rfc8785.IntegerDomainError):
            set_payload(**fields)
        return
    assert set_payload(**fields) == rfc8785.dumps(doc)


def _hashedrekord(pem: bytes, signed: Signed) -> bytes:
    return json.dumps(
        {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": signed.digest.hex()}},
                "signature": {
                    "content": base64.b64encode(signed.signature).decode(),
                    "publicKey": {"content": base64.b64encode(pem).decode()},
                },
            },
        }
    ).encode()


@pytest.fixture(scope="module")
def leaves(instance: Instance) -> tuple[bytes, bytes]:
    """The DER of two leaves from the forged CA."""
    ders = []
    for _ in range(2):
        leaf = instance.issue_leaf(
            ec.generate_private_key(ec.SECP256R1()),
            identity="a@b.test",
            issuer="https://i.test",
            not_before=START,
        )
        ders.append(leaf.public_bytes(serialization.Encoding.DER))
    return ders[0], ders[1]


def _signed(leaf_der: bytes) -> Signed:
    return Signed(
        key_der=b"k",
        leaf_der=leaf_der,
        key_details="PKIX_ECDSA_P256_SHA_256",
        signature=b"s" * 64,
        digest=b"d" * 32,
        payload=None,
    )


def _pem(der: bytes, newline: bytes = b"\n") -> bytes:
    b64 = base64.encodebytes(der).replace(b"\n", newline)
    return b"-----BEGIN CERTIFICATE-----" + newline + b64 + b"-----END CERTIFICATE-----" + newline


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_logged_certificate_that_is_the_leaf_matches(
    leaves: tuple[bytes, bytes], newline: bytes
) -> None:
    # LF goes the fast path, CRLF the PEM reader: both agree.
    signed = _signed(leaves[0])
    check_entry_body(
        _hashedrekord(_pem(leaves[0], newline), signed),
        kind="hashedrekord",
        version="0.0.1",
        signed=signed,
    )


@pytest.mark.parametrize(
    ("pem", "detail"),
    [
        ("other", "log entry certificate is not the bundle's certificate"),
        ("public-key", "log entry names a public key, not the bundle's certificate"),
        (
            "bad-base64",
            "log body field 'spec.signature.publicKey.content' is not a PEM certificate or "
            "public key",
        ),
        ("two-blocks", "log entry certificate is not the bundle's certificate"),
    ],
)
def test_logged_certificate_that_is_not_the_leaf_is_refused(
    leaves: tuple[bytes, bytes], pem: str, detail: str
) -> None:
    leaf, other = leaves
    key_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    texts = {
        "other": _pem(other),
        "public-key": key_pem,
        "bad-base64": _pem(leaf).replace(b"M", b"*", 1),
        # The leaf second: a reader that took any block would accept it; the first one counts.
        "two-blocks": _pem(other) + _pem(leaf),
    }
    signed = _signed(leaf)
    with pytest.raises(VerificationError) as info:
        check_entry_body(
            _hashedrekord(texts[pem], signed), kind="hashedrekord", version="0.0.1", signed=signed
        )
    assert info.value.detail == detail


def test_sct_issuer_key_hash_is_per_certificate(instance: Instance) -> None:
    doc = instance.trusted_root()
    chain = doc["certificateAuthorities"][0]["certChain"]["certificates"]
    from cryptography import x509

    certs = [x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"])) for c in chain]
    for cert in certs:
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert _key_hash(cert) == hashlib.sha256(spki).digest()
        assert _key_hash(cert) == hashlib.sha256(spki).digest()  # and again, from the cache


def test_leaf_without_embedded_sct_is_refused(instance: Instance) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtensionOID

    from keyless.client.trust import TrustedRoot
    from keyless.client.verify.sct import check_sct
    from tests.cli.forge import dumps

    key = ec.generate_private_key(ec.SECP256R1())
    leaf = instance.issue_leaf(key, identity="a@b.test", issuer="https://i.test", not_before=START)
    builder = (
        x509.CertificateBuilder()
        .subject_name(leaf.subject)
        .issuer_name(leaf.issuer)
        .public_key(key.public_key())
        .serial_number(leaf.serial_number)
        .not_valid_before(leaf.not_valid_before_utc)
        .not_valid_after(leaf.not_valid_after_utc)
    )
    for extension in leaf.extensions:
        if extension.oid != ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS:
            builder = builder.add_extension(extension.value, extension.critical)
    bare = builder.sign(instance.inter_key, hashes.SHA256())
    ctlogs = TrustedRoot.from_json(dumps(instance.trusted_root())).ctlogs
    check_sct(leaf, instance.inter_cert, ctlogs=ctlogs)  # the leaf as issued passes
    with pytest.raises(VerificationError) as info:
        check_sct(bare, instance.inter_cert, ctlogs=ctlogs)
    assert (info.value.check, info.value.detail) == (
        "sct",
        "the signing certificate has no embedded SCT",
    )


def test_extension_table_gives_what_cryptography_finds(instance: Instance) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID

    from keyless.client.verify.certs import extension_value, extensions_by_oid

    key = ec.generate_private_key(ec.SECP256R1())
    leaf = instance.issue_leaf(key, identity="a@b.test", issuer="https://i.test", not_before=START)
    for cert in (leaf, instance.inter_cert):
        table = extensions_by_oid(cert)
        assert len(table) == len(cert.extensions)
        for extension in cert.extensions:
            assert extension_value(cert, extension.oid) == extension.value
            assert table[extension.oid] == cert.extensions.get_extension_for_oid(extension.oid)
    # Absent: None, where cryptography raises ExtensionNotFound.
    with pytest.raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS)
    assert extension_value(leaf, ExtensionOID.BASIC_CONSTRAINTS) is None


def test_extension_table_is_per_certificate_object(instance: Instance) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID

    from keyless.client.verify.certs import MAX_INDEXED_CERTIFICATES, extension_value

    san = ExtensionOID.SUBJECT_ALTERNATIVE_NAME
    leaves = []
    for n in range(MAX_INDEXED_CERTIFICATES + 3):
        key = ec.generate_private_key(ec.SECP256R1())
        leaves.append(
            instance.issue_leaf(
                key, identity=f"{n}@b.test", issuer="https://i.test", not_before=START
            )
        )
    # Each certificate gets its own values, looked up twice (the second from the table), also
    # after older ones were evicted and their ids may have been reused by new objects.
    for _ in range(2):
        for n, leaf in enumerate(leaves):
            names = extension_value(leaf, san).get_values_for_type(x509.RFC822Name)
            assert names == [f"{n}@b.test"]


def test_malformed_extensions_raise_every_time() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtensionOID, NameOID

    from keyless.client.verify.certs import extension_value

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    good = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(START)
        .not_valid_after(START.replace(year=START.year + 1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    der = good.public_bytes(serialization.Encoding.DER)
    # BasicConstraints' value 30 03 01 01 ff (cA TRUE) becomes 30 03 01 01 07: not a DER
    # BOOLEAN, so the extension cannot be parsed.
    encoded = bytes.fromhex("0101ff040530030101ff")
    assert der.count(encoded) == 1
    broken = x509.load_der_x509_certificate(der.replace(encoded, encoded[:-1] + b"\x07"))
    with pytest.raises(ValueError) as first:
        broken.extensions  # noqa: B018 - the parse is what raises
    for _ in range(2):
        with pytest.raises(ValueError) as again:
            extension_value(broken, ExtensionOID.BASIC_CONSTRAINTS)
        assert str(again.value) == str(first.value)


def test_identities_and_issuer_are_remembered_per_certificate(instance: Instance) -> None:
    from keyless.client.verify.policy import certificate_identities, certificate_issuer

    leaves = {
        n: instance.issue_leaf(
            ec.generate_private_key(ec.SECP256R1()),
            identity=f"{n}@b.test",
            issuer=f"https://{n}.test",
            not_before=START,
        )
        for n in range(3)
    }
    for _ in range(2):
        for n, leaf in leaves.items():
            names = certificate_identities(leaf)
            assert names == [f"{n}@b.test"]
            names.append("mallory@evil.test")  # the caller's copy, not the remembered one
            assert certificate_issuer(leaf) == f"https://{n}.test"


def test_a_failed_lookup_is_not_remembered(instance: Instance) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    from keyless.client.verify.certs import remembered
    from keyless.client.verify.policy import certificate_issuer

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    bare = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(START)
        .not_valid_after(START.replace(year=START.year + 1))
        .sign(key, hashes.SHA256())
    )
    for _ in range(2):
        with pytest.raises(VerificationError) as info:
            certificate_issuer(bare)
        assert info.value.detail == "the certificate has no OIDC issuer extension"
    calls: list[int] = []

    def flaky(cert: x509.Certificate) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first time")
        return "second time"

    with pytest.raises(ValueError, match="first time"):
        remembered(bare, "flaky", flaky)
    assert remembered(bare, "flaky", flaky) == "second time"
    assert remembered(bare, "flaky", flaky) == "second time"
    assert len(calls) == 2

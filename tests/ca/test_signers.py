"""CA key backends and the startup chain check: good chains load, each bad chain is named."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keyless.ca import CAConfigError, load_file_signer, load_generated_signer
from keyless.ca.signers import generate_ca

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PASSWORD = b"correct horse battery staple"


def test_generated_ca_is_created_once_then_reused(tmp_path):
    first = load_generated_signer(tmp_path / "ca", now=NOW)
    second = load_generated_signer(tmp_path / "ca", now=NOW)
    assert first.chain == second.chain
    key_file = tmp_path / "ca" / "ca-key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    inter, root = first.chain
    assert inter.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    eku = inter.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CODE_SIGNING]
    assert root.subject == root.issuer
    assert b"ENCRYPTED" not in key_file.read_bytes()
    assert len(list((tmp_path / "ca").glob("*.pem"))) == 2  # The root key is not kept.


def test_corrupt_generated_ca_is_refused(tmp_path):
    load_generated_signer(tmp_path, now=NOW)
    (tmp_path / "ca-chain.pem").write_text("not a chain")
    with pytest.raises(CAConfigError) as info:
        load_generated_signer(tmp_path, now=NOW)
    assert "the generated CA files are corrupt" in info.value.message


def _write_file_ca(tmp_path, key, chain, *, password: bytes | None = PASSWORD):
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    key_path = tmp_path / "key.pem"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    chain_path = tmp_path / "chain.pem"
    chain_path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
    return chain_path, key_path


def test_file_ca_with_encrypted_key_loads(tmp_path):
    key, chain = generate_ca(now=NOW, name="acme")
    chain_path, key_path = _write_file_ca(tmp_path, key, chain)
    signer = load_file_signer(chain_path=chain_path, key_path=key_path, password=PASSWORD, now=NOW)
    assert signer.chain == tuple(chain)


def test_file_ca_wrong_password_is_refused(tmp_path):
    key, chain = generate_ca(now=NOW)
    chain_path, key_path = _write_file_ca(tmp_path, key, chain)
    with pytest.raises(CAConfigError) as info:
        load_file_signer(chain_path=chain_path, key_path=key_path, password=b"wrong", now=NOW)
    assert info.value.problems == ["cannot decrypt the CA key: wrong password or corrupt file"]


def test_file_ca_unencrypted_key_is_refused(tmp_path):
    key, chain = generate_ca(now=NOW)
    chain_path, key_path = _write_file_ca(tmp_path, key, chain, password=None)
    with pytest.raises(CAConfigError) as info:
        load_file_signer(chain_path=chain_path, key_path=key_path, password=PASSWORD, now=NOW)
    assert "encrypted PKCS#8" in info.value.problems[0]


def test_file_ca_missing_file_is_refused(tmp_path):
    with pytest.raises(CAConfigError) as info:
        load_file_signer(
            chain_path=tmp_path / "absent.pem", key_path=tmp_path / "k", password=b"x", now=NOW
        )
    assert info.value.problems == ["cannot read the file: No such file or directory"]


def _ca(
    subject,
    issuer_name,
    public_key,
    signing_key,
    *,
    eku=True,
    ca=True,
    path_length=0,
    start=NOW - timedelta(days=1),
    days=365,
    issuer_key=None,
):
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(True, path_length), critical=True)
    if eku:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
        )
    return builder.sign(signing_key, hashes.SHA384())


def _chain(**intermediate_options):
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = _ca("root", "root", root_key.public_key(), root_key, eku=False, path_length=1)
    key = ec.generate_private_key(ec.SECP384R1())
    inter = _ca("inter", "root", key.public_key(), root_key, **intermediate_options)
    return key, [inter, root], root_key


def test_handmade_good_chain_loads(tmp_path):
    key, chain, _ = _chain()
    chain_path, key_path = _write_file_ca(tmp_path, key, chain)
    load_file_signer(chain_path=chain_path, key_path=key_path, password=PASSWORD, now=NOW)


BAD_CHAINS = {
    "eku-chaining-violation": (
        {"eku": False},
        "the issuing CA certificate must carry EKU codeSigning (EKU chaining)",
    ),
    "not-a-ca": ({"ca": False}, "certificate 0 (CN=inter) has no BasicConstraints"),
    "expired": (
        {"start": NOW - timedelta(days=400), "days": 30},
        "certificate 0 (CN=inter) is not valid now",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CHAINS))
def test_bad_chain_is_refused_with_clear_error(tmp_path, case):
    options, expected = BAD_CHAINS[case]
    key, chain, _ = _chain(**options)
    chain_path, key_path = _write_file_ca(tmp_path, key, chain)
    with pytest.raises(CAConfigError) as info:
        load_file_signer(chain_path=chain_path, key_path=key_path, password=PASSWORD, now=NOW)
    assert any(problem.startswith(expected) for problem in info.value.problems), info.value.problems
    assert info.value.message.startswith("the CA chain is invalid:")


def test_key_not_matching_chain_is_refused(tmp_path):
    _, chain, _ = _chain()
    other = ec.generate_private_key(ec.SECP384R1())
    chain_path, key_path = _write_file_ca(tmp_path, other, chain)
    with pytest.raises(CAConfigError) as info:
        load_file_signer(chain_path=chain_path, key_path=key_path, password=PASSWORD, now=NOW)
    assert "the CA key does not match the first certificate of the chain" in info.value.problems


def test_chain_out_of_order_is_refused(tmp_path):
    key, chain, _ = _chain()
    chain_path, key_path = _write_file_ca(tmp_path, key, [chain[1], chain[0]])
    with pytest.raises(CAConfigError) as info:
        load_file_signer(chain_path=chain_path, key_path=key_path, password=PASSWORD, now=NOW)
    assert "the CA key does not match the first certificate of the chain" in info.value.problems
    assert any("is not issued by 1" in p for p in info.value.problems)


def test_p224_ca_key_is_refused(tmp_path):
    key = ec.generate_private_key(ec.SECP224R1())
    cert = _ca("weak", "weak", key.public_key(), key, eku=False, path_length=1)
    chain_path, key_path = _write_file_ca(tmp_path, key, [cert])
    with pytest.raises(CAConfigError) as info:
        load_file_signer(chain_path=chain_path, key_path=key_path, password=PASSWORD, now=NOW)
    assert info.value.problems == ["CA curve secp224r1 is not allowed (P-256, P-384, P-521)"]

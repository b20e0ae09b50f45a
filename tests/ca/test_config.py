"""The `ca:` section: defaults, a valid file backend, and one clear line per problem."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization

from keyless.ca import CAConfig, CAConfigError
from keyless.ca.signers import generate_ca

NOW = datetime.now(UTC)


def test_defaults(tmp_path):
    config = CAConfig.from_mapping({}, base_dir=tmp_path)
    assert config.backend == "generated"
    assert config.cert_validity == timedelta(minutes=15)
    assert config.ct_log == "in-process" and config.detached is False
    signer = config.load_signer(state_dir=tmp_path, now=NOW)
    assert (tmp_path / "ca" / "ca-chain.pem").exists()
    assert len(signer.chain) == 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("900s", timedelta(minutes=15)),
        ("10m", timedelta(minutes=10)),
        ("1h", timedelta(hours=1)),
        (120, timedelta(minutes=2)),
    ],
)
def test_cert_validity_forms(tmp_path, value, expected):
    assert CAConfig.from_mapping({"cert-validity": value}, base_dir=tmp_path).cert_validity == (
        expected
    )


def test_every_problem_is_listed(tmp_path):
    section = {
        "backend": "hsm",
        "cert-validity": "2d",
        "ct-log": "ftp://ct.example",
        "detached": "yes",
        "max-request-bytes": 10,
        "colour": "blue",
    }
    with pytest.raises(CAConfigError) as info:
        CAConfig.from_mapping(section, base_dir=tmp_path, source="server.yaml ca")
    assert info.value.problems == [
        "unknown key 'colour'",
        "backend must be one of generated, file, pkcs11, got 'hsm'",
        "cert-validity must look like 900s, 15m or 1h, got '2d'",
        "ct-log must be 'in-process' or an http(s) URL, got 'ftp://ct.example'",
        "detached must be true or false, got 'yes'",
        "max-request-bytes must be between 1024 and 4194304, got 10",
    ]
    assert info.value.message.startswith("server.yaml ca is invalid:\n  - unknown key 'colour'")


def test_file_backend_needs_its_paths_and_one_password(tmp_path):
    with pytest.raises(CAConfigError) as info:
        CAConfig.from_mapping({"backend": "file"}, base_dir=tmp_path)
    assert info.value.problems == [
        "backend file needs chain (the PEM CA chain)",
        "backend file needs key (the encrypted PKCS#8 key)",
        "backend file needs exactly one of key-password-env, key-password-file",
    ]


def test_validity_out_of_range(tmp_path):
    with pytest.raises(CAConfigError) as info:
        CAConfig.from_mapping({"cert-validity": "30s"}, base_dir=tmp_path)
    assert info.value.problems == ["cert-validity must be between 1m and 24h, got '30s'"]


def _file_ca(tmp_path, password: bytes):
    key, chain = generate_ca(now=NOW)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
    )
    (tmp_path / "chain.pem").write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    )
    return chain


def test_file_backend_with_password_file(tmp_path):
    chain = _file_ca(tmp_path, b"s3cret")
    (tmp_path / "password").write_bytes(b"s3cret\n")
    section = {
        "backend": "file",
        "chain": "chain.pem",
        "key": "key.pem",
        "key-password-file": "password",
    }
    signer = CAConfig.from_mapping(section, base_dir=tmp_path).load_signer(
        state_dir=tmp_path, now=NOW
    )
    assert signer.chain == tuple(chain)


def test_file_backend_with_password_env(tmp_path, monkeypatch):
    chain = _file_ca(tmp_path, b"from-env")
    section = {
        "backend": "file",
        "chain": "chain.pem",
        "key": "key.pem",
        "key-password-env": "TEST_CA_PASSWORD",
    }
    config = CAConfig.from_mapping(section, base_dir=tmp_path)
    with pytest.raises(CAConfigError) as info:
        config.load_signer(state_dir=tmp_path, now=NOW)
    assert info.value.problems == ["environment variable TEST_CA_PASSWORD is not set"]
    monkeypatch.setenv("TEST_CA_PASSWORD", "from-env")
    assert config.load_signer(state_dir=tmp_path, now=NOW).chain == tuple(chain)


def test_ct_log_public_key(tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    (tmp_path / "ct.pub").write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    config = CAConfig.from_mapping({"ct-log-public-key": "ct.pub"}, base_dir=tmp_path)
    assert config.load_ct_log_key() == key
    assert CAConfig.from_mapping({}, base_dir=tmp_path).load_ct_log_key() is None
    (tmp_path / "bad.pub").write_text("not a key")
    bad = CAConfig.from_mapping({"ct-log-public-key": "bad.pub"}, base_dir=tmp_path)
    with pytest.raises(CAConfigError) as info:
        bad.load_ct_log_key()
    assert info.value.problems[0].startswith("not a readable PEM public key")

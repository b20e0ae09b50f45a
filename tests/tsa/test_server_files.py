"""A production TSA from the operator's files (`tsa:` in server.yaml), made by `keyless ca
tsa-init`: every rule checked at start-up, one line per problem, and the server signs with it."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID

from keyless.cli.main import main
from keyless.server.config import ServerConfigError, load_server_config
from keyless.tsa import dev_tsa_chain, pem_chain
from tests.conftest import dev_server

NOW = datetime.now(UTC)


def _write_key(path: Path, key, mode: int = 0o600) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(mode)


def _root(root_key, *, start=NOW - timedelta(hours=1), end=NOW + timedelta(days=30)):
    name = x509.Name.from_rfc4514_string("CN=test TSA root")
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(root_key, hashes.SHA256())
    )


def _leaf(
    key,
    root_key,
    root,
    *,
    eku=(ExtendedKeyUsageOID.TIME_STAMPING,),
    eku_critical=True,
    ca=False,
    start=NOW - timedelta(hours=1),
    end=NOW + timedelta(days=30),
):
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=test TSA"))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=eku_critical)
    return builder.sign(root_key, hashes.SHA256())


def _config(tmp_path: Path, key, chain, *, key_mode: int = 0o600) -> Path:
    _write_key(tmp_path / "tsa-key.pem", key, key_mode)
    (tmp_path / "tsa-chain.pem").write_bytes(pem_chain(chain))
    config = tmp_path / "server.yaml"
    config.write_text(
        "dev-issuer: {enabled: true}\ntsa: {key: tsa-key.pem, chain: tsa-chain.pem}\n"
    )
    return config


def _problems(config: Path) -> list[str]:
    with pytest.raises(ServerConfigError) as info:
        load_server_config(config)
    return info.value.problems


def test_tsa_init_makes_files_the_server_signs_with(tmp_path: Path, capsys) -> None:
    assert main(["ca", "tsa-init", "--out", str(tmp_path / "tsa"), "--curve", "secp384r1"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# server.yaml\ntsa:\n")
    section = yaml.safe_load(printed)["tsa"]
    assert section == {
        "key": str((tmp_path / "tsa" / "tsa-key.pem").resolve()),
        "chain": str((tmp_path / "tsa" / "tsa-chain.pem").resolve()),
    }
    assert os.stat(section["key"]).st_mode & 0o777 == 0o600
    config = tmp_path / "server.yaml"
    config.write_text(yaml.safe_dump({"dev-issuer": {"enabled": True}, "tsa": section}))
    tsa = load_server_config(config).tsa
    assert tsa is not None and tsa.key.curve.name == "secp384r1"
    artifact = tmp_path / "artifact.txt"
    artifact.write_text("timestamped by the operator's TSA\n")
    with dev_server(tmp_path / "state", tsa=tsa) as server:
        served = requests.get(f"{server.url}/api/v1/timestamp/certchain", timeout=5)
        assert served.content == Path(section["chain"]).read_bytes()
        root = requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=5).json()
        [listed] = root["timestampAuthorities"]
        assert [base64.b64decode(c["rawBytes"]) for c in listed["certChain"]["certificates"]] == [
            cert.public_bytes(serialization.Encoding.DER) for cert in tsa.chain
        ]
        assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200
        token = server.email_token("alice@example.com")
        sign = ["sign", "--server", server.url, "--identity-token", token, str(artifact)]
        assert main(sign) == 0
        bundle = json.loads(Path(f"{artifact}.sigstore.json").read_text())
        assert bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
        verify = ["verify", "--server", server.url, "--bundle", f"{artifact}.sigstore.json"]
        identity = ["--certificate-identity", "alice@example.com"]
        issuer = ["--certificate-oidc-issuer", f"{server.url}/oidc"]
        assert main([*verify, *identity, *issuer, str(artifact)]) == 0
    # No key or chain was generated in the state directory beside the operator's.
    assert not (tmp_path / "state" / "tsa-key.pem").exists()


def test_tsa_ceremony_refusals(tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "tsa")
    assert main(["ca", "tsa-rotate", "--out", out, "--public-url", "https://x.example"]) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        f"error: {out}/tsa-chain.pem does not exist: run `keyless ca tsa-init` first"
    )
    assert main(["ca", "tsa-init", "--out", out, "--curve", "secp521r1"]) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        "error: the TSA curve must be one of secp256r1, secp384r1, not 'secp521r1'"
    )
    assert main(["ca", "tsa-init", "--out", out]) == 0
    chain = (tmp_path / "tsa" / "tsa-chain.pem").read_bytes()
    assert main(["ca", "tsa-init", "--out", out]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: {out}/tsa-key.pem already exists: a TSA was made here (rotate it instead)"
    )
    assert (tmp_path / "tsa" / "tsa-chain.pem").read_bytes() == chain


def test_tsa_rotate_retires_the_old_chain(tmp_path: Path, capsys) -> None:
    out = tmp_path / "tsa"
    assert main(["ca", "tsa-init", "--out", str(out)]) == 0
    old_chain = (out / "tsa-chain.pem").read_bytes()
    capsys.readouterr()
    rotate = ["ca", "tsa-rotate", "--out", str(out), "--public-url", "https://x.example/"]
    assert main(rotate) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    [retired] = document["retired-trust"]
    assert Path(retired["tsa-chain"]).read_bytes() == old_chain
    assert (out / "tsa-chain.pem").read_bytes() != old_chain
    assert retired["url"] == "https://x.example/api/v1/timestamp"
    assert retired["start"] < retired["end"]
    # What it printed loads as it is (file paths absolute).
    config = tmp_path / "server.yaml"
    config.write_text(yaml.safe_dump({"dev-issuer": {"enabled": True}, **document}))
    loaded = load_server_config(config)
    assert loaded.tsa is not None and [r.kind for r in loaded.retired] == ["tsa-chain"]


def test_a_good_chain_loads(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    loaded = load_server_config(_config(tmp_path, key, dev_tsa_chain(key, now=NOW))).tsa
    assert loaded is not None and loaded.chain[0].public_key() == key.public_key()


def _case(name: str, tmp_path: Path) -> tuple[Path, list[str]]:
    """A config whose TSA breaks rules, and the exact lines its refusal must hold."""
    key = ec.generate_private_key(ec.SECP256R1())
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _root(root_key)
    good = _leaf(key, root_key, root)
    if name == "key-not-the-leaf's":
        other = ec.generate_private_key(ec.SECP256R1())
        return _config(tmp_path, other, [good, root]), [
            "tsa: the TSA leaf certificate is not for the TSA signing key"
        ]
    if name == "eku-not-critical":
        leaf = _leaf(key, root_key, root, eku_critical=False)
        return _config(tmp_path, key, [leaf, root]), [
            "tsa: the TSA leaf's extended key usage extension is not critical"
        ]
    if name == "two-ekus":
        ekus = (ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.CODE_SIGNING)
        leaf = _leaf(key, root_key, root, eku=ekus)
        return _config(tmp_path, key, [leaf, root]), [
            "tsa: the TSA leaf's only extended key usage must be timeStamping"
        ]
    if name == "no-eku-and-a-ca":
        leaf = _leaf(key, root_key, root, eku=(), ca=True)
        return _config(tmp_path, key, [leaf, root]), [
            "tsa: the TSA leaf certificate is a CA (RFC 3161 §2.3 forbids it)",
            "tsa: the TSA leaf has no extended key usage",
        ]
    if name == "another-root":
        other_key = ec.generate_private_key(ec.SECP256R1())
        return _config(tmp_path, key, [good, _root(other_key)]), [
            "tsa: TSA chain certificate #0 is not issued by #1"
        ]
    if name == "leaf-only":
        return _config(tmp_path, key, [good]), [
            "tsa: TSA chain has 1 certificates; it needs a leaf and a root (at most 8)"
        ]
    if name == "expired":
        start, end = NOW - timedelta(days=30), NOW - timedelta(days=1)
        leaf = _leaf(key, root_key, root, start=start, end=end)
        return _config(tmp_path, key, [leaf, root]), [
            f"tsa: TSA chain certificate #0 is not valid now (valid {start:%Y-%m-%dT%H:%M:%SZ} "
            f"to {end:%Y-%m-%dT%H:%M:%SZ})"
        ]
    if name == "p521-key":
        big = ec.generate_private_key(ec.SECP521R1())
        config = _config(tmp_path, big, [_leaf(big, root_key, root), root])
        return config, [f"tsa: key: {tmp_path / 'tsa-key.pem'} is not an ECDSA P-256 or P-384 key"]
    if name == "ed25519-key":
        config = _config(tmp_path, key, [good, root])
        _write_key(tmp_path / "tsa-key.pem", ed25519.Ed25519PrivateKey.generate())
        return config, [f"tsa: key: {tmp_path / 'tsa-key.pem'} is not an ECDSA P-256 or P-384 key"]
    if name == "key-readable-by-others":
        return _config(tmp_path, key, [good, root], key_mode=0o644), [
            f"tsa: key: key file {tmp_path / 'tsa-key.pem'} is readable or writable by others "
            "(mode 644)"
        ]
    if name == "no-chain":
        config = _config(tmp_path, key, [good, root])
        config.write_text("dev-issuer: {enabled: true}\ntsa: {key: tsa-key.pem, colour: x}\n")
        return config, ["tsa: unknown key 'colour'", "tsa: chain must be a file path"]
    if name == "chain-not-pem":
        config = _config(tmp_path, key, [good, root])
        (tmp_path / "tsa-chain.pem").write_text("not a certificate\n")
        return config, ["tsa: chain: TSA chain file holds no PEM certificate"]
    if name == "key-and-token":
        config = _config(tmp_path, key, [good, root])
        config.write_text(
            "dev-issuer: {enabled: true}\n"
            "tsa: {key: tsa-key.pem, chain: tsa-chain.pem, pkcs11-module: /lib/x.so}\n"
        )
        return config, ["tsa: set key (a file) or the pkcs11-* keys (a token), not both"]
    if name == "token-incomplete":
        config = _config(tmp_path, key, [good, root])
        config.write_text(
            "dev-issuer: {enabled: true}\ntsa: {chain: tsa-chain.pem, pkcs11-module: /lib/x.so}\n"
        )
        return config, [
            "tsa: a PKCS#11 key needs exactly one of pkcs11-token-label, pkcs11-slot",
            "tsa: a PKCS#11 key needs pkcs11-key-label (the key pair's CKA_LABEL)",
            "tsa: a PKCS#11 key needs exactly one of pkcs11-pin-env, pkcs11-pin-file",
        ]
    raise AssertionError(name)


@pytest.mark.parametrize(
    "name",
    [
        "key-not-the-leaf's",
        "eku-not-critical",
        "two-ekus",
        "no-eku-and-a-ca",
        "another-root",
        "leaf-only",
        "expired",
        "p521-key",
        "ed25519-key",
        "key-readable-by-others",
        "no-chain",
        "chain-not-pem",
        "key-and-token",
        "token-incomplete",
    ],
)
def test_a_bad_tsa_is_refused_at_load(tmp_path: Path, name: str) -> None:
    config, expected = _case(name, tmp_path)
    assert _problems(config) == expected

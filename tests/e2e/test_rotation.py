"""Key rotation: a deployment keeps its old CA chain and log keys in the trusted root, with an
end date, so bundles signed before the rotation still verify and nothing later can use them."""

from __future__ import annotations

import base64
import json
import os
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keyless.cli.main import main
from keyless.server.app import create_app
from keyless.server.config import ServerConfigError, dev_config, load_server_config
from keyless.tlog.errors import LogStartError
from keyless.tsa import dev_tsa_chain, pem_chain
from tests.conftest import dev_server
from tests.e2e.sigstore_python import save_trust_config, verify_identity


def _pem_key(raw: str) -> bytes:
    key = serialization.load_der_public_key(base64.b64decode(raw))
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _export(old, directory: Path) -> dict:
    """What an operator keeps of a retired deployment: its CA chain, its log keys (v1 and v2)
    and its TSA chain. Returns the old trusted root."""
    root = requests.get(f"{old.url}/api/v1/trust/trusted_root.json", timeout=5).json()
    chain = [
        x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"]))
        for c in root["certificateAuthorities"][0]["certChain"]["certificates"]
    ]
    (directory / "old-chain.pem").write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    )
    v1, v2 = root["tlogs"]
    assert v2["publicKey"]["keyDetails"] == "PKIX_ED25519"
    (directory / "old-rekor.pub").write_bytes(_pem_key(v1["publicKey"]["rawBytes"]))
    (directory / "old-rekor-v2.pub").write_bytes(_pem_key(v2["publicKey"]["rawBytes"]))
    (directory / "old-ct.pub").write_bytes(_pem_key(root["ctlogs"][0]["publicKey"]["rawBytes"]))
    (directory / "old-tsa.pem").write_bytes(
        requests.get(f"{old.url}/api/v1/timestamp/certchain", timeout=5).content
    )
    return root


def _window(start: datetime, end: datetime) -> str:
    return f"    start: {start:%Y-%m-%dT%H:%M:%SZ}\n    end: {end:%Y-%m-%dT%H:%M:%SZ}\n"


def _retired(old, directory: Path, *, start: datetime, end: datetime, tsa_end=None):
    config = directory / "server.yaml"
    window = _window(start, end)
    config.write_text(
        "dev-issuer: {enabled: true}\nretired-trust:\n"
        f"  - ca-chain: old-chain.pem\n    url: {old.url}\n{window}"
        f"  - tlog-key: old-rekor.pub\n    url: {old.url}\n{window}"
        # A Rekor v2 key's log ID is its C2SP key ID under the old public-url's origin.
        f"  - tlog-key: old-rekor-v2.pub\n    url: {old.url}\n{window}"
        f"  - ctlog-key: old-ct.pub\n    url: {old.url}/ct\n{window}"
        f"  - tsa-chain: old-tsa.pem\n    url: {old.url}/api/v1/timestamp\n"
        + _window(start, tsa_end or end)
    )
    return load_server_config(config).retired


@pytest.fixture
def signed_before_rotation(tmp_path: Path):
    """A bundle signed the default way (Rekor v2 entry, RFC 3161 timestamp) by a deployment
    whose keys are then all replaced."""
    artifact = tmp_path / "artifact.txt"
    artifact.write_text("signed before the rotation\n")
    with dev_server(tmp_path / "old-state") as old:
        token = old.email_token("alice@example.com")
        sign = ["sign", "--server", old.url, "--identity-token", token]
        assert main([*sign, str(artifact)]) == 0
        bundle = json.loads(Path(f"{artifact}.sigstore.json").read_text())
        [entry] = bundle["verificationMaterial"]["tlogEntries"]
        assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.2"}
        assert bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
        root = _export(old, tmp_path)
        yield SimpleNamespace(url=old.url, root=root, log_id=entry["logId"]["keyId"]), artifact


def _verify(server, artifact: Path, issuer: str) -> int:
    return main(
        [
            "verify",
            "--server",
            server.url,
            "--bundle",
            f"{artifact}.sigstore.json",
            "--certificate-identity",
            "alice@example.com",
            "--certificate-oidc-issuer",
            issuer,
            str(artifact),
        ]
    )


def _sigstore_verify(server, artifact: Path, issuer: str, tmp_path: Path):
    """sigstore-python's verdict under the server's client trust config."""
    config = save_trust_config(server.url, tmp_path / "trust_config.json")
    bundle = f"{artifact}.sigstore.json"
    return verify_identity(config, bundle, artifact, "alice@example.com", issuer)


def test_old_bundles_verify_after_rotation(signed_before_rotation, tmp_path: Path) -> None:
    old, artifact = signed_before_rotation
    now = datetime.now(UTC)
    retired = _retired(old, tmp_path, start=now - timedelta(days=1), end=now + timedelta(minutes=1))
    with dev_server(tmp_path / "new-state", retired=retired) as new:
        root = requests.get(f"{new.url}/api/v1/trust/trusted_root.json", timeout=5).json()
        assert [("end" in ca["validFor"]) for ca in root["certificateAuthorities"]] == [True, False]
        # The retired v1 and v2 keys, then the current v1 and v2 (Ed25519) keys.
        assert len(root["tlogs"]) == 4 and len(root["ctlogs"]) == 2
        retired_v2 = root["tlogs"][1]
        assert retired_v2["logId"] == old.root["tlogs"][1]["logId"]
        assert retired_v2["logId"]["keyId"] == old.log_id
        assert "end" in retired_v2["publicKey"]["validFor"]
        assert [("end" in t["validFor"]) for t in root["timestampAuthorities"]] == [True, False]
        assert root["timestampAuthorities"][0]["uri"] == f"{old.url}/api/v1/timestamp"
        assert _verify(new, artifact, f"{old.url}/oidc") == 0
        result = _sigstore_verify(new, artifact, f"{old.url}/oidc", tmp_path)
        assert result.returncode == 0, result.stderr


def test_retired_keys_are_not_trusted_after_their_end(
    signed_before_rotation, tmp_path, capsys
) -> None:
    old, artifact = signed_before_rotation
    now = datetime.now(UTC)
    retired = _retired(old, tmp_path, start=now - timedelta(days=2), end=now - timedelta(days=1))
    with dev_server(tmp_path / "new-state", retired=retired) as new:
        assert _verify(new, artifact, f"{old.url}/oidc") == 1
    assert capsys.readouterr().err.startswith("error: verification failed (")


def test_an_old_tsa_is_not_trusted_after_its_end(signed_before_rotation, tmp_path, capsys) -> None:
    """Everything else retired still covers the signing; the old TSA's window ended before
    it: its timestamp is the bundle's only signed time, so the bundle fails."""
    old, artifact = signed_before_rotation
    now = datetime.now(UTC)
    retired = _retired(
        old,
        tmp_path,
        start=now - timedelta(days=2),
        end=now + timedelta(minutes=1),
        tsa_end=now - timedelta(days=1),
    )
    with dev_server(tmp_path / "new-state", retired=retired) as new:
        assert _verify(new, artifact, f"{old.url}/oidc") == 1
        assert capsys.readouterr().err.startswith(
            "error: verification failed (timestamp): 0 of the bundle's signed times verify"
        )
        result = _sigstore_verify(new, artifact, f"{old.url}/oidc", tmp_path)
        assert result.returncode != 0
        assert "Traceback" not in result.stderr


def test_the_v2_log_key_rotated_in_place(tmp_path: Path, capsys) -> None:
    """One deployment replaces its Rekor v2 key with --new-log: the refusal names the v2 log's
    own files and the retired-trust kind, and once the old key is listed under the same
    public-url, the bundles it logged still verify."""
    state, archive = tmp_path / "state", tmp_path / "archive"
    archive.mkdir()
    artifact = tmp_path / "artifact.txt"
    artifact.write_text("logged under the old v2 key\n")
    with dev_server(state) as before:
        port, url = int(before.url.rsplit(":", 1)[1]), before.url
        token = before.email_token("alice@example.com")
        assert main(["sign", "--server", url, "--identity-token", token, str(artifact)]) == 0
        old_root = requests.get(f"{url}/api/v1/trust/trusted_root.json", timeout=5).json()
    shutil.move(state / "rekor-v2-key.pem", archive / "rekor-v2-key.pem")
    with pytest.raises(LogStartError) as refused:
        create_app(replace(dev_config(port=port, state_dir=state), new_log=True))
    assert refused.value.message.startswith(  # then the -wal file, if SQLite left one
        "--new-log starts a new Rekor v2 log with a new key, but the old log's files are still "
        f"in place: {state / 'rekor-v2-checkpoint'}, {state / 'rekor-v2.sqlite'}"
    )
    assert refused.value.hint.endswith(
        "list the old key under retired-trust as a tlog-key with url: this server's public-url"
    )
    for name in os.listdir(state):
        if name.startswith(("rekor-v2-checkpoint", "rekor-v2.sqlite")):
            shutil.move(state / name, archive / name)
    (tmp_path / "old-rekor-v2.pub").write_bytes(
        _pem_key(old_root["tlogs"][1]["publicKey"]["rawBytes"])
    )
    config = tmp_path / "server.yaml"
    now = datetime.now(UTC)
    config.write_text(
        "dev-issuer: {enabled: true}\nretired-trust:\n"
        f"  - tlog-key: old-rekor-v2.pub\n    url: {url}\n"
        + _window(now - timedelta(days=1), now + timedelta(minutes=5))
    )
    retired = load_server_config(config).retired
    with dev_server(state, port=port, new_log=True, retired=retired) as after:
        root = requests.get(f"{url}/api/v1/trust/trusted_root.json", timeout=5).json()
        retired_v2, v1, v2 = root["tlogs"]
        assert retired_v2["logId"] == old_root["tlogs"][1]["logId"]
        assert v1["logId"] == old_root["tlogs"][0]["logId"]  # the v1 log is unchanged
        assert v2["logId"] != old_root["tlogs"][1]["logId"]  # a new v2 key
        assert _verify(after, artifact, f"{url}/oidc") == 0
        result = _sigstore_verify(after, artifact, f"{url}/oidc", tmp_path)
        assert result.returncode == 0, result.stderr
        # The new v2 log signs from an empty tree, and what it logs verifies too.
        fresh = tmp_path / "fresh.txt"
        fresh.write_text("logged under the new v2 key\n")
        token = after.email_token("alice@example.com")
        capsys.readouterr()
        assert main(["sign", "--server", url, "--identity-token", token, str(fresh)]) == 0
        assert ", log index 0; bundle written to " in capsys.readouterr().err
        assert _verify(after, fresh, f"{url}/oidc") == 0


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (
            "  - url: http://x\n    start: 2025-01-01T00:00:00Z\n    end: 2026-01-01T00:00:00Z\n",
            "retired-trust[1]: set exactly one of ca-chain, tlog-key, ctlog-key, tsa-chain",
        ),
        (
            "  - tlog-key: missing.pub\n    url: http://x\n    start: 2025-01-01T00:00:00Z\n    end: 2024-01-01T00:00:00Z\n",
            "retired-trust[1]: end must be after start",
        ),
        (
            "  - tlog-key: missing.pub\n    url: http://x\n    start: 2025-01-01T00:00:00Z\n",
            "retired-trust[1]: end must be a UTC time like 2026-01-31T00:00:00Z",
        ),
        # RFC 3339 only (core.encoding.parse_rfc3339): ISO 8601's other forms were taken.
        (
            "  - tlog-key: missing.pub\n    url: http://x\n    start: 2025-01-01T00:00:00Z\n    end: 2026-01-01T00:00Z\n",
            "retired-trust[1]: end must be a UTC time like 2026-01-31T00:00:00Z",
        ),
        # Fractions and offsets are RFC 3339's own: these parse (to 00:00:00.5Z and .4Z).
        (
            "  - tlog-key: missing.pub\n    url: http://x\n    start: '2025-01-01T02:00:00.5+02:00'\n    end: '2025-01-01T00:00:00.4Z'\n",
            "retired-trust[1]: end must be after start",
        ),
    ],
    ids=["no-kind", "end-before-start", "no-end", "end-without-seconds", "fraction-and-offset"],
)
def test_bad_retired_entries_are_refused(tmp_path: Path, entry: str, problem: str) -> None:
    config = tmp_path / "server.yaml"
    config.write_text("dev-issuer: {enabled: true}\nretired-trust:\n" + entry)
    with pytest.raises(ServerConfigError) as info:
        load_server_config(config)
    assert info.value.problems == [problem]


def _public_pem(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_retired_keys_and_chains_of_the_wrong_shape_are_refused(tmp_path: Path) -> None:
    """A Rekor v2 key under a URL that is not an origin would be listed under a log ID no
    bundle carries (the old bundles then fail with "not a transparency log in the trusted
    root"); a CT key must be ECDSA; a retired TSA chain must meet the TSA rules."""
    (tmp_path / "v2.pub").write_bytes(_public_pem(ed25519.Ed25519PrivateKey.generate()))
    (tmp_path / "rsa.pub").write_bytes(
        _public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf, root = dev_tsa_chain(key, now=datetime.now(UTC))
    (tmp_path / "upside-down.pem").write_bytes(pem_chain([root, leaf]))
    window = _window(datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    config = tmp_path / "server.yaml"
    config.write_text(
        "dev-issuer: {enabled: true}\nretired-trust:\n"
        f"  - tlog-key: v2.pub\n    url: https://rekor.example/api/v2\n{window}"
        f"  - tlog-key: v2.pub\n    url: https://rekor.example/\n{window}"
        f"  - ctlog-key: v2.pub\n    url: https://rekor.example/ct\n{window}"
        f"  - tlog-key: rsa.pub\n    url: https://rekor.example\n{window}"
        f"  - tsa-chain: upside-down.pem\n    url: https://rekor.example/api/v1/timestamp\n"
        f"{window}"
    )
    with pytest.raises(ServerConfigError) as info:
        load_server_config(config)
    assert info.value.problems == [
        "retired-trust[1]: url 'https://rekor.example/api/v2' must be the public-url the old "
        "deployment had (https://host[:port]): a Rekor v2 log's ID is its Ed25519 key's C2SP "
        "key ID under that origin",
        "retired-trust[3]: a ctlog-key must be an ECDSA (P-256, P-384, P-521) public key, not "
        "Ed25519PublicKey",
        "retired-trust[4]: a tlog-key must be an ECDSA (P-256, P-384, P-521) or Ed25519 public "
        "key, not RSAPublicKey",
        "retired-trust[5]: the TSA leaf certificate is a CA (RFC 3161 §2.3 forbids it)",
        "retired-trust[5]: the TSA leaf has no extended key usage",
        "retired-trust[5]: TSA chain certificate #1 is not a CA",
        "retired-trust[5]: TSA chain certificate #0 is not issued by #1",
        "retired-trust[5]: the last TSA chain certificate is not a self-signed root",
    ]

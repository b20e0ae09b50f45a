"""Key rotation: a deployment keeps its old CA chain and log keys in the trusted root, with an
end date, so bundles signed before the rotation still verify and nothing later can use them."""

from __future__ import annotations

import base64
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cli.main import main
from server.config import ServerConfigError, load_server_config
from tests.conftest import dev_server


def _pem_key(raw: str) -> bytes:
    key = serialization.load_der_public_key(base64.b64decode(raw))
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _export(old, directory: Path) -> None:
    """What an operator keeps of a retired deployment: its CA chain and its log keys."""
    root = requests.get(f"{old.url}/api/v1/trust/trusted_root.json", timeout=5).json()
    chain = [
        x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"]))
        for c in root["certificateAuthorities"][0]["certChain"]["certificates"]
    ]
    (directory / "old-chain.pem").write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    )
    (directory / "old-rekor.pub").write_bytes(_pem_key(root["tlogs"][0]["publicKey"]["rawBytes"]))
    (directory / "old-ct.pub").write_bytes(_pem_key(root["ctlogs"][0]["publicKey"]["rawBytes"]))


def _retired(old, directory: Path, *, start: datetime, end: datetime):
    config = directory / "server.yaml"
    window = f"    start: {start:%Y-%m-%dT%H:%M:%SZ}\n    end: {end:%Y-%m-%dT%H:%M:%SZ}\n"
    config.write_text(
        "dev-issuer: {enabled: true}\nretired-trust:\n"
        f"  - ca-chain: old-chain.pem\n    url: {old.url}\n{window}"
        f"  - tlog-key: old-rekor.pub\n    url: {old.url}\n{window}"
        f"  - ctlog-key: old-ct.pub\n    url: {old.url}/ct\n{window}"
    )
    return load_server_config(config).retired


@pytest.fixture
def signed_before_rotation(tmp_path: Path):
    artifact = tmp_path / "artifact.txt"
    artifact.write_text("signed before the rotation\n")
    with dev_server(tmp_path / "old-state") as old:
        token = old.email_token("alice@example.com")
        # The v1 log: rotation carries retired v1 log keys (Rekor v2 keys: not yet).
        sign = ["sign", "--server", old.url, "--rekor-version", "1", "--identity-token", token]
        assert main([*sign, str(artifact)]) == 0
        _export(old, tmp_path)
        yield old, artifact


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


def test_old_bundles_verify_after_rotation(signed_before_rotation, tmp_path: Path) -> None:
    old, artifact = signed_before_rotation
    now = datetime.now(UTC)
    retired = _retired(old, tmp_path, start=now - timedelta(days=1), end=now + timedelta(minutes=1))
    with dev_server(tmp_path / "new-state", retired=retired) as new:
        root = requests.get(f"{new.url}/api/v1/trust/trusted_root.json", timeout=5).json()
        assert [("end" in ca["validFor"]) for ca in root["certificateAuthorities"]] == [True, False]
        # The retired v1 key, the current v1 key and the Rekor v2 (Ed25519) key.
        assert len(root["tlogs"]) == 3 and len(root["ctlogs"]) == 2
        assert _verify(new, artifact, f"{old.url}/oidc") == 0
        config = tmp_path / "trust_config.json"
        config.write_text(
            requests.get(f"{new.url}/api/v1/trust/client_trust_config.json", timeout=5).text
        )
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "sigstore",
                "--trust-config",
                str(config),
                "verify",
                "identity",
                "--bundle",
                f"{artifact}.sigstore.json",
                "--cert-identity",
                "alice@example.com",
                "--cert-oidc-issuer",
                f"{old.url}/oidc",
                str(artifact),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
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


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (
            "  - url: http://x\n    start: 2025-01-01T00:00:00Z\n    end: 2026-01-01T00:00:00Z\n",
            "retired-trust[1]: set exactly one of ca-chain, tlog-key, ctlog-key",
        ),
        (
            "  - tlog-key: missing.pub\n    url: http://x\n    start: 2025-01-01T00:00:00Z\n    end: 2024-01-01T00:00:00Z\n",
            "retired-trust[1]: end must be after start",
        ),
        (
            "  - tlog-key: missing.pub\n    url: http://x\n    start: 2025-01-01T00:00:00Z\n",
            "retired-trust[1]: end must be a UTC time like 2026-01-31T00:00:00Z",
        ),
    ],
    ids=["no-kind", "end-before-start", "no-end"],
)
def test_bad_retired_entries_are_refused(tmp_path: Path, entry: str, problem: str) -> None:
    config = tmp_path / "server.yaml"
    config.write_text("dev-issuer: {enabled: true}\nretired-trust:\n" + entry)
    with pytest.raises(ServerConfigError) as info:
        load_server_config(config)
    assert info.value.problems == [problem]

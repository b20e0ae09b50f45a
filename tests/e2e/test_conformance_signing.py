"""The conformance protocol's sign-bundle against keyless serve, checked by verify-bundle and
by sigstore-python."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from keyless.cli.main import main
from tests.e2e.sigstore_python import save_trust_config, verify_identity


@pytest.fixture
def instance(server, tmp_path: Path) -> tuple[Path, Path]:
    """The server's signing config and trusted root, as the conformance suite passes them."""
    paths = []
    for name in ("signing_config", "trusted_root"):
        path = tmp_path / f"{name}.json"
        path.write_text(requests.get(f"{server.url}/api/v1/trust/{name}.json", timeout=5).text)
        paths.append(path)
    return paths[0], paths[1]


def _sign_bundle(server, instance, bundle: Path, artifact: Path, *flags: str) -> int:
    signing_config, trusted_root = instance
    return main(
        [
            "sign-bundle",
            "--trusted-root",
            str(trusted_root),
            *flags,
            "--identity-token",
            server.email_token("alice@example.com"),
            "--bundle",
            str(bundle),
            "--signing-config",
            str(signing_config),
            str(artifact),
        ]
    )


def _verify_bundle(server, instance, bundle: Path, target: str) -> int:
    return main(
        [
            "verify-bundle",
            "--bundle",
            str(bundle),
            "--certificate-identity",
            "alice@example.com",
            "--certificate-oidc-issuer",
            f"{server.url}/oidc",
            "--trusted-root",
            str(instance[1]),
            target,
        ]
    )


def test_sign_bundle_then_verify_bundle(server, instance, vectors, tmp_path) -> None:
    artifact = vectors / "sigstore-conformance" / "test" / "assets" / "a.txt"
    bundle = tmp_path / "a.txt.sigstore.json"
    assert _sign_bundle(server, instance, bundle, artifact) == 0
    assert _verify_bundle(server, instance, bundle, str(artifact)) == 0
    digest = "sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"
    assert _verify_bundle(server, instance, bundle, digest) == 0


def test_sign_bundle_in_toto(server, instance, vectors, tmp_path, capsys) -> None:
    assets = vectors / "sigstore-conformance" / "test" / "assets"
    bundle = tmp_path / "statement.sigstore.json"
    assert _sign_bundle(server, instance, bundle, assets / "statement.json", "--in-toto") == 0
    assert '"dsseEnvelope"' in bundle.read_text()
    assert _verify_bundle(server, instance, bundle, str(assets / "a.txt")) == 0
    other = tmp_path / "other.txt"
    other.write_text("not the subject\n")
    assert _verify_bundle(server, instance, bundle, str(other)) == 1
    assert capsys.readouterr().err.startswith("error: verification failed (")


def test_sigstore_python_verifies_the_dsse_bundle(server, instance, vectors, tmp_path) -> None:
    assets = vectors / "sigstore-conformance" / "test" / "assets"
    bundle = tmp_path / "statement.sigstore.json"
    assert _sign_bundle(server, instance, bundle, assets / "statement.json", "--in-toto") == 0
    config = save_trust_config(server.url, tmp_path / "client_trust_config.json")
    issuer = f"{server.url}/oidc"
    result = verify_identity(config, bundle, assets / "a.txt", "alice@example.com", issuer)
    assert result.returncode == 0, result.stderr


def test_staging_without_a_signing_config_is_refused(tmp_path, capsys) -> None:
    artifact = tmp_path / "a.txt"
    artifact.write_text("x")
    argv = [
        "sign-bundle",
        "--staging",
        "--identity-token",
        "t",
        "--bundle",
        str(tmp_path / "b"),
        str(artifact),
    ]
    assert main(argv) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: keyless ships no staging signing config",
        "hint: pass --signing-config for staging",
    ]

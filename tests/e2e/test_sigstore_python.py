"""sigstore-python 4.x, the reference client, against keyless serve: it signs with our CA and
log, verifies our bundles, and we verify its bundles (rekor-bundle.md §5, §8.1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyless.cli.main import main
from tests.e2e.sigstore_python import save_trust_config, sigstore, verify_identity


@pytest.fixture
def trust_config(server, tmp_path: Path) -> Path:
    return save_trust_config(server.url, tmp_path / "client_trust_config.json")


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "artifact.txt"
    path.write_text("signed by the reference client\n")
    return path


def test_sigstore_python_signs_and_verifies_against_keyless(
    server, trust_config, artifact, tmp_path
) -> None:
    bundle = tmp_path / "sigstore-python.sigstore.json"
    signed = sigstore(
        "--trust-config",
        str(trust_config),
        "sign",
        "--identity-token",
        server.email_token("carol@example.com"),
        "--bundle",
        str(bundle),
        str(artifact),
    )
    assert signed.returncode == 0, signed.stderr
    verified = verify_identity(
        trust_config, bundle, artifact, "carol@example.com", f"{server.url}/oidc"
    )
    assert verified.returncode == 0, verified.stderr
    # keyless verifies what the reference client made.
    assert (
        main(
            [
                "verify",
                "--trust-config",
                str(trust_config),
                "--bundle",
                str(bundle),
                "--certificate-identity",
                "carol@example.com",
                "--certificate-oidc-issuer",
                f"{server.url}/oidc",
                str(artifact),
            ]
        )
        == 0
    )


def test_sigstore_python_verifies_a_keyless_bundle(server, trust_config, artifact) -> None:
    assert (
        main(
            [
                "sign",
                "--server",
                server.url,
                "--identity-token",
                server.github_token(),
                str(artifact),
            ]
        )
        == 0
    )
    bundle = artifact.with_name(artifact.name + ".sigstore.json")
    identity = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
    verified = verify_identity(
        trust_config, bundle, artifact, identity, f"{server.url}/oidc/github"
    )
    assert verified.returncode == 0, verified.stderr


@pytest.mark.parametrize("wrong", ["identity", "issuer"])
def test_sigstore_python_refuses_the_wrong_identity_or_issuer(
    server, trust_config, artifact, wrong
) -> None:
    assert (
        main(
            [
                "sign",
                "--server",
                server.url,
                "--identity-token",
                server.email_token("alice@example.com"),
                str(artifact),
            ]
        )
        == 0
    )
    bundle = artifact.with_name(artifact.name + ".sigstore.json")
    identity = "mallory@example.com" if wrong == "identity" else "alice@example.com"
    issuer = "https://accounts.google.com" if wrong == "issuer" else f"{server.url}/oidc"
    verified = verify_identity(trust_config, bundle, artifact, identity, issuer)
    assert verified.returncode != 0
    expected = {
        "identity": "Certificate's SANs do not match mallory@example.com; actual SANs: {'alice@example.com'}",
        "issuer": f"Certificate's OIDCIssuer does not match (got '{server.url}/oidc', "
        "expected 'https://accounts.google.com')",
    }[wrong]
    assert expected in verified.stderr


def test_keyless_trust_saves_what_sigstore_python_uses(server, artifact, tmp_path, capsys) -> None:
    config = tmp_path / "saved_trust_config.json"
    assert main(["trust", "client-trust-config", "--server", server.url, "-o", str(config)]) == 0
    assert capsys.readouterr().err.strip() == (
        f"saved the client-trust-config of {server.url} to {config}"
    )
    bundle = tmp_path / "b.sigstore.json"
    signed = sigstore(
        "--trust-config",
        str(config),
        "sign",
        "--identity-token",
        server.email_token("dave@example.com"),
        "--bundle",
        str(bundle),
        str(artifact),
    )
    assert signed.returncode == 0, signed.stderr
    root = tmp_path / "trusted_root.json"
    assert main(["trust", "--server", server.url, "-o", str(root)]) == 0
    assert (
        main(
            [
                "verify",
                "--trusted-root",
                str(root),
                "--bundle",
                str(bundle),
                "--certificate-identity",
                "dave@example.com",
                "--certificate-oidc-issuer",
                f"{server.url}/oidc",
                str(artifact),
            ]
        )
        == 0
    )


def test_keyless_trust_from_a_server_without_trust_material(tmp_path, capsys) -> None:
    assert main(["trust", "--server", "http://127.0.0.1:9", "-o", str(tmp_path / "x")]) == 1
    assert capsys.readouterr().err.startswith(
        "error: cannot reach the keyless server at http://127.0.0.1:9/tuf/1.root.json"
    )

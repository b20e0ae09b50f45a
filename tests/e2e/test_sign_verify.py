"""`keyless sign` then `keyless verify` against a real dev-mode server (issue: the client)."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from keyless.ca import CAConfig
from keyless.cli.main import main
from tests.conftest import dev_server


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "release.tar.gz"
    path.write_bytes(b"release contents\n" * 100)
    return path


def _sign(server, artifact: Path, token: str, *extra: str) -> int:
    return main(["sign", "--server", server.url, "--identity-token", token, *extra, str(artifact)])


def _verify(server, artifact: Path | str, bundle: Path, *policy: str) -> int:
    return main(["verify", "--server", server.url, "--bundle", str(bundle), *policy, str(artifact)])


def _alice(server) -> list[str]:
    return [
        "--certificate-identity",
        "alice@example.com",
        "--certificate-oidc-issuer",
        f"{server.url}/oidc",
    ]


@pytest.fixture
def signed(server, artifact: Path, capsys) -> Path:
    assert _sign(server, artifact, server.email_token("alice@example.com")) == 0
    summary = capsys.readouterr().err
    assert summary.startswith(
        f"signed {artifact} as alice@example.com (issuer {server.url}/oidc), log index "
    )
    return artifact.with_name(artifact.name + ".sigstore.json")


def _error(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[0]


def test_verify_passes_with_the_right_identity_and_issuer(server, artifact, signed, capsys) -> None:
    assert _verify(server, artifact, signed, *_alice(server)) == 0
    assert "Verified OK" in capsys.readouterr().err
    assert (
        json.loads(signed.read_text())["mediaType"]
        == "application/vnd.dev.sigstore.bundle.v0.3+json"
    )


def test_json_output(server, artifact, signed, capsys) -> None:
    assert (
        main(
            [
                "verify",
                "--server",
                server.url,
                "--bundle",
                str(signed),
                *_alice(server),
                "-o",
                "json",
                str(artifact),
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["identity"] == "alice@example.com"
    assert result["issuer"] == f"{server.url}/oidc"


def test_wrong_identity(server, artifact, signed, capsys) -> None:
    policy = [
        "--certificate-identity",
        "bob@example.com",
        "--certificate-oidc-issuer",
        f"{server.url}/oidc",
    ]
    assert _verify(server, artifact, signed, *policy) == 1
    assert _error(capsys) == (
        'error: verification failed (identity): certificate identity "alice@example.com" '
        'does not match expected "bob@example.com"'
    )


def test_wrong_issuer(server, artifact, signed, capsys) -> None:
    policy = [
        "--certificate-identity",
        "alice@example.com",
        "--certificate-oidc-issuer",
        "https://accounts.google.com",
    ]
    assert _verify(server, artifact, signed, *policy) == 1
    assert _error(capsys).startswith("error: verification failed (issuer): ")


def test_tampered_file(server, artifact, signed, capsys) -> None:
    artifact.write_bytes(artifact.read_bytes() + b"backdoor")
    assert _verify(server, artifact, signed, *_alice(server)) == 1
    assert _error(capsys).startswith("error: verification failed (")


def test_log_entry_swapped_with_another_bundles(server, artifact, signed, tmp_path, capsys) -> None:
    other = tmp_path / "other.txt"
    other.write_text("another artifact\n")
    assert _sign(server, other, server.email_token("alice@example.com")) == 0
    capsys.readouterr()
    bundle = json.loads(signed.read_text())
    donor = json.loads(other.with_name("other.txt.sigstore.json").read_text())
    bundle["verificationMaterial"]["tlogEntries"] = donor["verificationMaterial"]["tlogEntries"]
    signed.write_text(json.dumps(bundle))
    assert _verify(server, artifact, signed, *_alice(server)) == 1
    assert _error(capsys).startswith("error: verification failed (")


def test_certificate_from_a_ca_outside_the_trust_root(server, artifact, tmp_path, capsys) -> None:
    with dev_server(tmp_path / "rogue-state") as rogue:
        assert _sign(rogue, artifact, rogue.email_token("alice@example.com")) == 0
        capsys.readouterr()
    bundle = artifact.with_name(artifact.name + ".sigstore.json")
    assert _verify(server, artifact, bundle, *_alice(server)) == 1
    assert _error(capsys).startswith("error: verification failed (")


def test_regexp_is_anchored(server, artifact, capsys) -> None:
    assert _sign(server, artifact, server.email_token("alice@example.com.evil.org")) == 0
    capsys.readouterr()
    bundle = artifact.with_name(artifact.name + ".sigstore.json")
    policy = [
        "--certificate-identity-regexp",
        r"alice@example\.com",
        "--certificate-oidc-issuer",
        f"{server.url}/oidc",
    ]
    assert _verify(server, artifact, bundle, *policy) == 1
    assert _error(capsys).startswith("error: verification failed (identity): ")


GITHUB_SAN = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"


def _github_policy(server, **claims: str) -> list[str]:
    policy = [
        "--certificate-identity",
        GITHUB_SAN,
        "--certificate-oidc-issuer",
        f"{server.url}/oidc/github",
    ]
    for name, value in claims.items():
        policy += [f"--certificate-github-workflow-{name}", value]
    return policy


def test_github_actions_identity_and_claims(server, artifact, capsys) -> None:
    assert _sign(server, artifact, server.github_token()) == 0
    bundle = artifact.with_name(artifact.name + ".sigstore.json")
    claims = {
        "repository": "acme/app",
        "ref": "refs/heads/main",
        "trigger": "push",
        "sha": hashlib.sha1(b"acme/app@refs/heads/main").hexdigest(),
        "name": ".github/workflows/release.yml",  # an unnamed workflow: GitHub uses its path
    }
    assert _verify(server, artifact, bundle, *_github_policy(server, **claims)) == 0
    capsys.readouterr()
    assert _verify(server, artifact, bundle, *_github_policy(server, repository="evil/app")) == 1
    assert _error(capsys).startswith("error: verification failed (")


def test_sign_and_verify_a_digest(server, tmp_path, capsys) -> None:
    digest = "sha256:" + hashlib.sha256(b"an image manifest").hexdigest()
    bundle = tmp_path / "manifest.sigstore.json"
    token = server.email_token("alice@example.com")
    assert (
        main(
            [
                "sign",
                "--server",
                server.url,
                "--identity-token",
                token,
                "--bundle",
                str(bundle),
                digest,
            ]
        )
        == 0
    )
    assert _verify(server, digest, bundle, *_alice(server)) == 0


def test_certificate_expired_since_signing_still_verifies(tmp_path, artifact, capsys) -> None:
    with dev_server(tmp_path / "state", ca=CAConfig(cert_validity=timedelta(seconds=2))) as short:
        assert _sign(short, artifact, short.email_token("alice@example.com")) == 0
        bundle = artifact.with_name(artifact.name + ".sigstore.json")
        raw = json.loads(bundle.read_text())["verificationMaterial"]["certificate"]["rawBytes"]
        import base64

        leaf = x509.load_der_x509_certificate(base64.b64decode(raw))
        time.sleep(max(0.0, (leaf.not_valid_after_utc - datetime.now(UTC)).total_seconds()) + 1.1)
        assert datetime.now(UTC) > leaf.not_valid_after_utc
        assert _verify(short, artifact, bundle, *_alice(short)) == 0


def test_token_refused_by_the_ca_is_quoted(server, artifact, capsys) -> None:
    token = server.email_token("alice@example.com", audience="other")
    assert _sign(server, artifact, token) == 1
    assert _error(capsys) == (
        "error: the CA refused the request: There was an error processing the identity token "
        '(audience "other" does not include "sigstore")'
    )
    assert not artifact.with_name(artifact.name + ".sigstore.json").exists()


def test_expired_token_is_refused_before_any_request(server, artifact, capsys) -> None:
    assert _sign(server, artifact, server.email_token("alice@example.com", expires_in=-60)) == 1
    assert _error(capsys).startswith("error: the identity token expired at ")


def test_log_unreachable(server, artifact, tmp_path, capsys) -> None:
    config = json.loads(
        __import__("requests").get(f"{server.url}/api/v1/trust/signing_config.json", timeout=5).text
    )
    for log in config["rekorTlogUrls"]:  # v2 by default, after a timestamp from the real TSA
        log["url"] = "http://127.0.0.1:9"
    path = tmp_path / "signing_config.json"
    path.write_text(json.dumps(config))
    argv = [
        "sign",
        "--signing-config",
        str(path),
        "--identity-token",
        server.email_token("alice@example.com"),
        str(artifact),
    ]
    assert main(argv) == 1
    assert _error(capsys) == (
        "error: cannot reach the transparency log at http://127.0.0.1:9/api/v2/log/entries: connection failed"
    )

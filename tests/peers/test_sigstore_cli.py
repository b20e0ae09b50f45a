"""@sigstore/cli (npm, sigstore-js's command line) against `keyless serve`.

`sigstore attest` signs an in-toto statement with keyless's CA, has keyless's TSA timestamp it
and logs it in keyless's Rekor v1 log as an intoto 0.0.2 entry (it has no Rekor v2 writer: it
builds its log witness without an API version, so v1), and `sigstore verify` checks it through
keyless's TUF mirror; keyless verifies that attestation; `sigstore verify` checks keyless's
signatures and attestations from both the v1 and the v2 log; and its browser login works with
keyless's development issuer. Runs when node and tests/peers/sigstore-cli/node_modules are
there (`.ci/run` installs them with `npm ci`)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import skip_unless_ci
from tests.peers.conftest import Served

FOLDER = Path(__file__).with_name("sigstore-cli")
CLI = FOLDER / "node_modules" / "@sigstore" / "cli" / "bin" / "run"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://keyless.example/peer-test/v1"


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        skip_unless_ci("node is not installed")
    if not CLI.is_file():
        skip_unless_ci("@sigstore/cli is not installed: run `npm ci` in tests/peers/sigstore-cli")
    return path


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "artifact.txt"
    path.write_text("attested by @sigstore/cli\n")
    return path


@pytest.fixture
def tuf_root(served: Served, tmp_path: Path) -> Path:
    path = tmp_path / "root.json"
    assert served.keyless("trust", "tuf-root", "-o", str(path)) == 0
    return path


def _cli(
    node: str, *args: str, token: str | None = None, browser: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI in CI mode (CI set, not "false"), where it takes SIGSTORE_ID_TOKEN; or, given a
    `browser`, in its login mode: with no desktop, xdg-open hands the login URL to $BROWSER."""
    unset = ("CI", "SIGSTORE_ID_TOKEN", "DISPLAY", "WAYLAND_DISPLAY", "BROWSER")
    env = {name: value for name, value in os.environ.items() if name not in unset}
    env["NO_COLOR"] = "1"
    if browser is None:
        env["CI"] = "true"
    else:
        env["BROWSER"] = str(browser)
    if token is not None:
        env["SIGSTORE_ID_TOKEN"] = token
    command = [node, str(CLI), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def _verify(node: str, served: Served, root: Path, bundle: Path, email: str, *blob: str):
    return _cli(
        node, "verify", str(bundle), *blob,
        "--tuf-mirror-url", f"{served.url}/tuf", "--tuf-root-path", str(root),
        "--tuf-cache-path", str(bundle.parent / "sigstore-cli-tuf"),
        "--certificate-issuer", served.issuer, "--certificate-identity-email", email,
    )  # fmt: skip


def _statement(artifact: Path) -> Path:
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": artifact.name, "digest": {"sha256": digest}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {"tested": "keyless"},
    }
    path = artifact.with_name("statement.json")
    path.write_text(json.dumps(statement))
    return path


@pytest.fixture
def cli_attestation(node, served: Served, artifact: Path) -> Path:
    """@sigstore/cli's attestation about `artifact`, by uma@example.com, in keyless's v1 log
    and timestamped by keyless's TSA (through its JSON request)."""
    bundle = artifact.with_name("cli.sigstore.json")
    attested = _cli(
        node, "attest", str(_statement(artifact)), "--fulcio-url", served.url,
        "--rekor-url", served.url, "--tsa-server-url", served.url, "-o", str(bundle),
        token=served.token("uma@example.com"),
    )  # fmt: skip
    assert attested.returncode == 0, attested.stderr
    entry = json.loads(bundle.read_text())["verificationMaterial"]["tlogEntries"][0]
    index = entry.get("logIndex", "0")  # proto3 JSON leaves a first entry's 0 out
    assert attested.stderr.splitlines() == [
        f"Created entry at index {index}, available at",
        f"{served.url}/api/v1/log/entries?logIndex={index}",
    ]
    return bundle


def test_sigstore_cli_attests_against_keyless_and_verifies_through_tuf(
    node, served, tuf_root, artifact, cli_attestation
) -> None:
    material = json.loads(cli_attestation.read_text())["verificationMaterial"]
    assert len(material["timestampVerificationData"]["rfc3161Timestamps"]) == 1
    entry = material["tlogEntries"][0]
    assert entry["kindVersion"] == {"kind": "intoto", "version": "0.0.2"}
    # Rekor keeps an intoto entry without the envelope's payload, and so does keyless's log.
    body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    assert "payload" not in body["spec"]["content"]["envelope"]

    verified = _verify(node, served, tuf_root, cli_attestation, "uma@example.com")
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr.strip() == "Verification succeeded"


def test_keyless_verifies_a_sigstore_cli_attestation(served, artifact, cli_attestation) -> None:
    verified = served.keyless(
        "verify-attestation", "--bundle", str(cli_attestation), "--type", PREDICATE_TYPE,
        "--certificate-identity", "uma@example.com", "--certificate-oidc-issuer", served.issuer,
        str(artifact),
    )  # fmt: skip
    assert verified == 0


@pytest.mark.parametrize("rekor_version", ["1", "2"])
@pytest.mark.parametrize("command", ["sign", "attest"])
def test_sigstore_cli_verifies_a_keyless_bundle(
    node, served, tuf_root, artifact, tmp_path, command, rekor_version
) -> None:
    bundle = tmp_path / f"keyless-{command}.sigstore.json"
    token = served.token("victor@example.com")
    common = ["--identity-token", token, "--rekor-version", rekor_version, "--bundle", str(bundle)]
    if command == "attest":
        predicate = tmp_path / "predicate.json"
        predicate.write_text('{"tested": "sigstore-cli"}')
        made = served.keyless("attest", *common, "--predicate", str(predicate), str(artifact))
    else:
        made = served.keyless("sign", *common, str(artifact))
    assert made == 0
    # A signature needs the signed bytes; an attestation carries its statement.
    blob = ["--blob-file", str(artifact)] if command == "sign" else []
    verified = _verify(node, served, tuf_root, bundle, "victor@example.com", *blob)
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr.strip() == "Verification succeeded"


def test_sigstore_cli_refuses_a_keyless_bundle_for_another_identity(
    node, served, tuf_root, artifact, tmp_path
) -> None:
    bundle = tmp_path / "keyless.sigstore.json"
    token = served.token("victor@example.com")
    assert (
        served.keyless("sign", "--identity-token", token, "--bundle", str(bundle), str(artifact))
        == 0
    )
    refused = _verify(
        node, served, tuf_root, bundle, "mallory@example.com", "--blob-file", str(artifact)
    )
    assert refused.returncode != 0
    assert "certificate identity error - expected mallory@example.com, got victor@example.com" in (
        refused.stderr
    )


def test_sigstore_cli_logs_in_at_the_development_issuer(
    node, served, tuf_root, artifact, tmp_path
) -> None:
    """The login of openid-client, under the CLI: PKCE, and the ID token's nonce checked
    against the one it sent."""
    browser = tmp_path / "browser"  # the user approves: follow the redirect back to the CLI
    browser.write_text(
        f"#!{sys.executable}\nimport sys, requests\nrequests.get(sys.argv[1], timeout=30)\n"
    )
    browser.chmod(0o755)
    bundle = tmp_path / "login.sigstore.json"
    attested = _cli(
        node, "attest", str(_statement(artifact)), "--fulcio-url", served.url,
        "--rekor-url", served.url, "--oidc-issuer", served.issuer, "-o", str(bundle),
        browser=browser,
    )  # fmt: skip
    assert attested.returncode == 0, attested.stderr
    verified = _verify(node, served, tuf_root, bundle, "dev@keyless.test")
    assert verified.returncode == 0, verified.stderr

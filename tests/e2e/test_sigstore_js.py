"""sigstore-js 5.x (npm `sigstore`) against keyless serve: it signs with our CA and log, verifies
through our TUF mirror, and its bundles verify in keyless and sigstore-python (rekor-bundle.md
§6, §8.2). Runs when node and tests/js/node_modules are present (`cd tests/js && npm ci`)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keyless.cli.main import main
from keyless.server import tuf_api
from keyless.server.state import StateDir
from keyless.server.tuf_repository import rotate_root_key
from tests.conftest import dev_server, skip_unless_ci
from tests.e2e.sigstore_python import verify_identity

JS = Path(__file__).resolve().parents[1] / "js"
DRIVER = JS / "sigstore_js.mjs"
GITHUB_IDENTITY = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        skip_unless_ci("node is not installed")
    if not (JS / "node_modules" / "sigstore" / "package.json").is_file():
        skip_unless_ci("sigstore-js is not installed: run `npm ci` in tests/js")
    return path


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "artifact.txt"
    path.write_text("signed by sigstore-js\n")
    return path


@pytest.fixture
def tuf_root(server, tmp_path: Path) -> Path:
    path = tmp_path / "root.json"
    assert main(["trust", "tuf-root", "--server", server.url, "-o", str(path)]) == 0
    return path


@pytest.fixture
def log_not_empty(server, tmp_path: Path) -> None:
    """One keyless-signed entry first: see test_keyless_verify_reads_a_first_log_entry."""
    path = tmp_path / "first.txt"
    path.write_text("an entry before sigstore-js signs\n")
    token = server.email_token("first@example.com")
    assert main(["sign", "--server", server.url, "--identity-token", token, str(path)]) == 0


def _js_sign(node: str, url: str, token: str, artifact: Path, bundle: Path):
    env = {**os.environ, "SIGSTORE_ID_TOKEN": token}
    command = [node, str(DRIVER), "sign", "--fulcio-url", url, "--rekor-url", url]
    command += ["--artifact", str(artifact), "--bundle", str(bundle)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def _js_attest(node: str, url: str, token: str, statement: Path, bundle: Path):
    env = {**os.environ, "SIGSTORE_ID_TOKEN": token}
    command = [node, str(DRIVER), "attest", "--fulcio-url", url, "--rekor-url", url]
    command += ["--payload", str(statement), "--payload-type", "application/vnd.in-toto+json"]
    command += ["--bundle", str(bundle)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def _js_verify(node: str, url: str, root: Path, bundle: Path, artifact: Path, *policy: str):
    command = [node, str(DRIVER), "verify", "--bundle", str(bundle), "--artifact", str(artifact)]
    command += [*policy, "--tuf-mirror-url", f"{url}/tuf", "--tuf-root-path", str(root)]
    command += ["--tuf-cache-path", str(bundle.parent / "sigstore-js-tuf")]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _keyless_verify(url: str, bundle: Path, artifact: Path, identity: str) -> int:
    return main(
        [
            "verify",
            "--server",
            url,
            "--bundle",
            str(bundle),
            "--certificate-identity",
            identity,
            "--certificate-oidc-issuer",
            f"{url}/oidc",
            str(artifact),
        ]
    )


@pytest.fixture
def js_bundle(node, server, artifact, tmp_path, log_not_empty) -> Path:
    """A bundle sigstore-js made with keyless's CA and log, for henry@example.com."""
    bundle = tmp_path / "sigstore-js.sigstore.json"
    token = server.email_token("henry@example.com")
    signed = _js_sign(node, server.url, token, artifact, bundle)
    assert signed.returncode == 0, signed.stderr
    return bundle


@dataclass(frozen=True)
class Attestation:
    bundle: Path
    artifact: Path


@pytest.fixture(scope="module")
def js_attestation(node, server, tmp_path_factory) -> Attestation:
    """An in-toto attestation about an artifact that sigstore-js made as npm provenance is made
    (`legacyCompatibility`: its log entry is intoto 0.0.2), for kate@example.com, once."""
    folder = tmp_path_factory.mktemp("sigstore-js-attest")
    artifact = folder / "built.tgz"
    artifact.write_bytes(b"a package sigstore-js attests\n")
    statement = folder / "statement.json"
    subject = {"name": artifact.name, "digest": {"sha256": _sha256(artifact)}}
    statement.write_text(
        json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [subject],
                "predicateType": "https://slsa.dev/provenance/v1",
                "predicate": {},
            }
        )
    )
    bundle = folder / "built.tgz.sigstore.json"
    attested = _js_attest(
        node, server.url, server.email_token("kate@example.com"), statement, bundle
    )
    assert attested.returncode == 0, attested.stderr
    return Attestation(bundle, artifact)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_keyless_verifies_a_sigstore_js_intoto_attestation(server, js_attestation) -> None:
    """keyless's log, like Rekor, keeps no envelope payload in an intoto 0.0.2 entry: keyless
    checks the entry's signature, signer, payload type and payload hash against the bundle's
    envelope instead (issue 23; refused before, "log body field 'payload' is missing")."""
    bundle, artifact = js_attestation.bundle, js_attestation.artifact
    [entry] = json.loads(bundle.read_text())["verificationMaterial"]["tlogEntries"]
    assert entry["kindVersion"] == {"kind": "intoto", "version": "0.0.2"}
    body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    assert "payload" not in body["spec"]["content"]["envelope"]
    assert _keyless_verify(server.url, bundle, artifact, "kate@example.com") == 0


def test_sigstore_js_intoto_attestation_with_another_payload_is_refused(
    server, js_attestation, tmp_path, capsys
) -> None:
    """The same entry under an envelope with another statement, signed by the same key, is not
    that envelope's entry: its payload hash says so."""
    bundle = json.loads(js_attestation.bundle.read_text())
    envelope = bundle["dsseEnvelope"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"] = {"other": True}
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    edited = tmp_path / "edited.sigstore.json"
    edited.write_text(json.dumps(bundle))
    capsys.readouterr()
    assert _keyless_verify(server.url, edited, js_attestation.artifact, "kate@example.com") == 1
    # The envelope's own signature fails first: the payload is not what the key signed.
    assert "verification failed (signature)" in capsys.readouterr().err


def test_keyless_audit_lists_a_sigstore_js_intoto_entry(server, js_attestation, capsys) -> None:
    """The intoto entry is listed under kate's certificate (issue 19: the audit decoded its
    signer twice and dropped it without a word)."""
    [entry] = json.loads(js_attestation.bundle.read_text())["verificationMaterial"]["tlogEntries"]
    capsys.readouterr()
    command = ["audit", "--server", server.url, "--identity", "kate@example.com", "-o", "json"]
    assert main(command) == 0
    report = json.loads(capsys.readouterr().out)
    [certificate] = report["certificates"]
    assert [(e["log"], e["logIndex"], e["kind"]) for e in certificate["signatureLogEntries"]] == [
        # sigstore-js writes proto3 JSON, which leaves out a log index of 0.
        ("rekor-v1", int(entry.get("logIndex", 0)), "intoto")
    ]
    assert report["unreadableSignatureLogEntries"] == []


def test_sigstore_js_signs_against_keyless_and_verifies_through_tuf(
    node, server, tuf_root, js_bundle, artifact
) -> None:
    verified = _js_verify(
        node, server.url, tuf_root, js_bundle, artifact,
        "--certificate-issuer", f"{server.url}/oidc",
        "--certificate-identity-email", r"^henry@example\.com$",
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr


def test_keyless_verify_verifies_a_sigstore_js_bundle(server, js_bundle, artifact) -> None:
    assert _keyless_verify(server.url, js_bundle, artifact, "henry@example.com") == 0


def test_sigstore_python_verifies_a_sigstore_js_bundle(server, js_bundle, artifact, tmp_path):
    """sigstore-js puts Fulcio's PEM verbatim in the log entry: canonical PEM makes it match."""
    config = tmp_path / "client_trust_config.json"
    assert main(["trust", "client-trust-config", "--server", server.url, "-o", str(config)]) == 0
    issuer = f"{server.url}/oidc"
    verified = verify_identity(config, js_bundle, artifact, "henry@example.com", issuer)
    assert verified.returncode == 0, verified.stderr


def test_sigstore_js_verifies_a_keyless_bundle(node, server, tuf_root, artifact) -> None:
    token = server.github_token()
    assert main(["sign", "--server", server.url, "--identity-token", token, str(artifact)]) == 0
    bundle = artifact.with_name(artifact.name + ".sigstore.json")
    verified = _js_verify(
        node, server.url, tuf_root, bundle, artifact,
        "--certificate-issuer", f"{server.url}/oidc/github",
        "--certificate-identity-uri", "^" + GITHUB_IDENTITY.replace(".", r"\.") + "$",
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr


@pytest.mark.parametrize("wrong", ["identity", "issuer"])
def test_sigstore_js_refuses_the_wrong_identity_or_issuer(
    node, server, tuf_root, js_bundle, artifact, wrong
) -> None:
    identity = r"^mallory@example\.com$" if wrong == "identity" else r"^henry@example\.com$"
    issuer = "https://accounts.google.com" if wrong == "issuer" else f"{server.url}/oidc"
    verified = _js_verify(
        node, server.url, tuf_root, js_bundle, artifact,
        "--certificate-issuer", issuer, "--certificate-identity-email", identity,
    )  # fmt: skip
    assert verified.returncode == 1
    expected = {
        "identity": "PolicyError: certificate identity error - expected "
        r"^mallory@example\.com$, got henry@example.com",
        "issuer": "PolicyError: invalid certificate extension - expected "
        f"issuer=https://accounts.google.com, got issuer={server.url}/oidc",
    }[wrong]
    assert verified.stderr.strip() == expected


def test_sigstore_js_refuses_a_bundle_for_other_bytes(
    node, server, tuf_root, js_bundle, tmp_path
) -> None:
    other = tmp_path / "other.txt"
    other.write_text("not what was signed\n")
    verified = _js_verify(
        node, server.url, tuf_root, js_bundle, other,
        "--certificate-issuer", f"{server.url}/oidc",
        "--certificate-identity-email", r"^henry@example\.com$",
    )  # fmt: skip
    assert verified.returncode == 1
    assert verified.stderr.startswith("VerificationError: ")


def test_keyless_verify_reads_a_first_log_entry(node, tmp_path, artifact) -> None:
    """sigstore-js writes proto3 JSON, omitting logIndex 0 and the empty hashes of a one-leaf
    tree; keyless restores those defaults before parsing."""
    with dev_server(tmp_path / "state") as running:
        bundle = tmp_path / "first.sigstore.json"
        token = running.email_token("ivy@example.com")
        signed = _js_sign(node, running.url, token, artifact, bundle)
        assert signed.returncode == 0, signed.stderr
        assert _keyless_verify(running.url, bundle, artifact, "ivy@example.com") == 0


def test_sigstore_js_follows_a_root_rotation(node, tmp_path, artifact) -> None:
    """A sigstore-js TUF cache holding root version 1 updates to version 2 and still verifies."""
    with dev_server(tmp_path / "state") as running:
        root = tmp_path / "root.json"
        assert main(["trust", "tuf-root", "--server", running.url, "-o", str(root)]) == 0
        token = running.email_token("judy@example.com")
        assert (
            main(["sign", "--server", running.url, "--identity-token", token, str(artifact)]) == 0
        )
        bundle = artifact.with_name(artifact.name + ".sigstore.json")
        policy = ["--certificate-issuer", f"{running.url}/oidc"]
        policy += ["--certificate-identity-email", r"^judy@example\.com$"]
        first = _js_verify(node, running.url, root, bundle, artifact, *policy)
        assert first.returncode == 0, first.stderr
        cached = next((bundle.parent / "sigstore-js-tuf").rglob("root.json"))
        assert json.loads(cached.read_text())["signed"]["version"] == 1

        repository = tuf_api.repository_of(running.app)
        assert rotate_root_key(StateDir(tmp_path / "state"), repository, now=datetime.now(UTC)) == 2
        again = _js_verify(node, running.url, root, bundle, artifact, *policy)
        assert again.returncode == 0, again.stderr
        assert json.loads(cached.read_text())["signed"]["version"] == 2

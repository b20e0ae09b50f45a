"""sigstore-js 5.x (`attest`) makes an in-toto attestation against keyless serve, and
`keyless verify-attestation` accepts it with the right signer and type and refuses otherwise;
sigstore-js verifies keyless's attestations, Rekor v2 (a hashedrekord 0.0.2 over the DSSE PAE
with an RFC 3161 timestamp) and v1, through the server's TUF repository.
Runs when node and tests/js/node_modules are present (`cd tests/js && npm ci`)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from keyless.cli.main import main
from tests.conftest import skip_unless_ci
from tests.e2e.test_attest_files import _check_logged_as

JS = Path(__file__).resolve().parents[1] / "js"
# The module is given with -e and tests/js as the working directory, so `sigstore`
# resolves to tests/js/node_modules. The token comes from the environment, never argv.
ATTEST = """
import { readFileSync, writeFileSync } from 'node:fs';
import { attest } from 'sigstore';
const [statementPath, bundlePath, url] = process.argv.slice(1);
const bundle = await attest(readFileSync(statementPath), 'application/vnd.in-toto+json', {
  fulcioURL: url, rekorURL: url, identityToken: process.env.SIGSTORE_ID_TOKEN,
});
writeFileSync(bundlePath, JSON.stringify(bundle));
"""
# A DSSE bundle is verified on its own (the statement names its subject); the policy and the
# TUF mirror come from argv. Exit 1 with `<ErrorName>: <message>` on refusal.
VERIFY = """
import { readFileSync } from 'node:fs';
import { verify } from 'sigstore';
const [bundlePath, issuer, email, mirror, root, cache] = process.argv.slice(1);
try {
  await verify(JSON.parse(readFileSync(bundlePath, 'utf8')), {
    certificateIssuer: issuer, certificateIdentityEmail: email,
    tufMirrorURL: mirror, tufRootPath: root, tufCachePath: cache,
  });
} catch (error) {
  process.stderr.write(`${error.name}: ${error.message}\\n`);
  process.exit(1);
}
"""


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        skip_unless_ci("node is not installed")
    if not (JS / "node_modules" / "sigstore" / "package.json").is_file():
        skip_unless_ci("sigstore-js is not installed: run `npm ci` in tests/js")
    return path


def test_keyless_verifies_a_sigstore_js_attestation(node, server, tmp_path, capsys) -> None:
    artifact = tmp_path / "lib.tgz"
    artifact.write_bytes(b"a package")
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {"name": "lib.tgz", "digest": {"sha256": hashlib.sha256(b"a package").hexdigest()}}
        ],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {"buildType": "x"},
            "runDetails": {"builder": {"id": "y"}},
        },
    }
    statement_path = tmp_path / "statement.json"
    statement_path.write_text(json.dumps(statement))
    bundle = tmp_path / "js.sigstore.json"
    made = subprocess.run(
        [node, "--input-type=module", "-e", ATTEST, str(statement_path), str(bundle), server.url],
        cwd=JS,
        env={**os.environ, "SIGSTORE_ID_TOKEN": server.email_token("dana@example.com")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    dana = ["--certificate-identity", "dana@example.com"]
    issuer = ["--certificate-oidc-issuer", f"{server.url}/oidc"]
    common = ["verify-attestation", "--server", server.url, "--bundle", str(bundle), *issuer]
    assert main([*common, *dana, "--type", "slsaprovenance1", "-o", "json", str(artifact)]) == 0
    (attestation,) = json.loads(capsys.readouterr().out)["attestations"]
    assert attestation["statement"] == statement
    assert main([*common, *dana, "--type", "spdxjson", str(artifact)]) == 1
    assert "verification failed (type)" in capsys.readouterr().err
    other = ["--certificate-identity", "erin@example.com"]
    assert main([*common, *other, str(artifact)]) == 1
    assert "verification failed (identity)" in capsys.readouterr().err


@pytest.mark.parametrize(("flags", "rekor_version"), [((), 2), (("--rekor-version", "1"), 1)])
def test_sigstore_js_verifies_a_keyless_attestation(
    node, server, tmp_path, flags, rekor_version
) -> None:
    artifact = tmp_path / "app.tgz"
    artifact.write_bytes(b"attested by keyless, verified by sigstore-js")
    predicate = tmp_path / "provenance.json"
    predicate.write_text(
        json.dumps({"buildDefinition": {"buildType": "x"}, "runDetails": {"builder": {"id": "y"}}})
    )
    bundle = tmp_path / "keyless.sigstore.json"
    token = server.email_token("frank@example.com")
    argv = ["attest", "--server", server.url, "--identity-token", token, *flags]
    argv += ["--predicate", str(predicate), "--type", "slsaprovenance1", "--bundle", str(bundle)]
    assert main([*argv, str(artifact)]) == 0
    _check_logged_as(json.loads(bundle.read_text()), rekor_version)
    root = tmp_path / "tuf-root.json"
    assert main(["trust", "tuf-root", "--server", server.url, "-o", str(root)]) == 0

    def js_verify(email: str) -> subprocess.CompletedProcess[str]:
        mirror, cache = f"{server.url}/tuf", str(tmp_path / "sigstore-js-tuf")
        issuer = f"{server.url}/oidc"
        command = [node, "--input-type=module", "-e", VERIFY, str(bundle), issuer, email]
        command += [mirror, str(root), cache]
        return subprocess.run(command, cwd=JS, capture_output=True, text=True, timeout=120)

    verified = js_verify(r"^frank@example\.com$")
    assert verified.returncode == 0, verified.stderr
    refused = js_verify(r"^grace@example\.com$")
    assert refused.returncode == 1
    assert refused.stderr.startswith("PolicyError: "), refused.stderr

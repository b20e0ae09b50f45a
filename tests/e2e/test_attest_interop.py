"""sigstore-js 5.x (`attest`) makes an in-toto attestation against keyless serve, and
`keyless verify-attestation` accepts it with the right signer and type and refuses otherwise.
Runs when node and tests/js/node_modules are present (`cd tests/js && npm ci`)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cli.main import main
from tests.conftest import skip_unless_ci

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

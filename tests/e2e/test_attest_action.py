"""The GitHub Action (action.yml and `python -m keyless.cli.attest_action`) without GitHub.

action.yml is checked as a document (it parses, every input and output is described and in the
README, inputs reach the script only through the environment). Its script then runs as GitHub
runs it: a subprocess with `GITHUB_ACTIONS`, `ACTIONS_ID_TOKEN_REQUEST_URL`/`_TOKEN` pointing at
a loopback stand-in for GitHub's token service that mints from the development issuer, and
`GITHUB_OUTPUT`; the bundles, the log entries and the certificates' GitHub extensions are checked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests
import yaml

from keyless.cli.main import main
from tests.conftest import serve_wsgi

ROOT = Path(__file__).resolve().parents[2]
REQUEST_TOKEN = "request-token-for-this-job"
WORKFLOW_REF = "acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"


def _action() -> dict:
    return yaml.safe_load((ROOT / "action.yml").read_text())


def _readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## GitHub Actions\n")
    return text[start : text.index("\n## ", start + 1)]


def test_action_yml_is_a_documented_composite_action() -> None:
    action = _action()
    assert action["runs"]["using"] == "composite"
    readme = _readme_section()
    for name, spec in action["inputs"].items():
        assert spec.get("description", "").strip(), f"input {name} has no description"
        assert f"| `{name}` |" in readme, f"input {name} is not in the README table"
    for name, spec in action["outputs"].items():
        assert spec.get("description", "").strip(), f"output {name} has no description"
        assert spec["value"] == f"${{{{ steps.sign.outputs.{name} }}}}"
        assert f"| `{name}` |" in readme, f"output {name} is not in the README table"
    assert action["inputs"]["subjects"]["required"] is True


def test_inputs_reach_the_script_only_through_the_environment() -> None:
    steps = _action()["runs"]["steps"]
    mapped = set()
    for step in steps:
        assert "${{" not in step["run"], f"step {step['name']!r} splices an expression into shell"
        for value in step.get("env", {}).values():
            mapped.update(re.findall(r"\$\{\{ inputs\.([a-z-]+) \}\}", value))
    assert mapped == set(_action()["inputs"])
    assert steps[-1]["run"].strip().endswith("-m keyless.cli.attest_action")


def test_readme_workflow_is_valid_yaml_with_id_token_permission() -> None:
    block = re.search(r"```yaml\n(.*?)\n```", _readme_section(), re.DOTALL)
    assert block is not None
    workflow = yaml.safe_load(block.group(1))
    assert workflow["permissions"]["id-token"] == "write"
    sign = next(s for s in workflow["jobs"]["image"]["steps"] if s.get("id") == "sign")
    assert set(sign["with"]) <= set(_action()["inputs"])


def _token_service(server, requests_seen: list):
    """GitHub's job token endpoint, on loopback: bearer request token in, a token out."""

    def app(environ, start_response):
        audience = parse_qs(environ.get("QUERY_STRING", "")).get("audience", ["?"])[0]
        requests_seen.append(audience)
        if environ.get("HTTP_AUTHORIZATION") != f"bearer {REQUEST_TOKEN}":
            start_response("401 Unauthorized", [("Content-Type", "application/json")])
            return [b'{"message":"bad request token"}']
        issuer = server.issuer
        claims = issuer.github_claims(
            repository="acme/app",
            workflow="release.yml",
            workflow_name="Release",
            ref="refs/tags/v1.0.0",
            event_name="push",
        )
        token = issuer.mint(
            claims, issuer_url=issuer.github_issuer_url, now=datetime.now(UTC), audience=audience
        )
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"value": token}).encode()]

    return app


def _run_action(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GITHUB_", "ACTIONS_", "KEYLESS_", "SIGSTORE_ID_TOKEN"))
    }
    return subprocess.run(
        [sys.executable, "-m", "keyless.cli.attest_action"],
        env={**base, "GITHUB_ACTIONS": "true", **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _outputs(path: Path) -> dict[str, list[str]]:
    outputs: dict[str, list[str]] = {}
    lines = iter(path.read_text().splitlines())
    for line in lines:
        name, _, delimiter = line.partition("<<")
        values = []
        for value in lines:
            if value == delimiter:
                break
            values.append(value)
        outputs[name] = values
    return outputs


def _tree_size(server) -> int:
    """Entries in the server's v1 and v2 logs together (a file is signed into v2 by default)."""
    v1 = requests.get(f"{server.url}/api/v1/log", timeout=30).json()["treeSize"]
    v2 = requests.get(f"{server.url}/api/v2/checkpoint", timeout=30).text.splitlines()[1]
    return int(v1) + int(v2)


def test_the_action_signs_and_attests_a_file_and_an_image(server, registry, pusher, tmp_path):
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"built by the release workflow")
    image = pusher.push_image("gha/app", "v1.0.0", seed="action image")
    outputs = tmp_path / "github_output"
    seen: list[str] = []
    size = _tree_size(server)
    with serve_wsgi(_token_service(server, seen)) as token_url:
        result = _run_action(
            {
                "ACTIONS_ID_TOKEN_REQUEST_URL": f"{token_url}/token",
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
                "GITHUB_OUTPUT": str(outputs),
                "GITHUB_SERVER_URL": "https://github.com",
                "KEYLESS_SUBJECTS": f"{artifact}\n{image.reference}\n",
                "KEYLESS_SERVER": server.url,
                "KEYLESS_ATTEST_PROVENANCE": "true",
                "KEYLESS_ALLOW_INSECURE_REGISTRY": "true",
            },
            tmp_path,
        )
    assert result.returncode == 0, result.stderr
    assert seen == ["sigstore"]  # one token for the whole step, with the sigstore audience
    # file: signature + provenance; image: bundle + cosign v2 signature + provenance
    assert _tree_size(server) == size + 5
    pinned = f"{registry.host}/gha/app@{image.digest}"
    assert _outputs(outputs) == {
        "bundles": [f"{artifact}.sigstore.json"],
        "images": [pinned],
        "attestations": [f"{artifact}.intoto.jsonl"],
    }
    identity = f"https://github.com/{WORKFLOW_REF}"
    github = [
        "--certificate-identity",
        identity,
        "--certificate-oidc-issuer",
        f"{server.url}/oidc/github",
        "--certificate-github-workflow-name",
        "Release",
        "--certificate-github-workflow-trigger",
        "push",
        "--certificate-github-workflow-ref",
        "refs/tags/v1.0.0",
    ]
    assert main(["verify", "--server", server.url, *github, str(artifact)]) == 0
    shortcut = [
        "--repo",
        "acme/app",
        "--signer-workflow",
        "acme/app/.github/workflows/release.yml",
        "--certificate-oidc-issuer",
        f"{server.url}/oidc/github",
        "--type",
        "slsaprovenance1",
    ]
    for target in (str(artifact), pinned):
        extra = ["--allow-insecure-registry"] if target == pinned else []
        assert main(["verify-attestation", "--server", server.url, *shortcut, *extra, target]) == 0


def test_the_provenance_matches_attest_build_provenance(server, tmp_path, capsys):
    artifact = tmp_path / "dist.whl"
    artifact.write_bytes(b"wheel")
    seen: list[str] = []
    with serve_wsgi(_token_service(server, seen)) as token_url:
        result = _run_action(
            {
                "ACTIONS_ID_TOKEN_REQUEST_URL": f"{token_url}/token",
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
                "KEYLESS_SUBJECTS": str(artifact),
                "KEYLESS_SERVER": server.url,
                "KEYLESS_ATTEST_PROVENANCE": "true",
            },
            tmp_path,
        )
    assert result.returncode == 0, result.stderr
    flags = ["--repo", "acme/app", "--certificate-oidc-issuer", f"{server.url}/oidc/github"]
    capsys.readouterr()
    assert (
        main(["verify-attestation", "--server", server.url, *flags, "-o", "json", str(artifact)])
        == 0
    )
    (attestation,) = json.loads(capsys.readouterr().out)["attestations"]
    predicate = attestation["statement"]["predicate"]
    claims = server.issuer.github_claims(
        repository="acme/app", workflow="release.yml", ref="refs/tags/v1.0.0"
    )
    assert predicate == {
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {
                "workflow": {
                    "ref": "refs/tags/v1.0.0",
                    "repository": "https://github.com/acme/app",
                    "path": ".github/workflows/release.yml",
                }
            },
            "internalParameters": {
                "github": {
                    "event_name": "push",
                    "repository_id": claims["repository_id"],
                    "repository_owner_id": claims["repository_owner_id"],
                    "runner_environment": "github-hosted",
                }
            },
            "resolvedDependencies": [
                {
                    "uri": "git+https://github.com/acme/app@refs/tags/v1.0.0",
                    "digest": {"gitCommit": claims["sha"]},
                }
            ],
        },
        "runDetails": {
            "builder": {"id": f"https://github.com/{WORKFLOW_REF}"},
            "metadata": {"invocationId": "https://github.com/acme/app/actions/runs/1/attempts/1"},
        },
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ACTIONS_ID_TOKEN_REQUEST_URL": "http://127.0.0.1:9/token"},
            "GitHub Actions did not provide an identity token",
        ),
        ({"KEYLESS_SUBJECTS": ""}, "the subjects input lists no file or image"),
        ({"KEYLESS_ATTEST_PROVENANCE": "yes"}, "attest-provenance must be true or false"),
        ({"KEYLESS_PREDICATE_PATH": "sbom.json"}, "predicate-path and predicate-type go together"),
        (
            {"KEYLESS_SUBJECTS": "--server=http://evil.example"},
            "starts with '-'; prefix a path with ./",
        ),
        (
            {"KEYLESS_KEY": "env://COSIGN_PRIVATE_KEY", "KEYLESS_ATTEST_PROVENANCE": "true"},
            "attest-provenance builds the provenance from the job's OIDC token, also when "
            "signing with a key: GitHub Actions did not provide an identity token",
        ),
    ],
    ids=["no-token", "no-subjects", "bad-flag", "half-predicate", "option-subject", "key-no-token"],
)
def test_refusals_are_one_annotation_and_log_nothing(server, tmp_path, env, message):
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"a")
    size = _tree_size(server)
    result = _run_action(
        {"KEYLESS_SUBJECTS": str(artifact), "KEYLESS_SERVER": server.url, **env}, tmp_path
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("::error")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert _tree_size(server) == size
    assert not (tmp_path / "a.bin.sigstore.json").exists()


def test_the_action_attests_a_given_predicate(server, tmp_path, capsys):
    artifact = tmp_path / "dist.tar.gz"
    artifact.write_bytes(b"dist")
    sbom = tmp_path / "sbom.cdx.json"
    sbom.write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.5"}))
    with serve_wsgi(_token_service(server, [])) as token_url:
        result = _run_action(
            {
                "ACTIONS_ID_TOKEN_REQUEST_URL": f"{token_url}/token",
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
                "KEYLESS_SUBJECTS": str(artifact),
                "KEYLESS_SERVER": server.url,
                "KEYLESS_PREDICATE_PATH": str(sbom),
                "KEYLESS_PREDICATE_TYPE": "cyclonedx",
            },
            tmp_path,
        )
    assert result.returncode == 0, result.stderr
    flags = ["--repo", "acme/app", "--certificate-oidc-issuer", f"{server.url}/oidc/github"]
    capsys.readouterr()
    verify = ["verify-attestation", "--server", server.url, *flags, "-o", "json"]
    assert main([*verify, "--type", "cyclonedx", str(artifact)]) == 0
    (attestation,) = json.loads(capsys.readouterr().out)["attestations"]
    assert attestation["statement"]["predicate"] == {"bomFormat": "CycloneDX", "specVersion": "1.5"}
    # no provenance was asked for
    assert main([*verify, "--type", "slsaprovenance1", str(artifact)]) == 1


def _key_secrets(password: str) -> tuple[dict[str, str], bytes]:
    """A cosign key pair as a vendor keeps it in CI secrets: the encrypted key and its
    password as the step's environment, and the public key customers pin."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from keyless.client.keys.encrypted import encrypt_private_key

    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    secrets = {
        "COSIGN_PRIVATE_KEY": encrypt_private_key(key, b"vendor-secret").decode(),
        "COSIGN_PASSWORD": password,
        "KEYLESS_KEY": "env://COSIGN_PRIVATE_KEY",
    }
    return secrets, public


def test_the_action_signs_with_a_key_from_secrets(server, registry, pusher, tmp_path, capsys):
    """`key: env://COSIGN_PRIVATE_KEY` with COSIGN_PASSWORD: a file and an image signed and
    attested with the key, logged, with no OIDC token at all (no id-token permission)."""
    secrets, public = _key_secrets("vendor-secret")
    (tmp_path / "release.pub").write_bytes(public)
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"vendor release")
    image = pusher.push_image("gha/keyed", "v2.0.0", seed="action key image")
    sbom = tmp_path / "sbom.cdx.json"
    sbom.write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.5"}))
    outputs = tmp_path / "github_output"
    size = _tree_size(server)
    result = _run_action(
        {
            **secrets,
            "GITHUB_OUTPUT": str(outputs),
            "KEYLESS_SUBJECTS": f"{artifact}\n{image.reference}",
            "KEYLESS_SERVER": server.url,
            "KEYLESS_PREDICATE_PATH": str(sbom),
            "KEYLESS_PREDICATE_TYPE": "cyclonedx",
            "KEYLESS_ALLOW_INSECURE_REGISTRY": "true",
        },
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    # file: signature + attestation; image: bundle + cosign v2 signature + attestation
    assert _tree_size(server) == size + 5
    pinned = f"{registry.host}/gha/keyed@{image.digest}"
    assert _outputs(outputs) == {
        "bundles": [f"{artifact}.sigstore.json"],
        "images": [pinned],
        "attestations": [f"{artifact}.intoto.jsonl"],
    }
    key = ["--key", str(tmp_path / "release.pub")]
    capsys.readouterr()
    verify = ["verify", "--server", server.url, "--allow-insecure-registry", "-o", "json", *key]
    for target in (str(artifact), pinned):
        assert main([*verify, target]) == 0
        signatures = json.loads(capsys.readouterr().out)["signatures"]
        assert {s["key"] for s in signatures} == {str(tmp_path / "release.pub")}
        assert all(s["log"]["index"] is not None for s in signatures)
    attested = ["verify-attestation", "--server", server.url, "--allow-insecure-registry", *key]
    for target in (str(artifact), pinned):
        assert main([*attested, "--type", "cyclonedx", target]) == 0


def test_a_wrong_key_password_signs_nothing(server, tmp_path):
    secrets, _ = _key_secrets("not-the-password")
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"a")
    size = _tree_size(server)
    result = _run_action(
        {**secrets, "KEYLESS_SUBJECTS": str(artifact), "KEYLESS_SERVER": server.url}, tmp_path
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert (
        "error: cannot decrypt $COSIGN_PRIVATE_KEY: wrong password, or the file was altered"
        in result.stderr.splitlines()
    )
    assert _tree_size(server) == size
    assert not (tmp_path / "a.bin.sigstore.json").exists()

"""ClusterImagePolicy `attestations[]` judged by the one evaluator: an image attested by alice
with SLSA provenance (`keyless attest`, stored as a cosign v3 referrer in docker-registry),
checked with `keyless policy check` against Rego policies in policy-controller's convention."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests

from keyless.cli.main import main
from tests.registry import Pusher

ALICE = "alice@example.com"
BOB = "bob@example.com"
SLSA_V1 = "https://slsa.dev/provenance/v1"
WORKFLOW_BUILD = "https://actions.github.io/buildtypes/workflow/v1"
PROVENANCE = {
    "buildDefinition": {"buildType": WORKFLOW_BUILD, "externalParameters": {}},
    "runDetails": {"builder": {"id": "https://github.com/acme/app/.github/workflows/r.yml"}},
}
REQUIRE_WORKFLOW_BUILD = f"""
package sigstore
default isCompliant = false
isCompliant {{
  input.predicateType == "{SLSA_V1}"
  input.predicate.buildDefinition.buildType == "{WORKFLOW_BUILD}"
}}
"""
REQUIRE_OTHER_BUILD = """
package sigstore
isCompliant = {"result": false, "error": "built outside the release workflow"} {
  input.predicate.buildDefinition.buildType != "https://example.com/other"
}
"""


def _policy(server, email: str, rego: str | None, *, kind: str = "slsaprovenance1") -> str:
    attestation = f"      - name: provenance\n        predicateType: {kind}\n"
    if rego is not None:
        body = "\n".join("            " + line for line in rego.strip().splitlines())
        attestation += f"        policy:\n          type: rego\n          data: |\n{body}\n"
    return f"""
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata:
  name: provenance
spec:
  images:
  - glob: "**"
  authorities:
  - name: release
    keyless:
      url: {server.url}
      trustRootRef: keyless-dev
      identities:
      - issuer: {server.url}/oidc
        subject: {email}
    attestations:
{attestation}"""


@pytest.fixture(scope="module")
def trust(server, tmp_path_factory) -> str:
    response = requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=30)
    path = tmp_path_factory.mktemp("trust") / "trusted_root.json"
    path.write_bytes(response.content)
    return f"keyless-dev={path}"


@pytest.fixture
def attested(server, registry, pusher: Pusher, tmp_path: Path, capsys, request):
    """An image signed and attested (SLSA v1 provenance) by alice."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    image = pusher.push_image(f"attested/{name}", "1.0", seed=request.node.name)
    predicate = tmp_path / "provenance.json"
    predicate.write_text(json.dumps(PROVENANCE))
    token = server.email_token(ALICE)
    assert (
        main(
            [
                "attest",
                "--server",
                server.url,
                "--identity-token",
                token,
                "--allow-insecure-registry",
                "--predicate",
                str(predicate),
                "--type",
                "slsaprovenance1",
                image.reference,
            ]
        )
        == 0
    )
    capsys.readouterr()
    return image


def _check(tmp_path: Path, trust: str, text: str, image: str) -> int:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return main(
        [
            "policy",
            "check",
            "--allow-insecure-registry",
            "--policy",
            str(path),
            "--trust-root",
            trust,
            image,
        ]
    )


def _said(capsys) -> str:
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_attested_by_alice_and_allowed_by_the_policy(
    server, attested, trust, tmp_path, capsys
) -> None:
    policy = _policy(server, ALICE, REQUIRE_WORKFLOW_BUILD)
    assert _check(tmp_path, trust, policy, attested.reference) == 0
    out = _said(capsys)
    assert out.startswith("PASS ")
    assert (
        f"(provenance/release: attested: provenance ({SLSA_V1}) by {ALICE} "
        f"({server.url}/oidc))" in out
    )


def test_a_policy_that_refuses_names_its_reason(server, attested, trust, tmp_path, capsys):
    policy = _policy(server, ALICE, REQUIRE_OTHER_BUILD)
    assert _check(tmp_path, trust, policy, attested.reference) == 1
    out = _said(capsys)
    assert "provenance/release: attestation provenance: verification failed (policy)" in out
    assert "built outside the release workflow" in out


def test_attested_by_someone_else(server, attested, trust, tmp_path, capsys) -> None:
    assert _check(tmp_path, trust, _policy(server, BOB, None), attested.reference) == 1
    out = _said(capsys)
    assert "provenance/release: attestation provenance: verification failed (identity)" in out
    assert f"the policy wants {BOB} ({server.url}/oidc)" in out


def test_a_signature_is_not_an_attestation(
    server, registry, pusher: Pusher, trust, tmp_path, capsys
) -> None:
    image = pusher.push_image("attested/signed-only", "1.0", seed="signed-only")
    token = server.email_token(ALICE)
    argv = ["sign", "--server", server.url, "--identity-token", token, "--allow-insecure-registry"]
    assert main([*argv, image.reference]) == 0
    capsys.readouterr()
    assert _check(tmp_path, trust, _policy(server, ALICE, None), image.reference) == 1
    out = _said(capsys)
    assert "provenance/release: attestation provenance: no attestations found for sha256:" in out


def test_another_predicate_type_is_not_enough(server, attested, trust, tmp_path, capsys):
    policy = _policy(server, ALICE, None, kind="spdxjson")
    assert _check(tmp_path, trust, policy, attested.reference) == 1
    out = _said(capsys)
    assert "verification failed (type)" in out
    assert "https://spdx.dev/Document" in out


@pytest.mark.parametrize(
    ("policy", "problem"),
    [
        ("      type: cue\n      data: 'x: 1'\n", "CUE policies are not supported (Rego only)"),
        (
            "      type: rego\n      remote:\n        url: https://example.com/p.rego\n",
            "policies are read from the file only",
        ),
        ("      type: rego\n      data: 'package sigstore\\nallow {'\n", "does not compile"),
    ],
)
def test_policies_we_cannot_honour_are_refused_at_load(
    server, trust, tmp_path, capsys, policy: str, problem: str
) -> None:
    text = _policy(server, ALICE, None).replace(
        "        predicateType: slsaprovenance1\n",
        "        predicateType: slsaprovenance1\n        policy:\n"
        + "\n".join("    " + line for line in policy.splitlines())
        + "\n",
    )
    assert _check(tmp_path, trust, text, "registry.example/app@sha256:" + "a" * 64) == 2
    err = capsys.readouterr().err
    assert "spec.authorities[0].attestations[0].policy" in err
    assert problem in err

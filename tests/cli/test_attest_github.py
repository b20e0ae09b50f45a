"""GitHub artifact attestations (real bundles from the GitHub CLI's test data, provenance in
tests/data/github-cli/README.md) verified offline against the embedded public-good root, with
`gh attestation verify`'s shortcuts expanded to anchored identity, issuer and source checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyless.cli.main import main

DATA = Path(__file__).resolve().parents[1] / "data" / "github-cli"
REUSABLE = DATA / "reusable-workflow-attestation.sigstore.json"
REUSABLE_ARTIFACT = DATA / "reusable-workflow-artifact"
CUSTOM = DATA / "custom-issuer.sigstore.json"
CUSTOM_ARTIFACT = DATA / "custom-issuer-artifact"
SIGNER = "github/artifact-attestations-workflows/.github/workflows/attest.yml"
SIGNER_SAN = (
    "https://github.com/github/artifact-attestations-workflows/.github/workflows/attest.yml"
    "@09b495c3f12c7881b3cc17209a327792065c1a1d"
)
HAMMER_TIME = "https://token.actions.githubusercontent.com/hammer-time"


def _verify(bundle: Path, artifact: Path, *flags: str) -> int:
    return main(["verify-attestation", "--bundle", str(bundle), *flags, str(artifact)])


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0].removeprefix("error: ")


def test_reusable_workflow_provenance_verifies_with_repo_and_signer_workflow(capsys) -> None:
    flags = ["--repo", "malancas/attest-demo", "--signer-workflow", SIGNER]
    assert (
        _verify(REUSABLE, REUSABLE_ARTIFACT, *flags, "--type", "slsaprovenance1", "-o", "json") == 0
    )
    out = json.loads(capsys.readouterr().out)
    (attestation,) = out["attestations"]
    assert attestation["identity"] == SIGNER_SAN
    assert attestation["issuer"] == "https://token.actions.githubusercontent.com"
    assert attestation["logIndex"] == 96764485
    statement = attestation["statement"]
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert statement["predicate"]["buildDefinition"]["externalParameters"]["workflow"] == {
        "ref": "refs/heads/main",
        "repository": "https://github.com/malancas/attest-demo",
        "path": ".github/workflows/shared.yml",
    }


def test_owner_with_signer_workflow_verifies(capsys) -> None:
    assert (
        _verify(REUSABLE, REUSABLE_ARTIFACT, "--owner", "malancas", "--signer-workflow", SIGNER)
        == 0
    )
    assert "Verified OK" in capsys.readouterr().err


def test_repo_alone_requires_the_signer_workflow_in_that_repo(capsys) -> None:
    assert _verify(REUSABLE, REUSABLE_ARTIFACT, "--repo", "malancas/attest-demo") == 1
    assert _error(capsys) == (
        f'verification failed (identity): certificate identity "{SIGNER_SAN}" does not match '
        'the anchored regexp "https://github\\\\.com/malancas/attest\\\\-demo/.+"'
    )


def test_another_source_repository_or_owner_is_refused(capsys) -> None:
    assert (
        _verify(REUSABLE, REUSABLE_ARTIFACT, "--repo", "acme/app", "--signer-workflow", SIGNER) == 1
    )
    assert _error(capsys) == (
        "verification failed (source-repository): certificate source-repository "
        '"https://github.com/malancas/attest-demo" does not match expected "https://github.com/acme/app"'
    )
    assert _verify(REUSABLE, REUSABLE_ARTIFACT, "--owner", "acme", "--signer-workflow", SIGNER) == 1
    assert _error(capsys) == (
        "verification failed (source-repository-owner): certificate source-repository-owner "
        '"https://github.com/malancas" does not match expected "https://github.com/acme"'
    )


def test_signer_workflow_is_anchored_at_the_ref(capsys) -> None:
    """A prefix of the workflow path must not match: the pattern ends in `@<ref>`."""
    prefix = SIGNER.removesuffix(".yml")
    assert (
        _verify(REUSABLE, REUSABLE_ARTIFACT, "--owner", "malancas", "--signer-workflow", prefix)
        == 1
    )
    assert _error(capsys).startswith("verification failed (identity): ")


def test_enterprise_issuer_needs_the_issuer_flag(capsys) -> None:
    assert _verify(CUSTOM, CUSTOM_ARTIFACT, "--owner", "too-legit") == 1
    assert _error(capsys) == (
        f'verification failed (issuer): certificate OIDC issuer "{HAMMER_TIME}" does not match '
        'expected "https://token.actions.githubusercontent.com"'
    )
    flags = ["--repo", "too-legit/attest", "--certificate-oidc-issuer", HAMMER_TIME]
    assert _verify(CUSTOM, CUSTOM_ARTIFACT, *flags) == 0


def test_github_workflow_claim_flags_apply_with_the_shortcuts(capsys) -> None:
    flags = ["--repo", "too-legit/attest", "--certificate-oidc-issuer", HAMMER_TIME]
    trigger = ["--certificate-github-workflow-trigger", "push"]
    assert _verify(CUSTOM, CUSTOM_ARTIFACT, *flags, *trigger) == 1
    assert _error(capsys) == (
        "verification failed (github-workflow-trigger): certificate github-workflow-trigger "
        '"workflow_dispatch" does not match expected "push"'
    )
    name = ["--certificate-github-workflow-name", "Attestation Integration Test"]
    assert _verify(CUSTOM, CUSTOM_ARTIFACT, *flags, *name) == 0


def test_an_attestation_for_another_artifact_is_refused(capsys) -> None:
    flags = ["--repo", "malancas/attest-demo", "--signer-workflow", SIGNER]
    assert _verify(REUSABLE, CUSTOM_ARTIFACT, *flags) == 1
    assert _error(capsys).startswith(
        "verification failed (dsse): artifact sha256:afa27b44d43b02a9fea41d13cedc2e4016cfcf87c5dbf990e593669aa8ce286d "
        "is not a subject of the in-toto statement"
    )


def test_a_rego_policy_over_github_provenance(tmp_path, capsys) -> None:
    policy = tmp_path / "source.rego"
    policy.write_text(
        "package signature\n"
        "import rego.v1\n"
        "workflow := input.predicate.buildDefinition.externalParameters.workflow\n"
        "allow if {\n"
        '    workflow.repository == "https://github.com/malancas/attest-demo"\n'
        '    workflow.ref == "refs/heads/main"\n'
        "}\n"
        'deny contains sprintf("built from %s@%s", [workflow.repository, workflow.ref]) if not allow\n'
    )
    flags = ["--repo", "malancas/attest-demo", "--signer-workflow", SIGNER, "--policy", str(policy)]
    assert _verify(REUSABLE, REUSABLE_ARTIFACT, *flags) == 0
    flags = [
        "--repo",
        "too-legit/attest",
        "--certificate-oidc-issuer",
        HAMMER_TIME,
        "--policy",
        str(policy),
    ]
    assert _verify(CUSTOM, CUSTOM_ARTIFACT, *flags) == 1
    assert _error(capsys) == (
        "verification failed (policy): policy source.rego denies: built from "
        "https://github.com/too-legit/attest@refs/heads/main"
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--owner", "acme/app"], "--owner 'acme/app' is not a GitHub user or organisation name"),
        (["--repo", "acme"], "--repo 'acme' is not OWNER/REPO"),
        (["--repo", "acme/.."], "--repo 'acme/..' is not OWNER/REPO"),
        (
            ["--owner", "acme", "--signer-workflow", "acme/app"],
            "--signer-workflow 'acme/app' is not [HOST/]OWNER/REPO/PATH",
        ),
        (
            ["--owner", "acme", "--signer-workflow", "acme/app/../x.yml"],
            "is not [HOST/]OWNER/REPO/PATH",
        ),
        (
            ["--owner", "acme", "--repo", "acme/app"],
            "argument --repo: not allowed with argument --owner",
        ),
    ],
)
def test_malformed_shortcuts_are_usage_errors(flags, message, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _verify(REUSABLE, REUSABLE_ARTIFACT, *flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_private_repository_attestation_needs_githubs_log_less_root(capsys) -> None:
    """GitHub's private-repository instance logs nothing (RFC 3161 timestamps only). The
    bundle now parses, and under the embedded public-good root, which lists logs, it is refused
    with one line saying what would verify it; under a root that lists no log and its TSA it
    verifies (tests/cli/test_reference_agreement.py, with forged material: GitHub's own trusted
    root of that time is not in this repository)."""
    bundle = DATA / "github_provenance_demo-0.0.12-py3-none-any-bundle.jsonl"
    artifact = DATA / "github_provenance_demo-0.0.12-py3-none-any.whl"
    assert _verify(bundle, artifact, "--owner", "malancas") == 1
    assert _error(capsys) == (
        "verification failed (log-entry): the bundle has no transparency log entry, only "
        "RFC 3161 timestamps, and the trusted root lists transparency logs; only the root of a "
        "log-less instance (no logs, a TSA) verifies such a bundle"
    )

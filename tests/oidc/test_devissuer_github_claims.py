"""The development issuer's GitHub Actions tokens carry the claims GitHub sets, shaped as GitHub
sets them (docs.github.com "OpenID Connect reference", the example token there), and map to
Fulcio's certificate extensions as for a real token (fulcio.md §3, github-workflow)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from keyless.oidc.devissuer import DevIssuerError

# Every claim of GitHub's documented example token, beyond the JWT registered ones.
GITHUB_CLAIMS = {
    "sub", "environment", "ref", "sha", "repository", "repository_owner", "actor_id",
    "repository_visibility", "repository_id", "repository_owner_id", "run_id", "run_number",
    "run_attempt", "runner_environment", "actor", "workflow", "head_ref", "base_ref",
    "event_name", "ref_type", "job_workflow_ref", "workflow_ref", "workflow_sha",
    "job_workflow_sha", "ref_protected",
}  # fmt: skip


def test_claims_are_shaped_as_github_sets_them(dev_issuer) -> None:
    claims = dev_issuer.github_claims(
        repository="acme/app",
        workflow="release.yml",
        workflow_name="Release",
        ref="refs/tags/v1.2.0",
        sha="0123456789abcdef0123456789abcdef01234567",
        event_name="release",
        environment="prod",
    )
    assert set(claims) == GITHUB_CLAIMS
    assert claims["workflow"] == "Release"  # the display name, not the file
    assert claims["workflow_ref"] == "acme/app/.github/workflows/release.yml@refs/tags/v1.2.0"
    assert claims["job_workflow_ref"] == claims["workflow_ref"]
    assert claims["sha"] == claims["workflow_sha"] == claims["job_workflow_sha"]
    assert claims["sha"] == "0123456789abcdef0123456789abcdef01234567"
    assert claims["ref_type"] == "tag"
    assert claims["event_name"] == "release"
    assert claims["runner_environment"] == "github-hosted"
    assert claims["sub"] == "repo:acme/app:environment:prod"
    for name in ("repository_id", "repository_owner_id", "actor_id", "run_id", "run_attempt"):
        assert re.fullmatch(r"[1-9][0-9]*", claims[name]), name
    assert claims["repository_id"] != claims["repository_owner_id"]


def test_an_unnamed_workflow_is_named_by_its_path(dev_issuer) -> None:
    claims = dev_issuer.github_claims(
        repository="acme/app", workflow="ci.yml", ref="refs/heads/main"
    )
    assert claims["workflow"] == ".github/workflows/ci.yml"
    assert claims["sub"] == "repo:acme/app:ref:refs/heads/main"
    assert re.fullmatch(r"[0-9a-f]{40}", claims["sha"])
    same = dev_issuer.github_claims(
        repository="acme/app", workflow=".github/workflows/ci.yml", ref="refs/heads/main"
    )
    assert same == claims


def test_a_reusable_workflow_is_the_job_workflow(dev_issuer) -> None:
    shared = "acme/ci/.github/workflows/build.yml@refs/tags/v3"
    claims = dev_issuer.github_claims(
        repository="acme/app",
        workflow="release.yml",
        ref="refs/heads/main",
        job_workflow_ref=shared,
        event_name="pull_request",
    )
    assert claims["job_workflow_ref"] == shared
    assert claims["workflow_ref"] == "acme/app/.github/workflows/release.yml@refs/heads/main"
    assert claims["job_workflow_sha"] != claims["workflow_sha"]
    assert claims["sub"] == "repo:acme/app:pull_request"


def test_certificate_extensions_follow_fulcios_github_mapping(server) -> None:
    """A token from the dev issuer through the real authenticator: SAN and extensions."""
    issuer = server.issuer
    token = issuer.mint(
        issuer.github_claims(
            repository="acme/app",
            workflow="release.yml",
            workflow_name="Release",
            ref="refs/heads/main",
            job_workflow_ref="acme/ci/.github/workflows/build.yml@refs/tags/v3",
            runner_environment="self-hosted",
        ),
        issuer_url=issuer.github_issuer_url,
        now=datetime.now(UTC),
    )
    principal = server.authenticator.authenticate(token, now=datetime.now(UTC))
    assert (
        principal.san_value == "https://github.com/acme/ci/.github/workflows/build.yml@refs/tags/v3"
    )
    extensions = principal.extensions
    assert extensions[4] == "Release"
    assert extensions[5] == "acme/app"
    assert extensions[9] == principal.san_value
    assert extensions[11] == "self-hosted"
    assert extensions[12] == "https://github.com/acme/app"
    assert extensions[16] == "https://github.com/acme"
    assert (
        extensions[18]
        == "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
    )
    assert extensions[21] == "https://github.com/acme/app/actions/runs/1/attempts/1"
    assert re.fullmatch(r"[0-9]+", extensions[15]) and re.fullmatch(r"[0-9]+", extensions[17])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"repository": "acme"}, "repository must look like owner/name"),
        ({"repository": "acme/app/x"}, "repository must look like owner/name"),
        ({"workflow": "src/release.yml"}, "workflow must be a file under .github/workflows/"),
        ({"workflow": "release.yml@main"}, "workflow must be a file under .github/workflows/"),
        ({"sha": "abc"}, "sha must be 40 lowercase hex digits"),
        (
            {"runner_environment": "cloud"},
            "runner_environment must be github-hosted or self-hosted",
        ),
        ({"visibility": "secret"}, "visibility must be public, private or internal"),
    ],
)
def test_malformed_github_options_are_refused(dev_issuer, options, message) -> None:
    base = {"repository": "acme/app", "workflow": "release.yml", "ref": "refs/heads/main"}
    with pytest.raises(DevIssuerError) as info:
        dev_issuer.github_claims(**{**base, **options})
    assert message in str(info.value)

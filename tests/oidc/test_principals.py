"""Claims -> principal for every issuer type, using Fulcio's principal test cases (fulcio.md §7)."""

from __future__ import annotations

from typing import Any

import pytest

from keyless.oidc import PrincipalError, SANType, TokenError, parse_issuers
from keyless.oidc.principals import principal_from_claims


def _issuer(url: str, **settings: Any):
    entry = {"issuer": url, **settings}
    lines = "\n".join(f"    {key}: {value!r}" for key, value in entry.items() if key != "issuer")
    return parse_issuers(f"issuers:\n  - issuer: {url!r}\n{lines}\n", source="test").issuers[0]


def _principal(url: str, claims: dict[str, Any], **settings: Any):
    return principal_from_claims({"iss": url, **claims}, _issuer(url, **settings))


EMAIL_ISSUER = "https://email.example.com"


def test_email() -> None:
    principal = _principal(
        EMAIL_ISSUER,
        {"sub": "doesntmatter", "email": "alice@example.com", "email_verified": True},
        type="email",
    )
    assert principal.san_type is SANType.EMAIL
    assert principal.san_value == "alice@example.com"
    assert principal.challenge == "alice@example.com"
    assert dict(principal.extensions) == {1: EMAIL_ISSUER, 8: EMAIL_ISSUER, 24: "doesntmatter"}


def test_email_verified_as_string_is_accepted() -> None:
    claims = {"sub": "s", "email": "alice@example.com", "email_verified": "true"}
    assert _principal(EMAIL_ISSUER, claims, type="email").san_value == "alice@example.com"


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        (
            {"email": "alice@example.com", "email_verified": False},
            "email is not verified (email_verified is false)",
        ),
        ({"email": "alice@example.com"}, "email is not verified (email_verified is null)"),
        ({"email_verified": True}, 'token has no "email" claim (a non-empty string)'),
        (
            {"email": "foo.com", "email_verified": True},
            'email claim "foo.com" is not an email address',
        ),
    ],
    ids=["unverified", "verified-missing", "email-missing", "not-an-email"],
)
def test_email_refusals(claims: dict[str, Any], detail: str) -> None:
    with pytest.raises(TokenError) as info:
        _principal(EMAIL_ISSUER, {"sub": "s", **claims}, type="email")
    assert info.value.message == "There was an error processing the identity token"
    assert info.value.detail == detail


def test_email_skip_verification() -> None:
    principal = _principal(
        EMAIL_ISSUER,
        {"sub": "s", "email": "a@example.com"},
        type="email",
        **{"skip-email-verification": True},
    )
    assert principal.san_value == "a@example.com"


def test_email_with_issuer_claim() -> None:
    claims = {
        "sub": "s",
        "email": "a@example.com",
        "email_verified": True,
        "federated": {"issuer": "https://example.com"},
    }
    principal = _principal(
        "https://dex.other.com", claims, type="email", **{"issuer-claim": "$.federated.issuer"}
    )
    assert principal.extensions[1] == principal.extensions[8] == "https://example.com"
    with pytest.raises(TokenError) as info:
        _principal(
            "https://dex.other.com",
            {**claims, "federated": {}},
            type="email",
            **{"issuer-claim": "$.federated.issuer"},
        )
    assert info.value.detail == "token has no claim at $.federated.issuer"


USERNAME = {"type": "username", "subject-domain": "example.com"}


def test_username() -> None:
    principal = _principal("https://accounts.example.com", {"sub": "alice"}, **USERNAME)
    assert principal.san_type is SANType.OTHERNAME
    assert principal.san_value == "alice!example.com"
    assert principal.challenge == "alice"


@pytest.mark.parametrize("subject", ["alice!", "alice@example.com"], ids=["bang", "email"])
def test_username_refusals(subject: str) -> None:
    with pytest.raises(TokenError):
        _principal("https://accounts.example.com", {"sub": subject}, **USERNAME)


URI = {"type": "uri", "subject-domain": "https://example.com"}


def test_uri() -> None:
    principal = _principal(
        "https://issuer.example.com", {"sub": "https://example.com/users/1"}, **URI
    )
    assert (principal.san_type, principal.san_value) == (SANType.URI, "https://example.com/users/1")


@pytest.mark.parametrize(
    "subject",
    ["http://example.com/users/1", "https://other.com/users/1", "a@example.com"],
    ids=["scheme-mismatch", "host-mismatch", "email"],
)
def test_uri_refusals(subject: str) -> None:
    with pytest.raises(TokenError):
        _principal("https://issuer.example.com", {"sub": subject}, **URI)


SPIFFE = {"type": "spiffe", "spiffe-trust-domain": "example.com"}


def test_spiffe() -> None:
    principal = _principal(
        "https://spiffe.example.com", {"sub": "spiffe://example.com/foo/bar"}, **SPIFFE
    )
    assert principal.san_value == "spiffe://example.com/foo/bar"


@pytest.mark.parametrize(
    ("subject", "detail"),
    [
        (
            "spiffe://foo.example.com/bar",
            'SPIFFE ID trust domain "foo.example.com" is not "example.com"',
        ),
        ("not-a-spiffe-id", 'sub "not-a-spiffe-id" is not a SPIFFE ID'),
        ("spiffe://example.com/../x", 'sub "spiffe://example.com/../x" is not a SPIFFE ID'),
    ],
    ids=["other-domain", "not-spiffe", "dot-dot"],
)
def test_spiffe_refusals(subject: str, detail: str) -> None:
    with pytest.raises(TokenError) as info:
        _principal("https://spiffe.example.com", {"sub": subject}, **SPIFFE)
    assert info.value.detail == detail


def test_kubernetes() -> None:
    claims = {
        "sub": "system:serviceaccount:foo:baz",
        "kubernetes.io": {"namespace": "foo", "serviceaccount": {"name": "baz"}},
    }
    principal = _principal("https://k8s.example.com", claims, type="kubernetes")
    assert principal.san_value == "https://kubernetes.io/namespaces/foo/serviceaccounts/baz"
    assert principal.challenge == "system:serviceaccount:foo:baz"


def test_chainguard() -> None:
    principal = _principal(
        "https://issuer.enforce.dev", {"sub": "abc/def"}, type="chainguard-identity"
    )
    assert principal.san_value == "https://issuer.enforce.dev/abc/def"
    assert principal.extensions[8] == "https://issuer.enforce.dev"


GITHUB = "https://token.actions.githubusercontent.com"
GITHUB_CLAIMS = {
    "job_workflow_ref": "job/workflow/ref",
    "sha": "sha",
    "event_name": "trigger",
    "repository": "sigstore/fulcio",
    "workflow": "workflow",
    "ref": "refs/heads/main",
    "job_workflow_sha": "example-sha",
    "runner_environment": "cloud-hosted",
    "repository_id": "12345",
    "repository_owner": "username",
    "repository_owner_id": "345",
    "repository_visibility": "public",
    "workflow_ref": "sigstore/other/.github/workflows/foo.yaml@refs/heads/main",
    "workflow_sha": "example-sha-other",
    "run_id": "42",
    "run_attempt": "1",
    "sub": "repo:sigstore/fulcio:ref:refs/heads/main",
}
GITHUB_EXTENSIONS = {
    1: GITHUB,
    2: "trigger",
    3: "sha",
    4: "workflow",
    5: "sigstore/fulcio",
    6: "refs/heads/main",
    8: GITHUB,
    9: "https://github.com/job/workflow/ref",
    10: "example-sha",
    11: "cloud-hosted",
    12: "https://github.com/sigstore/fulcio",
    13: "sha",
    14: "refs/heads/main",
    15: "12345",
    16: "https://github.com/username",
    17: "345",
    18: "https://github.com/sigstore/other/.github/workflows/foo.yaml@refs/heads/main",
    19: "example-sha-other",
    20: "trigger",
    21: "https://github.com/sigstore/fulcio/actions/runs/42/attempts/1",
    22: "public",
    24: "repo:sigstore/fulcio:ref:refs/heads/main",
}


@pytest.mark.parametrize(
    "settings",
    [{"type": "github-workflow"}, {"type": "ci-provider", "ci-provider": "github-workflow"}],
    ids=["github-workflow-type", "ci-provider"],
)
def test_github_actions_fills_every_extension(settings: dict[str, str]) -> None:
    principal = _principal(GITHUB, GITHUB_CLAIMS, **settings)
    assert principal.san_value == "https://github.com/job/workflow/ref"
    assert principal.challenge == GITHUB_CLAIMS["sub"]
    assert dict(principal.extensions) == GITHUB_EXTENSIONS


def test_github_environment_claim_fills_extension_23() -> None:
    principal = _principal(
        GITHUB, {**GITHUB_CLAIMS, "environment": "production"}, type="github-workflow"
    )
    assert principal.extensions[23] == "production"


def test_github_missing_claim_is_refused_with_fulcio_text() -> None:
    claims = {k: v for k, v in GITHUB_CLAIMS.items() if k != "job_workflow_sha"}
    with pytest.raises(PrincipalError) as info:
        _principal(GITHUB, claims, type="github-workflow")
    assert info.value.message == "value <job_workflow_sha> not present in either claims or defaults"


GITLAB_CLAIMS = {
    "project_path": "cpanato/testing-cosign",
    "project_id": "42831435",
    "pipeline_source": "push",
    "pipeline_id": "757451528",
    "ci_config_ref_uri": "gitlab.com/cpanato/testing-cosign//.gitlab-ci.yml@refs/heads/main",
    "ci_config_sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
    "sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
    "namespace_path": "cpanato",
    "namespace_id": "1730270",
    "job_id": "3659681386",
    "ref": "main",
    "ref_type": "branch",
    "runner_environment": "gitlab-hosted",
    "runner_id": 1,
    "project_visibility": "public",
    "sub": "project_path:cpanato/testing-cosign:ref_type:branch:ref:main",
}


def test_gitlab() -> None:
    principal = _principal("https://gitlab.com", GITLAB_CLAIMS, type="gitlab-pipeline")
    config_uri = "https://gitlab.com/cpanato/testing-cosign//.gitlab-ci.yml@refs/heads/main"
    assert principal.san_value == config_uri
    ext = principal.extensions
    assert ext[9] == ext[18] == config_uri
    assert ext[10] == ext[19] == "714a629c0b401fdce83e847fc9589983fc6f46bc"
    assert ext[14] == "refs/heads/main"
    assert ext[12] == "https://gitlab.com/cpanato/testing-cosign"
    assert ext[16] == "https://gitlab.com/cpanato"
    assert ext[20] == "push"
    assert ext[21] == "https://gitlab.com/cpanato/testing-cosign/-/jobs/3659681386"
    assert ext[22] == "public"
    assert 23 not in ext


def test_buildkite() -> None:
    claims = {
        "organization_slug": "acme-inc",
        "pipeline_slug": "bash-example",
        "build_number": 7,
        "job_id": "j1",
        "runner_environment": "buildkite-hosted",
        "build_commit": "a" * 40,
        "build_source": "webhook",
        "sub": f"organization:acme-inc:pipeline:bash-example:ref:refs/heads/main:commit:{'a' * 40}:step:build",
    }
    principal = _principal("https://agent.buildkite.com", claims, type="buildkite-job")
    assert principal.san_value == "https://buildkite.com/acme-inc/bash-example"
    assert principal.extensions[21] == "https://buildkite.com/acme-inc/bash-example/builds/7#j1"


def test_codefresh() -> None:
    claims = {
        "account_id": "628a80b693a15c0f9c13ab75",
        "account_name": "test-codefresh",
        "pipeline_id": "65e6d5551e47e5bc243ca93f",
        "pipeline_name": "oidc-test/oidc-test-2",
        "workflow_id": "65e6ebe0bfbfa1782876165e",
        "scm_repo_url": "https://github.com/test-codefresh/fulcio",
        "scm_ref": "feat/codefresh-issuer",
        "runner_environment": "hybrid",
        "platform_url": "https://g.codefresh.io",
        "sub": "account:628a80b693a15c0f9c13ab75",
    }
    principal = _principal("https://oidc.codefresh.io", claims, type="codefresh-workflow")
    assert principal.san_value == (
        "https://g.codefresh.io/test-codefresh/oidc-test/oidc-test-2:"
        "628a80b693a15c0f9c13ab75/65e6d5551e47e5bc243ca93f"
    )
    ext = principal.extensions
    assert ext[9] == ext[21] == "https://g.codefresh.io/build/65e6ebe0bfbfa1782876165e"
    assert ext[18] == "https://g.codefresh.io/api/pipelines/65e6d5551e47e5bc243ca93f"
    assert (ext[12], ext[14], ext[11]) == (
        "https://github.com/test-codefresh/fulcio",
        "feat/codefresh-issuer",
        "hybrid",
    )

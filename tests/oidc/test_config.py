"""Loading trusted issuers: keyless's format, Fulcio's YAML and JSON, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from oidc import ConfigError, IssuerType, load_issuers, parse_issuers

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[2]


def test_fulcio_production_yaml_loads_as_is() -> None:
    issuers = load_issuers(DATA / "fulcio-production.yaml")
    assert len(issuers.issuers) == 15
    assert len(issuers.meta_issuers) == 6
    github = issuers.match("https://token.actions.githubusercontent.com")
    assert github is not None and github.type is IssuerType.CI_PROVIDER
    assert github.ci_provider is not None and github.ci_provider.name == "github-workflow"
    dex = issuers.match("https://oauth2.sigstore.dev/auth")
    assert dex is not None and dex.issuer_claim == "$.federated_claims.connector_id"


def test_fulcio_pascal_case_json_loads_as_is() -> None:
    issuers = load_issuers(DATA / "fulcio-minimal.json")
    email = issuers.match("https://issuer.example")
    assert email is not None and email.type is IssuerType.EMAIL and email.client_id == "sigstore"
    ci = issuers.match("https://ci.example.com")
    assert ci is not None and ci.ci_provider is not None
    assert sorted(ci.ci_provider.extensions) == [9, 13, 21]
    eks = issuers.match(
        "https://oidc.eks.us-west-2.amazonaws.com/id/B02C93B6A2D30341AD01E1B6D48164CB"
    )
    assert eks is not None and eks.type is IssuerType.KUBERNETES
    assert eks.url == "https://oidc.eks.us-west-2.amazonaws.com/id/B02C93B6A2D30341AD01E1B6D48164CB"


def test_keyless_example_config_loads() -> None:
    issuers = load_issuers(REPO / "config" / "issuers.yaml")
    assert issuers.match("https://token.actions.githubusercontent.com") is not None
    assert issuers.match("https://ci.example.com").ci_provider.name == "example-ci"


EKS = "https://oidc.eks.*.amazonaws.com/id/*"
CIRCLE = "https://oidc.circleci.com/org/*"


@pytest.mark.parametrize(
    ("pattern", "issuer", "matches"),
    [
        (EKS, "https://oidc.eks.us-west-2.amazonaws.com/id/B02C93B6A2D30341AD01E1B6D48164CB", True),
        (
            EKS,
            "https://oidc.eks.us.west.2.amazonaws.com/id/B02C93B6A2D30341AD01E1B6D48164CB",
            False,
        ),
        (
            EKS,
            "https://oidc.eks.us-west/2.amazonaws.com/id/B02C93B6A2D30341AD01E1B6D48164CB",
            False,
        ),
        (
            EKS,
            "http://localhost?issuer=https://oidc.eks.us-west-2.amazonaws.com/id/B02C93B6",
            False,
        ),
        (EKS, "https://oidc.eks.evil.com/../id/x", False),
        (EKS, "https://oidc.eks.x.amazonaws.com/id/y/extra", False),
        (EKS, "https://oidc.eks.x.amazonaws.com.evil.com/id/y", False),
        (EKS, "https://oidc.eks.x.amazonaws.com/id/y?x=1", False),
        (CIRCLE, "https://oidc.circleci.com/org/my-org", True),
        (CIRCLE, "https://oidc.circleci.com/org/my-org/extra", False),
        (CIRCLE, "https://oidc.circleci.com/org/", False),
    ],
    ids=[
        "eks",
        "dots-in-label",
        "slash-in-label",
        "query-smuggling",
        "dot-dot-segment",
        "extra-segment",
        "suffix-domain",
        "query",
        "circleci",
        "circleci-extra",
        "circleci-empty",
    ],
)
def test_meta_issuer_patterns_are_anchored_per_segment(
    pattern: str, issuer: str, matches: bool
) -> None:
    issuers = parse_issuers(
        f"issuers:\n  - issuer-pattern: '{pattern}'\n    type: kubernetes\n", source="test"
    )
    assert (issuers.match(issuer) is not None) is matches


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_issuers(text, source="test.yaml")
    assert info.value.message.startswith("invalid issuer configuration in test.yaml:")
    return info.value.problems


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "issuers:\n  - issuer: https://x.example\n    type: nope\n",
            "issuers[1]: unknown type 'nope' (known: email, uri, username, spiffe, kubernetes, "
            "chainguard-identity, ci-provider, github-workflow, gitlab-pipeline, buildkite-job, "
            "codefresh-workflow)",
        ),
        (
            "issuers:\n  - issuer: https://x.example\n    type: email\n    skip-emial-verification: true\n",
            "issuers[1]: unknown key 'skip-emial-verification'",
        ),
        (
            "issuers:\n  - issuer: http://x.example\n    type: email\n",
            "issuers[1]: issuer must be an https:// URL (http is allowed only for loopback issuers "
            "with allow-insecure-loopback)",
        ),
        (
            "issuers:\n  - issuer: http://x.example\n    type: email\n    allow-insecure-loopback: true\n",
            "issuers[1]: allow-insecure-loopback needs a loopback issuer",
        ),
        (
            "issuers:\n  - issuer: https://x.example\n    type: uri\n    subject-domain: https://different.com\n",
            "issuers[1]: subject-domain https://different.com must share its last two labels with the issuer",
        ),
        (
            "issuers:\n  - issuer: https://issuer.example.com\n    type: uri\n    subject-domain: http://other.example.com\n",
            "issuers[1]: subject-domain scheme must match the issuer's",
        ),
        (
            "issuers:\n  - issuer: https://accounts.example.com\n    type: username\n    subject-domain: https://example.com\n",
            "issuers[1]: username issuers need a subject-domain without a scheme",
        ),
        (
            "issuers:\n  - issuer: https://x.example\n    type: spiffe\n",
            "issuers[1]: spiffe issuers need a valid spiffe-trust-domain",
        ),
        (
            "issuers:\n  - issuer-pattern: https://*.example.com\n    type: spiffe\n    spiffe-trust-domain: example.com\n",
            "issuers[1]: spiffe issuers cannot be meta-issuers",
        ),
        (
            "issuers:\n  - issuer: https://x.example\n    type: uri\n    issuer-claim: $.a\n    subject-domain: https://x.example\n",
            "issuers[1]: issuer-claim is only allowed for email issuers",
        ),
        (
            "issuers:\n  - issuer: https://x.example\n    type: ci-provider\n    ci-provider: nope\n",
            "issuers[1]: no ci-provider metadata named 'nope'",
        ),
        (
            "issuers:\n  - issuer: https://x.example\n    type: email\n    ca-cert: not a pem\n",
            "issuers[1]: ca-cert is not a PEM certificate",
        ),
        (
            "issuers:\n  - issuer: https://x.example\n    issuer-pattern: https://*.example\n    type: email\n",
            "issuers[1]: set exactly one of issuer or issuer-pattern",
        ),
        (
            "issuers:\n  - issuer: https://x.example\n    type: email\n  - issuer: https://x.example\n    type: email\n",
            "issuer https://x.example is configured twice",
        ),
        (
            "issuers: []\nci-providers:\n  bad:\n    subject-alternative-name-template: '{{ .a'\n",
            "ci-provider bad: template '{{ .a' does not parse: unclosed action in template '{{ .a'",
        ),
        (
            '{"OIDCIssuers": {"https://x.example": {"IssuerURL": "https://y.example", "Type": "email"}}}',
            "issuer https://x.example: issuer-url 'https://y.example' differs from its key",
        ),
        (
            "define: []\n",
            "no issuers: expected `issuers:` (keyless) or `oidc-issuers:` / `meta-issuers:` (Fulcio)",
        ),
        ("- a list\n", None),
    ],
    ids=[
        "unknown-type",
        "misspelt-key",
        "plain-http",
        "insecure-non-loopback",
        "uri-other-domain",
        "uri-other-scheme",
        "username-with-scheme",
        "spiffe-without-domain",
        "spiffe-meta",
        "issuer-claim-not-email",
        "unknown-ci-provider",
        "bad-ca-cert",
        "url-and-pattern",
        "duplicate",
        "bad-template",
        "fulcio-key-mismatch",
        "no-issuers",
        "not-a-mapping",
    ],
)
def test_broken_config_is_refused_with_one_line_per_problem(text: str, problem: str | None) -> None:
    problems = _problems(text)
    assert problems == [problem or "the top level must be a mapping"]


def test_every_problem_is_reported_at_once() -> None:
    problems = _problems(
        "issuers:\n  - issuer: http://a.example\n    type: email\n"
        "  - issuer: https://b.example\n    type: bogus\n"
    )
    assert len(problems) == 2


def test_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_issuers(tmp_path / "missing.yaml")
    assert info.value.problems == ["cannot read the file: No such file or directory"]

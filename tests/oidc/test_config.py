"""Loading trusted issuers: keyless's format, Fulcio's YAML and JSON, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyless.oidc import ConfigError, IssuerType, load_issuers, parse_issuers

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
            "test.yaml:3: issuers[1]: unknown type 'nope' (known: email, uri, username, spiffe, kubernetes, "
            "chainguard-identity, ci-provider, github-workflow, gitlab-pipeline, buildkite-job, "
            "codefresh-workflow)",
        ),
        (
            "issuers:\n  - issuer: https://x.example\n    type: email\n    skip-emial-verification: true\n",
            "test.yaml:4: issuers[1]: unknown key 'skip-emial-verification'",
        ),
        (
            "issuers:\n  - issuer: http://x.example\n    type: email\n",
            "test.yaml:2: issuers[1]: issuer must be an https:// URL (http is allowed only for loopback issuers "
            "with allow-insecure-loopback)",
        ),
        (
            "issuers:\n  - issuer: http://x.example\n    type: email\n    allow-insecure-loopback: true\n",
            "test.yaml:2: issuers[1]: allow-insecure-loopback needs a loopback issuer",
        ),
        (
            "issuers:\n  - issuer: https://x.example\n    type: uri\n    subject-domain: https://different.com\n",
            "test.yaml:2: issuers[1]: subject-domain https://different.com must share its last two labels with the issuer",
        ),
        (
            "issuers:\n  - issuer: https://issuer.example.com\n    type: uri\n    subject-domain: http://other.example.com\n",
            "test.yaml:2: issuers[1]: subject-domain scheme must match the issuer's",
        ),
        (
            "issuers:\n  - issuer: https://accounts.example.com\n    type: username\n    subject-domain: https://example.com\n",
            "test.yaml:2: issuers[1]: username issuers need a subject-domain without a scheme",
        ),
        (
            "issuers:\n  - issuer: https://x.example\n    type: spiffe\n",
            "test.yaml:2: issuers[1]: spiffe issuers need a valid spiffe-trust-domain",
        ),
        (
            "issuers:\n  - issuer-pattern: https://*.example.com\n    type: spiffe\n    spiffe-trust-domain: example.com\n",
            "test.yaml:2: issuers[1]: spiffe issuers cannot be meta-issuers",
        ),
        (
            "issuers:\n  - issuer: https://x.example\n    type: uri\n    issuer-claim: $.a\n    subject-domain: https://x.example\n",
            "test.yaml:2: issuers[1]: issuer-claim is only allowed for email issuers",
        ),
        (
            "issuers:\n  - issuer: https://x.example\n    type: ci-provider\n    ci-provider: nope\n",
            "test.yaml:2: issuers[1]: no ci-provider metadata named 'nope'",
        ),
        (
            "issuers:\n  - issuer: https://x.example\n    type: email\n    ca-cert: not a pem\n",
            "test.yaml:2: issuers[1]: ca-cert is not a PEM certificate",
        ),
        (
            "issuers:\n  - issuer: https://x.example\n    issuer-pattern: https://*.example\n    type: email\n",
            "test.yaml:2: issuers[1]: set exactly one of issuer or issuer-pattern",
        ),
        (
            "issuers:\n  - issuer: https://x.example\n    type: email\n  - issuer: https://x.example\n    type: email\n",
            "test.yaml:4: issuers[2]: issuer 'https://x.example' is configured twice (first at line 2)",
        ),
        (
            "issuers: []\nci-providers:\n  bad:\n    subject-alternative-name-template: '{{ .a'\n",
            "test.yaml:4: ci-provider bad: template '{{ .a' does not parse: unclosed action in template '{{ .a'",
        ),
        (
            '{"OIDCIssuers": {"https://x.example": {"IssuerURL": "https://y.example", "Type": "email"}}}',
            "test.yaml: issuer https://x.example: issuer-url 'https://y.example' differs from its key",
        ),
        (
            "define: []\n",
            "test.yaml: no issuers: expected `issuers:` (keyless) or `oidc-issuers:` / `meta-issuers:` (Fulcio)",
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
    assert problems == [problem or "test.yaml: the top level must be a mapping"]


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


def test_problems_name_the_file_the_line_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "issuers.yaml"
    path.write_text(
        "issuers:\n"
        "  - issuer: https://good.example.com\n"
        "    type: email\n"
        "  - issuer: https://a.example.com\n"
        "    client-id: sigstore\n"
        "  - issuer-pattern: https://*\n"
        "    type: kubernetes\n"
        "  - issuer: https://good.example.com/\n"
        "    type: email\n"
    )
    with pytest.raises(ConfigError) as info:
        load_issuers(path)
    known = ", ".join(t.value for t in IssuerType)
    assert info.value.problems == [
        f"{path}:4: issuers[2]: type is required (known: {known})",
        f"{path}:6: issuers[3]: issuer-pattern 'https://*' lets '*' stand for the whole host;"
        " the last two host labels must be literal (like https://*.example.com)",
        f"{path}:8: issuers[4]: issuer 'https://good.example.com/' is the same issuer as"
        " 'https://good.example.com' at line 2 (they differ only in a trailing '/', case or a"
        " default port)",
    ]


@pytest.mark.parametrize(
    "pattern",
    [
        "https://*",
        "https://*.*",
        "https://*.com",
        "https://example.*",
        "https://*.example.*/x",
        "https://sub.*/x",
    ],
)
def test_patterns_admitting_any_domain_are_refused(pattern: str) -> None:
    problems = _problems(f"issuers:\n  - issuer-pattern: '{pattern}'\n    type: kubernetes\n")
    assert problems == [
        f"test.yaml:2: issuers[1]: issuer-pattern {pattern!r} lets '*' stand for the whole host;"
        " the last two host labels must be literal (like https://*.example.com)"
    ]


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("https://x.example.com:*/id", "a '*' in the scheme or port"),
        ("http*://x.example.com/*", "a '*' in the scheme or port"),
        ("https://x.example.com/id", "no '*'; use issuer for an exact URL"),
    ],
)
def test_patterns_with_a_wildcard_elsewhere_or_none_are_refused(pattern: str, problem) -> None:
    problems = _problems(f"issuers:\n  - issuer-pattern: '{pattern}'\n    type: kubernetes\n")
    assert problems == [f"test.yaml:2: issuers[1]: issuer-pattern {pattern!r} has {problem}"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("https://x.example.com", "https://x.example.com/"),
        ("https://x.example.com/path", "https://X.Example.com/path"),
        ("https://x.example.com", "https://x.example.com:443"),
    ],
)
def test_near_duplicate_issuers_are_refused(first: str, second: str) -> None:
    problems = _problems(
        f"issuers:\n  - issuer: {first}\n    type: email\n  - issuer: {second}\n    type: email\n"
    )
    assert len(problems) == 1
    assert problems[0].startswith(
        f"test.yaml:4: issuers[2]: issuer {second!r} is the same issuer as {first!r} at line 2"
    )


def test_a_trailing_slash_alone_is_accepted() -> None:
    """Some issuers' iss ends in '/' (Auth0's does): only a second spelling is refused."""
    issuers = parse_issuers(
        "issuers:\n  - issuer: https://tenant.auth0.com/\n    type: email\n", source="test"
    )
    assert issuers.match("https://tenant.auth0.com/") is not None
    assert issuers.match("https://tenant.auth0.com") is None


def test_duplicate_yaml_keys_are_refused_with_their_line() -> None:
    problems = _problems(
        "issuers:\n  - issuer: https://x.example.com\n    type: email\n    type: kubernetes\n"
    )
    assert problems == ["test.yaml:4: duplicate key 'type' (first at line 3)"]


def test_duplicate_keys_on_one_line_and_through_merge_keys_are_refused() -> None:
    """Two ways the issuer reader's own loader let a second `type:` win."""
    flow = "issuers:\n  - {issuer: https://x.example.com, type: email, type: kubernetes}\n"
    assert _problems(flow) == ["test.yaml:2: duplicate key 'type' (first at line 2)"]
    merged = "issuers:\n  - issuer: https://x.example.com\n    type: email\n    <<: {type: x}\n"
    assert _problems(merged) == ["test.yaml:4: merge keys (<<) are not allowed"]


def test_two_spellings_of_one_key_are_refused() -> None:
    """Keys match as Fulcio matches them (case, '-' and '_' ignored), so `type` and `Type` are
    one key written twice: neither may win silently, in YAML or in Fulcio's JSON."""
    text = (
        "issuers:\n  - issuer: https://x.example.com\n    type: email\n"
        "    Type: kubernetes\n    skip-email-verification: false\n"
        "    SkipEmailVerification: true\n"
    )
    assert _problems(text) == [
        "test.yaml:4: issuers[1]: 'Type' is the same key as 'type' (keys match without regard"
        " to case, '-' and '_')",
        "test.yaml:6: issuers[1]: 'SkipEmailVerification' is the same key as"
        " 'skip-email-verification' (keys match without regard to case, '-' and '_')",
    ]
    json_text = (
        '{"oidc-issuers": {},'
        ' "OIDCIssuers": {"https://x.example": {"Type": "email", "type": "kubernetes"}}}'
    )
    assert _problems(json_text) == [
        "test.yaml: 'OIDCIssuers' is the same key as 'oidc-issuers' (keys match without regard"
        " to case, '-' and '_')",
        "test.yaml: issuer https://x.example: 'type' is the same key as 'Type' (keys match"
        " without regard to case, '-' and '_')",
    ]


def test_yaml_aliases_are_refused_in_issuer_files() -> None:
    laughs = "a: &a [x, x, x, x]\nb: [*a, *a, *a, *a]\nissuers: []\n"
    assert _problems(laughs) == ["test.yaml:1: YAML anchors (&a) are not allowed"]


def test_fulcio_json_problems_name_the_file_without_a_line() -> None:
    problems = _problems(
        '{"OIDCIssuers": {"https://x.example": {"IssuerURL": "https://x.example"}}}'
    )
    known = ", ".join(t.value for t in IssuerType)
    assert problems == [f"test.yaml: issuer https://x.example: type is required (known: {known})"]


def test_server_config_names_the_issuer_file_and_no_phantom_problem(tmp_path: Path) -> None:
    """One broken issuer gives one line naming issuers.yaml, not also 'no trusted issuers'."""
    from keyless.server.config import ServerConfigError, load_server_config

    (tmp_path / "issuers.yaml").write_text(
        "issuers:\n  - issuer: https://x.example.com\n    type: emial\n"
    )
    (tmp_path / "server.yaml").write_text("issuers: issuers.yaml\n")
    with pytest.raises(ServerConfigError) as info:
        load_server_config(tmp_path / "server.yaml")
    known = ", ".join(t.value for t in IssuerType)
    assert info.value.problems == [
        f"issuers: {tmp_path / 'issuers.yaml'}:3: issuers[1]: unknown type 'emial' (known: {known})"
    ]

"""The Go text/template subset, against Fulcio's TestApplyTemplateOrReplace cases (fulcio.md §7.13)."""

from __future__ import annotations

import pytest

from keyless.oidc.config import parse_issuers
from keyless.oidc.principals import principal_from_claims, stringify_claim
from keyless.oidc.templates import MissingKeyError, Template, TemplateError

DATA = {
    "url": "https://github.com",
    "claim_foo": "bar",
    "default_foo": "default_bar",
    "empty_value": "",
    "repository": "sigstore/fulcio",
    "run_id": "42",
    "run_attempt": "1",
    "html_claim": "<alert()/>",
    "ref_type": "branch",
    "ref_gitlab": "main",
    "aud": "sigstore",
    "with.dot.and/slash": "cat",
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "{{ .url }}/{{ .repository }}/actions/runs/{{ .run_id }}/attempts/{{ .run_attempt }}",
            "https://github.com/sigstore/fulcio/actions/runs/42/attempts/1",
        ),
        ("{{ .html_claim }}", "<alert()/>"),
        ("{{ .empty_value }}/123", "/123"),
        (
            'refs/{{if eq .ref_type "branch"}}heads/{{ else }}tags/{{end}}{{ .ref_gitlab }}',
            "refs/heads/main",
        ),
        (
            'refs/{{if eq .ref_type "tag"}}heads/{{ else }}tags/{{end}}{{ .ref_gitlab }}',
            "refs/tags/main",
        ),
        ('{{ .aud }}/{{(index . "with.dot.and/slash")}}', "sigstore/cat"),
        ('{{ index . "missing" }}x', "x"),
        ('{{if eq (index . "absent") "true"}}ssh-rerun{{ else }}""{{end}}', '""'),
        ("{{- .url -}} /x", "https://github.com/x"),
    ],
)
def test_renders(source: str, expected: str) -> None:
    assert Template(source).render(DATA) == expected


@pytest.mark.parametrize(
    "source",
    [
        "{{}}",
        "{{ .url",
        '{{if eq .a "b"}}x',
        "{{ end }}",
        '{{ printf "%s" .url }}',
        "{{ index .url }}",
    ],
    ids=[
        "empty-action",
        "unclosed",
        "if-without-end",
        "stray-end",
        "unsupported-function",
        "index-without-key",
    ],
)
def test_refuses_bad_syntax(source: str) -> None:
    with pytest.raises(TemplateError):
        Template(source)


def test_missing_field_is_an_error_naming_the_key() -> None:
    with pytest.raises(MissingKeyError) as info:
        Template("{{ .foo }}").render(DATA)
    assert info.value.key == "foo"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1"),
        (1.4, "1.4"),
        (1000000.0, "1000000"),
        (1753000000.0, "1753000000"),
        (True, "true"),
        (False, "false"),
        (42, "42"),
        (["a", "b"], "[a b]"),
    ],
)
def test_claims_stringify_like_fulcio(value: object, expected: str) -> None:
    assert stringify_claim(value) == expected


PROVIDER = """
issuers:
  - issuer: https://ci.example.com
    type: ci-provider
    ci-provider: t
ci-providers:
  t:
    default-template-values: {url: "https://github.com", claim_foo: default, empty_value: ""}
    extension-templates:
      build-signer-uri: job_workflow_ref
      source-repository-ref: claim_foo
      runner-environment: empty_value
      build-config-uri: "{{ .url }}/{{ .pipeline }}"
    subject-alternative-name-template: "{{ .url }}/{{ .job_workflow_ref }}"
"""


def _principal(claims: dict[str, object]):
    issuer = parse_issuers(PROVIDER, source="test").issuers[0]
    base = {"iss": "https://ci.example.com", "sub": "s", "job_workflow_ref": "a/b/c@refs/x"}
    return principal_from_claims({**base, **claims}, issuer)


def test_bare_claim_names_are_looked_up_and_claims_beat_defaults() -> None:
    principal = _principal({"claim_foo": "bar", "pipeline": "p"})
    assert principal.san_value == "https://github.com/a/b/c@refs/x"
    assert principal.extensions[9] == "a/b/c@refs/x"
    assert principal.extensions[14] == "bar"
    assert principal.extensions[18] == "https://github.com/p"


def test_empty_rendered_value_leaves_the_extension_out() -> None:
    assert 11 not in _principal({"pipeline": "p"}).extensions


def test_missing_template_key_refuses_with_fulcio_text() -> None:
    from keyless.oidc import PrincipalError

    with pytest.raises(PrincipalError) as info:
        _principal({})
    assert info.value.message == "value <pipeline> not present in either claims or defaults"

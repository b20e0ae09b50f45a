"""Kyverno attestation conditions over a predicate: the operators keyless reads, with Kyverno's
type rules (pkg/engine/variables/operator), and the exact line for each part it refuses."""

from __future__ import annotations

import pytest

from keyless.client.policy.kyverno_conditions import ConditionError, compile_conditions
from keyless.client.verify import VerificationError

SLSA = "https://slsa.dev/provenance/v1"
PREDICATE = {
    "buildDefinition": {"buildType": "https://actions.github.io/buildtypes/workflow/v1"},
    "runDetails": {"builder": {"id": "https://github.com/acme/app/.github/workflows/r.yml"}},
    "scanner": {"result": "PASS", "critical": 0, "score": 7.5, "signed": True},
    "tags": ["prod", "eu"],
    "nothing": None,
}


def _holds(conditions: list, predicate: dict = PREDICATE) -> bool:
    check = compile_conditions(conditions, SLSA)
    try:
        check.check({"predicateType": SLSA, "predicate": predicate})
    except VerificationError as exc:
        assert exc.check == "policy"
        return False
    return True


def _one(key, operator, value) -> list:
    return [{"all": [{"key": key, "operator": operator, "value": value}]}]


@pytest.mark.parametrize(
    ("key", "operator", "value", "holds"),
    [
        ("{{ buildDefinition.buildType }}", "Equals", "https://actions.github.io/*", True),
        ("{{ buildDefinition.buildType }}", "Equals", "https://example.com/*", False),
        ("{{ buildDefinition.buildType }}", "NotEquals", "https://example.com/*", True),
        ("{{ runDetails.builder.id }}", "Equal", "https://github.com/acme/app/*", True),
        ("{{ scanner.result }}", "Equals", "PASS", True),
        ("{{ scanner.result }}", "Equals", "pass", False),  # case-sensitive, as in Go
        ("{{ scanner.critical }}", "Equals", 0, True),
        ("{{ scanner.critical }}", "Equals", "0", True),  # a number key reads a string value
        ("{{ scanner.score }}", "Equals", 7.5, True),
        ("{{ scanner.signed }}", "Equals", True, True),
        ("{{ scanner.signed }}", "Equals", "true", False),  # bool key: only a bool equals it
        ("{{ scanner.signed }}", "NotEquals", "true", True),
        ("{{ tags }}", "Equals", ["prod", "eu"], True),
        ("{{ tags }}", "Equals", ["eu", "prod"], False),
        ("{{ tags }}", "AnyIn", ["prod"], True),
        ("{{ tags }}", "AllIn", ["prod"], False),
        ("{{ tags }}", "AllIn", ["prod", "eu", "us"], True),
        ("{{ tags }}", "AnyNotIn", ["prod"], True),
        ("{{ tags }}", "AllNotIn", ["us", "p*"], False),  # wildcards either way round
        ("{{ scanner.result }}", "AnyIn", ["PA*", "FAIL"], True),
        ("{{ scanner.critical }}", "AllNotIn", [1, 2], True),
        ("{{ length(tags) }}", "Equals", 2, True),
        ("literal", "Equals", "lit*", True),
    ],
)
def test_operators(key, operator, value, holds) -> None:
    assert _holds(_one(key, operator, value)) is holds


def test_any_needs_one_and_all_needs_every_one_and_every_block_must_hold() -> None:
    yes = {"key": "{{ scanner.result }}", "operator": "Equals", "value": "PASS"}
    no = {"key": "{{ scanner.result }}", "operator": "Equals", "value": "FAIL"}
    assert _holds([{"any": [no, yes]}])
    assert not _holds([{"all": [yes, no]}])
    assert not _holds([{"any": [yes]}, {"any": [no]}])
    assert not _holds([{"any": []}])  # an empty any never holds, as in Kyverno
    assert _holds([{"all": []}])


def test_a_failing_condition_says_its_message() -> None:
    condition = {"key": "{{ scanner.result }}", "operator": "Equals", "value": "FAIL"}
    check = compile_conditions([{"all": [{**condition, "message": "the scan failed"}]}], SLSA)
    with pytest.raises(VerificationError) as info:
        check.check({"predicateType": SLSA, "predicate": PREDICATE})
    assert info.value.detail == f"attestation checks failed for predicate {SLSA}: the scan failed"


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        (
            "{{ missing.key }}",
            "x",
            "{{ missing.key }} finds nothing in the predicate (a missing key or null)",
        ),
        (
            "{{ nothing }}",
            "x",
            "{{ nothing }} finds nothing in the predicate (a missing key or null)",
        ),
        ("1Gi", "1024Mi", "'1Gi' and '1024Mi' would be compared as Kubernetes quantities"),
        ("1h", "60m", "'1h' and '60m' would be compared as Go durations"),
    ],
)
def test_what_keyless_does_not_reproduce_fails_and_says_why(key, value, why) -> None:
    check = compile_conditions(_one(key, "NotEquals", value), SLSA)
    with pytest.raises(VerificationError) as info:
        check.check({"predicateType": SLSA, "predicate": PREDICATE})
    assert info.value.detail == f"a condition cannot be decided: {why}"


def test_a_string_value_for_the_in_family_fails_closed() -> None:
    check = compile_conditions(_one("{{ tags }}", "AnyNotIn", '["prod"]'), SLSA)
    with pytest.raises(VerificationError) as info:
        check.check({"predicateType": SLSA, "predicate": PREDICATE})
    assert info.value.detail == (
        'a condition cannot be decided: "[\\"prod\\"]" is not a list (Kyverno reads JSON arrays '
        "and ranges out of strings; keyless does not)"
    )


def test_cosign_custom_predicates_have_their_data_decoded() -> None:
    kind = "https://cosign.sigstore.dev/attestation/v1"
    check = compile_conditions(_one("{{ Data.result }}", "Equals", "PASS"), kind)
    check.check({"predicateType": kind, "predicate": {"Data": '{"result": "PASS"}'}})


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        (
            _one("{{ a }}", "GreaterThan", 1),
            "[0].all[0].operator: numeric comparisons are not supported yet",
        ),
        (
            _one("{{ a }}", "In", ["x"]),
            "[0].all[0].operator: the deprecated In is not supported; use AnyIn or AllIn",
        ),
        (
            _one("{{ a }}", "Matches", "x"),
            "[0].all[0].operator: 'Matches' is not a Kyverno condition operator",
        ),
        (
            _one("{{ regex_match('^a', '{{ a }}') }}", "Equals", True),
            "[0].all[0].key: nested {{ }} variables are not supported",
        ),
        (
            _one("{{ time_after(a, b) }}", "Equals", True),
            "[0].all[0].key: time_after() is a Kyverno JMESPath function keyless does not provide",
        ),
        (
            _one("prefix-{{ a }}", "Equals", "x"),
            "[0].all[0].key: only a whole-value {{ expression }} is supported, not 'prefix-{{ a }}'",
        ),
        (_one("{{ a[ }}", "Equals", "x"), None),
        (
            _one("{{ a }}", "Equals", ["{{ b }}"]),
            "[0].all[0].value: variables inside a list or mapping are not supported",
        ),
        ([{"none": []}], "[0].none: unknown field"),
        ({"all": []}, ": must be a list of {any, all} blocks"),
    ],
)
def test_refused_when_loaded(conditions, message) -> None:
    with pytest.raises(ConditionError) as info:
        compile_conditions(conditions, SLSA)
    if message is None:
        assert str(info.value).startswith("[0].all[0].key: 'a[' is not a JMESPath expression: ")
    else:
        assert str(info.value) == message

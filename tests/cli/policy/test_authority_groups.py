"""Authority groups (Kyverno's attestor sets): N of M must pass, tried in order, judged by the
one evaluator. Static members need no registry, so the counting is tested on its own here;
signatures are counted the same way end to end (tests/e2e/test_kyverno_policy_check.py)."""

from __future__ import annotations

import pytest

from keyless.client.oci import parse_reference
from keyless.client.policy import (
    AuthorityGroup,
    Evaluator,
    ImagePolicy,
    Mode,
    PolicySet,
    ResolvedImage,
    StaticAuthority,
)
from keyless.client.policy.glob import compile_glob
from keyless.client.policy.trustroots import production_trust

DIGEST = "sha256:" + "cd" * 32


def _static(name: str, passes: bool) -> StaticAuthority:
    return StaticAuthority(name=name, passes=passes, message="" if passes else f"{name} says no")


def _judge(group: AuthorityGroup):
    policy = ImagePolicy(
        name="p",
        globs=("**",),
        mode=Mode.ENFORCE,
        authorities=(group,),
        source="test",
        content_sha256="x",
        patterns=(compile_glob("**"),),
    )
    policies = PolicySet((policy,), {"": production_trust()})

    def no_registry():
        raise AssertionError("static members need no registry")

    evaluator = Evaluator(policies, registry=no_registry)
    image = ResolvedImage.from_reference(parse_reference(f"ghcr.io/acme/app@{DIGEST}"), DIGEST)
    return evaluator.evaluate(image)


@pytest.mark.parametrize(
    ("members", "threshold", "passed", "tried"),
    [
        ([True, True, True], 3, True, 3),
        ([True, False, True], 3, False, 2),  # stops once 3 cannot be reached
        ([False, True, True], 2, True, 3),
        ([True, True, False], 2, True, 2),  # stops once 2 passed
        ([False, False, True], 2, False, 2),
        ([False, False, True], 1, True, 3),
    ],
)
def test_threshold_of_members(members, threshold, passed, tried) -> None:
    group = AuthorityGroup(
        name="attestors[0]",
        members=tuple(_static(f"entries[{i}]", p) for i, p in enumerate(members)),
        threshold=threshold,
    )
    verdict = _judge(group)
    assert verdict.outcome == ("pass" if passed else "fail")
    (result,) = verdict.policies[0].authorities
    assert result.passed is passed
    assert len(result.members) == tried


def test_messages_say_how_many_were_needed_and_why_each_failed() -> None:
    group = AuthorityGroup(
        name="attestors[0]",
        members=(
            _static("entries[0]", False),
            _static("entries[1]", True),
            _static("entries[2]", False),
        ),
        threshold=2,
    )
    verdict = _judge(group)
    assert verdict.messages == (
        "p/attestors[0]: needs 2 of 3, 1 passed: entries[0]: disallowed by static policy: "
        "entries[0] says no; entries[2]: disallowed by static policy: entries[2] says no",
    )
    (authority,) = verdict.to_json()["policies"][0]["authorities"]
    assert [m["name"] for m in authority["authorities"]] == [
        "entries[0]",
        "entries[1]",
        "entries[2]",
    ]
    assert [m["passed"] for m in authority["authorities"]] == [False, True, False]


def test_groups_nest() -> None:
    inner = AuthorityGroup(
        name="entries[0].attestor",
        members=(_static("entries[0]", False), _static("entries[1]", True)),
        threshold=1,
    )
    outer = AuthorityGroup(
        name="attestors[0]", members=(inner, _static("entries[1]", True)), threshold=2
    )
    verdict = _judge(outer)
    assert verdict.outcome == "pass"
    assert verdict.policies[0].authorities[0].message == (
        "entries[0].attestor: entries[1]: allowed by static policy; "
        "entries[1]: allowed by static policy"
    )


@pytest.mark.parametrize(("count", "threshold"), [(0, 1), (2, 0), (2, 3)])
def test_a_group_cannot_be_built_that_admits_by_accident(count, threshold) -> None:
    with pytest.raises(ValueError, match="an authority group"):
        AuthorityGroup(
            name="g",
            members=tuple(_static(f"m{i}", True) for i in range(count)),
            threshold=threshold,
        )

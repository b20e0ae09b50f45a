"""Kyverno's image wildcards: its own test table, and the spellings a pattern is tried on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyless.client.oci import parse_reference
from keyless.client.policy.evaluator import ResolvedImage
from keyless.client.policy.model import ImagePolicy, Mode
from keyless.client.policy.wildcard import (
    WildcardError,
    compile_wildcard,
    match_wildcard,
    spellings,
)

CASES = json.loads(
    (Path(__file__).parents[2] / "data" / "kyverno" / "wildcard_cases.json").read_text()
)
DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_kyverno_wildcard_table(case) -> None:
    assert match_wildcard(case["pattern"], case["text"]) is case["matched"]


def test_star_crosses_slashes_and_question_mark_is_one_character() -> None:
    assert match_wildcard("ghcr.io/acme/*", "ghcr.io/acme/team/app:1.0")
    assert match_wildcard("ghcr.io/acme/app:v?", "ghcr.io/acme/app:v1")
    assert not match_wildcard("ghcr.io/acme/app:v?", "ghcr.io/acme/app:v10")


def test_matching_is_linear_in_the_name() -> None:
    """A backtracking matcher takes exponential time on this; image names come from pods."""
    pattern = compile_wildcard("*a" * 40 + "b")
    assert not pattern.fullmatch("a" * 400)


def _names(image: str) -> tuple[str, ...]:
    reference = parse_reference(image)
    resolved = ResolvedImage.from_reference(reference, reference.digest or DIGEST)
    return resolved.match_names


def test_docker_hub_images_are_tried_in_every_spelling_kyverno_could_see() -> None:
    _, tagged = _names("nginx:1.27")
    assert spellings(tagged) == (
        "docker.io/library/nginx:1.27",
        "docker.io/nginx:1.27",
        "index.docker.io/library/nginx:1.27",
        "index.docker.io/nginx:1.27",
        "registry-1.docker.io/library/nginx:1.27",
        "registry-1.docker.io/nginx:1.27",
    )
    assert spellings(_names("ghcr.io/acme/app:1")[1]) == ("ghcr.io/acme/app:1",)
    assert len(spellings(_names("docker.io/acme/app:1")[1])) == 3  # not an official image


def _policy(references: list[str], skips: list[str] = ()) -> ImagePolicy:
    return ImagePolicy(
        name="p",
        globs=tuple(references),
        mode=Mode.ENFORCE,
        authorities=(),
        source="test",
        content_sha256="",
        patterns=tuple(compile_wildcard(r) for r in references),
        skip_patterns=tuple(compile_wildcard(s) for s in skips),
    )


@pytest.mark.parametrize(
    ("pattern", "image", "applies"),
    [
        # Kyverno writes `nginx` as docker.io/nginx:latest, `library/nginx` as
        # docker.io/library/nginx:latest: either pattern catches either spelling here.
        ("docker.io/nginx*", "nginx", True),
        ("docker.io/nginx*", "docker.io/library/nginx:1", True),
        ("docker.io/library/*", "nginx", True),
        ("index.docker.io/library/nginx:*", "nginx:1", True),
        ("*/nginx:latest", "nginx", True),
        ("docker.io/nginx:latest", "nginx@" + DIGEST, False),  # a digest drops the tag
        ("docker.io/nginx@sha256:*", "nginx:1.0@" + DIGEST, True),
        # Spellings Kyverno would let slip past its pattern do not slip past here.
        ("ghcr.io/acme/*", "GHCR.IO/acme/app:1", True),
        ("ghcr.io/acme/*", "ghcr.io:443/acme/app:1", True),
        ("ghcr.io/acme/*", "ghcr.io/acmecorp/app:1", False),
        ("ghcr.io/acme/*", "ghcr.io/acme", False),  # ghcr.io/acme:latest has no "/" after acme
        ("ghcr.io/acme/app:v1.?", "ghcr.io/acme/app:v1.2", True),
        ("ghcr.io/acme/app:v1.?", "ghcr.io/acme/app:v1.23", False),
    ],
)
def test_which_images_a_pattern_applies_to(pattern, image, applies) -> None:
    assert _policy([pattern]).matches(_names(image)) is applies


def test_skip_image_references_take_a_spelling_out() -> None:
    policy = _policy(["ghcr.io/*"], ["ghcr.io/kyverno*"])
    assert policy.matches(_names("ghcr.io/acme/app:1"))
    assert not policy.matches(_names("ghcr.io/kyverno/test-verify-image:signed"))
    # Skipped in one spelling only: another spelling still selects it (stricter, never looser).
    hub = _policy(["*"], ["docker.io/nginx*"])
    assert hub.matches(_names("nginx"))


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "must not be empty"),
        ("x" * 1025, "longer than 1024 characters"),
        (
            "GHCR.IO/acme/*",
            "'GHCR.IO/acme/*': write the registry in lowercase (keyless matches images by the "
            "registry a runtime reaches, whatever its spelling)",
        ),
        (
            "ghcr.io:443/acme/*",
            "'ghcr.io:443/acme/*': write the registry without :443 (keyless matches images by the "
            "registry a runtime reaches, whatever its spelling)",
        ),
    ],
)
def test_patterns_only_a_normalised_spelling_could_match_are_refused(pattern, message) -> None:
    with pytest.raises(WildcardError) as info:
        compile_wildcard(pattern)
    assert str(info.value) == message


def test_uppercase_tags_are_fine() -> None:
    assert compile_wildcard("*:V1").fullmatch("ghcr.io/acme/app:V1")
    assert compile_wildcard("ghcr.io:4430/acme/*").pattern == "ghcr.io:4430/acme/*"

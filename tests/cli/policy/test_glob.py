"""Image globs against policy-controller's own table (tests/data/policy-controller/glob_cases.json)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyless.client.oci import RegistryError
from keyless.client.policy.glob import GlobError, compile_glob, match_glob

CASES = json.loads(
    (Path(__file__).parents[2] / "data" / "policy-controller" / "glob_cases.json").read_text()
)["cases"]


@pytest.mark.parametrize("case", CASES, ids=[f"{c['image']}|{c['glob']}" for c in CASES])
def test_policy_controller_glob_table(case) -> None:
    if case["error"]:
        with pytest.raises((GlobError, RegistryError)):
            match_glob(case["glob"], case["image"])
    else:
        assert match_glob(case["glob"], case["image"]) is case["match"]


@pytest.mark.parametrize(
    ("glob", "image", "expected"),
    [
        # `:` is no separator for `*`, so one `*` covers a tag, and `:**` every tag.
        ("ghcr.io/acme/app:*", "ghcr.io/acme/app:1.2.3", True),
        ("ghcr.io/acme/app:**", "ghcr.io/acme/app:1.2.3", True),
        # A digest reference's name drops the tag: `repo@sha256:...`.
        ("ghcr.io/acme/app:1.2", f"ghcr.io/acme/app:1.2@sha256:{'a' * 64}", False),
        # ... but the text as written is tried too (policy-controller's deprecated fallback).
        ("ghcr.io/acme/app:*", f"ghcr.io/acme/app:1.2@sha256:{'a' * 64}", True),
        ("ghcr.io/acme/app*", f"ghcr.io/acme/app:1.2@sha256:{'a' * 64}", True),
        ("ghcr.io/acme/*", "ghcr.io/acme/team/app:1", False),
        ("ghcr.io/acme/**", "ghcr.io/acme/team/app:1", True),
        # Docker Hub names are index.docker.io, whether written docker.io or not at all.
        ("index.docker.io/library/nginx:*", "docker.io/nginx", True),
        ("index.docker.io/library/nginx:*", "index.docker.io/library/nginx:1.25", True),
        # Dots are literal.
        ("ghcr.io/**", "ghcrxio/foo", False),
        # Anchored at both ends.
        ("ghcr.io/acme", "evil.example/ghcr.io/acme", False),
    ],
)
def test_more_cases(glob: str, image: str, expected: bool) -> None:
    assert match_glob(glob, image) is expected


@pytest.mark.parametrize(
    "glob", ["", "ghcr.io/acme/[a-z]*", "ghcr.io/acme/app?", "ghcr.io/acme/(x|y)", "a\nb", "é"]
)
def test_invalid_globs(glob: str) -> None:
    with pytest.raises(GlobError, match="invalid glob"):
        compile_glob(glob)


def test_glob_length_is_bounded() -> None:
    with pytest.raises(GlobError, match="longer than 1024 characters"):
        compile_glob("a" * 1025)


def test_translation() -> None:
    assert compile_glob("ghcr.io/**/app:*").regexp == r"ghcr\.io/.*/app:[^/]*"
    assert compile_glob("*").regexp == r"index\.docker\.io/library/[^/]*"
    assert compile_glob("*/*").regexp == r"index\.docker\.io/[^/]*/[^/]*"


@settings(max_examples=400, deadline=None)
@given(
    glob=st.text(alphabet="ab/*:.", min_size=1, max_size=12),
    name=st.text(alphabet="ab/:.", max_size=16),
)
def test_matcher_agrees_with_policy_controllers_regexp(glob: str, name: str) -> None:
    pattern = compile_glob(glob)
    assert pattern.fullmatch(name) is (re.fullmatch(pattern.regexp, name) is not None)


def test_many_wildcards_against_a_long_name_do_not_backtrack() -> None:
    # A backtracking regexp takes time polynomial in the name to the 6th power here.
    pattern = compile_glob("**a**a**a**a**a**a**b")
    assert pattern.fullmatch("a" * 500) is False
    assert pattern.fullmatch("a" * 500 + "b") is True

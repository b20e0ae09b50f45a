"""The strict YAML loader: one refusal per test, each with the exact line and column."""

from __future__ import annotations

import pytest

from keyless.core.strictyaml import (
    MAX_DEPTH,
    LocatedDict,
    StrictYAMLError,
    load,
    load_all,
)


def _refusal(text: str | bytes, **options) -> str:
    with pytest.raises(StrictYAMLError) as info:
        load_all(text, source="f.yaml", **options)
    return str(info.value)


def test_json_types_load_and_timestamps_stay_strings() -> None:
    text = "a: 1\nb: [2.5, x, true, null, '', 2026-01-31T00:00:00Z, 2026-01-31]\nc: {d: =}\n"
    assert load(text, source="f.yaml") == {
        "a": 1,
        "b": [2.5, "x", True, None, "", "2026-01-31T00:00:00Z", "2026-01-31"],
        "c": {"d": "="},
    }


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("mode: warn\nmode: enforce\n", "f.yaml:2:1: duplicate key 'mode' (first at line 1)"),
        ("{mode: warn, mode: enforce}", "f.yaml:1:14: duplicate key 'mode' (first at line 1)"),
        ("a:\n  b: 1\n  'b': 2\n", "f.yaml:3:3: duplicate key 'b' (first at line 2)"),
        ('"a\\x41": 1\naA: 2\n', "f.yaml:2:1: duplicate key 'aA' (first at line 1)"),
        ("!!str 1: a\n'1': b\n", "f.yaml:2:1: duplicate key '1' (first at line 1)"),
    ],
    ids=["block", "flow-on-one-line", "quoted", "escaped", "explicit-tag"],
)
def test_duplicate_keys_are_refused(text: str, refusal: str) -> None:
    """Keys are compared as the strings YAML reads, however they are written."""
    assert _refusal(text) == refusal


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("1: a\n", "f.yaml:1:1: the key 1 is not a string (YAML reads it as !!int); quote it"),
        ("on: a\n", "f.yaml:1:1: the key on is not a string (YAML reads it as !!bool); quote it"),
        ("~: a\n", "f.yaml:1:1: the key ~ is not a string (YAML reads it as !!null); quote it"),
        ("? [a]\n: 1\n", "f.yaml:1:3: a mapping key must be a string, not a collection"),
    ],
    ids=["int", "yaml-1.1-bool", "null", "collection"],
)
def test_keys_must_be_strings(text: str, refusal: str) -> None:
    """`1` and `"1"` are one key once the document is JSON (Kubernetes): only strings are
    keys, so the two cannot both be written."""
    assert _refusal(text) == refusal


def test_merge_keys_are_refused() -> None:
    assert _refusal("a: 1\n<<: {a: 2}\n") == "f.yaml:2:1: merge keys (<<) are not allowed"
    assert load("'<<': 1\n", source="f.yaml") == {"<<": 1}


def test_aliases_and_anchors_are_refused() -> None:
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    assert _refusal(laughs) == "f.yaml:1:4: YAML anchors (&a) are not allowed"
    assert _refusal("a: *a\n") == "f.yaml:1:4: YAML aliases (*a) are not allowed"


def test_scalar_aliases_are_an_opt_in_that_cannot_expand() -> None:
    text = "define: [&t github-workflow]\ntype: *t\n"
    assert load(text, source="f.yaml", scalar_aliases=True) == {
        "define": ["github-workflow"],
        "type": "github-workflow",
    }
    assert _refusal("a: &a [x]\nb: *a\n", scalar_aliases=True) == (
        "f.yaml:1:4: YAML anchors (&a) are not allowed"
    )


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("a: !!binary aGk=\n", "f.yaml:1:4: the tag !!binary is not allowed"),
        ("a: !!timestamp 2026-01-31\n", "f.yaml:1:4: the tag !!timestamp is not allowed"),
        ("a: !!int '3'\n", "f.yaml:1:4: the tag !!int is not allowed"),
        ("!!set {a, b}\n", "f.yaml:1:1: the tag !!set is not allowed"),
        (
            "a: !!python/name:os.system x\n",
            "f.yaml:1:4: the tag !!python/name:os.system is not allowed",
        ),
        ("a: !local x\n", "f.yaml:1:4: the tag !local is not allowed"),
        ("a: ! 2\n", "f.yaml:1:4: the tag ! is not allowed"),
        ("a: !!map [1]\n", "f.yaml:1:4: the tag !!map is not allowed here"),
        ("a: .nan\n", "f.yaml:1:4: .nan is not a finite number"),
        ("a: 1.0e+999\n", "f.yaml:1:4: 1.0e+999 is not a finite number"),
        ("a: 22:22\n", "f.yaml:1:4: 22:22 is a YAML 1.1 base-60 number; quote it"),
        ("a: " + "9" * 65 + "\n", "f.yaml:1:4: a number longer than 64 characters"),
    ],
    ids=[
        "binary",
        "timestamp",
        "explicit-int",
        "set",
        "python",
        "local-tag",
        "non-specific-tag",
        "wrong-kind",
        "nan",
        "overflow",
        "base-60",
        "long-number",
    ],
)
def test_only_json_types(text: str, refusal: str) -> None:
    assert _refusal(text) == refusal


def test_explicit_str_seq_and_map_tags_are_kept() -> None:
    assert load("a: !!str 1\nb: !!seq [1]\nc: !!map {d: 2}\n", source="f.yaml") == {
        "a": "1",
        "b": [1],
        "c": {"d": 2},
    }


def test_depth_is_bounded() -> None:
    assert load("[" * MAX_DEPTH + "]" * MAX_DEPTH, source="f.yaml") is not None
    # Refused where the level too many opens, long before the interpreter's recursion limit.
    assert _refusal("[" * 100_000) == f"f.yaml:1:{MAX_DEPTH + 1}: nested deeper than 64 levels"
    assert (
        _refusal("a:\n  b:\n    c: 1\n", max_depth=2) == "f.yaml:3:5: nested deeper than 2 levels"
    )


def test_size_is_bounded() -> None:
    assert load("a: " + "x" * 97, source="f.yaml", max_bytes=100) == {"a": "x" * 97}
    assert _refusal("a: " + "x" * 98, max_bytes=100) == "f.yaml: larger than 100 bytes"
    assert _refusal("a: " + "é" * 49, max_bytes=100) == "f.yaml: larger than 100 bytes"


def test_syntax_and_encoding_errors_name_the_line_and_column() -> None:
    assert _refusal("a: 1\nb: [\n") == (
        "f.yaml:3:1: not valid YAML: expected the node content, but found '<stream end>'"
    )
    assert _refusal("a: 1\n  b: 2\n") == (
        "f.yaml:2:4: not valid YAML: mapping values are not allowed here"
    )
    assert _refusal(b"a: 1\nb: \xff\n") == "f.yaml:2:4: not UTF-8"
    assert _refusal("a: 1\nb: \x01\n") == (
        "f.yaml:2:4: not valid YAML: the character '\\x01' is not allowed"
    )


def test_a_stream_of_documents() -> None:
    text = "a: 1\n---\n---\nb: [2]\n"
    assert load_all(text, source="f.yaml") == [{"a": 1}, None, {"b": [2]}]
    assert load_all("", source="f.yaml") == []
    assert _refusal("a: 1\n---\na: 2\na: 3\n") == "f.yaml:4:1: duplicate key 'a' (first at line 3)"


def test_load_takes_one_document() -> None:
    assert load("", source="f.yaml") is None
    with pytest.raises(StrictYAMLError) as info:
        load("a: 1\n---\nb: 2\n", source="server.yaml")
    assert str(info.value) == "server.yaml:3:1: holds more than one YAML document"
    assert (info.value.line, info.value.column) == (3, 1)
    assert info.value.problem == "holds more than one YAML document"


def test_located_mappings_carry_their_lines() -> None:
    document = load("a: 1\nb:\n  c: 2\n  d: 3\n", source="f.yaml", locate=True)
    assert isinstance(document, LocatedDict) and isinstance(document["b"], LocatedDict)
    assert (document.line, document.key_lines) == (1, {"a": 1, "b": 2})
    assert (document["b"].line, document["b"].key_lines) == (3, {"c": 3, "d": 4})
    assert type(load("a: {}", source="f.yaml")["a"]) is dict

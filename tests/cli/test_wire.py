"""The lean wire reader against sigstore-models: the same verdict and the same tree on every bundle,
trusted root and client trust config of tests/data, and on mutated ones.

The oracle is the reading `keyless verify` did before the lean reader (client/bundle.py and
client/trust.py at 86a23ca): sigstore-models, with keyless's relaxed bundle model (an entry's
`inclusionProof` and the `tlogEntries` list may be absent) and the proto3 defaults restored
before a second parse. The bundle and trust-root rules that follow the reader take its tree as
given, so equal trees get equal verdicts: this file holds the readers to equal verdicts and
equal trees.

Where the two disagree, they do on purpose, and each case is pinned below:
- duplicate JSON keys: strict JSON refuses them; sigstore-models keeps the last;
- a field under both spellings (`mediaType` and `media_type`): refused; sigstore-models keeps
  the camelCase one and ignores the other unread;
- lenient scalars sigstore-models takes: base64 with characters outside the alphabet (other
  than line breaks), uint64 strings other than decimal digits (" 7", "+7", "7_0", "-0"), times
  other than RFC 3339 ("2025-01-01 00:00:00Z", no seconds, "+0100", a count of seconds);
- the proto3 defaults are restored whichever spelling the document uses (the oracle looked for
  the camelCase names only): the comparison runs the oracle on the camelCase spelling.
"""

from __future__ import annotations

import base64
import copy
import enum
import json
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from sigstore_models import intoto
from sigstore_models.bundle import v1 as sm_bundle
from sigstore_models.common import v1 as sm_common
from sigstore_models.rekor import v1 as sm_rekor
from sigstore_models.trustroot import v1 as sm_trustroot

from keyless.client.bundle import Bundle
from keyless.client.trust import TrustedRoot
from keyless.client.verify import BundleError, TrustRootError
from keyless.client.wire import (
    WireError,
    bundle,
    common,
    read_bundle,
    read_client_trust_config,
    read_trusted_root,
    trustroot,
)
from keyless.client.wire.schema import MAX_UINT64, Message
from keyless.strictjson import JSONError
from tests.cli.forge import Instance, dumps
from tests.conftest import DATA, KEYLESS, REPO

# The oracle: the sigstore-models reading of 86a23ca.


def _relaxed_bundle_model() -> type[BaseModel]:
    from typing import Optional

    class Entry(sm_rekor.TransparencyLogEntry):
        inclusion_proof: Optional[sm_rekor.InclusionProof] = None  # noqa: UP045

    class Material(sm_bundle.VerificationMaterial):
        tlog_entries: list[Entry] = []  # type: ignore[assignment]  # noqa: RUF012

    class RelaxedBundle(sm_bundle.Bundle):
        verification_material: Material  # type: ignore[assignment]

    return RelaxedBundle


RELAXED_BUNDLE = _relaxed_bundle_model()


def _restore_bundle(document: Any) -> bool:
    entries = document["verificationMaterial"]["tlogEntries"]
    changed = False
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        proof = entry.get("inclusionProof")
        targets = [(entry, "logIndex", "0")]
        if isinstance(proof, dict):
            targets += [(proof, "logIndex", "0"), (proof, "hashes", [])]
        for holder, key, default in targets:
            if key not in holder:
                holder[key] = default
                changed = True
    return changed


def _restore_trusted_root(root: Any) -> bool:
    if not isinstance(root, dict):
        return False
    changed = False
    for field in ("certificateAuthorities", "timestampAuthorities"):
        authorities = root.get(field)
        for authority in authorities if isinstance(authorities, list) else []:
            if not isinstance(authority, dict):
                continue
            if "subject" not in authority:
                authority["subject"] = {}
            subject = authority["subject"]
            for key in ("organization", "commonName"):
                if isinstance(subject, dict) and key not in subject:
                    subject[key] = ""
                    changed = True
    return changed


def _restore_trust_config(config: Any) -> bool:
    changed = _restore_trusted_root(config.get("trustedRoot"))
    signing = config.get("signingConfig")
    for field in ("caUrls", "oidcUrls", "rekorTlogUrls", "tsaUrls"):
        services = signing.get(field) if isinstance(signing, dict) else None
        for service in services if isinstance(services, list) else []:
            if isinstance(service, dict) and "operator" not in service:
                service["operator"] = ""
                changed = True
    return changed


def _oracle(model: type[BaseModel], restore: Callable[[Any], bool]) -> Callable[[str], Any]:
    """sigstore-models' parse, then once more with the proto3 defaults restored; None when it
    refuses. (The old code let a RecursionError out of its second parse: issue 23.)"""

    def read(data: str) -> Any:
        try:
            return model.model_validate_json(data)
        except ValidationError:
            pass
        try:
            document = json.loads(data)
            if not isinstance(document, dict) or not restore(document):
                return None
            return model.model_validate_json(json.dumps(document))
        except (ValueError, KeyError, TypeError, RecursionError):
            return None

    return read


# What each reader is compared on: (lean reader, oracle, the lean top type).
KINDS: dict[str, tuple[Callable[[str], Message], Callable[[str], Any]]] = {
    "bundle": (read_bundle, _oracle(RELAXED_BUNDLE, _restore_bundle)),
    "trusted root": (
        read_trusted_root,
        _oracle(sm_trustroot.TrustedRoot, _restore_trusted_root),
    ),
    "trust config": (
        lambda data: read_client_trust_config(data, what="trust config"),
        _oracle(sm_trustroot.ClientTrustConfig, _restore_trust_config),
    ),
}


# The corpus: every bundle, trusted root and trust config in tests/data (and the shipped roots).


def _corpus() -> list[tuple[str, str, str]]:
    """(kind, name, JSON) of every document in tests/data."""
    found = []
    for path in sorted(DATA.rglob("*.sigstore.json")):
        found.append(("bundle", str(path.relative_to(DATA)), path.read_text()))
    for path in sorted(DATA.rglob("*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                found.append(("bundle", f"{path.relative_to(DATA)}:{number}", line))
    roots = sorted(DATA.rglob("*trusted_root*.json")) + sorted(
        (REPO / "client" / "data").glob("*trusted_root*.json")
    )
    signing = (DATA / "sigstore-trust-roots" / "production_signing_config.v0.2.json").read_text()
    for path in roots:
        found.append(("trusted root", str(path.relative_to(REPO)), path.read_text()))
        config = {
            "mediaType": trustroot.CLIENT_TRUST_CONFIG_MEDIA_TYPE,
            "trustedRoot": json.loads(path.read_text()),
            "signingConfig": json.loads(signing),
        }
        found.append(("trust config", f"{path.relative_to(REPO)} + signing config", dumps(config)))
    return found


CORPUS = _corpus()


def test_the_corpus_holds_every_kind_of_document() -> None:
    names = [name for _, name, _ in CORPUS]
    assert sum(kind == "bundle" for kind, _, _ in CORPUS) >= 70
    assert sum(kind == "trusted root" for kind, _, _ in CORPUS) >= 40
    assert any(name.endswith(".jsonl:1") for name in names)


# The comparison.


def _has_duplicate_keys(data: str) -> bool:
    duplicated = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal duplicated
        duplicated = duplicated or len({key for key, _ in items}) != len(items)
        return dict(items)

    try:
        json.loads(data, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return False
    return duplicated


def _field_names() -> dict[str, str]:
    """Every field's proto name, mapped to its camelCase spelling."""
    names = {}
    for module in (common, bundle, trustroot):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Message):
                names.update({f.name: f.json_name for f in value.FIELDS if f.name != f.json_name})
    return names


SNAKE_TO_CAMEL = _field_names()
CAMEL_TO_SNAKE = {camel: snake for snake, camel in SNAKE_TO_CAMEL.items()}


class _Collision(Exception):
    """A key appears under both of its spellings in one object."""


def _camelized(value: Any) -> Any:
    """The document with every proto field name spelled in camelCase."""
    if isinstance(value, list):
        return [_camelized(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = SNAKE_TO_CAMEL.get(key, key)
        if name in out:
            raise _Collision(name)
        out[name] = _camelized(item)
    return out


def _at(document: Any, location: tuple[str | int, ...]) -> Any:
    for part in location:
        document = document[part]
    return document


STRICT = ConfigDict(strict=True)


def _lenient_scalar(reason: str, value: Any) -> bool:
    """True when `value` is one of the lenient scalars sigstore-models takes and the lean
    reader refuses on purpose (its `reason` says which)."""
    if not isinstance(value, str):
        return False
    if reason == "Value error, Expected protobuf uint64 as decimal digits":
        return 0 <= int(value) <= MAX_UINT64
    if reason.startswith("Input should be a valid datetime, as RFC 3339"):
        try:
            TypeAdapter(datetime, config=STRICT).validate_json(json.dumps(value))
        except ValidationError:
            return False
        return True
    if reason.startswith("Value error, "):
        try:
            base64.b64decode(value.replace("\n", "").replace("\r", ""), validate=True)
        except ValueError:
            base64.b64decode(value)  # raises, and fails the test, unless lenient base64
            return True
    return False


def _same_tree(ours: Any, theirs: Any, where: str = "") -> None:
    """The lean tree equals sigstore-models' tree field for field."""
    if isinstance(ours, Message):
        assert isinstance(theirs, BaseModel), where
        for field in type(ours).FIELDS:
            _same_tree(
                getattr(ours, field.name), getattr(theirs, field.name), where + "." + field.name
            )
    elif isinstance(ours, tuple):
        assert isinstance(theirs, list) and len(ours) == len(theirs), where
        for index, (mine, other) in enumerate(zip(ours, theirs, strict=True)):
            _same_tree(mine, other, f"{where}.{index}")
    elif isinstance(theirs, enum.Enum):
        assert ours == theirs.value, where
    elif isinstance(ours, datetime):
        assert ours == theirs and ours.utcoffset() == theirs.utcoffset(), where
    else:
        assert type(ours) is type(theirs) and ours == theirs, where


def _compare(kind: str, data: str) -> None:
    """Both readers read `data` alike, or they differ in one of the documented ways."""
    lean_read, oracle = KINDS[kind]
    try:
        ours: Message | None = lean_read(data)
        refusal: Exception | None = None
    except (JSONError, WireError) as exc:
        ours, refusal = None, exc
    if _has_duplicate_keys(data):
        assert isinstance(refusal, JSONError) and "has a duplicate field" in str(refusal)
        return
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        assert refusal is not None and oracle(data) is None
        return
    try:
        spelled = _camelized(document)
    except _Collision:
        assert refusal is not None, "a field under both spellings must be refused"
        return
    except RecursionError:
        assert isinstance(refusal, JSONError)
        return
    theirs = oracle(data if spelled == document else json.dumps(spelled))
    if refusal is None:
        assert theirs is not None, (
            f"the lean reader accepts what sigstore-models refuses: {data[:300]}"
        )
        _same_tree(ours, theirs)
    elif theirs is not None:
        assert isinstance(refusal, WireError), refusal
        value = _at(spelled, refusal.location)
        assert _lenient_scalar(refusal.reason, value), f"{refusal} ({value!r})"


@pytest.mark.parametrize(("kind", "name", "data"), CORPUS, ids=[f"{k}:{n}" for k, n, _ in CORPUS])
def test_every_document_of_the_suite_reads_alike(kind: str, name: str, data: str) -> None:
    _compare(kind, data)


def _to_snake(value: Any) -> Any:
    if isinstance(value, list):
        return [_to_snake(item) for item in value]
    if isinstance(value, dict):
        return {CAMEL_TO_SNAKE.get(key, key): _to_snake(item) for key, item in value.items()}
    return value


@pytest.mark.parametrize(("kind", "name", "data"), CORPUS[::7], ids=[n for _, n, _ in CORPUS[::7]])
def test_proto_field_names_read_alike(kind: str, name: str, data: str) -> None:
    """Protobuf's JSON mapping also takes the proto (snake_case) names, as sigstore-models does."""
    snake = json.dumps(_to_snake(json.loads(data)))
    assert snake != data
    _compare(kind, snake)
    lean_read, oracle = KINDS[kind]
    if oracle(snake) is not None:
        assert lean_read(snake) == lean_read(data)


# Mutations: drop, duplicate and retag fields, wrong types, bad base64, lenient scalars, nesting.


class _Pairs(list):  # type: ignore[type-arg]
    """An object written with its keys in this order, repeats included."""


def _dump(value: Any) -> str:
    if isinstance(value, _Pairs | dict):
        items = value if isinstance(value, _Pairs) else value.items()
        return "{" + ",".join(f"{json.dumps(k)}:{_dump(v)}" for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(item) for item in value) + "]"
    return json.dumps(value)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, _Pairs):
        return found
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _replace(document: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copied = copy.copy(document)
    copied[path[0]] = _replace(document[path[0]], path[1:], new)
    return copied


OTHER_VALUES = [None, 0, 1, -1, 1.5, True, "", "x", [], {}, ["QUJD"], {"a": 1}, "QUJD", "1"]
STRING_EDITS = [" ", "!", "-", "_", "=", "\n", "é", "+", "/", "A", "\\ud800"]
NUMBER_EDITS = [" 7", "+7", "-1", "-0", "7_0", "\u0667", "", "0x7", "07", "18446744073709551616"]
TIME_EDITS = [
    "2025-01-01T00:00:00Z",
    "2025-01-01T00:00:00.123456789Z",
    "2025-01-01t00:00:00z",
    "2025-01-01 00:00:00Z",
    "2025-01-01_00:00:00Z",
    "2025-01-01T00:00Z",
    "2025-01-01T00:00:00",
    "2025-01-01T00:00:00+01:00",
    "2025-01-01T00:00:00+0100",
    "2025-01-01T00:00:00,5Z",
    "2025-02-30T00:00:00Z",
    "2025-01-01T24:00:00Z",
    "2025-01-01",
    "1700000000",
]
NAMES = sorted(set(SNAKE_TO_CAMEL) | set(SNAKE_TO_CAMEL.values()) | {"kind", "x"})


@st.composite
def _mutation(draw: st.DrawFn, document: Any) -> Any:
    paths = _paths(document)
    leaves = [p for p in paths if not isinstance(_at(document, p), dict | list)]
    path = draw(st.sampled_from(leaves if leaves and draw(st.integers(0, 9)) < 6 else paths))
    node = _at(document, path)
    numeric = [
        p for p in leaves if isinstance(_at(document, p), str) and _at(document, p).isdigit()
    ]
    choices = ["type", "nest"] + (["swap"] * 2 if len(numeric) > 1 else [])
    if isinstance(node, dict) and node:
        choices += ["drop", "duplicate", "retag"]
    if isinstance(node, list) and not isinstance(node, _Pairs):
        choices += ["drop-item", "repeat-item"]
    if isinstance(node, str):
        choices += ["edit", "number", "time", "bytes"]
    how = draw(st.sampled_from(choices))
    if how == "swap":  # two integers trade places (a proof index against its tree size)
        first, second = draw(st.lists(st.sampled_from(numeric), min_size=2, max_size=2))
        swapped = _replace(document, first, _at(document, second))
        return _replace(swapped, second, _at(document, first))
    if how == "bytes":  # other, well-formed base64
        return _replace(document, path, base64.b64encode(draw(st.binary(max_size=40))).decode())
    if how == "type":
        return _replace(document, path, draw(st.sampled_from(OTHER_VALUES)))
    if how == "nest":
        depth = draw(st.integers(1, 40))
        nested: Any = node
        for level in range(depth):
            nested = [nested] if level % 2 else {"a": nested}
        return _replace(document, path, nested)
    if how in ("drop", "duplicate", "retag"):
        key = draw(st.sampled_from(sorted(node)))
        items = list(node.items())
        if how == "drop":
            return _replace(document, path, {k: v for k, v in items if k != key})
        if how == "duplicate":
            value = draw(st.sampled_from([node[key], *OTHER_VALUES[:4]]))
            return _replace(document, path, _Pairs([*items, (key, value)]))
        twin = SNAKE_TO_CAMEL.get(key) or CAMEL_TO_SNAKE.get(key) or key.upper()
        name = draw(st.sampled_from([twin, key.capitalize(), *NAMES]))
        keep = draw(st.booleans())  # keep the old key too: a field under two names
        renamed = [(k, v) for k, v in items if keep or k != key] + [(name, node[key])]
        return _replace(document, path, _Pairs(renamed) if keep else dict(renamed))
    if how == "drop-item":
        index = draw(st.integers(0, max(len(node) - 1, 0)))
        return _replace(document, path, node[:index] + node[index + 1 :])
    if how == "repeat-item":
        return _replace(document, path, node + node[:1])
    if how == "edit":
        edit = draw(st.sampled_from(STRING_EDITS)).encode().decode("unicode_escape")
        where = draw(st.integers(0, len(node)))
        cut = draw(st.sampled_from([0, 0, 1, 2]))
        return _replace(document, path, node[:where] + edit + node[where + cut :])
    if how == "number":
        numbers = st.integers(0, 40) | st.integers(0, 2**64 + 40) | st.sampled_from([2**64 - 1])
        number = draw(st.sampled_from(NUMBER_EDITS) | numbers.map(str))
        return _replace(document, path, number)
    return _replace(document, path, draw(st.sampled_from(TIME_EDITS)))


def _seeds() -> list[tuple[str, Any]]:
    seeds = []
    for kind, _, data in CORPUS:
        try:
            seeds.append((kind, json.loads(data)))
        except ValueError:
            continue  # the malformed-JSON case
    return seeds


SEEDS = _seeds()


@st.composite
def _mutated(draw: st.DrawFn) -> tuple[str, str]:
    kind, document = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        document = draw(_mutation(document))
    return kind, _dump(document)


@settings(
    max_examples=600,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(_mutated())
def test_mutated_documents_read_alike(case: tuple[str, str]) -> None:
    _compare(*case)


# The disagreements, one by one, and the agreements most worth pinning.


@pytest.fixture(scope="module")
def valid(instance: Instance) -> dict:
    return instance.sign(b"artifact\n")


def _both(kind: str, data: str) -> tuple[Any, Exception | None]:
    lean_read, oracle = KINDS[kind]
    try:
        lean_read(data)
    except (JSONError, WireError) as exc:
        return oracle(data), exc
    return oracle(data), None


def test_a_duplicate_key_is_refused_where_sigstore_models_keeps_the_last(valid: dict) -> None:
    data = dumps(valid)
    twice = data.replace('"mediaType":', '"mediaType": "x", "mediaType":', 1)
    theirs, refusal = _both("bundle", twice)
    assert theirs is not None
    assert str(refusal) == "bundle has a duplicate field 'mediaType'"


def test_a_field_under_both_spellings_is_refused(valid: dict) -> None:
    doc = dict(valid, media_type="not even a media type")
    theirs, refusal = _both("bundle", dumps(doc))
    assert theirs is not None  # sigstore-models ignores `media_type` unread
    assert str(refusal) == "mediaType: given twice, as 'mediaType' and as 'media_type'"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("signature", "!", "Value error, Only base64 data is allowed"),
        ("signature", " ", "Value error, Only base64 data is allowed"),
        ("logIndex", " ", "Value error, Expected protobuf uint64 as decimal digits"),
        ("logIndex", "+", "Value error, Expected protobuf uint64 as decimal digits"),
    ],
    ids=["base64-bang", "base64-space", "uint64-space", "uint64-plus"],
)
def test_lenient_scalars_are_refused(valid: dict, field: str, value: str, reason: str) -> None:
    doc = copy.deepcopy(valid)
    holder = (
        doc["messageSignature"]
        if field == "signature"
        else doc["verificationMaterial"]["tlogEntries"][0]
    )
    holder[field] = value + holder[field]
    theirs, refusal = _both("bundle", dumps(doc))
    assert theirs is not None
    assert isinstance(refusal, WireError) and refusal.reason == reason


def test_base64_broken_into_lines_reads_alike(valid: dict) -> None:
    """As `base64` writes it (a sigstore-conformance case's timestamp is so written)."""
    doc = copy.deepcopy(valid)
    signature = doc["messageSignature"]["signature"]
    doc["messageSignature"]["signature"] = "\n".join(
        signature[i : i + 8] for i in range(0, len(signature), 8)
    )
    _compare("bundle", dumps(doc))
    signed = read_bundle(dumps(doc)).message_signature
    assert signed == read_bundle(dumps(valid)).message_signature


@pytest.mark.parametrize(
    "start",
    ["2025-01-01 00:00:00Z", "2025-01-01T00:00Z", "2025-01-01T00:00:00+0100", "1735689600"],
)
def test_times_other_than_rfc3339_are_refused(instance: Instance, start: str) -> None:
    doc = instance.trusted_root()
    doc["tlogs"][0]["publicKey"]["validFor"] = {"start": start}
    theirs, refusal = _both("trusted root", dumps(doc))
    assert theirs is not None
    assert str(refusal) == (
        "tlogs.0.publicKey.validFor.start: Input should be a valid datetime, as RFC 3339 "
        "(YYYY-MM-DDTHH:MM:SS[.fraction]Z)"
    )


def test_rfc3339_times_read_alike(instance: Instance) -> None:
    for start in ("2025-01-01t00:00:00.123456789z", "2025-01-01T01:00:00+01:00"):
        doc = instance.trusted_root()
        doc["tlogs"][0]["publicKey"]["validFor"] = {"start": start}
        _compare("trusted root", dumps(doc))


WHERE = "verificationMaterial.tlogEntries.0"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"extra": 1, "kindVersion": None}, f"{WHERE}.extra: Extra inputs are not permitted"),
        (
            {"logIndex": 7, "kindVersion": None},
            f"{WHERE}.logIndex: Value error, Expected protobuf uint64 as string, got int",
        ),
        ({"kindVersion": None}, f"{WHERE}.kindVersion: Field required"),
        ({"logId": []}, f"{WHERE}.logId: Input should be an object"),
        (
            {"logIndex": "18446744073709551616"},
            f"{WHERE}.logIndex: Value error, Value exceeds uint64 domain: 18446744073709551616",
        ),
    ],
    ids=["extras-first", "then-fields-in-order", "missing", "not-an-object", "beyond-uint64"],
)
def test_problems_read_as_sigstore_models_words_them(
    valid: dict, change: dict, problem: str
) -> None:
    """Unknown keys first, then the fields in their order, each in sigstore-models' words (a
    None in `change` deletes the field)."""
    doc = copy.deepcopy(valid)
    entry = doc["verificationMaterial"]["tlogEntries"][0]
    for key, value in change.items():
        if value is None:
            del entry[key]
        else:
            entry[key] = value
    with pytest.raises(WireError) as info:
        read_bundle(dumps(doc))
    assert str(info.value) == problem
    with pytest.raises(ValidationError) as theirs:
        RELAXED_BUNDLE.model_validate_json(dumps(doc))
    first = theirs.value.errors()[0]
    assert f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}" == problem


def test_a_document_nested_100000_deep_is_a_json_error() -> None:
    """Strict JSON bounds nesting, so no reader recurses into it (issue 23)."""
    deep = "[" * 100_000 + "]" * 100_000
    for kind, (lean_read, oracle) in KINDS.items():
        with pytest.raises(JSONError) as info:
            lean_read(deep)
        assert str(info.value) == f"{kind} is nested too deeply"
        assert oracle(deep) is None


# The lean types are sigstore-models' types, field for field.

SIGSTORE_MODELS = (sm_common, sm_rekor, intoto, sm_bundle, sm_trustroot)
# Fields that may be absent here and not there: keyless's relaxations and the proto3 defaults.
DEFAULTED = {
    ("TransparencyLogEntry", "inclusion_proof"),
    ("TransparencyLogEntry", "log_index"),
    ("VerificationMaterial", "tlog_entries"),
    ("InclusionProof", "log_index"),
    ("InclusionProof", "hashes"),
    ("DistinguishedName", "organization"),
    ("DistinguishedName", "common_name"),
    ("CertificateAuthority", "subject"),
    ("Service", "operator"),
}


def _lean_types() -> list[type[Message]]:
    return [
        value
        for module in (common, bundle, trustroot)
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, Message)
        and value.__module__ == module.__name__
    ]


@pytest.mark.parametrize("lean", _lean_types(), ids=lambda cls: cls.__name__)
def test_each_type_has_sigstore_models_fields_in_their_order(lean: type[Message]) -> None:
    """Same names, spellings and order (the order decides which problem is reported first),
    and the same required, optional and nullable fields but for the documented defaults."""
    (theirs,) = {vars(m)[lean.__name__] for m in SIGSTORE_MODELS if lean.__name__ in vars(m)}
    theirs.model_rebuild()  # resolves its forward references, and with them the aliases
    fields = theirs.model_fields
    assert [f.name for f in lean.FIELDS] == list(fields)
    for field in lean.FIELDS:
        model_field = fields[field.name]
        assert field.json_name == model_field.alias
        if (lean.__name__, field.name) in DEFAULTED:
            assert model_field.is_required()
            assert not field.required
        else:
            nullable = type(None) in getattr(model_field.annotation, "__args__", ())
            assert field.nullable == nullable, field.name
            assert field.required == model_field.is_required(), field.name
            if not field.required:
                assert field.absent == model_field.default or (
                    field.absent == () and model_field.default == []
                )


# Through `Bundle` and `TrustedRoot`: the reader's refusals as BundleError and TrustRootError.

DEEP = 100_000


def test_a_duplicate_key_is_a_bundle_error(valid: dict) -> None:
    twice = dumps(valid).replace('"mediaType":', '"mediaType": "x", "mediaType":', 1)
    with pytest.raises(BundleError) as info:
        Bundle.from_json(twice)
    assert info.value.detail == "bundle has a duplicate field 'mediaType'"


def test_a_shape_problem_is_a_malformed_bundle(valid: dict) -> None:
    doc = dict(valid, media_type=valid["mediaType"])
    with pytest.raises(BundleError) as info:
        Bundle.from_json(dumps(doc))
    assert info.value.detail == (
        "malformed bundle: mediaType: given twice, as 'mediaType' and as 'media_type'"
    )


def test_a_bundle_nested_100000_deep_is_a_bundle_error() -> None:
    deep = '{"mediaType":' + "[" * DEEP + "]" * DEEP + "}"
    with pytest.raises(BundleError) as info:
        Bundle.from_json(deep)
    assert info.value.detail == "bundle is nested too deeply"
    objects = '{"a":' * DEEP + "1" + "}" * DEEP
    with pytest.raises(BundleError) as info:
        Bundle.from_json(objects)
    assert info.value.detail == "bundle is nested too deeply"


def test_a_trusted_root_nested_100000_deep_is_a_trust_root_error() -> None:
    with pytest.raises(TrustRootError) as info:
        TrustedRoot.from_json("[" * DEEP + "]" * DEEP)
    assert info.value.detail == "trusted root is nested too deeply"


def test_keyless_verify_of_a_deep_bundle_says_so_in_one_line(tmp_path: Path) -> None:
    """Issue 23: this printed a RecursionError traceback."""
    deep = tmp_path / "deep.sigstore.json"
    deep.write_text('{"mediaType":' + "[" * DEEP + "]" * DEEP + "}")
    (tmp_path / "a.txt").write_bytes(b"a")
    flags = ["--certificate-identity", "x", "--certificate-oidc-issuer", "y"]
    argv = [*KEYLESS, "verify", "--bundle", str(deep), *flags, str(tmp_path / "a.txt")]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr == "error: verification failed (bundle): bundle is nested too deeply\n"

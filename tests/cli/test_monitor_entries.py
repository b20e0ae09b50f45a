"""How the monitor reads an entry's signers: each kind keyless logs, and anything else a log may
hold, named by reason instead of raising or being skipped."""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from cli.monitor import (
    PUBLIC_KEY,
    UNKNOWN_KIND,
    UNREADABLE,
    WatchList,
    entry_certificates,
    entry_signers,
    judge_entry,
)
from tests.tlog.conftest import make_signer

WATCH = WatchList.build([], [".*"], [])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _v2(verifier: dict) -> bytes:
    spec = {"data": {}, "signature": {"content": "", "verifier": verifier}}
    return json.dumps(
        {"apiVersion": "0.0.2", "kind": "hashedrekord", "spec": {"hashedRekordV002": spec}}
    ).encode()


def test_each_kind_keyless_logs() -> None:
    signer = make_signer("signer@example.com")
    pem = signer.cert.public_bytes(serialization.Encoding.PEM)
    der = signer.cert.public_bytes(serialization.Encoding.DER)
    key_pem = signer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    v1 = {"signature": {"publicKey": {"content": _b64(pem)}}}
    bodies = {
        "v2-cert": _v2({"x509Certificate": {"rawBytes": _b64(der)}}),
        "v1-cert": json.dumps({"kind": "hashedrekord", "apiVersion": "0.0.1", "spec": v1}),
        "dsse": json.dumps(
            {
                "kind": "dsse",
                "apiVersion": "0.0.1",
                "spec": {"signatures": [{"verifier": _b64(pem)}]},
            }
        ),
        "intoto": json.dumps(
            {
                "kind": "intoto",
                "apiVersion": "0.0.2",
                "spec": {
                    "content": {
                        "envelope": {"signatures": [{"publicKey": _b64(_b64(pem).encode())}]}
                    }
                },
            }
        ),
    }
    for name, body in bodies.items():
        data = body if isinstance(body, bytes) else body.encode()
        assert entry_certificates(data) == [pem], name
        findings, skipped = judge_entry(7, "id", None, data, WATCH)
        assert skipped is None, name
        assert [(f.log_index, f.identity) for f in findings] == [(7, "signer@example.com")], name
    bare = _v2({"publicKey": {"rawBytes": _b64(b"key")}})
    findings, skipped = judge_entry(1, "id", None, bare, WATCH)
    assert findings == [] and (skipped.reason, skipped.detail) == (PUBLIC_KEY, "hashedrekord 0.0.2")
    assert entry_signers(bare).public_keys == 1
    v1_key = {"signature": {"publicKey": {"content": _b64(key_pem)}}}
    body = json.dumps({"kind": "hashedrekord", "apiVersion": "0.0.1", "spec": v1_key}).encode()
    findings, skipped = judge_entry(2, "id", 0, body, WATCH)
    assert findings == [] and (skipped.reason, skipped.detail) == (PUBLIC_KEY, "hashedrekord 0.0.1")


def test_what_cannot_be_judged_is_named() -> None:
    cases = {
        b"not json": (UNREADABLE, "not a JSON entry"),
        b"[1]": (UNREADABLE, "not a JSON object"),
        b"[" * 100_000: (UNREADABLE, "not a JSON entry"),
        b'{"kind": "rekord", "apiVersion": "0.0.1"}': (UNKNOWN_KIND, "rekord 0.0.1"),
        b'{"kind": ["x"], "apiVersion": 1}': (UNKNOWN_KIND, "(list) (int)"),
        b'{"kind": "a\\u001b[31m"}': (UNKNOWN_KIND, "'a\\x1b[31m' (NoneType)"),
        b'{"kind": "dsse", "apiVersion": "0.0.1", "spec": {"signatures": []}}': (
            UNREADABLE,
            "dsse 0.0.1 entry names no signer",
        ),
        b'{"kind": "dsse", "apiVersion": "0.0.1", "spec": {"signatures": [{"verifier": "eA=="}]}}': (
            UNREADABLE,
            "dsse 0.0.1 verifier is not a PEM",
        ),
        b'{"kind": "hashedrekord", "apiVersion": "0.0.2", "spec": {}}': (
            UNREADABLE,
            "malformed hashedrekord 0.0.2 entry",
        ),
        _v2({"x509Certificate": {"rawBytes": "!!"}}): (
            UNREADABLE,
            "malformed hashedrekord 0.0.2 entry",
        ),
        _v2({"x509Certificate": {"rawBytes": _b64(b"not DER")}}): (
            UNREADABLE,
            "hashedrekord 0.0.2 with a certificate that names no identity or cannot be parsed",
        ),
    }
    for body, (reason, detail) in cases.items():
        findings, skipped = judge_entry(3, "id", None, body, WATCH)
        assert findings == []
        assert (skipped.log_index, skipped.reason, skipped.detail) == (3, reason, detail), body[:60]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=30,
)
kinds = st.sampled_from(["hashedrekord", "dsse", "intoto", "rekord", 3, None])


@settings(max_examples=300, deadline=None)
@given(kind=kinds, version=st.sampled_from(["0.0.1", "0.0.2", None]), spec=json_values)
def test_arbitrary_entries_never_raise(kind, version, spec) -> None:
    body = json.dumps({"kind": kind, "apiVersion": version, "spec": spec}).encode()
    findings, skipped = judge_entry(0, "id", None, body, WATCH)
    assert findings == [] and skipped is not None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(body) -> None:
    findings, skipped = judge_entry(0, "id", None, body, WATCH)
    assert findings == [] and skipped is not None

"""The small pure checks on their own: DSSE subjects, log bodies, artifact input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from keyless.client.verify import VerificationError
from keyless.client.verify.artifact import Artifact, resolve_artifact
from keyless.client.verify.dsse import check_subject
from keyless.client.verify.entry import Signed, check_entry_body

DIGEST = hashlib.sha256(b"a").hexdigest()
ARTIFACT = Artifact.from_sha256(bytes.fromhex(DIGEST))


def _statement(*digests: str) -> bytes:
    return json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": f"f{i}", "digest": {"sha256": d}} for i, d in enumerate(digests)],
            "predicateType": "https://example/p",
            "predicate": {},
        }
    ).encode()


def test_subject_matches_any_listed_digest() -> None:
    check_subject("application/vnd.in-toto+json", _statement("00" * 32, DIGEST), artifact=ARTIFACT)


def _subject_error(payload_type: str, payload: bytes) -> str:
    with pytest.raises(VerificationError) as info:
        check_subject(payload_type, payload, artifact=ARTIFACT)
    assert info.value.check == "dsse"
    return info.value.detail


def test_subject_missing() -> None:
    assert _subject_error("application/vnd.in-toto+json", _statement("11" * 32)) == (
        f"artifact sha256:{DIGEST} is not a subject of the in-toto statement "
        f"(subjects: sha256:{'11' * 32})"
    )


def test_payload_type_not_in_toto() -> None:
    assert _subject_error("text/plain", _statement(DIGEST)).startswith("envelope payload type")


def test_statement_type_unknown() -> None:
    payload = json.dumps({"_type": "x", "subject": []}).encode()
    detail = _subject_error("application/vnd.in-toto+json", payload)
    assert detail == "envelope payload is not an in-toto statement"


def test_statement_deeply_nested() -> None:
    detail = _subject_error("application/vnd.in-toto+json", b"[" * 100_000)
    assert detail == "envelope payload is not valid JSON"


def _signed() -> Signed:
    return Signed(
        key_der=b"k",
        leaf_der=None,
        key_details="PKIX_ECDSA_P256_SHA_256",
        signature=b"s",
        digest=b"d" * 32,
        payload=None,
    )


def _body_error(body: bytes, kind: str = "hashedrekord", version: str = "0.0.1") -> str:
    with pytest.raises(VerificationError) as info:
        check_entry_body(body, kind=kind, version=version, signed=_signed())
    assert info.value.check == "log-body"
    return info.value.detail


def test_body_of_unsupported_kind() -> None:
    assert _body_error(b"{}", kind="rekord") == "unsupported log entry kind rekord/0.0.1"


def test_body_deeply_nested() -> None:
    assert _body_error(b"[" * 100_000) == "log body is nested too deeply"


def test_body_kind_differs_from_announced() -> None:
    body = json.dumps({"apiVersion": "0.0.1", "kind": "dsse", "spec": {}}).encode()
    assert _body_error(body) == "log body is not a hashedrekord/0.0.1 entry as announced"


def test_body_field_of_wrong_type() -> None:
    body = json.dumps({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": []}).encode()
    assert _body_error(body) == "log body field 'spec' is missing or not an object"


def test_v2_body_not_an_entry() -> None:
    assert _body_error(b'{"kind": 1}', version="0.0.2") == (
        "log body is not a hashedrekord/0.0.2 entry as announced"
    )


def test_artifact_digest_form(tmp_path: Path) -> None:
    artifact = resolve_artifact("sha256:" + DIGEST.upper())
    assert artifact.sha256.hex() == DIGEST
    assert artifact.path is None


def test_artifact_digest_lookalike_that_exists_is_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    name = "sha256:" + DIGEST
    Path(name).write_bytes(b"file contents")
    artifact = resolve_artifact(name)
    assert artifact.sha256 == hashlib.sha256(b"file contents").digest()
    assert artifact.path == Path(name)


def test_artifact_short_digest_is_a_file(tmp_path: Path) -> None:
    with pytest.raises(VerificationError) as info:
        resolve_artifact("sha256:abc")
    assert info.value.check == "artifact"
    assert info.value.detail == "cannot read sha256:abc: No such file or directory"

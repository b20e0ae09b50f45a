"""Signed-note checkpoints: known answers, real Rekor v1/v2 checkpoints, and refusals."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from keyless.tlog import merkle
from keyless.tlog.checkpoint import (
    Checkpoint,
    key_hint,
    parse_checkpoint_text,
    parse_note,
    sign_checkpoint,
    verify_checkpoint,
    verify_note,
)
from keyless.tlog.errors import CheckpointError

BUNDLES = Path("sigstore-conformance/test/assets/bundle-verify")


def _load_key(trusted_root: dict, key_id: str):
    for tlog in trusted_root["tlogs"]:
        if tlog["logId"]["keyId"] == key_id:
            raw = base64.b64decode(tlog["publicKey"]["rawBytes"])
            return serialization.load_der_public_key(raw)
    raise AssertionError(f"no tlog {key_id} in trusted root")


def _conformance_case(vectors: Path, name: str) -> tuple[str, object]:
    case = vectors / BUNDLES / name
    bundle = json.loads((case / "bundle.sigstore.json").read_text())
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    root_path = case / "trusted_root.json"
    if not root_path.exists():
        root_path = vectors / "sigstore-trust-roots" / "production_trusted_root.json"
    trusted_root = json.loads(root_path.read_text())
    key = _load_key(trusted_root, entry["logId"]["keyId"])
    return entry["inclusionProof"]["checkpoint"]["envelope"], key


@pytest.mark.parametrize(
    ("case", "size", "name"),
    [
        ("happy-path-v0.3", 75408393, "rekor.sigstore.dev"),
        ("rekor2-happy-path", 736, "log2025-alpha1.rekor.sigstage.dev"),
        ("rekor2-checkpoint-cosigned", 736, "log2025-alpha1.rekor.sigstage.dev"),
        ("rekor2-checkpoint-origin-not-first", 736, "log2025-alpha1.rekor.sigstage.dev"),
        ("rekor2-checkpoint-two-sigs-from-origin", 736, "log2025-alpha1.rekor.sigstage.dev"),
        ("rekor2-checkpoint-multiple-cosigs", 736, "log2025-alpha1.rekor.sigstage.dev"),
    ],
)
def test_real_checkpoints_verify(vectors: Path, case: str, size: int, name: str) -> None:
    envelope, key = _conformance_case(vectors, case)
    checkpoint = verify_checkpoint(envelope, public_key=key, name=name)
    assert checkpoint.size == size
    assert checkpoint.origin.startswith(name)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("invalid-checkpoint-signature_fail", "checkpoint-signature-invalid"),
        ("checkpoint-bad-keyhint_fail", "checkpoint-unsigned"),
        ("rekor2-checkpoint-no-matching-signature_fail", "checkpoint-unsigned"),
        ("rekor2-checkpoint-missing-log-signature_fail", "checkpoint-unsigned"),
        ("rekor2-checkpoint-missing-origin_fail", "checkpoint-invalid"),
        ("rekor2-checkpoint-missing-root-hash_fail", "checkpoint-invalid"),
        ("rekor2-checkpoint-missing-size_fail", "checkpoint-invalid"),
    ],
)
def test_bad_real_checkpoints_refused(vectors: Path, case: str, reason: str) -> None:
    envelope, key = _conformance_case(vectors, case)
    with pytest.raises(CheckpointError) as excinfo:
        verify_checkpoint(envelope, public_key=key)
    assert excinfo.value.reason == reason


def test_go_note_known_answer() -> None:
    # golang.org/x/mod/sumdb/note: key "PeterNeumann+c74f20a3+ARpc2QcU...".
    encoded = base64.b64decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    assert encoded[0] == 1
    key = ed25519.Ed25519PublicKey.from_public_bytes(encoded[1:])
    assert key_hint(key, name="PeterNeumann").hex() == "c74f20a3"
    text = (
        "If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n"
    )
    note = (
        text + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXg"
        "KvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    )
    parsed = parse_note(note)
    assert parsed.text == text
    assert parsed.render() == note
    verify_note(parsed, public_key=key, name="PeterNeumann")
    tampered = parse_note(note.replace("cryptography", "Cryptography"))
    with pytest.raises(CheckpointError) as excinfo:
        verify_note(tampered, public_key=key)
    assert excinfo.value.message == "checkpoint signature by PeterNeumann does not verify"


def test_sign_then_verify_rekor_style() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    root = merkle.leaf_hash(b"x")
    checkpoint = Checkpoint("127.0.0.1:3000 - 42", 7, root)
    note = sign_checkpoint(checkpoint, name="127.0.0.1:3000", private_key=key)
    text = f"127.0.0.1:3000 - 42\n7\n{base64.b64encode(root).decode()}\n"
    assert note.startswith(text + "\n— 127.0.0.1:3000 ")
    assert note.count("\n\n") == 1 and note.endswith("\n")
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    blob = base64.b64decode(note.rsplit(" ", 1)[1])
    assert blob[:4] == hashlib.sha256(der).digest()[:4]
    assert verify_checkpoint(note, public_key=key.public_key(), name="127.0.0.1:3000") == checkpoint
    with pytest.raises(CheckpointError) as excinfo:
        verify_checkpoint(note, public_key=key.public_key(), name="other:1")
    assert excinfo.value.message == "checkpoint has no signature by the log's key named other:1"
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(CheckpointError) as excinfo:
        verify_checkpoint(note, public_key=other)
    assert excinfo.value.reason == "checkpoint-unsigned"


def test_extension_lines_round_trip() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    checkpoint = Checkpoint("origin", 0, merkle.EMPTY_ROOT, ("Timestamp: 1689177396617352539",))
    note = sign_checkpoint(checkpoint, name="origin", private_key=key)
    assert verify_checkpoint(note, public_key=key.public_key()) == checkpoint


ROOT_B64 = base64.b64encode(merkle.EMPTY_ROOT).decode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            f"origin\n1\n{ROOT_B64}", "note text does not end with a newline", id="missing-newline"
        ),
        pytest.param(
            f"origin\nabc\n{ROOT_B64}\n",
            "checkpoint tree size 'abc' is not a valid size",
            id="non-numeric-size",
        ),
        pytest.param(
            f"origin\n-1\n{ROOT_B64}\n",
            "checkpoint tree size '-1' is not a valid size",
            id="negative-size",
        ),
        pytest.param(
            f"origin\n01\n{ROOT_B64}\n",
            "checkpoint tree size '01' is not a valid size",
            id="leading-zero-size",
        ),
        pytest.param(
            f"origin\n9223372036854775808\n{ROOT_B64}\n",
            "checkpoint tree size '9223372036854775808' is not a valid size",
            id="overflowing-size",
        ),
        pytest.param(
            "origin\n1\nnot base64!\n",
            "checkpoint root hash is not valid base64",
            id="non-base64-root",
        ),
        pytest.param(
            "origin\n1\nYmFuYW5hcw==\n",
            "checkpoint root hash is 7 bytes, not 32",
            id="short-root",
        ),
        pytest.param(
            f"1\n{ROOT_B64}\n",
            "checkpoint needs an origin, a tree size and a root hash",
            id="missing-origin",
        ),
        pytest.param(
            f"origin\n1\n{ROOT_B64}\nbad\x01line\n",
            "note text contains a control character",
            id="control-character",
        ),
    ],
)
def test_malformed_checkpoint_text(text: str, message: str) -> None:
    with pytest.raises(CheckpointError) as excinfo:
        parse_checkpoint_text(text)
    assert excinfo.value.message == message


GOOD_SIG = "— origin " + base64.b64encode(b"\x01\x02\x03\x04signature").decode()


@pytest.mark.parametrize(
    ("note", "message"),
    [
        pytest.param(
            f"origin\n1\n{ROOT_B64}\n\n",
            "signed note has no signature",
            id="no-signature",
        ),
        pytest.param(
            f"origin\n1\n{ROOT_B64}\n{GOOD_SIG}\n",
            "signed note must have exactly one blank line before its signatures",
            id="no-blank-line",
        ),
        pytest.param(
            f"origin\n1\n\n{ROOT_B64}\n\n{GOOD_SIG}\n",
            "signed note must have exactly one blank line before its signatures",
            id="two-blank-lines",
        ),
        pytest.param(
            f"origin\n1\n{ROOT_B64}\n\n- origin AAAAAAAA\n",
            "malformed signature line '- origin AAAAAAAA'",
            id="signature-without-em-dash",
        ),
        pytest.param(
            f"origin\n1\n{ROOT_B64}\n\n— origin AAAA*AAA\n",
            "signature is not valid base64",
            id="signature-bad-base64",
        ),
        pytest.param(
            f"origin\n1\n{ROOT_B64}\n\n— origin AAAAAA==\n",
            "signature is too short to hold a key hint",
            id="signature-only-hint",
        ),
        pytest.param(
            f"origin\n1\n{ROOT_B64}\n\n{GOOD_SIG}",
            "signed note does not end with a newline",
            id="signature-missing-newline",
        ),
        pytest.param(
            "x" * (64 * 1024 + 1),
            "signed note is larger than 65536 bytes",
            id="oversized-note",
        ),
        pytest.param(
            b"origin\n1\n\xff\n\n",
            "signed note is not UTF-8",
            id="not-utf8",
        ),
    ],
)
def test_malformed_signed_note(note: str | bytes, message: str) -> None:
    with pytest.raises(CheckpointError) as excinfo:
        parse_note(note)
    assert excinfo.value.message == message

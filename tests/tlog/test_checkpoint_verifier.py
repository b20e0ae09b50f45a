"""CheckpointVerifier (a key prepared once) gives `verify_checkpoint`'s verdict and error on
every note, hostile ones included: same checkpoint, or same exception type, message and reason."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from keyless.tlog.checkpoint import (
    EM_DASH,
    Checkpoint,
    CheckpointVerifier,
    PublicKey,
    key_hint,
    sign_checkpoint,
    verify_checkpoint,
)

_EC_KEY = ec.generate_private_key(ec.SECP256R1())
_OTHER_EC_KEY = ec.generate_private_key(ec.SECP256R1())
_ED_KEY = ed25519.Ed25519PrivateKey.generate()
_CHECKPOINT = Checkpoint("log.test - 1", 7, bytes(range(32)))
_EC_NOTE = sign_checkpoint(_CHECKPOINT, name="log.test", private_key=_EC_KEY)
_ED_NOTE = sign_checkpoint(_CHECKPOINT, name="log.test", private_key=_ED_KEY)


def _outcome(call: Callable[[], object]) -> tuple[object, ...]:
    try:
        return ("ok", call())
    except Exception as exc:  # the exception is what is compared
        return (type(exc).__name__, str(exc), getattr(exc, "reason", None))


def _agree(note: str | bytes, public_key: PublicKey, name: str | None = None) -> None:
    prepared = CheckpointVerifier(public_key, name=name)
    expected = _outcome(lambda: verify_checkpoint(note, public_key=public_key, name=name))
    assert _outcome(lambda: prepared.verify(note)) == expected
    # and again, with the key's preparation reused
    assert _outcome(lambda: prepared.verify(note)) == expected


def _keys() -> list[PublicKey]:
    return [
        _EC_KEY.public_key(),
        _OTHER_EC_KEY.public_key(),
        _ED_KEY.public_key(),
    ]


@pytest.mark.parametrize("note", [_EC_NOTE, _ED_NOTE, _EC_NOTE.encode(), _ED_NOTE.encode()])
@pytest.mark.parametrize("name", [None, "log.test", "other.test"])
def test_good_and_foreign_notes_agree(note: str | bytes, name: str | None) -> None:
    for key in _keys():
        _agree(note, key, name)
    signer = _EC_KEY if note in (_EC_NOTE, _EC_NOTE.encode()) else _ED_KEY
    if name != "other.test":
        assert CheckpointVerifier(signer.public_key(), name=name).verify(note) == _CHECKPOINT


def test_bad_signature_by_the_right_key_is_refused_as_before() -> None:
    text, _, line = _EC_NOTE.rpartition(EM_DASH + " ")
    name, blob = line.split(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[-3] ^= 1
    forged = f"{text}{EM_DASH} {name} {base64.b64encode(bytes(raw)).decode()}\n"
    _agree(forged, _EC_KEY.public_key())
    with pytest.raises(Exception, match="does not verify"):
        CheckpointVerifier(_EC_KEY.public_key()).verify(forged)


def test_key_types_checkpoints_cannot_use_raise_type_error_after_parsing() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    p224 = ec.generate_private_key(ec.SECP224R1())
    p224_line = (
        f"{EM_DASH} log.test "
        + base64.b64encode(key_hint(p224.public_key(), name="log.test") + b"\x30\x00").decode()
    )
    p224_note = _CHECKPOINT.text() + "\n" + p224_line + "\n"
    for note in (_EC_NOTE, "not a note", p224_note):
        _agree(note, rsa_key)
        _agree(note, p224.public_key())
    with pytest.raises(TypeError, match="unsupported checkpoint curve secp224r1"):
        CheckpointVerifier(p224.public_key()).verify(p224_note)


_PIECES = st.sampled_from(
    ["\n", "\n\n", EM_DASH, " ", "log.test", "7", "=", "+", "\x00", "\u2028", "\ud800", "-"]
)


@settings(max_examples=300, deadline=None, database=None)
@given(
    note=st.sampled_from([_EC_NOTE, _ED_NOTE]),
    cut=st.integers(min_value=0, max_value=400),
    insert=st.lists(_PIECES | st.text(max_size=4), max_size=3).map("".join),
    drop=st.integers(min_value=0, max_value=3),
    as_bytes=st.booleans(),
    name=st.sampled_from([None, "log.test"]),
)
def test_hostile_notes_agree(
    note: str, cut: int, insert: str, drop: int, as_bytes: bool, name: str | None
) -> None:
    cut = min(cut, len(note))
    mutated = note[:cut] + insert + note[cut + drop :]
    data: str | bytes = mutated
    if as_bytes:
        data = mutated.encode("utf-8", "surrogatepass")
    for key in _keys():
        _agree(data, key, name)


@settings(max_examples=100, deadline=None, database=None)
@given(data=st.binary(max_size=300) | st.text(max_size=300))
def test_arbitrary_input_agrees(data: str | bytes) -> None:
    for key in _keys():
        _agree(data, key)

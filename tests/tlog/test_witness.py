"""The witness (C2SP tlog-witness) over loopback HTTP: each refusal the spec names, with its
status and body, the cosignature it returns, and its own state refusing a rollback."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from keyless.server.witness_app import create_witness_app
from keyless.tlog import merkle
from keyless.tlog.checkpoint import CheckpointSigner, parse_note
from keyless.tlog.cosignature import (
    log_verifier_key,
    parse_vkey,
    verify_cosignature,
    with_signatures,
)
from keyless.tlog.errors import CheckpointError, LogStartError
from keyless.tlog.witness import Witness
from keyless.tlog.witness_wire import AddCheckpoint
from tests.conftest import serve_factory

ORIGIN = "log.test/v2"
LEAVES = [merkle.leaf_hash(bytes([n])) for n in range(16)]


def _root(size: int) -> bytes:
    def mth(leaves: list[bytes]) -> bytes:
        if not leaves:
            return merkle.EMPTY_ROOT
        if len(leaves) == 1:
            return leaves[0]
        split = 1
        while split * 2 < len(leaves):
            split *= 2
        return merkle.node_hash(mth(leaves[:split]), mth(leaves[split:]))

    return mth(LEAVES[:size])


class _Nodes:
    def read_nodes(self, ids):
        return [_subtree(level, index) for level, index in ids]


def _subtree(level: int, index: int) -> bytes:
    width = 1 << level
    leaves = LEAVES[index * width : (index + 1) * width]
    root = leaves
    while len(root) > 1:
        root = [merkle.node_hash(root[i], root[i + 1]) for i in range(0, len(root), 2)]
    return root[0]


def _proof(old: int, new: int) -> tuple[bytes, ...]:
    return tuple(merkle.consistency_proof(old, new, _Nodes()))


@pytest.fixture
def log_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def signer(log_key) -> CheckpointSigner:
    return CheckpointSigner(origin=ORIGIN, name=ORIGIN, private_key=log_key)


@pytest.fixture
def witness(tmp_path, log_key) -> Iterator[Witness]:
    witness = Witness.open(tmp_path / "witness", name="w1.test")
    witness.learn(ORIGIN, log_verifier_key(log_key.public_key(), name=ORIGIN))
    yield witness
    witness.close()


@pytest.fixture
def url(witness) -> Iterator[str]:
    with serve_factory(lambda _url: create_witness_app(witness)) as base:
        yield base


def _note(signer: CheckpointSigner, size: int, root: bytes | None = None) -> str:
    return signer.sign(size=size, root_hash=root or _root(size), timestamp_ms=0).decode()


def _add(url: str, old: int, proof: tuple[bytes, ...], note: str) -> requests.Response:
    body = AddCheckpoint(old, proof, note).render()
    return requests.post(f"{url}/add-checkpoint", data=body, timeout=10)


def test_a_checkpoint_is_cosigned_and_its_successor_needs_the_proof(url, signer, witness) -> None:
    note = _note(signer, 3)
    first = _add(url, 0, (), note)
    assert first.status_code == 200
    lines = parse_note(note.partition("\n\n")[0] + "\n\n" + first.text).signatures
    assert verify_cosignature(with_signatures(parse_note(note), lines), witness.verifier_key) > 0
    assert _add(url, 3, _proof(3, 7), _note(signer, 7)).status_code == 200
    held = requests.get(f"{url}/{_origin_hash()}/checkpoint", timeout=10)
    assert held.text.startswith(_note(signer, 7).partition("\n\n")[0])
    assert requests.get(f"{url}/vkey", timeout=10).text == witness.verifier_key.render() + "\n"


def _origin_hash() -> str:
    import hashlib

    return hashlib.sha256(ORIGIN.encode()).hexdigest()


def test_a_stale_old_size_gets_409_and_the_size_held(url, signer) -> None:
    assert _add(url, 0, (), _note(signer, 5)).status_code == 200
    stale = _add(url, 0, (), _note(signer, 6))
    assert stale.status_code == 409
    assert stale.text == "5\n"
    assert stale.headers["Content-Type"] == "text/x.tlog.size"


@pytest.mark.parametrize(
    ("case", "status", "text"),
    [
        ("unknown-origin", 404, "unknown log origin 'other.test'\n"),
        ("unsigned", 403, "checkpoint has no signature by the log's key named log.test/v2\n"),
        ("old-larger", 400, "old size 9 is larger than the checkpoint's size 4\n"),
        ("empty-tree-root", 422, "a checkpoint of size 0 must have the empty tree's root\n"),
        ("proof-from-zero", 422, "a consistency proof from size 0 must be empty\n"),
        ("malformed-body", 400, "request body does not start with an old size line\n"),
        ("leading-zero", 400, "old size '03' is not a tree size\n"),
    ],
)
def test_refusals(url, signer, log_key, case, status, text) -> None:
    if case == "unknown-origin":
        other = CheckpointSigner(origin="other.test", name="other.test", private_key=log_key)
        response = _add(url, 0, (), _note(other, 4))
    elif case == "unsigned":
        stranger = ed25519.Ed25519PrivateKey.generate()
        forged = CheckpointSigner(origin=ORIGIN, name=ORIGIN, private_key=stranger)
        response = _add(url, 0, (), _note(forged, 4))
    elif case == "old-larger":
        response = _add(url, 9, (), _note(signer, 4))
    elif case == "empty-tree-root":
        response = _add(url, 0, (), _note(signer, 0, root=os.urandom(32)))
    elif case == "proof-from-zero":
        response = _add(url, 0, (os.urandom(32),), _note(signer, 4))
    elif case == "malformed-body":
        response = requests.post(f"{url}/add-checkpoint", data=b"new 3\n\n", timeout=10)
    else:
        body = b"old 03\n\n" + _note(signer, 4).encode()
        response = requests.post(f"{url}/add-checkpoint", data=body, timeout=10)
    assert (response.status_code, response.text) == (status, text)


def test_a_fork_is_not_cosigned(url, signer, witness) -> None:
    assert _add(url, 0, (), _note(signer, 4)).status_code == 200
    fork = _add(url, 4, (), _note(signer, 4, root=os.urandom(32)))
    assert fork.status_code == 422
    assert fork.text.startswith("the checkpoint of size 4 is not proven consistent with the ")
    bad_proof = _add(url, 4, (os.urandom(32),) * 3, _note(signer, 8))
    assert bad_proof.status_code == 422
    assert [log.size for log in witness.logs()] == [4]


def test_an_ecdsa_log_is_witnessed_as_rekor_v1_signs(tmp_path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = CheckpointSigner(origin="host:1 - 42", name="host:1", private_key=key)
    vkey = log_verifier_key(key.public_key(), name="host:1")
    assert parse_vkey(vkey.render()) == vkey
    with_witness = Witness.open(tmp_path / "w", name="w.test")
    with_witness.learn("host:1 - 42", vkey)
    with serve_factory(lambda _url: create_witness_app(with_witness)) as url:
        assert _add(url, 0, (), _note(signer, 2)).status_code == 200
    with_witness.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nokeyhere", "a verifier key is <name>+<hex key ID>+<base64 key>"),
        ("w+00000000+AQ", "verifier key is not valid base64"),
        ("w+00000000+Bw==", "verifier key is too short"),
        ("w+00000000+BwEC", "verifier key type 0x07 is not supported"),
    ],
)
def test_malformed_vkeys(text, message) -> None:
    with pytest.raises(CheckpointError) as refused:
        parse_vkey(text)
    assert refused.value.message == message


def test_a_vkey_whose_id_is_not_its_keys_is_refused(witness) -> None:
    name, key_id, blob = witness.verifier_key.render().split("+", 2)
    with pytest.raises(CheckpointError) as refused:
        parse_vkey(f"{name}+00000000+{blob}")
    assert refused.value.message == (
        f"verifier key {name} names key ID '00000000', but its key's ID is {key_id}"
    )


# The witness's own state.


@pytest.fixture
def used(tmp_path, log_key, signer) -> Path:
    """A witness state directory that cosigned size 3 (backed up then), then size 7."""
    directory = tmp_path / "used"
    witness = Witness.open(directory, name="w1.test")
    witness.learn(ORIGIN, log_verifier_key(log_key.public_key(), name=ORIGIN))
    witness.add_checkpoint(AddCheckpoint(0, (), _note(signer, 3)))
    shutil.copytree(directory, tmp_path / "backup")
    witness.add_checkpoint(AddCheckpoint(3, _proof(3, 7), _note(signer, 7)))
    witness.close()
    return directory


def test_a_restart_keeps_what_was_cosigned(used) -> None:
    witness = Witness.open(used)
    assert [log.size for log in witness.logs()] == [7]
    assert (used / "witness-key.pem").stat().st_mode & 0o777 == 0o600
    witness.close()


def test_an_older_state_file_is_refused(used, tmp_path) -> None:
    shutil.copy(tmp_path / "backup" / "witness-state.json", used / "witness-state.json")
    with pytest.raises(LogStartError) as refused:
        Witness.open(used)
    assert refused.value.message == (
        f"the witness state {used / 'witness-state.json'} is behind its seal (generation 3, "
        "but 4 was written): an older copy was restored?"
    )


def test_a_deleted_state_is_refused_while_the_key_remains(used) -> None:
    (used / "witness-state.json").unlink()
    with pytest.raises(LogStartError) as refused:
        Witness.open(used)
    assert refused.value.message == (
        f"the witness state {used / 'witness-state.json'} is missing, but its key "
        f"{used / 'witness-key.pem'} exists: a witness that forgot what it cosigned would "
        "cosign any history from the start"
    )


def test_a_state_without_its_seal_is_refused(used) -> None:
    (used / "witness-state.seal").unlink()
    with pytest.raises(LogStartError) as refused:
        Witness.open(used)
    assert "has no seal" in refused.value.message


def test_a_second_process_on_one_state_is_refused(used) -> None:
    first = Witness.open(used)
    try:
        with pytest.raises(LogStartError) as refused:
            Witness.open(used)
        assert refused.value.message == (
            f"another witness process serves {used}: one process owns a witness's state"
        )
    finally:
        first.close()


def test_another_name_is_refused(used) -> None:
    with pytest.raises(LogStartError) as refused:
        Witness.open(used, name="w2.test")
    assert refused.value.message.startswith(f"the witness in {used} is named 'w1.test', not ")


def test_a_log_key_never_changes_under_one_origin(witness) -> None:
    other = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(LogStartError) as refused:
        witness.learn(ORIGIN, log_verifier_key(other.public_key(), name=ORIGIN))
    assert "a log's key never changes under one origin" in refused.value.message

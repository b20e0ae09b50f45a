"""/healthz says NOT_SERVING (503, with the reason) when the server cannot do its job, or
could not start again: the state directory cannot be written, a log cannot keep its
checkpoint, a key file (logs, TSA, CA, TUF roles, development issuer) is missing or replaced, a
chain file (CA, TSA) is missing or replaced, a log database is gone, a checkpoint file does not
verify; and SERVING again once that is repaired."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.server.health import TTL_SECONDS
from keyless.server.state import write_private_file
from tests.conftest import DevServer, dev_server, skip_unless_ci


@pytest.fixture
def running(tmp_path: Path) -> Iterator[DevServer]:
    with dev_server(tmp_path / "state") as server:
        yield server


def health(server: DevServer) -> tuple[int, dict]:
    reply = requests.get(f"{server.url}/healthz", timeout=10)
    return reply.status_code, reply.json()


def settled(server: DevServer, expected: dict) -> None:
    """The answer becomes `expected` (503 for NOT_SERVING) once the cached one expires."""
    status = 200 if expected["status"] == "SERVING" else 503
    deadline = time.monotonic() + 10 * TTL_SECONDS
    while True:
        answer = health(server)
        if answer == (status, expected) or time.monotonic() > deadline:
            assert answer == (status, expected)
            return
        time.sleep(TTL_SECONDS / 4)


def not_serving(*reasons: str) -> dict:
    return {"status": "NOT_SERVING", "reasons": list(reasons)}


SERVING = {"status": "SERVING"}
# What the kernel answers a write to an immutable path (root) or a read-only one (others).
DENIED = "Operation not permitted" if os.geteuid() == 0 else "Permission denied"


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    """`path` cannot be written or have entries created in it, even by root: the state
    directory of a read-only mount or a disk that refuses writes, as far as writers see."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o500 if path.is_dir() else 0o400)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    chattr = shutil.which("chattr")
    if chattr is None:
        skip_unless_ci("chattr (e2fsprogs) makes a path read-only for root")
    result = subprocess.run([chattr, "+i", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        skip_unless_ci(f"this filesystem has no immutable attribute: {result.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_a_healthy_server_is_serving(running: DevServer) -> None:
    assert health(running) == (200, {"status": "SERVING"})


def test_a_state_directory_that_cannot_be_written(running: DevServer) -> None:
    state = running.config.state_dir
    with immutable(state):
        settled(running, not_serving(f"the state directory {state} cannot be written: {DENIED}"))
    settled(running, SERVING)
    assert not list(state.glob(".healthz-probe-*"))


def _entry(artifact: bytes) -> dict:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {
                "hash": {"algorithm": "sha256", "value": hashlib.sha256(artifact).hexdigest()}
            },
            "signature": {
                "content": base64.b64encode(key.sign(artifact, ec.ECDSA(hashes.SHA256()))).decode(),
                "publicKey": {"content": base64.b64encode(pem).decode()},
            },
        },
    }


def test_a_log_that_cannot_keep_its_checkpoint_cannot_commit(running: DevServer) -> None:
    checkpoint = running.config.state_dir / "rekor-checkpoint"
    url = f"{running.url}/api/v1/log/entries"
    with immutable(checkpoint):
        refused = requests.post(url, json=_entry(b"first"), timeout=10)
        assert refused.status_code == 500
        settled(
            running,
            not_serving(
                "the signature log cannot commit: cannot write the log checkpoint file "
                f"{checkpoint}: {DENIED}"
            ),
        )
    # Repaired: the next append succeeds, and so does the health check.
    assert requests.post(url, json=_entry(b"second"), timeout=10).status_code == 201
    settled(running, SERVING)


def _replace_key(path: Path, key) -> None:
    path.unlink()
    write_private_file(
        path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


@pytest.mark.parametrize(
    ("file", "label"),
    [
        ("rekor-key.pem", "signature log"),
        ("ct-key.pem", "CT log"),
        ("tsa-key.pem", "timestamp authority"),
        ("ca/ca-key.pem", "CA"),
    ],
)
def test_a_replaced_key_file(running: DevServer, file: str, label: str) -> None:
    path = running.config.state_dir / file
    assert path.exists(), sorted(p.name for p in path.parent.iterdir())
    original = path.read_bytes()
    _replace_key(path, ec.generate_private_key(ec.SECP256R1()))
    settled(
        running,
        not_serving(
            f"the {label} key file {path} does not hold the key this server publishes "
            "(it was replaced)"
        ),
    )
    path.write_bytes(original)
    settled(running, SERVING)


def test_a_missing_key_file(running: DevServer) -> None:
    path = running.config.state_dir / "rekor-v2-key.pem"
    moved = path.with_name("moved-away")
    path.rename(moved)
    settled(running, not_serving(f"the Rekor v2 log key file {path} is missing"))
    moved.rename(path)
    settled(running, SERVING)


def test_a_checkpoint_file_from_another_log(running: DevServer) -> None:
    state = running.config.state_dir
    checkpoint = state / "rekor-checkpoint"
    original = checkpoint.read_bytes()
    # The Rekor v2 log's checkpoint is a well-formed file, signed by another key.
    shutil.copyfile(state / "rekor-v2-checkpoint", checkpoint)
    prefix = f"signature log: the log checkpoint file {checkpoint}"
    settled(running, not_serving(f"{prefix} does not verify with the log's key"))
    checkpoint.write_bytes(b"not a checkpoint")
    settled(running, not_serving(f"{prefix} is not a checkpoint file"))
    checkpoint.write_bytes(original)
    settled(running, SERVING)


# Every file the next restart (or TUF re-signing) reads: the server serves on from memory,
# but would not come back.


@pytest.mark.parametrize(
    ("file", "label"),
    [
        ("tuf-root-key.pem", "TUF root"),
        ("tuf-targets-key.pem", "TUF targets"),
        ("tuf-snapshot-key.pem", "TUF snapshot"),
        ("tuf-timestamp-key.pem", "TUF timestamp"),
        ("oidc-dev-issuer-key.pem", "development issuer"),
    ],
)
def test_a_missing_key_file_a_restart_needs(running: DevServer, file: str, label: str) -> None:
    path = running.config.state_dir / file
    moved = path.with_name("moved-away")
    path.rename(moved)
    settled(running, not_serving(f"the {label} key file {path} is missing"))
    moved.rename(path)
    settled(running, SERVING)


@pytest.mark.parametrize(
    ("file", "label"), [("ca/ca-chain.pem", "CA"), ("tsa-chain.pem", "timestamp authority")]
)
def test_a_missing_or_replaced_chain_file(
    running: DevServer, tmp_path: Path, file: str, label: str
) -> None:
    path = running.config.state_dir / file
    original = path.read_bytes()
    path.unlink()
    settled(running, not_serving(f"the {label} chain file {path} is missing"))
    with dev_server(tmp_path / "other") as other:
        path.write_bytes((other.config.state_dir / file).read_bytes())
    settled(
        running,
        not_serving(
            f"the {label} chain file {path} does not hold the chain this server publishes "
            "(it was replaced)"
        ),
    )
    path.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    settled(running, not_serving(f"the {label} chain file {path} is not a PEM certificate chain"))
    path.write_bytes(original)
    settled(running, SERVING)


@pytest.mark.parametrize(
    ("file", "label"),
    [
        ("rekor.sqlite", "signature log database"),
        ("rekor-v2.sqlite", "Rekor v2 log database"),
        ("ct.sqlite", "CT log database"),
    ],
)
def test_a_missing_log_database(running: DevServer, file: str, label: str) -> None:
    path = running.config.state_dir / file
    moved = path.with_name("moved-away")
    path.rename(moved)
    settled(running, not_serving(f"the {label} {path} is missing"))
    moved.rename(path)
    settled(running, SERVING)

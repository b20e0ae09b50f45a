"""Crash test for the Rekor v2 log: concurrent appenders, SIGKILL mid-stream, restart.

After the restart every acknowledged entry is in the tiles at its index with its body, every
checkpoint seen before the crash is the root of a prefix of the tree read back from tiles
(so the log never forked), and appends go on.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.conftest import REPO
from tests.tlog.conftest import make_signer
from tests.tlog.rekor_v2_server import ORIGIN
from tests.tlog.test_rekor_v2 import mth, request_for
from tlog import leaf_hash
from tlog.checkpoint import verify_checkpoint
from tlog.tiles import TILE_WIDTH, encode_index, parse_entry_bundle

APPENDERS = 8


@contextmanager
def _server(db: Path, key_file: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.tlog.rekor_v2_server", str(db), str(key_file)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("PORT "), f"log server did not start: {line!r}"
        yield process, f"http://127.0.0.1:{int(line.split()[1])}/api/v2"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        process.stdout.close()


def _read_entries(url: str, size: int) -> list[bytes]:
    """Every entry of a tree of `size`, from entry bundles only."""
    entries: list[bytes] = []
    for tile in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
        width = min(TILE_WIDTH, size - tile * TILE_WIDTH)
        partial = "" if width == TILE_WIDTH else f".p/{width}"
        reply = requests.get(f"{url}/tile/entries/{encode_index(tile)}{partial}", timeout=10)
        assert reply.status_code == 200
        entries += parse_entry_bundle(reply.content)
    return entries


def test_acknowledged_v2_entries_survive_sigkill(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    key_file = tmp_path / "v2-key.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    db = tmp_path / "rekor-v2.db"
    public_key = key.public_key()
    signer = make_signer()
    acknowledged: dict[int, bytes] = {}
    checkpoints: dict[int, bytes] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def appender(url: str, worker: int) -> None:
        session = requests.Session()
        n = 0
        while not stop.is_set():
            n += 1
            request = request_for(signer, b"crash %d %d" % (worker, n))
            try:
                response = session.post(url + "/log/entries", json=request, timeout=10)
            except requests.RequestException:
                continue  # Not acknowledged: the server died under this request.
            if response.status_code != 201:
                continue
            entry = response.json()
            note = entry["inclusionProof"]["checkpoint"]["envelope"]
            checkpoint = verify_checkpoint(note, public_key=public_key, name=ORIGIN)
            with lock:
                acknowledged[int(entry["logIndex"])] = base64.b64decode(entry["canonicalizedBody"])
                checkpoints[checkpoint.size] = checkpoint.root_hash

    with _server(db, key_file) as (process, url):
        threads = [threading.Thread(target=appender, args=(url, w)) for w in range(APPENDERS)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)  # Mid-stream: the appenders are still posting.
        process.wait(timeout=30)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert len(acknowledged) >= 300
    assert len(checkpoints) > 1
    assert process.returncode == -signal.SIGKILL

    with _server(db, key_file) as (_, url):
        note = requests.get(url + "/checkpoint", timeout=10).content
        head = verify_checkpoint(note, public_key=public_key, name=ORIGIN)
        assert head.size >= max(acknowledged) + 1
        entries = _read_entries(url, head.size)
        for index, body in acknowledged.items():
            assert entries[index] == body
        leaves = [leaf_hash(entry) for entry in entries]
        assert mth(leaves) == head.root_hash
        for size, root in checkpoints.items():
            assert mth(leaves[:size]) == root, f"checkpoint at size {size} was forked"
        response = requests.post(
            url + "/log/entries", json=request_for(signer, b"after the crash"), timeout=10
        )
        assert response.status_code == 201
        assert int(response.json()["logIndex"]) == head.size

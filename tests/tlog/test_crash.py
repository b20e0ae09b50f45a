"""Crash test: concurrent appenders, SIGKILL of the server mid-stream, then restart.

After the restart every acknowledged entry is present at the same index with the same body,
the new checkpoint is consistent with every checkpoint seen before the crash, and appends go on.
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
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import REPO
from tests.tlog.conftest import make_signer
from tlog import merkle
from tlog.checkpoint import verify_checkpoint

APPENDERS = 8


@contextmanager
def _server(db: Path, key_file: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.tlog.log_server", str(db), str(key_file)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("PORT "), f"log server did not start: {line!r}"
        yield process, f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        process.stdout.close()


def test_acknowledged_entries_survive_sigkill(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "log-key.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    db = tmp_path / "rekor.db"
    public_key = key.public_key()
    signer = make_signer()
    acknowledged: dict[int, tuple[str, str]] = {}
    checkpoints: dict[int, bytes] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def appender(url: str, worker: int) -> None:
        session = requests.Session()
        n = 0
        while not stop.is_set():
            n += 1
            request = signer.hashedrekord(b"crash %d %d" % (worker, n))
            try:
                response = session.post(url + "/api/v1/log/entries", json=request, timeout=10)
            except requests.RequestException:
                continue  # Not acknowledged: the server died under this request.
            if response.status_code != 201:
                continue
            entry_id, entry = next(iter(response.json().items()))
            note = entry["verification"]["inclusionProof"]["checkpoint"]
            checkpoint = verify_checkpoint(note, public_key=public_key)
            with lock:
                acknowledged[entry["logIndex"]] = (entry_id, entry["body"])
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
        info = requests.get(url + "/api/v1/log", timeout=10).json()
        head = verify_checkpoint(info["signedTreeHead"], public_key=public_key)
        assert head.size >= max(acknowledged) + 1
        # Every acknowledged entry is there, at the same index, with the same body.
        for index, (entry_id, body) in sorted(acknowledged.items()):
            response = requests.get(
                url + "/api/v1/log/entries", params={"logIndex": index}, timeout=10
            )
            assert response.status_code == 200
            assert response.json() == {entry_id: response.json()[entry_id]}
            assert response.json()[entry_id]["body"] == body
        # The new head is consistent with every checkpoint seen before the crash.
        for size, root in sorted(checkpoints.items()):
            proof = requests.get(
                url + "/api/v1/log/proof",
                params={"firstSize": size, "lastSize": head.size},
                timeout=10,
            ).json()
            merkle.verify_consistency(
                size1=size,
                size2=head.size,
                proof=[bytes.fromhex(h) for h in proof["hashes"]],
                root1=root,
                root2=head.root_hash,
            )
        # Appends continue where the log left off.
        response = requests.post(
            url + "/api/v1/log/entries", json=signer.hashedrekord(b"after the crash"), timeout=10
        )
        assert response.status_code == 201
        entry = next(iter(response.json().values()))
        assert entry["logIndex"] == head.size
        assert b"hashedrekord" in base64.b64decode(entry["body"])
        after = verify_checkpoint(
            entry["verification"]["inclusionProof"]["checkpoint"], public_key=public_key
        )
        assert after.size == head.size + 1

"""Several gunicorn worker processes appending to one SQLite log over HTTP stay consistent."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.tlog import merkle
from keyless.tlog.checkpoint import verify_checkpoint
from tests.conftest import REPO
from tests.tlog.conftest import make_signer
from tests.tlog.test_merkle import reference_root

WORKERS = 3
CLIENTS = 8
PER_CLIENT = 25


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gunicorn_workers_share_one_log(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "log-key.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    port = _free_port()
    db = tmp_path / "rekor.db"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.tlog.log_server",
            str(db),
            str(key_file),
            "--gunicorn",
            str(port),
            str(WORKERS),
        ],
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/api/v1/log", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "server did not start"
            time.sleep(0.1)
        signer = make_signer()
        results: list[dict] = []
        lock = threading.Lock()

        def client(n: int) -> None:
            session = requests.Session()
            for i in range(PER_CLIENT):
                request = signer.hashedrekord(b"worker test %d %d" % (n, i))
                response = session.post(url + "/api/v1/log/entries", json=request, timeout=30)
                assert response.status_code == 201, response.text
                with lock:
                    results.append(next(iter(response.json().values())))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        total = CLIENTS * PER_CLIENT
        assert sorted(r["logIndex"] for r in results) == list(range(total))
        public_key = key.public_key()
        heads = {}
        for entry in results:
            proof = entry["verification"]["inclusionProof"]
            checkpoint = verify_checkpoint(proof["checkpoint"], public_key=public_key)
            assert heads.setdefault(checkpoint.size, checkpoint.root_hash) == checkpoint.root_hash
            merkle.verify_inclusion(
                index=entry["logIndex"],
                size=checkpoint.size,
                leaf=merkle.leaf_hash(base64.b64decode(entry["body"])),
                proof=[bytes.fromhex(h) for h in proof["hashes"]],
                root=checkpoint.root_hash,
            )
        bodies = [base64.b64decode(e["body"]) for e in sorted(results, key=lambda e: e["logIndex"])]
        info = requests.get(url + "/api/v1/log", timeout=10).json()
        assert info["treeSize"] == total
        assert bytes.fromhex(info["rootHash"]) == reference_root(bodies)
        for size, root in heads.items():
            merkle.verify_consistency(
                size1=size,
                size2=total,
                proof=[
                    bytes.fromhex(h)
                    for h in requests.get(
                        url + "/api/v1/log/proof",
                        params={"firstSize": size, "lastSize": total},
                        timeout=10,
                    ).json()["hashes"]
                ],
                root1=root,
                root2=bytes.fromhex(info["rootHash"]),
            )
    finally:
        server.terminate()
        server.wait(timeout=30)

"""Crash test: concurrent appenders, SIGKILL of the server mid-stream, then restart.

After the restart every acknowledged entry is present at the same index with the same body,
the new checkpoint is consistent with every checkpoint seen before the crash, and appends go on.
"""

from __future__ import annotations

import base64
from pathlib import Path

import requests
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.tlog import merkle
from keyless.tlog.checkpoint import verify_checkpoint
from tests.tlog.conftest import make_signer
from tests.tlog.crash_harness import kill_mid_stream, log_server, write_key

SERVER = "tests.tlog.log_server"


def test_acknowledged_entries_survive_sigkill(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = write_key(tmp_path / "log-key.pem", key)
    db = tmp_path / "rekor.db"
    public_key = key.public_key()
    signer = make_signer()

    def append(session: requests.Session, url: str, worker: int, n: int):
        request = signer.hashedrekord(b"crash %d %d" % (worker, n))
        response = session.post(url + "/api/v1/log/entries", json=request, timeout=10)
        if response.status_code != 201:
            return None
        entry_id, entry = next(iter(response.json().items()))
        note = entry["verification"]["inclusionProof"]["checkpoint"]
        checkpoint = verify_checkpoint(note, public_key=public_key)
        return entry["logIndex"], (entry_id, entry["body"]), checkpoint.size, checkpoint.root_hash

    record = kill_mid_stream(SERVER, db, key_file, "", append)
    acknowledged, checkpoints = record.acknowledged, record.checkpoints

    with log_server(SERVER, db, key_file) as (_, url):
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

"""Crash test for the Rekor v2 log: concurrent appenders, SIGKILL mid-stream, restart.

After the restart every acknowledged entry is in the tiles at its index with its body, every
checkpoint seen before the crash is the root of a prefix of the tree read back from tiles
(so the log never forked), and appends go on.
"""

from __future__ import annotations

import base64
from pathlib import Path

import requests
from cryptography.hazmat.primitives.asymmetric import ed25519

from keyless.tlog import leaf_hash
from keyless.tlog.checkpoint import verify_checkpoint
from keyless.tlog.tiles import TILE_WIDTH, encode_index, parse_entry_bundle
from tests.tlog.conftest import make_signer
from tests.tlog.crash_harness import kill_mid_stream, log_server, write_key
from tests.tlog.rekor_v2_server import ORIGIN
from tests.tlog.test_rekor_v2 import mth, request_for

SERVER = "tests.tlog.rekor_v2_server"


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
    key_file = write_key(tmp_path / "v2-key.pem", key)
    db = tmp_path / "rekor-v2.db"
    public_key = key.public_key()
    signer = make_signer()

    def append(session: requests.Session, url: str, worker: int, n: int):
        request = request_for(signer, b"crash %d %d" % (worker, n))
        response = session.post(url + "/log/entries", json=request, timeout=10)
        if response.status_code != 201:
            return None
        entry = response.json()
        note = entry["inclusionProof"]["checkpoint"]["envelope"]
        checkpoint = verify_checkpoint(note, public_key=public_key, name=ORIGIN)
        body = base64.b64decode(entry["canonicalizedBody"])
        return int(entry["logIndex"]), body, checkpoint.size, checkpoint.root_hash

    record = kill_mid_stream(SERVER, db, key_file, "/api/v2", append)
    acknowledged, checkpoints = record.acknowledged, record.checkpoints

    with log_server(SERVER, db, key_file) as (_, base):
        url = base + "/api/v2"
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

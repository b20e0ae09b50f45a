"""Rekor v2 benchmarks: durable appends/s against the v1 log in the same run, and tile reads/s.

Run: python bench/rekor_v2.py [--seconds N] [--clients 16]

One gunicorn server (gthread, one worker, 16 threads) serves both logs, each over its own
SQLite WAL file with a full fsync per group commit and its checkpoint file kept after each, as
`keyless serve` runs them. Prints:
- HTTP appends/s from `--clients` concurrent keep-alive clients: v1 (`POST /api/v1/log/entries`,
  hashedrekord 0.0.1, SET and proof in each response), then v2 (`POST /api/v2/log/entries`,
  hashedRekordRequestV002, proof and checkpoint in each response); the target is v2 >= v1;
- full-tile reads/s over HTTP (`GET /api/v2/tile/0/<N>`, 8 KiB each, read from stored hashes);
- in-process `RekorV2Service.add_entry` appends/s from 16 threads.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

# Run as a script from anywhere: the repository root must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._load import HOST, get, post, private_pem, run_load, serve, server_process, threads_rate
from keyless.tlog.log import NewEntry
from keyless.tlog.rekor_v2 import RekorV2Service, canonicalize
from keyless.tlog.sqlite_storage import SQLiteStorage
from keyless.tlog.tiles import TILE_WIDTH, encode_index


def _app(work: str) -> Any:
    """Both logs in one Flask app, each keeping its checkpoint file after every group commit,
    as serve does."""
    from flask import Flask

    from keyless.tlog import rekor_api, rekor_v2_api
    from keyless.tlog.rekor import RekorService

    base = Path(work)
    v1_key = serialization.load_pem_private_key((base / "v1.pem").read_bytes(), None)
    v2_key = serialization.load_pem_private_key((base / "v2.pem").read_bytes(), None)
    app = Flask("rekor-v2-bench")
    rekor_api.init_app(
        app,
        RekorService.open(
            storage=SQLiteStorage(base / "v1.db"),
            private_key=v1_key,
            host=HOST,
            anchor=_anchor(base, "v1"),
            new_log=True,
        ),
    )
    rekor_v2_api.init_app(
        app,
        RekorV2Service.open(
            storage=SQLiteStorage(base / "v2.db"),
            private_key=v2_key,
            origin=HOST,
            anchor=_anchor(base, "v2"),
            new_log=True,
        ),
    )
    return app


def _anchor(base: Path, name: str) -> Any:
    from keyless.tlog.checkpoint_file import CheckpointFile
    from keyless.tlog.log import Anchor

    return Anchor(
        checkpoint=CheckpointFile(base / f"{name}-checkpoint.json"),
        database=f"{name}.db",
        key=f"{name}.pem",
    )


def _bodies(version: int, count: int, tag: str) -> list[bytes]:
    """`count` distinct signed requests (signing is client work, done before timing)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    bodies = []
    for i in range(count):
        artifact = f"{tag}-{i}".encode()
        signature = base64.b64encode(key.sign(artifact, ec.ECDSA(hashes.SHA256()))).decode()
        digest = hashlib.sha256(artifact)
        if version == 1:
            request: dict[str, Any] = {
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": digest.hexdigest()}},
                    "signature": {
                        "content": signature,
                        "publicKey": {"content": base64.b64encode(pem).decode()},
                    },
                },
            }
        else:
            request = {
                "hashedRekordRequestV002": {
                    "digest": base64.b64encode(digest.digest()).decode(),
                    "signature": {
                        "content": signature,
                        "verifier": {
                            "publicKey": {"rawBytes": base64.b64encode(spki).decode()},
                            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                        },
                    },
                }
            }
        bodies.append(json.dumps(request).encode())
    return bodies


def _appends(
    version: int, port: int, count: int, tag: str, process: int, thread: int
) -> list[bytes]:
    path = "/api/v1/log/entries" if version == 1 else "/api/v2/log/entries"
    return [post(path, port, b) for b in _bodies(version, count, f"{tag}{process}-{thread}")]


def _tile_reads(port: int, tiles: int, process: int, thread: int) -> Iterable[bytes]:
    """Every full tile in turn, forever, each thread starting at its own."""
    paths = (f"/api/v2/tile/0/{encode_index(i)}" for i in range(tiles))
    return itertools.islice(itertools.cycle(get(path, port) for path in paths), thread, None)


def bench_http(work: Path, clients: int, seconds: float) -> None:
    (work / "v1.pem").write_bytes(private_pem(ec.generate_private_key(ec.SECP256R1())))
    (work / "v2.pem").write_bytes(private_pem(ed25519.Ed25519PrivateKey.generate()))
    with server_process(__file__, str(work)) as port:
        per_client = int(seconds * 1500) + 200
        rates = {}
        for version in (1, 2):
            requests = functools.partial(_appends, version, port, per_client, f"v{version}-")
            warmup = 4 + per_client * clients / 4000
            load = run_load(port, clients, seconds, requests, ok=201, warmup=warmup)
            rates[version] = load.rate
            label = f"HTTP append, Rekor v{version}, {clients} clients"
            print(f"{label:<52} {load.rate:>8,.0f}/s  errors {load.errors}")
        print(f"{'v2 / v1 append rate':<52} {rates[2] / rates[1]:>8.2f}")
        tiles = _full_tiles(work / "v2.db")
        if tiles:
            requests = functools.partial(_tile_reads, port, tiles)
            load = run_load(port, clients, seconds, requests, ok=200, warmup=3)
            label = f"HTTP full-tile reads (8 KiB each), {clients} clients"
            print(f"{label:<52} {load.rate:>8,.0f}/s  errors {load.errors}")


def _full_tiles(db: Path) -> int:
    storage = SQLiteStorage(db)
    with storage.reader() as view:
        size = view.size()
    storage.close()
    return size // TILE_WIDTH


def bench_in_process(work: Path, seconds: float) -> None:
    service = RekorV2Service.open(
        storage=SQLiteStorage(work / "in-process.db"),
        private_key=ed25519.Ed25519PrivateKey.generate(),
        origin="bench",
    )
    per_thread = int(seconds * 150) + 50
    items = [[json.loads(b) for b in _bodies(2, per_thread, f"t{t}")] for t in range(16)]
    rate = threads_rate(service.add_entry, items)
    print(f"{'in-process RekorV2Service.add_entry, 16 threads':<52} {rate:>8,.0f}/s")
    # The same entries through one batch: the validation-free storage bound.
    bodies = [canonicalize(json.loads(b)).body for b in _bodies(2, 2000, "batch")]
    start = time.perf_counter()
    service.log.append_batch([NewEntry(b) for b in bodies])
    elapsed = time.perf_counter() - start
    print(
        f"{'in-process MerkleLog.append_batch of 2,000 (one commit)':<52} {2000 / elapsed:>8,.0f}/s"
    )


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        port, work = sys.argv[2:4]
        serve(functools.partial(_app, work), int(port))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        bench_http(work, args.clients, args.seconds)
        bench_in_process(work, args.seconds)


if __name__ == "__main__":
    main()

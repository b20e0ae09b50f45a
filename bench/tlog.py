"""Transparency-log benchmarks: durable appends/s and inclusion-proof latency by tree size.

Run: python bench/tlog.py [--seconds N] [--clients 16] [--sizes 1000,100000,1000000]

Prints:
- durable appends/s over HTTP: `POST /api/v1/log/entries` (hashedrekord, validated, SET and
  proof in every response) from `--clients` concurrent keep-alive clients, against the Rekor
  blueprint served by gunicorn (gthread, one worker, 16 threads) over a SQLite WAL file with
  a full fsync per group commit, and the signed head kept in a checkpoint file beside it
  (written and fsynced once per group commit, as `keyless serve` does); the target is at least
  1,000/s. A second line runs two workers on the same file, for reference;
- durable appends/s in-process: `RekorService.add_entry` and the bare `MerkleLog.append`, from
  16 threads, the latter with and without the checkpoint file (alternating, twice);
- durable appends/s in-process (`MerkleLog.append`, 16 threads, checkpoint file) with 0, 1 and
  3 witnesses (`keyless witness serve` processes on loopback, each fsyncing its state before it
  cosigns), every append waiting for its head's cosignature (threshold 1); the goal is within
  10 % of none. Then the start-up cost of asking them (`Witnessing.confirm`: one add-checkpoint
  from size 0, the 409, and one with the consistency proof, per witness, in parallel);
- inclusion-proof latency (p50/p99, `MerkleLog.prove`: entry, latest head and audit path in one
  snapshot) at each tree size; the trees are built through the storage layer directly.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

# Run as a script from anywhere: the repository root must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._load import (
    HOST,
    free_port,
    post,
    private_pem,
    run_load,
    serve,
    server_process,
    threads_rate,
)
from keyless.tlog import merkle
from keyless.tlog.checkpoint import CheckpointSigner
from keyless.tlog.checkpoint_file import CheckpointFile
from keyless.tlog.log import Anchor, MerkleLog
from keyless.tlog.rekor import RekorService
from keyless.tlog.sqlite_storage import SQLiteStorage
from keyless.tlog.storage import LogEntry, SignedHead
from keyless.tlog.witnessing import WitnessEndpoint, Witnessing, WitnessPolicy, consistency_proofs


def _hashedrekord(key: ec.EllipticCurvePrivateKey, pem_b64: str, artifact: bytes) -> bytes:
    signature = key.sign(artifact, ec.ECDSA(hashes.SHA256()))
    return json.dumps(
        {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {
                    "hash": {"algorithm": "sha256", "value": hashlib.sha256(artifact).hexdigest()}
                },
                "signature": {
                    "content": base64.b64encode(signature).decode(),
                    "publicKey": {"content": pem_b64},
                },
            },
        }
    ).encode()


def _requests(count: int, tag: str) -> list[bytes]:
    """`count` distinct signed entries (signing is client work, done before timing)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem_b64 = base64.b64encode(pem).decode()
    return [_hashedrekord(key, pem_b64, f"{tag}-{i}".encode()) for i in range(count)]


# HTTP: a gunicorn server process and client processes.


def _app(db: str, key_file: str, port: int) -> Any:
    from flask import Flask

    from keyless.tlog import rekor_api

    key = serialization.load_pem_private_key(Path(key_file).read_bytes(), None)
    service = RekorService.open(
        storage=SQLiteStorage(db),
        private_key=key,
        host=f"{HOST}:{port}",
        anchor=_anchor(Path(db)),
        new_log=True,
    )
    app = Flask("tlog-bench")
    rekor_api.init_app(app, service)
    return app


def _appends(port: int, count: int, process: int, thread: int) -> list[bytes]:
    bodies = _requests(count, f"p{process}-{thread}")
    return [post("/api/v1/log/entries", port, body) for body in bodies]


def bench_http(work: Path, key_file: Path, clients: int, seconds: float, workers: int) -> None:
    db = work / f"http-{workers}.db"
    with server_process(__file__, str(db), str(key_file), str(workers)) as port:
        per_client = int(seconds * 1500) + 200
        # Signing the requests takes a while; start the clock once every client is ready.
        warmup = 8 + per_client * clients / 4000
        requests = functools.partial(_appends, port, per_client)
        load = run_load(port, clients, seconds, requests, ok=201, warmup=warmup)
        print(
            f"{f'HTTP append, gunicorn gthread, {workers} worker(s), {clients} clients':<60}"
            f" {load.rate:>8,.0f}/s  p50 {load.percentile_ms(0.5):.1f} ms"
            f"  p99 {load.percentile_ms(0.99):.1f} ms  errors {load.errors}"
        )


# In-process.


def _print_rate(name: str, rate: float) -> None:
    print(f"{name:<60} {rate:>8,.0f}/s")


def bench_in_process(work: Path, key: ec.EllipticCurvePrivateKey, seconds: float) -> None:
    per_thread = int(seconds * 200) + 50
    service = RekorService.open(
        storage=SQLiteStorage(work / "service.db"),
        private_key=key,
        host="bench",
        anchor=_anchor(work / "service.db"),
        new_log=True,
    )
    bodies = [[json.loads(b) for b in _requests(per_thread, f"s{t}")] for t in range(16)]
    rate = threads_rate(service.add_entry, bodies)
    _print_rate("in-process RekorService.add_entry, 16 threads", rate)
    signer = CheckpointSigner(origin="bench - 1", name="bench", private_key=key)
    leaves = [[os.urandom(300) for _ in range(per_thread * 4)] for _ in range(16)]
    # Alternating, so both see the same load: the cost of the checkpoint file beside the log.
    for round_ in range(2):
        for kept in (True, False):
            database = work / f"log-{kept}-{round_}.db"
            log = MerkleLog(
                SQLiteStorage(database),
                signer,
                anchor=_anchor(database) if kept else None,
                new_log=True,
            )
            label = "with checkpoint file" if kept else "without checkpoint file"
            rate = threads_rate(log.append, leaves)
            _print_rate(f"in-process MerkleLog.append, 16 threads, {label}", rate)


def _witness_processes(
    work: Path, count: int, vkey: str, origins: list[str]
) -> tuple[list[Any], list[str]]:
    """`count` witnesses (`keyless witness serve`) on loopback that know the bench logs."""
    import requests

    processes, urls = [], []
    for n in range(count):
        port = free_port()
        command = [sys.executable, "-m", "keyless.cli.main", "witness", "serve"]
        command += ["--state-dir", str(work / f"witness-{n}"), "--port", str(port)]
        command += ["--name", f"bench-witness-{n}"]
        for origin in origins:
            command += ["--log-key", origin, vkey]
        processes.append(subprocess.Popen(command, stderr=subprocess.DEVNULL))
        urls.append(f"http://{HOST}:{port}")
    deadline = time.monotonic() + 30
    for url in urls:
        while True:
            try:
                if requests.get(f"{url}/vkey", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"witness at {url} did not start")
            time.sleep(0.1)
    return processes, urls


def bench_witnesses(work: Path, key: ec.EllipticCurvePrivateKey, seconds: float) -> None:
    """Durable appends with 0, 1 and 3 witnesses, and the start-up cost of asking them."""
    import requests

    from keyless.tlog.cosignature import log_verifier_key, parse_vkey

    vkey = log_verifier_key(key.public_key(), name="bench").render()
    # A log per run, each of its own origin: a witness holds one history per origin.
    origins = [
        f"bench - {round_}{count}{wait}"
        for round_ in range(2)
        for count, wait in ((1, 2.0), (3, 2.0), (3, 0.0))
    ]
    processes, urls = _witness_processes(work, 3, vkey, origins)
    try:
        endpoints = [
            WitnessEndpoint(url, parse_vkey(requests.get(f"{url}/vkey", timeout=5).text))
            for url in urls
        ]
        per_thread = int(seconds * 150) + 50
        for round_ in range(2):
            for count, wait in ((0, 0.0), (1, 2.0), (3, 2.0), (3, 0.0)):
                database = work / f"witnessed-{count}-{wait}-{round_}.db"
                signer = CheckpointSigner(
                    origin=f"bench - {round_}{count}{wait}", name="bench", private_key=key
                )
                policy = (
                    WitnessPolicy(tuple(endpoints[:count]), wait_seconds=wait) if count else None
                )
                witnessing = Witnessing(policy, log_name="bench") if policy else None
                log = MerkleLog(
                    SQLiteStorage(database),
                    signer,
                    anchor=_anchor(database),
                    new_log=True,
                    on_signed=witnessing.publish if witnessing else None,
                )
                if witnessing is not None:
                    witnessing.confirm(log.head(), consistency_proofs(log))
                leaves = [[os.urandom(300) for _ in range(per_thread)] for _ in range(16)]
                rate = threads_rate(log.append, leaves)
                waits = f", waiting for a cosignature (at most {wait:g} s)" if wait else ""
                label = f"{count} witness(es){waits}" if count else "no witness"
                _print_rate(f"MerkleLog.append, 16 threads, {label}", rate)
                if witnessing is not None:
                    started = time.perf_counter()
                    again = Witnessing(policy, log_name="bench")
                    again.confirm(log.head(), consistency_proofs(log))
                    took = (time.perf_counter() - started) * 1000
                    print(f"{f'  start-up check with {count} witness(es)':<60} {took:>8.1f} ms")
                    again.close()
                    witnessing.close()
                log.close()
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=15)


def _anchor(database: Path) -> Anchor:
    """The checkpoint file beside the database, as `keyless serve` keeps it."""
    checkpoint = CheckpointFile(database.with_name(database.name + ".checkpoint"))
    return Anchor(checkpoint=checkpoint, database=str(database), key="bench key")


def build_tree(path: Path, size: int, signer: CheckpointSigner) -> None:
    """A log of `size` entries written through the storage layer in large transactions."""
    storage = SQLiteStorage(path)
    batch = 50_000
    frontier: list[bytes] = []
    for start in range(0, size, batch):
        count = min(batch, size - start)
        entries = [
            LogEntry(start + i, data, merkle.leaf_hash(data), 0)
            for i, data in enumerate(os.urandom(64) for _ in range(count))
        ]
        nodes = merkle.append_nodes(start, frontier, [e.leaf_hash for e in entries])
        frontier = [_lookup(nodes, frontier, start, n) for n in merkle.frontier(start + count)]
        with storage.writer() as view:
            view.add_entries(entries, [()] * count)
            view.add_nodes(nodes)
            if start + count == size:
                root = merkle.root_hash(size, view)
                signed = signer.sign(size=size, root_hash=root, timestamp_ms=0)
                view.add_head(SignedHead(size, root, 0, signed))
    storage.close()


def _lookup(nodes: dict, old_frontier: list[bytes], old_size: int, node: merkle.NodeID) -> bytes:
    if node in nodes:
        return nodes[node]
    return old_frontier[merkle.frontier(old_size).index(node)]


def bench_proofs(work: Path, key: ec.EllipticCurvePrivateKey, sizes: list[int]) -> None:
    signer = CheckpointSigner(origin="bench - 1", name="bench", private_key=key)
    for size in sizes:
        path = work / f"tree-{size}.db"
        started = time.perf_counter()
        build_tree(path, size, signer)
        built = time.perf_counter() - started
        log = MerkleLog(SQLiteStorage(path), signer)
        indexes = [random.randrange(size) for _ in range(3000)]
        for index in indexes[:200]:
            log.prove(index)
        latencies = []
        for index in indexes:
            t = time.perf_counter()
            proven = log.prove(index)
            latencies.append(time.perf_counter() - t)
        merkle.verify_inclusion(
            index=index,
            size=size,
            leaf=proven.entry.leaf_hash,
            proof=proven.proof,
            root=proven.head.root_hash,
        )
        latencies.sort()
        print(
            f"{'inclusion proof, tree size ' + f'{size:,}':<60}"
            f" p50 {statistics.median(latencies) * 1e6:>6.0f} µs"
            f"  p99 {latencies[int(len(latencies) * 0.99)] * 1e6:>6.0f} µs"
            f"  ({len(proven.proof)} hashes; tree built in {built:.1f} s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument(
        "--witnesses-only", action="store_true", help="only the appends with witnesses"
    )
    parser.add_argument(
        "--serve", nargs=4, metavar=("PORT", "DB", "KEY", "WORKERS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        port, db, key_file, workers = args.serve
        serve(functools.partial(_app, db, key_file, int(port)), int(port), workers=int(workers))
        return
    key = ec.generate_private_key(ec.SECP256R1())
    with tempfile.TemporaryDirectory(prefix="tlog-bench-") as tmp:
        work = Path(tmp)
        key_file = work / "log-key.pem"
        key_file.write_bytes(private_pem(key))
        if args.witnesses_only:
            bench_witnesses(work, key, args.seconds)
            return
        print("durable appends (SQLite WAL, synchronous=FULL, group commit)")
        bench_http(work, key_file, args.clients, args.seconds, workers=1)
        # For reference: two worker processes sharing the one SQLite file.
        bench_http(work, key_file, args.clients, args.seconds, workers=2)
        bench_in_process(work, key, args.seconds)
        bench_witnesses(work, ec.generate_private_key(ec.SECP256R1()), args.seconds)
        print("inclusion-proof latency (MerkleLog.prove, latest head)")
        bench_proofs(work, key, [int(s) for s in args.sizes.split(",")])


if __name__ == "__main__":
    main()

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
import hashlib
import itertools
import json
import multiprocessing
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

# Run as a script from anywhere: the repository root must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tlog.log import NewEntry
from tlog.rekor_v2 import RekorV2Service, canonicalize
from tlog.sqlite_storage import SQLiteStorage
from tlog.tiles import TILE_WIDTH, encode_index

HOST = "127.0.0.1"


def _pem_key(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _serve(work: str, port: int) -> None:
    from flask import Flask
    from gunicorn.app.base import BaseApplication

    class _Bench(BaseApplication):
        def load_config(self) -> None:
            for name, value in {
                "bind": f"{HOST}:{port}",
                "workers": 1,
                "worker_class": "gthread",
                "threads": 16,
                "backlog": 256,
                "loglevel": "warning",
                "control_socket_disable": True,
            }.items():
                self.cfg.set(name, value)

        def load(self) -> Any:
            from tlog import rekor_api, rekor_v2_api
            from tlog.rekor import RekorService

            base = Path(work)
            v1_key = serialization.load_pem_private_key((base / "v1.pem").read_bytes(), None)
            v2_key = serialization.load_pem_private_key((base / "v2.pem").read_bytes(), None)
            app = Flask("rekor-v2-bench")
            # Each log keeps its checkpoint file after every group commit, as serve does.
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

    _Bench().run()


def _anchor(base: Path, name: str) -> Any:
    from tlog.checkpoint_file import CheckpointFile
    from tlog.log import Anchor

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


def _exchange(sock: socket.socket, request: bytes, buffer: bytearray) -> int:
    """Send one pre-encoded request on a keep-alive socket; returns the response status."""
    sock.sendall(request)
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buffer += chunk
    end = buffer.index(b"\r\n\r\n") + 4
    head = bytes(buffer[:end]).lower()
    status = int(head[9:12])
    start = head.index(b"content-length:") + 15
    length = int(head[start : head.index(b"\r\n", start)])
    while len(buffer) < end + length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buffer += chunk
    del buffer[: end + length]
    return status


def _client(
    port: int, requests: Iterable[bytes], ok: int, start_at: float, until: float, out
) -> None:
    done = errors = 0
    while time.time() < start_at:
        time.sleep(0.001)
    sock = socket.create_connection((HOST, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray()
    try:
        for request in requests:
            if time.time() >= until:
                break
            if _exchange(sock, request, buffer) == ok:
                done += 1
            else:
                errors += 1
    except OSError:
        errors += 1
    finally:
        sock.close()
        out.put((done, errors))


def _post(path: str, port: int, body: bytes) -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (path.encode(), HOST.encode(), port, len(body), body)
    )


def _client_process(kind: str, port: int, count: int, tag: str, threads: int, start_at, until, out):
    if kind == "tiles":
        per_thread = [
            itertools.islice(
                itertools.cycle(
                    b"GET /api/v2/tile/0/%s HTTP/1.1\r\nHost: x\r\n\r\n" % encode_index(i).encode()
                    for i in range(count)
                ),
                t,
                None,
            )
            for t in range(threads)
        ]
        ok = 200
    else:
        version = 1 if kind == "v1" else 2
        path = "/api/v1/log/entries" if version == 1 else "/api/v2/log/entries"
        per_thread = [
            [_post(path, port, b) for b in _bodies(version, count, f"{tag}-{t}")]
            for t in range(threads)
        ]
        ok = 201
    workers = [
        threading.Thread(target=_client, args=(port, requests, ok, start_at, until, out))
        for requests in per_thread
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def _run(kind: str, port: int, clients: int, seconds: float, count: int) -> tuple[float, int]:
    processes_n = min(2, clients)
    threads = clients // processes_n
    start_at = time.time() + (3 if kind == "tiles" else 4 + count * clients / 4000)
    until = start_at + seconds
    out: Any = multiprocessing.Queue()
    processes = [
        multiprocessing.Process(
            target=_client_process,
            args=(kind, port, count, f"{kind}{p}", threads, start_at, until, out),
        )
        for p in range(processes_n)
    ]
    for process in processes:
        process.start()
    results = [out.get() for _ in range(processes_n * threads)]
    for process in processes:
        process.join()
    return sum(r[0] for r in results) / seconds, sum(r[1] for r in results)


def bench_http(work: Path, clients: int, seconds: float) -> None:
    (work / "v1.pem").write_bytes(_pem_key(ec.generate_private_key(ec.SECP256R1())))
    (work / "v2.pem").write_bytes(_pem_key(ed25519.Ed25519PrivateKey.generate()))
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(work), str(port)])
    try:
        deadline = time.time() + 30
        while True:
            try:
                with socket.create_connection((HOST, port), timeout=1):
                    break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError("bench server did not start") from None
                time.sleep(0.1)
        per_client = int(seconds * 1500) + 200
        rates = {}
        for kind in ("v1", "v2"):
            rate, errors = _run(kind, port, clients, seconds, per_client)
            rates[kind] = rate
            label = f"HTTP append, Rekor {kind}, {clients} clients"
            print(f"{label:<52} {rate:>8,.0f}/s  errors {errors}")
        print(f"{'v2 / v1 append rate':<52} {rates['v2'] / rates['v1']:>8.2f}")
        tiles = _full_tiles(work / "v2.db")
        if tiles:
            rate, errors = _run("tiles", port, clients, seconds, tiles)
            label = f"HTTP full-tile reads (8 KiB each), {clients} clients"
            print(f"{label:<52} {rate:>8,.0f}/s  errors {errors}")
    finally:
        server.terminate()
        server.wait(timeout=30)


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
    threads = [
        threading.Thread(target=lambda xs=xs: [service.add_entry(x) for x in xs]) for xs in items
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    label = "in-process RekorV2Service.add_entry, 16 threads"
    print(f"{label:<52} {16 * per_thread / elapsed:>8,.0f}/s")
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
        _serve(sys.argv[2], int(sys.argv[3]))
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

"""Timestamp authority benchmarks: tokens/s against the signing bound, in process and over HTTP.

Run: python bench/tsa.py [--seconds N] [--clients 16]

Prints, in one run:
- the crypto bound: ECDSA P-256 signatures/s on one thread (a token costs one signature);
- in-process `TimestampAuthority.answer_der` tokens/s on one thread (parse, build, sign), and
  its share of the bound;
- HTTP tokens/s from `--clients` concurrent keep-alive clients posting DER requests
  (`application/timestamp-query`, SHA-256 imprint, nonce, certReq) to the TSA blueprint under
  gunicorn (gthread, one worker, 16 threads).
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rfc3161_client import TimestampRequestBuilder

# Run as a script from anywhere: the repository root must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tsa import TimestampAuthority, dev_tsa_chain, load_pem_chain, pem_chain

HOST = "127.0.0.1"
# The raw keep-alive HTTP client of the log benchmark, so the load generator stays light.
_spec = importlib.util.spec_from_file_location(
    "bench_rekor_v2", Path(__file__).with_name("rekor_v2.py")
)
_logbench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_logbench)


def _authority(work: Path) -> TimestampAuthority:
    key = serialization.load_pem_private_key((work / "tsa.pem").read_bytes(), None)
    return TimestampAuthority(key=key, chain=load_pem_chain((work / "chain.pem").read_bytes()))


def _serve(work: str, port: int) -> None:
    from flask import Flask
    from gunicorn.app.base import BaseApplication

    from tsa import api as tsa_api

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
            app = Flask("tsa-bench")
            tsa_api.init_app(app, _authority(Path(work)))
            return app

    _Bench().run()


def _query(port: int, n: int) -> bytes:
    body = TimestampRequestBuilder().data(os.urandom(64)).nonce(nonce=True).build().as_bytes()
    return (
        b"POST /api/v1/timestamp HTTP/1.1\r\nHost: %s:%d\r\n"
        b"Content-Type: application/timestamp-query\r\nContent-Length: %d\r\n\r\n%s"
        % (HOST.encode(), port, len(body), body)
    )


def _client_process(port: int, count: int, threads: int, start_at: float, until: float, out):
    per_thread = [[_query(port, i) for i in range(count)] for _ in range(threads)]
    workers = [
        threading.Thread(target=_logbench._client, args=(port, requests, 200, start_at, until, out))
        for requests in per_thread
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def bench_http(work: Path, clients: int, seconds: float) -> None:
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
        processes_n = min(2, clients)
        threads = clients // processes_n
        count = int(seconds * 1000) + 200
        start_at = time.time() + 3 + count * clients / 20000
        until = start_at + seconds
        out: Any = multiprocessing.Queue()
        processes = [
            multiprocessing.Process(
                target=_client_process, args=(port, count, threads, start_at, until, out)
            )
            for _ in range(processes_n)
        ]
        for process in processes:
            process.start()
        results = [out.get() for _ in range(processes_n * threads)]
        for process in processes:
            process.join()
        done, errors = sum(r[0] for r in results), sum(r[1] for r in results)
        label = f"HTTP timestamps, gunicorn 1 worker, {clients} clients"
        print(f"{label:<56} {done / seconds:>8,.0f}/s  errors {errors}")
    finally:
        server.terminate()
        server.wait(timeout=30)


def _rate(fn: Any, seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(50):
            fn()
        count += 50
    return count / (time.perf_counter() - start)


def bench_in_process(work: Path, seconds: float) -> None:
    key = serialization.load_pem_private_key((work / "tsa.pem").read_bytes(), None)
    algorithm = ec.ECDSA(hashes.SHA256())
    message = os.urandom(300)
    bound = _rate(lambda: key.sign(message, algorithm), seconds / 2)
    print(f"{'crypto bound: ECDSA P-256 sign, one thread':<56} {bound:>8,.0f}/s")
    authority = _authority(work)
    request = TimestampRequestBuilder().data(b"signature").nonce(nonce=True).build().as_bytes()
    tokens = _rate(lambda: authority.answer_der(request), seconds / 2)
    label = "in-process answer_der (parse, build, sign), one thread"
    print(f"{label:<56} {tokens:>8,.0f}/s  ({tokens / bound:.0%} of the bound)")


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
        key = ec.generate_private_key(ec.SECP256R1())
        (work / "tsa.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (work / "chain.pem").write_bytes(pem_chain(dev_tsa_chain(key, now=datetime.now(UTC))))
        bench_in_process(work, args.seconds)
        bench_http(work, args.clients, args.seconds)


if __name__ == "__main__":
    main()

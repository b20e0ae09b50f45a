"""Timestamp authority benchmarks: tokens/s against the signing bound, in process and over HTTP.

Run: python bench/tsa.py [--seconds N] [--clients 16]

Prints, in one run:
- the crypto bound: ECDSA P-256 signatures/s on one thread (a token costs one signature);
- in-process tokens/s on one thread (`parse_der_request`, then `TimestampAuthority.grant`:
  parse, build, sign), and its share of the bound;
- HTTP tokens/s from `--clients` concurrent keep-alive clients posting DER requests
  (`application/timestamp-query`, SHA-256 imprint, nonce, certReq) to the TSA blueprint under
  gunicorn (gthread, one worker, 16 threads).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rfc3161_client import TimestampRequestBuilder

# Run as a script from anywhere: the repository root must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._load import post, private_pem, run_load, serve, server_process
from keyless.tsa import (
    TimestampAuthority,
    dev_tsa_chain,
    load_pem_chain,
    parse_der_request,
    pem_chain,
)


def _authority(work: Path) -> TimestampAuthority:
    key = serialization.load_pem_private_key((work / "tsa.pem").read_bytes(), None)
    return TimestampAuthority(key=key, chain=load_pem_chain((work / "chain.pem").read_bytes()))


def _app(work: str) -> Any:
    from flask import Flask

    from keyless.tsa import api as tsa_api

    app = Flask("tsa-bench")
    tsa_api.init_app(app, _authority(Path(work)))
    return app


def _queries(port: int, count: int, process: int, thread: int) -> list[bytes]:
    """`count` DER requests, each with its own imprint and nonce."""
    return [
        post("/api/v1/timestamp", port, _query_der(), "application/timestamp-query")
        for _ in range(count)
    ]


def _query_der() -> bytes:
    return TimestampRequestBuilder().data(os.urandom(64)).nonce(nonce=True).build().as_bytes()


def bench_http(work: Path, clients: int, seconds: float) -> None:
    with server_process(__file__, str(work)) as port:
        count = int(seconds * 1000) + 200
        requests = functools.partial(_queries, port, count)
        warmup = 3 + count * clients / 20000
        load = run_load(port, clients, seconds, requests, ok=200, warmup=warmup)
        label = f"HTTP timestamps, gunicorn 1 worker, {clients} clients"
        print(f"{label:<56} {load.rate:>8,.0f}/s  errors {load.errors}")


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
    tokens = _rate(lambda: authority.grant(parse_der_request(request)), seconds / 2)
    label = "in-process parse and grant (parse, build, sign), one thread"
    print(f"{label:<56} {tokens:>8,.0f}/s  ({tokens / bound:.0%} of the bound)")


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
        key = ec.generate_private_key(ec.SECP256R1())
        (work / "tsa.pem").write_bytes(private_pem(key))
        (work / "chain.pem").write_bytes(pem_chain(dev_tsa_chain(key, now=datetime.now(UTC))))
        bench_in_process(work, args.seconds)
        bench_http(work, args.clients, args.seconds)


if __name__ == "__main__":
    main()

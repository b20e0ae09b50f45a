"""Discovery fetches caused by hostile tokens naming invented issuers a meta-issuer admits.

Run: python bench/discovery_flood.py [--delay SECONDS] [--threads N]

A loopback host stands for every issuer the pattern `http://127.0.0.1:PORT/id/*` admits; it
counts discovery requests and answers 404 after `--delay` seconds (a slow or absent issuer).
Each scenario sends 100 unsigned tokens through one `Authenticator` from `--threads` workers,
as a threaded CA would, and prints the discovery fetches they caused, the refusals by reason,
the wall time and the worker-seconds spent. To compare with an older tree, run this same file
with PYTHONPATH pointing at that tree.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from keyless.oidc import (
    Authenticator,
    IssuerConfig,
    IssuerType,
    JWKSCache,
    TokenError,
    TrustedIssuers,
)

TOKENS = 100


class _Target(ThreadingHTTPServer):
    daemon_threads = True
    delay = 0.0
    fetches = 0
    lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: _Target

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.fetches += 1
        time.sleep(self.server.delay)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


def _token(issuer: str) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {"iss": issuer, "aud": "sigstore", "sub": "x", "exp": 2**40}
    return f"{part({'alg': 'RS256', 'kid': 'k'})}.{part(claims)}.c2ln"


def _scenario(name: str, issuers: list[str], base: str, target: _Target, threads: int) -> None:
    meta = IssuerConfig(
        type=IssuerType.KUBERNETES, pattern=f"{base}/id/*", allow_insecure_loopback=True
    )
    auth = Authenticator(TrustedIssuers(meta_issuers=(meta,)), keys=JWKSCache())
    reasons: Counter[str] = Counter()
    busy = 0.0
    lock = threading.Lock()
    target.fetches = 0

    def send(issuer: str) -> None:
        nonlocal busy
        start = time.perf_counter()
        try:
            auth.authenticate(_token(issuer), now=datetime.now(UTC))
            reason = "accepted"
        except TokenError as exc:
            reason = exc.reason
        with lock:
            reasons[reason] += 1
            busy += time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, [f"{base}/id/{i}" for i in issuers]))
    wall = time.perf_counter() - start
    refusals = ", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items()))
    print(
        f"{name:<48} fetches {target.fetches:>4}   wall {wall:6.2f} s"
        f"   worker-seconds {busy:7.2f}   {refusals}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    logging.getLogger("oidc").setLevel(logging.ERROR)  # one warning per failed fetch
    target = _Target(("127.0.0.1", 0), _Handler)
    target.delay = args.delay
    threading.Thread(target=target.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{target.server_port}"
    print(f"{TOKENS} hostile tokens per scenario, issuer delay {args.delay} s")
    for threads in (1, args.threads):
        scenarios = {
            "100 distinct invented issuers": [f"a{threads}-{i}" for i in range(TOKENS)],
            "100 tokens over 5 invented issuers": [f"b{threads}-{i % 5}" for i in range(TOKENS)],
            "100 tokens for 1 invented issuer": [f"c{threads}"] * TOKENS,
        }
        for name, issuers in scenarios.items():
            _scenario(f"{name}, {threads} workers", issuers, base, target, threads)
    target.shutdown()


if __name__ == "__main__":
    main()

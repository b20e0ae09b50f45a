"""Issuance benchmark: the crypto bound, in-process issuance, and HTTP under gunicorn.

Run from the repository root: `python bench/issuance.py` (options: --help). It prints, in one
run: the crypto bound (token verify + proof verify + 2 signs, timed with `cryptography`), the
in-process issuance rate and its ratio to that bound, and issuance over HTTP under gunicorn with
16 concurrent clients (certificates/s, p50, p99, errors). The CA, CT log (SQLite, durable) and
development issuer are the real ones; nothing is stubbed.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

REPO = Path(__file__).resolve().parents[1]
DEV_KEY_FILE = "dev-issuer-key.pem"


def build_parts(
    state: Path, base_url: str, signer: Any = None, ct_db: str = "ct.db"
) -> dict[str, Any]:
    """The real services over `state`: development issuer, authenticator, CA (the generated
    file key unless `signer` is given), CT log."""
    from keyless.ca import CertificateAuthority, load_generated_signer
    from keyless.oidc import Authenticator, JWKSCache, StaticKeys
    from keyless.oidc.devissuer import DevIssuer
    from keyless.server.state import StateDir
    from keyless.tlog.ct_log import open_ct_log

    key = serialization.load_pem_private_key((state / DEV_KEY_FILE).read_bytes(), None)
    issuer = DevIssuer(base_url=base_url, key=key, user_email="bench@keyless.test")
    authenticator = Authenticator(
        issuer.trusted_issuers(),
        keys=StaticKeys({issuer.issuer_url: issuer.jwks()}, fallback=JWKSCache()),
    )
    signer = signer or load_generated_signer(state / "ca", now=datetime.now(UTC))
    ct_log = open_ct_log(
        database=state / ct_db,
        private_key=StateDir(state).private_key(
            "ct-key.pem", lambda: ec.generate_private_key(ec.SECP256R1())
        ),
        roots=[signer.chain[-1]],
    )
    authority = CertificateAuthority(authenticator=authenticator, signer=signer, ct=ct_log)
    return {"issuer": issuer, "authority": authority, "ct_log": ct_log, "signer": signer}


def wsgi_app():
    """The gunicorn entry point: `bench.issuance:wsgi_app()`, state from the environment."""
    from flask import Flask

    from keyless.ca import api as ca_api
    from keyless.tlog import ct_api

    parts = build_parts(Path(os.environ["BENCH_STATE"]), os.environ["BENCH_URL"])
    app = Flask("keyless-bench")
    ca_api.init_app(app, parts["authority"])
    ct_api.init_app(app, parts["ct_log"])
    return app


def prepare_state(state: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (state / DEV_KEY_FILE).write_bytes(pem)
    os.chmod(state / DEV_KEY_FILE, 0o600)


def make_csrs(count: int) -> list[bytes]:
    """Distinct P-256 keys and CSRs shaped like sigstore-python's."""
    csrs = []
    for _ in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        csrs.append(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return csrs


def per_op(operation: Callable[[], object], seconds: float) -> float:
    """Mean seconds per call of `operation`, over about `seconds`."""
    operation()
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            operation()
        count += 50
    return elapsed / count


def crypto_bound(seconds: float, ca_key: ec.EllipticCurvePrivateKey) -> dict[str, float]:
    """Seconds per operation: token verify (RS256), proof verify, certificate and SCT signs."""
    message = b"x" * 700
    token_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token_signature = token_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    token_public = token_key.public_key()
    client = ec.generate_private_key(ec.SECP256R1())
    proof = client.sign(message, ec.ECDSA(hashes.SHA256()))
    client_public = client.public_key()
    ct_key = ec.generate_private_key(ec.SECP256R1())
    ca_hash = ec.ECDSA(hashes.SHA256() if ca_key.curve.key_size == 256 else hashes.SHA384())
    times = {
        "token verify (RS256)": per_op(
            lambda: token_public.verify(
                token_signature, message, padding.PKCS1v15(), hashes.SHA256()
            ),
            seconds,
        ),
        "proof verify (P-256)": per_op(
            lambda: client_public.verify(proof, message, ec.ECDSA(hashes.SHA256())), seconds
        ),
        f"certificate sign (CA {ca_key.curve.name})": per_op(
            lambda: ca_key.sign(message, ca_hash), seconds
        ),
        "SCT sign (P-256)": per_op(
            lambda: ct_key.sign(message, ec.ECDSA(hashes.SHA256())), seconds
        ),
    }
    return times


def in_process(parts: dict[str, Any], csrs: list[bytes], token: str, threads: int) -> float:
    """Issuances per second through `CertificateAuthority.issue`, from `threads` threads."""
    from keyless.ca import SigningRequest

    authority = parts["authority"]
    requests_ = [SigningRequest(token=token, csr=csr) for csr in csrs]
    authority.issue(requests_[0], now=datetime.now(UTC))
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for issued in pool.map(lambda r: authority.issue(r, now=datetime.now(UTC)), requests_[1:]):
            assert issued.leaf is not None
    return (len(requests_) - 1) / (time.perf_counter() - start)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_http(
    state: Path,
    csrs: list[bytes],
    token_for: Callable[[int], str],
    *,
    clients: int,
    client_processes: int,
    workers: int,
    threads: int,
) -> dict[str, float]:
    """Issuance over HTTP under gunicorn: `clients` concurrent keep-alive clients."""
    port = free_port()
    token = token_for(port)
    env = {**os.environ, "BENCH_STATE": str(state), "BENCH_URL": f"http://127.0.0.1:{port}"}
    command = [
        sys.executable, "-m", "gunicorn", "--chdir", str(REPO), "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--worker-class", "gthread", "--threads", str(threads),
        "--log-level", "warning", "--backlog", "256", "bench.issuance:wsgi_app()",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env, cwd=REPO)
    try:
        _wait_ready(port)
        bodies = [
            json.dumps({"certificateSigningRequest": base64.b64encode(csr).decode()})
            for csr in csrs
        ]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        # Warm every worker before timing.
        _client(port, bodies[: clients * 2], headers, [], [0], threading.Lock())
        shares = [bodies[clients * 2 + i :: clients] for i in range(clients)]
        # Clients run in several processes, so that the clients' own GIL does not add latency.
        context = multiprocessing.get_context("fork")
        go, results = context.Event(), context.Queue()
        groups = [shares[i::client_processes] for i in range(client_processes)]
        processes = [
            context.Process(target=_client_process, args=(port, group, headers, go, results))
            for group in groups
        ]
        for process in processes:
            process.start()
        time.sleep(0.5)
        start = time.perf_counter()
        go.set()
        collected = [results.get(timeout=600) for _ in processes]
        elapsed = time.perf_counter() - start
        for process in processes:
            process.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies = [latency for found, _ in collected for latency in found]
    errors = [sum(failed for _, failed in collected)]
    latencies.sort()
    return {
        "requests": len(latencies) + errors[0],
        "certs_per_second": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan"),
        "errors": errors[0],
    }


def _client_process(port, shares, headers, go, results) -> None:
    """One client process: a thread per share of the requests, started together on `go`."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    threads = [
        threading.Thread(target=_client, args=(port, share, headers, latencies, errors, lock))
        for share in shares
    ]
    go.wait()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put((latencies, errors[0]))


def _client(port, bodies, headers, latencies, errors, lock) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    mine: list[float] = []
    failed = 0
    for body in bodies:
        begin = time.perf_counter()
        try:
            connection.request("POST", "/api/v2/signingCert", body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            ok = response.status == 200 and b"signedCertificateEmbeddedSct" in payload
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            ok = False
        if ok:
            mine.append(time.perf_counter() - begin)
        else:
            failed += 1
    connection.close()
    with lock:
        latencies.extend(mine)
        errors[0] += failed


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/api/v2/trustBundle")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per crypto operation")
    parser.add_argument("--in-process", type=int, default=2000, help="issuances in process")
    parser.add_argument("--http", type=int, default=6000, help="issuances over HTTP")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    parser.add_argument("--client-processes", type=int, default=2, help="processes they run in")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    parser.add_argument(
        "--hsm", action="store_true", help="also issue with the CA key in SoftHSM2 (same run)"
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="keyless-bench-") as tmp:
        state = Path(tmp)
        prepare_state(state)
        parts = build_parts(state, "http://127.0.0.1:1")
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
        ca_key = parts["signer"]._key  # The bench times the CA's own key type.
        times = crypto_bound(args.seconds, ca_key)
        bound_seconds = sum(times.values())
        print("crypto bound (one issuance = token verify + proof verify + 2 signs):")
        for name, seconds in times.items():
            print(f"  {name:<44} {seconds * 1e6:8.1f} us")
        total = f"{bound_seconds * 1e6:8.1f} us -> {1 / bound_seconds:8.0f}/s per core"
        print(f"  {'total':<44} {total}")
        # What the embedded-SCT pipeline really does: the precertificate is signed too, and
        # the CT log verifies it before logging (its STH signature is shared by a batch).
        floor_seconds = (
            bound_seconds
            + times[f"certificate sign (CA {ca_key.curve.name})"]
            + times["proof verify (P-256)"]
        )
        floor = f"{floor_seconds * 1e6:8.1f} us -> {1 / floor_seconds:8.0f}/s per core"
        print(f"  {'pipeline floor (+precert sign, +log verify)':<44} {floor}")

        csrs = make_csrs(args.in_process + args.http + 64)
        issuer = parts["issuer"]
        token = issuer.mint(
            issuer.email_claims("bench@example.com"), issuer_url=issuer.issuer_url,
            now=datetime.now(UTC), expires_in=3600,
        )  # fmt: skip
        for threads in (1, args.clients):
            rate = in_process(parts, csrs[: args.in_process // 2], token, threads)
            print(
                f"in-process issuance, {threads:>2} thread(s): {rate:8.0f}/s "
                f"= {rate * bound_seconds:5.1%} of the crypto bound, "
                f"{rate * floor_seconds:5.1%} of the pipeline floor"
            )
            csrs = csrs[args.in_process // 2 :]

        if args.hsm:
            _hsm_section(state, parts, csrs[: args.in_process], token)
            csrs = csrs[args.in_process :]
        result = _http_section(state, csrs[: args.http], args)
        print(
            f"HTTP under gunicorn ({args.workers} workers x {args.threads} threads, "
            f"{args.clients} clients, {result['requests']} requests): "
            f"{result['certs_per_second']:.0f} certs/s, p50 {result['p50_ms']:.1f} ms, "
            f"p99 {result['p99_ms']:.1f} ms, errors {result['errors']}"
        )
    return 0


def _hsm_section(state: Path, parts: dict[str, Any], csrs: list[bytes], token: str) -> None:
    """In-process issuance with the file key and with a SoftHSM2 key, alternating, one thread."""
    from keyless.ca.ceremony import KeyStore, init_ca
    from keyless.ca.pkcs11 import DEFAULT_MODULE, Pkcs11Signer, TokenKey

    tokens = state / "softhsm"
    tokens.mkdir()
    (state / "softhsm2.conf").write_text(f"directories.tokendir = {tokens}\n")
    os.environ["SOFTHSM2_CONF"] = str(state / "softhsm2.conf")
    os.environ["BENCH_PIN"] = "1234"
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "bench",
            "--pin",
            "1234",
            "--so-pin",
            "5678",
        ],
        check=True,
        capture_output=True,
    )
    where = TokenKey(
        DEFAULT_MODULE, "keyless-intermediate", token_label="bench", pin_env="BENCH_PIN"
    )
    now = datetime.now(UTC)
    result = init_ca(state / "hsm-ca", KeyStore(token=where), name="bench", now=now)
    signer = Pkcs11Signer(where, result.chain, now=now)
    hsm = build_parts(state, "http://127.0.0.1:1", signer=signer, ct_db="ct-hsm.db")
    half = len(csrs) // 4
    rates: dict[str, list[float]] = {"file key": [], "SoftHSM2 key": []}
    for round_ in range(2):
        chunk = csrs[round_ * 2 * half : (round_ + 1) * 2 * half]
        rates["file key"].append(in_process(parts, chunk[:half], token, 1))
        rates["SoftHSM2 key"].append(in_process(hsm, chunk[half:], token, 1))
    file_rate, hsm_rate = max(rates["file key"]), max(rates["SoftHSM2 key"])
    print(
        f"in-process issuance, 1 thread: file key {file_rate:.0f}/s, SoftHSM2 key "
        f"{hsm_rate:.0f}/s (HSM/file = {hsm_rate / file_rate:.2f})"
    )


def _http_section(state: Path, csrs: list[bytes], args: argparse.Namespace) -> dict[str, float]:
    from keyless.oidc.devissuer import DevIssuer

    key = serialization.load_pem_private_key((state / DEV_KEY_FILE).read_bytes(), None)

    def token_for(port: int) -> str:
        issuer = DevIssuer(base_url=f"http://127.0.0.1:{port}", key=key, user_email="b@k.test")
        return issuer.mint(
            issuer.email_claims("bench@example.com"), issuer_url=issuer.issuer_url,
            now=datetime.now(UTC), expires_in=3600,
        )  # fmt: skip

    return run_http(
        state,
        csrs,
        token_for,
        clients=args.clients,
        client_processes=args.client_processes,
        workers=args.workers,
        threads=args.threads,
    )


if __name__ == "__main__":
    # Run as a script, this folder leads sys.path, and bench/tlog.py would shadow the package.
    sys.path[0] = str(REPO)
    sys.exit(main())

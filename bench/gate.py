"""Benchmark: `keyless gate serve` over HTTPS, with a real registry, CA and log on loopback.

Prints, in one run:
- hot admission: `/validations` of a pod with 8 containers of one already-verified image
  (cache hit), sequential over one keep-alive HTTPS connection: p50/p99 (target p99 < 5 ms);
- cold admission: a pod with one image on a gate whose cache is off (`--cache-size 0`), so
  every admission reads the signatures from the registry and verifies them, against
  `keyless verify IMAGE` run in-process on the same image (target: within 2x), and against
  the gate's own decision in-process (`Evaluator.evaluate`, no HTTP), the tighter comparison:
  `keyless verify` also builds its parser, loads the trust root and opens a registry session
  on every call, and lists every valid signature where an authority stops at the first;
- sustained admissions/s with 16 concurrent clients (each its own connection), 0 errors,
  for the same requests with the cache on and off;
- Gatekeeper's external data: `/externaldata/verify` of a ProviderRequest with 100 keys of
  already-verified images (100 repositories, each signed), sequential over one TLS 1.3
  keep-alive connection: p50/p99 (target p99 < 20 ms).

Setup: the dev-mode keyless server in a thread (CA, Rekor, development issuer), Debian's
docker-registry, an image pushed and signed by alice with `keyless sign`, and a policy
naming alice. Run: `python bench/gate.py [--seconds 5] [--hot 2000] [--cold 30]`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Run as a script, this folder is sys.path[0], where other benchmarks' modules would shadow
# the packages of the same name; put the repository first instead (tests/ has the fixtures).
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(REPO)

ALICE = "alice@example.com"
CLIENTS = 16


def _latencies(gate, review: dict, count: int) -> list[float]:
    """Sequential admissions over one keep-alive HTTPS connection; seconds each.

    `http.client` rather than requests: the figure is the gate's, and requests adds about a
    millisecond of its own per call.
    """
    import http.client
    import json
    import ssl
    from urllib.parse import urlsplit

    body = json.dumps(review).encode()
    where = urlsplit(gate.url)
    context = ssl.create_default_context(cafile=gate.ca_bundle)
    connection = http.client.HTTPSConnection(where.hostname, where.port, context=context)
    headers = {"Content-Type": "application/json"}
    out = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            connection.request("POST", "/validations?timeout=10s", body, headers)
            answer = connection.getresponse()
            data = answer.read()
            out.append(time.perf_counter() - started)
            if answer.status != 200 or not json.loads(data)["response"]["allowed"]:
                raise RuntimeError(f"admission refused: {data[:300]!r}")
    finally:
        connection.close()
    return out


def _provider_latencies(gate, keys: list[str], count: int) -> list[float]:
    """Sequential ProviderRequests over one keep-alive TLS connection; seconds each."""
    import http.client
    import json
    import ssl
    from urllib.parse import urlsplit

    body = json.dumps(
        {
            "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
            "kind": "ProviderRequest",
            "request": {"keys": keys},
        }
    ).encode()
    where = urlsplit(gate.url)
    context = ssl.create_default_context(cafile=gate.ca_bundle)
    connection = http.client.HTTPSConnection(where.hostname, where.port, context=context)
    out = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            connection.request(
                "POST", "/externaldata/verify", body, {"Content-Type": "application/json"}
            )
            answer = connection.getresponse()
            data = answer.read()
            out.append(time.perf_counter() - started)
            items = json.loads(data)["response"]["items"]
            if answer.status != 200 or len(items) != len(keys) or any("error" in i for i in items):
                raise RuntimeError(f"provider answer not all allowed: {data[:300]!r}")
    finally:
        connection.close()
    return out


def _sustained(gate, review: dict, seconds: float) -> tuple[float, int, int]:
    """(admissions/s, admitted, errors) for CLIENTS threads posting for `seconds`."""
    import json

    import requests

    body = json.dumps(review).encode()
    url = f"{gate.url}/validations?timeout=10s"
    counts = {"ok": 0, "errors": 0}
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS + 1)
    stop_at: list[float] = []

    def client() -> None:
        session = requests.Session()
        session.trust_env = False
        session.verify = gate.ca_bundle
        ok = errors = 0
        start.wait()
        while time.perf_counter() < stop_at[0]:
            try:
                answer = session.post(
                    url, data=body, headers={"Content-Type": "application/json"}, timeout=30
                )
                if answer.status_code == 200 and answer.json()["response"]["allowed"]:
                    ok += 1
                else:
                    errors += 1
            except requests.RequestException:
                errors += 1
        with lock:
            counts["ok"] += ok
            counts["errors"] += errors
        session.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    stop_at.append(time.perf_counter() + seconds)
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return counts["ok"] / elapsed, counts["ok"], counts["errors"]


def _verify_in_process(argv: list[str], count: int) -> list[float]:
    """`keyless verify IMAGE` through `cli.main.main`, in this process; seconds each."""
    from keyless.cli.main import main

    out = []
    for _ in range(count):
        sink = io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            code = main(argv)
        out.append(time.perf_counter() - started)
        if code != 0:
            raise RuntimeError(f"keyless verify failed: {sink.getvalue()[-500:]}")
    return out


def _evaluate_in_process(policy: Path, trust: Path, image: str, count: int) -> list[float]:
    """The gate's own decision (`Evaluator.evaluate`, one evaluator reused, as the gate does)
    in this process, without HTTP; seconds each."""
    from keyless.client.oci import RegistryClient
    from keyless.client.policy import Evaluator, load_policy_set, load_trust_file

    policies = load_policy_set([policy], trust_files={"dev": load_trust_file("dev", trust)})
    client = RegistryClient(allow_insecure=True)
    evaluator = Evaluator(policies, registry=lambda: client)
    resolved = evaluator.resolve(image)
    out = []
    for _ in range(count):
        started = time.perf_counter()
        verdict = evaluator.evaluate(resolved)
        out.append(time.perf_counter() - started)
        if verdict.outcome != "pass":
            raise RuntimeError(f"evaluation failed: {verdict.messages}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per sustained run")
    parser.add_argument("--hot", type=int, default=2000, help="hot admissions measured")
    parser.add_argument("--cold", type=int, default=30, help="cold admissions measured")
    parser.add_argument("--keys", type=int, default=100, help="keys per ProviderRequest")
    parser.add_argument("--lookups", type=int, default=500, help="ProviderRequests measured")
    args = parser.parse_args()

    import logging

    import requests

    from bench._load import percentile
    from keyless.cli.main import main as keyless
    from tests.conftest import dev_server
    from tests.gate.webhook import admission_review, pod, run_gate
    from tests.registry import Pusher, run_registry

    logging.disable(logging.WARNING)
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-gate-")))
        server = stack.enter_context(dev_server(work / "state"))
        registry = stack.enter_context(run_registry(work / "registry"))
        image = Pusher(registry).push_image("bench/app", "1.0", seed="bench gate")
        token = server.email_token(ALICE)
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            signed = keyless(
                [
                    *("sign", "--server", server.url, "--identity-token", token),
                    *("--allow-insecure-registry", image.reference),
                ]
            )
        if signed != 0:
            raise SystemExit(f"keyless sign failed: {sink.getvalue()[-500:]}")
        trust = work / "trusted_root.json"
        trust.write_bytes(
            requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=30).content
        )
        (work / "policy.yaml").write_text(
            f"""apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {{name: bench}}
spec:
  images: [{{glob: "**"}}]
  authorities:
  - name: alice
    keyless:
      trustRootRef: dev
      identities: [{{issuer: "{server.url}/oidc", subject: "{ALICE}"}}]
"""
        )
        common = ["--policy", str(work / "policy.yaml"), "--trust-root", f"dev={trust}"]
        common += ["--allow-insecure-registry"]
        cached = stack.enter_context(run_gate(work / "gate-cached", *common))
        uncached = stack.enter_context(run_gate(work / "gate-off", *common, "--cache-size", "0"))
        pinned = f"{registry.host}/bench/app@{image.digest}"
        eight = admission_review(pod(*[pinned] * 8))
        one = admission_review(pod(pinned))

        _latencies(cached, eight, 50)  # warm: the first verification, connections, caches
        hot = _latencies(cached, eight, args.hot)
        print(
            f"hot admission, pod with 8 containers of one verified image, HTTPS keep-alive "
            f"({args.hot} sequential):"
        )
        print(
            f"  p50 {statistics.median(hot) * 1e3:.2f} ms   p99 {percentile(hot, 0.99) * 1e3:.2f}"
            f" ms   max {max(hot) * 1e3:.2f} ms   (target p99 < 5 ms)"
        )

        _latencies(uncached, one, 3)
        cold = _latencies(uncached, one, args.cold)
        verify_argv = ["verify", "--certificate-identity", ALICE, "--certificate-oidc-issuer"]
        verify_argv += [f"{server.url}/oidc", "--trusted-root", str(trust)]
        verify_argv += ["--allow-insecure-registry", pinned]
        _verify_in_process(verify_argv, 3)
        verify = _verify_in_process(verify_argv, args.cold)
        cold_ms, verify_ms = statistics.median(cold) * 1e3, statistics.median(verify) * 1e3
        print(
            f"cold admission (cache off, registry on loopback), pod with 1 image, median of "
            f"{args.cold}: {cold_ms:.2f} ms"
        )
        print(
            f"keyless verify IMAGE in-process, same image, median of {args.cold}: "
            f"{verify_ms:.2f} ms   ratio {cold_ms / verify_ms:.2f}x (target <= 2x)"
        )

        _evaluate_in_process(work / "policy.yaml", trust, pinned, 3)
        evaluated = _evaluate_in_process(work / "policy.yaml", trust, pinned, args.cold)
        evaluate_ms = statistics.median(evaluated) * 1e3
        print(
            f"the same decision in-process (Evaluator.evaluate, no HTTP), median of {args.cold}: "
            f"{evaluate_ms:.2f} ms   cold admission / this {cold_ms / evaluate_ms:.2f}x"
        )

        keys = []
        for number in range(args.keys):
            pushed = Pusher(registry).push_image(f"bench/many{number}", "1.0", seed="bench gate")
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                keyless(
                    [
                        *("sign", "--server", server.url, "--identity-token", token),
                        *("--allow-insecure-registry", pushed.reference),
                    ]
                )
            keys.append(f"{registry.host}/bench/many{number}@{pushed.digest}")
        _provider_latencies(cached, keys, 3)  # every key verified once, then cached
        provider = _provider_latencies(cached, keys, args.lookups)
        print(
            f"Gatekeeper external data, {args.keys} keys of verified images per request, "
            f"TLS 1.3 keep-alive ({args.lookups} sequential):"
        )
        print(
            f"  p50 {statistics.median(provider) * 1e3:.2f} ms   "
            f"p99 {percentile(provider, 0.99) * 1e3:.2f} ms   max {max(provider) * 1e3:.2f} ms"
            "   (target p99 < 20 ms)"
        )

        for name, gate, review in (
            ("cache on, 8 containers", cached, eight),
            ("cache off, 8 containers", uncached, eight),
            ("cache on, 1 container", cached, one),
            ("cache off, 1 container", uncached, one),
        ):
            rate, ok, errors = _sustained(gate, review, args.seconds)
            print(
                f"sustained, {CLIENTS} clients, {name}: {rate:.0f} admissions/s "
                f"({ok} admitted, {errors} errors)"
            )


if __name__ == "__main__":
    main()

"""Benchmark: whole-process time of keyless commands, against `sigstore verify identity`.

Prints, for each command, the minimum and the median wall time of `--runs` runs, every command
run once per round in turn (interleaved, so load from other work on the machine weighs on all
alike), and the ratio of `keyless verify` to sigstore-python's `verify identity --offline` on
the same bundle (target <= 0.33):
- `keyless --help`, `keyless sign --help`;
- `keyless verify` of a file bundle (sigstore-conformance happy-path-v0.3, the shipped
  production root: bench/verify.py's whole-process case);
- `keyless sign FILE` against the dev-mode keyless server on loopback (CA, log, TUF refresh);
- `keyless policy check` of an image signed by alice, in Debian's docker-registry on loopback;
- `sigstore verify identity --offline` of the same bundle as `keyless verify`.

`--baseline PATH` also runs every keyless command with PATH as PYTHONPATH (another checkout,
laid out as `keyless/<folder>` links, like the worktree's), interleaved with this one: a
before-and-after in one run. `--bytecode` lets the processes cache bytecode (in a temporary
folder), as an installed keyless does; without it they run as the environment says
(PYTHONDONTWRITEBYTECODE compiles keyless's modules on every start, not the installed peer's).
Run: `python bench/startup.py [--runs 15] [--baseline PATH] [--bytecode]`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Run as a script, this folder is sys.path[0], where other benchmarks' modules would shadow
# the packages of the same name; put the repository first instead (tests/ has the fixtures).
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(REPO)

CASES = REPO / "tests/data/sigstore-conformance/test/assets/bundle-verify"
BUNDLE = CASES / "happy-path-v0.3/bundle.sigstore.json"
ARTIFACT = CASES / "a.txt"
IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
ISSUER = "https://token.actions.githubusercontent.com"
ALICE = "alice@example.com"


def _commands(bindir: Path, server, trust: Path, policy: Path, image: str, work: Path):
    """(label, argv) of each command measured; keyless commands first."""
    keyless = str(bindir / "keyless")
    token = server.email_token(ALICE)
    artifact = work / "artifact.txt"
    artifact.write_bytes(b"signed again and again\n")
    verify = ["--bundle", str(BUNDLE), "--certificate-identity", IDENTITY]
    verify += ["--certificate-oidc-issuer", ISSUER, str(ARTIFACT)]
    sign = ["--server", server.url, "--identity-token", token]
    sign += ["--bundle", str(work / "signed.sigstore.json"), str(artifact)]
    check = ["--policy", str(policy), "--trust-root", f"dev={trust}"]
    check += ["--allow-insecure-registry", image]
    theirs = ["identity", "--offline", "--bundle", str(BUNDLE), "--cert-identity", IDENTITY]
    theirs += ["--cert-oidc-issuer", ISSUER, str(ARTIFACT)]
    return [
        ("keyless --help", [keyless, "--help"]),
        ("keyless sign --help", [keyless, "sign", "--help"]),
        ("keyless verify FILE", [keyless, "verify", *verify]),
        ("keyless sign FILE", [keyless, "sign", *sign]),
        ("keyless policy check", [keyless, "policy", "check", *check]),
        ("sigstore verify identity", [str(bindir / "sigstore"), "verify", *theirs]),
    ]


def _run(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed: {done.stderr.decode()[-800:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="rounds (each command once each)")
    parser.add_argument("--baseline", metavar="PATH", help="PYTHONPATH of a keyless to compare")
    parser.add_argument("--bytecode", action="store_true", help="let processes cache bytecode")
    args = parser.parse_args()

    import logging

    import requests

    from keyless.cli.main import main as keyless
    from tests.conftest import dev_server
    from tests.registry import Pusher, run_registry

    logging.disable(logging.WARNING)
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-startup-")))
        server = stack.enter_context(dev_server(work / "state"))
        registry = stack.enter_context(run_registry(work / "registry"))
        image = Pusher(registry).push_image("bench/app", "1.0", seed="bench startup")
        os.environ["XDG_DATA_HOME"] = str(work / "data")  # the kept TUF trust, for sign
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            signed = keyless(
                [
                    *("sign", "--server", server.url, "--identity-token", server.email_token()),
                    *("--allow-insecure-registry", image.reference),
                ]
            )
        if signed != 0:
            raise SystemExit(f"keyless sign IMAGE failed: {sink.getvalue()[-500:]}")
        trust = work / "trusted_root.json"
        trust.write_bytes(
            requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=30).content
        )
        policy = work / "policy.yaml"
        policy.write_text(
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
        pinned = f"{registry.host}/bench/app@{image.digest}"
        bindir = Path(sys.executable).parent
        commands = _commands(bindir, server, trust, policy, pinned, work)

        env = dict(os.environ)
        if args.bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        trees = [("", env)]
        if args.baseline:
            trees.append((" (baseline)", dict(env, PYTHONPATH=args.baseline)))
        measured = []
        for suffix, tree_env in trees:
            for label, argv in commands:
                if label.startswith("keyless") or not suffix:
                    measured.append((label + suffix, argv, tree_env))
        times: dict[str, list[float]] = {label: [] for label, _, _ in measured}
        for _, argv, tree_env in measured:
            _run(argv, tree_env)  # warm the page cache (and the bytecode cache)
        for _ in range(args.runs):
            for label, argv, tree_env in measured:
                times[label].append(_run(argv, tree_env))

    print(f"whole process, {args.runs} interleaved rounds" + (", bytecode cached" * args.bytecode))
    for label, spent in times.items():
        print(
            f"  {label:<36} min {min(spent) * 1e3:6.0f} ms   "
            f"median {statistics.median(spent) * 1e3:6.0f} ms"
        )
    theirs = times["sigstore verify identity"]
    for suffix, _ in trees:
        ours = times["keyless verify FILE" + suffix]
        print(
            f"  ratio keyless verify{suffix} / sigstore verify identity: "
            f"{min(ours) / min(theirs):.2f} (min), "
            f"{statistics.median(ours) / statistics.median(theirs):.2f} (median), target <= 0.33"
        )


if __name__ == "__main__":
    main()

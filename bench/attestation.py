"""Benchmark: verifying a GitHub attestation with a Rego policy, the two costs apart.

Prints, on a real GitHub provenance bundle (tests/data/github-cli, reusable workflow) under the
public-good root:
- bundle verification per second (JSON parse + full verification + statement read), the
  trusted root parsed once;
- Rego policy evaluations per second on the verified statement (regopy, policy compiled once),
  and the one-off cost of compiling the policy;
- the ratio policy time / bundle time, which the issue wants below 1.

Run: `python bench/attestation.py [--seconds 3]`.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]
DATA = REPO / "tests/data/github-cli"
POLICY = """package signature

default allow = false

workflow := input.predicate.buildDefinition.externalParameters.workflow

allow {
    input.predicateType == "https://slsa.dev/provenance/v1"
    workflow.repository == "https://github.com/malancas/attest-demo"
    startswith(workflow.ref, "refs/heads/")
    input.predicate.runDetails.builder.id == "https://github.com/actions/runner/github-hosted"
}

deny[msg] {
    not allow
    msg := sprintf("built from %v", [workflow.repository])
}
"""


def _rate(work, seconds: float) -> float:
    """Calls per second of `work` over about `seconds`."""
    work()
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        work()
        count += 1
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    from keyless.client.attest.rego import RegoPolicy
    from keyless.client.attest.statement import verify_attestation
    from keyless.client.bundle import Bundle
    from keyless.client.trust import production_trusted_root
    from keyless.client.verify import AllOf, IdentityRegexp, Issuer, Verifier

    raw = (DATA / "reusable-workflow-attestation.sigstore.json").read_bytes()
    sha256 = hashlib.sha256((DATA / "reusable-workflow-artifact").read_bytes()).digest()
    verifier = Verifier(production_trusted_root())
    identity = AllOf(
        [
            IdentityRegexp(
                r"https://github\.com/github/artifact-attestations-workflows/"
                r"\.github/workflows/attest\.yml@.+"
            ),
            Issuer("https://token.actions.githubusercontent.com"),
        ]
    )
    now = datetime.now(UTC)

    def verify_bundle():
        return verify_attestation(
            verifier,
            Bundle.from_json(raw),
            sha256=sha256,
            policy=identity,
            predicate_type="https://slsa.dev/provenance/v1",
            now=now,
        )

    statement = verify_bundle().statement
    start = time.perf_counter()
    compiled = RegoPolicy(POLICY)
    compile_ms = (time.perf_counter() - start) * 1e3
    allowed, messages = compiled.evaluate(statement)
    if not allowed:
        raise SystemExit(f"the benchmark policy refuses the statement: {messages}")

    bundle_rate = _rate(verify_bundle, args.seconds)
    policy_rate = _rate(lambda: compiled.evaluate(statement), args.seconds)
    print(f"bundle verification:  {bundle_rate:8.0f}/s  ({1e3 / bundle_rate:.3f} ms each)")
    print(f"Rego policy (regopy): {policy_rate:8.0f}/s  ({1e3 / policy_rate:.3f} ms each)")
    print(f"policy compile, once: {compile_ms:.1f} ms")
    print(f"policy / bundle time: {bundle_rate / policy_rate:.2f} (target below 1)")


if __name__ == "__main__":
    main()

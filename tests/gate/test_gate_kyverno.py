"""The gate over Kyverno ClusterPolicies, in process: what needs no registry answer (an image
that cannot be judged; the README's example policy). Verdicts on signed images are judged in
tests/e2e/test_kyverno_policy_check.py, through policy check and this same gate."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

from werkzeug.test import Client

from keyless.client.policy import load_policy_set
from keyless.server.gate.app import create_gate_app
from keyless.server.gate.gate import GateSettings
from tests.conftest import REPO
from tests.gate.webhook import admission_review, cip, pod

DIGEST = "sha256:" + "ef" * 32
KYVERNO_AUDIT = """apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: audit-images
spec:
  validationFailureAction: Audit
  rules:
  - name: verify
    match:
      any:
      - resources:
          kinds: [Pod]
    verifyImages:
    - imageReferences: ["*"]
      mutateDigest: false
      attestors:
      - entries:
        - keyless:
            subject: alice@example.com
            issuer: https://issuer.example
            rekor:
              url: https://rekor.sigstore.dev
"""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _validate(tmp_path: Path, text: str, image: str) -> dict:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    app = create_gate_app(
        load_policy_set([path]), GateSettings(timeout=5.0, workers=2), allow_insecure_registry=True
    )
    answer = Client(app).post("/validations", json=admission_review(pod(image)))
    assert answer.status_code == 200
    return json.loads(answer.data)["response"]


def test_an_audit_rule_that_cannot_judge_refuses_as_kyverno_failure_policy_fail_does(
    tmp_path: Path,
) -> None:
    image = f"127.0.0.1:{_closed_port()}/acme/app@{DIGEST}"
    refused = _validate(tmp_path, KYVERNO_AUDIT, image)
    assert refused["allowed"] is False
    assert refused["status"]["message"].startswith(
        f"spec.containers[0].image: could not read the signatures of {image}: "
    )
    # A ClusterImagePolicy in warn mode admits it with a warning, as policy-controller does.
    authority = (
        "  - keyless:\n      identities:\n"
        "      - {issuer: https://issuer.example, subject: alice@example.com}\n"
    )
    warned = _validate(tmp_path, cip("warn-images", authority, mode="warn"), image)
    assert warned["allowed"] is True
    assert warned["warnings"][0].startswith(
        f"spec.containers[0].image: could not read the signatures of {image}: "
    )


def test_the_readme_kyverno_example_loads_as_described(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Kyverno policies") :].split("\n## ", 1)[0]
    (example,) = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    policy = tmp_path / "readme.yaml"
    policy.write_text(example)
    policies = load_policy_set([policy])
    (loaded,) = policies.policies
    assert loaded.name == "check-image.verify-signature"
    assert (loaded.mode, loaded.mutate_digest, loaded.verify_digest) == ("enforce", True, True)
    (group,) = loaded.authorities
    assert group.threshold == 1
    assert [m.name for m in group.members] == ["entries[0].keyless", "entries[1].keys"]
    assert policies.warnings == ()

"""Kyverno `keys` attestors end to end: a managed-key bundle (forged by the test instance, as in
test_key_authority.py) on an image in a real registry, judged by `keyless policy check` under a
ClusterPolicy whose `publicKeys` block holds several keys: each key is one entry, and `count`
says how many must have signed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.cli.main import main
from keyless.client.oci import RegistryClient, parse_reference, push_bundle
from tests.cli.forge import Instance
from tests.cli.policy.test_key_authority import _key_bundle, _pem


def _policy(keys: list[ec.EllipticCurvePrivateKey], count: int | None) -> str:
    block = "".join(_pem(k.public_key()) for k in keys)
    indented = "\n".join("              " + line for line in block.splitlines())
    counted = f"count: {count}\n        " if count else ""
    return f"""apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: vendor
spec:
  validationFailureAction: Enforce
  rules:
  - name: release-keys
    match:
      any:
      - resources:
          kinds: [Pod]
    verifyImages:
    - imageReferences: ["*"]
      attestors:
      - {counted}entries:
        - keys:
            publicKeys: |
{indented}
"""


@pytest.fixture
def keyed(instance: Instance, registry, pusher, tmp_path: Path):
    image = pusher.push_image("policy/kyverno-keyed", "1.0", seed="kyverno keyed")
    key = ec.generate_private_key(ec.SECP256R1())
    bundle = _key_bundle(instance, key, bytes.fromhex(image.digest.removeprefix("sha256:")))
    reference = parse_reference(image.reference).with_digest(image.digest)
    with RegistryClient(allow_insecure=True) as client:
        subject = client.get_manifest(reference).descriptor
        push_bundle(
            client, reference, subject, json.dumps(bundle).encode(), created_at=datetime.now(UTC)
        )
    root = tmp_path / "trusted_root.json"
    root.write_text(json.dumps(instance.trusted_root()))
    return image, key, root


def test_one_of_several_keys_with_count_one(keyed, registry, tmp_path, capsys) -> None:
    image, key, root = keyed
    other = ec.generate_private_key(ec.SECP256R1())
    policy = tmp_path / "policy.yaml"

    def check(text: str) -> int:
        policy.write_text(text)
        argv = ["policy", "check", "--allow-insecure-registry", "--trusted-root", str(root)]
        return main([*argv, "--policy", str(policy), image.reference])

    pinned = f"{registry.host}/policy/kyverno-keyed@{image.digest}"
    assert check(_policy([other, key], count=1)) == 0
    assert capsys.readouterr().out == (
        f"PASS {pinned} (vendor.release-keys/attestors[0]: entries[0].keys[1]: signed with the "
        "policy's key, log index 3)\n"
    )
    # Count absent: every key of the block must have signed, and `other` did not.
    assert check(_policy([key, other], count=None)) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "error: vendor.release-keys/attestors[0]: needs 2 of 2, 1 passed: entries[0].keys[1]: "
        f"no valid signature by the policy's key for {pinned}: 1 found, none verifies"
    )
    assert check(_policy([key], count=None)) == 0
    assert capsys.readouterr().out.startswith(
        f"PASS {pinned} (vendor.release-keys/attestors[0]: entries[0].keys: "
    )

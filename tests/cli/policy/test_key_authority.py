"""`key` authorities end to end: a managed-key bundle attached to an image in a real registry.

The bundle is forged by the test's private instance (tests/cli/forge.py): a message signature
over the manifest digest, logged in the instance's transparency log, carrying only a public
key. `keyless policy check` judges it with a policy naming that key, and refuses it for
another key and for a keyless authority.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import rfc8785
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from keyless.cli.main import main
from keyless.client.oci import RegistryClient, parse_reference, push_bundle
from tests.cli.forge import Instance


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _pem(key: ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _key_bundle(instance: Instance, key: ec.EllipticCurvePrivateKey, digest: bytes) -> dict:
    """A v0.3 managed-key bundle: a message signature over `digest`, logged by `instance`."""
    signature = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    body = rfc8785.dumps(
        {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                "signature": {
                    "content": _b64(signature),
                    "publicKey": {"content": _b64(_pem(key.public_key()).encode())},
                },
            },
        }
    )
    logged = instance.start + timedelta(days=1)
    return {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {
            "publicKey": {"hint": "release-key"},
            "tlogEntries": [instance.log_entry(body, integrated_at=logged)],
        },
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": _b64(digest)},
            "signature": _b64(signature),
        },
    }


def _policy(authority: str) -> str:
    return f"""apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata:
  name: keyed
spec:
  images:
  - glob: "**"
  authorities:
{authority}"""


def _key_authority(key: ec.EllipticCurvePrivateKey) -> str:
    data = "\n".join("        " + line for line in _pem(key.public_key()).splitlines())
    return f"  - name: release-key\n    key:\n      data: |\n{data}\n"


def test_key_authority(instance: Instance, registry, pusher, tmp_path: Path, capsys) -> None:
    image = pusher.push_image("policy/keyed", "1.0", seed="signed with a managed key")
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
    pinned = f"{registry.host}/policy/keyed@{image.digest}"

    def check(authority: str) -> int:
        policy = tmp_path / "policy.yaml"
        policy.write_text(_policy(authority))
        argv = ["policy", "check", "--allow-insecure-registry", "--trusted-root", str(root)]
        return main([*argv, "--policy", str(policy), image.reference])

    assert check(_key_authority(key)) == 0
    assert capsys.readouterr().out == (
        f"PASS {pinned} (keyed/release-key: signed with the policy's key, log index 3)\n"
    )

    other = ec.generate_private_key(ec.SECP256R1())
    assert check(_key_authority(other)) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: keyed/release-key: no valid signature by the policy's key for {pinned}: "
        "1 found, none verifies (fallback-tag: verification failed (signature): "
    )

    keyless = "  - name: ci\n    keyless:\n      identities:\n"
    keyless += "      - {issuer: https://issuer.keyless.test, subject: alice@example.com}\n"
    assert check(keyless) == 1
    assert capsys.readouterr().err == (
        f"error: keyed/ci: no valid signature by a trusted signer for {pinned}: 1 found, none "
        "verifies (fallback-tag: verification failed (key-material): bundle is signed with a "
        "managed key, not a certificate)\n"
    )


def test_rfc3161timestamp_counts_only_verified_timestamps(
    instance: Instance, registry, pusher, tmp_path: Path, capsys
) -> None:
    from tests.cli.test_reference_agreement import _Tsa

    tsa = _Tsa.shared(instance)
    root = tmp_path / "trusted_root.json"
    root.write_text(json.dumps(tsa.root()))
    key = ec.generate_private_key(ec.SECP256R1())
    policy = tmp_path / "policy.yaml"
    policy.write_text(_policy(_key_authority(key) + "    rfc3161timestamp: {}\n"))

    def check(stamp: str) -> tuple[int, str]:
        image = pusher.push_image(f"policy/stamped-{stamp}", "1", seed=f"stamped {stamp}")
        bundle = _key_bundle(instance, key, bytes.fromhex(image.digest.removeprefix("sha256:")))
        signature = base64.b64decode(bundle["messageSignature"]["signature"])
        stamps = {
            "none": [],
            "garbage": [_b64(b"not a timestamp")],
            "valid": [tsa.stamp(signature)],
        }[stamp]
        if stamps:
            bundle["verificationMaterial"]["timestampVerificationData"] = {
                "rfc3161Timestamps": [{"signedTimestamp": s} for s in stamps]
            }
        reference = parse_reference(image.reference).with_digest(image.digest)
        with RegistryClient(allow_insecure=True) as client:
            subject = client.get_manifest(reference).descriptor
            push_bundle(
                client,
                reference,
                subject,
                json.dumps(bundle).encode(),
                created_at=datetime.now(UTC),
            )
        argv = ["policy", "check", "--allow-insecure-registry", "--trusted-root", str(root)]
        code = main([*argv, "--policy", str(policy), image.reference])
        return code, capsys.readouterr().err

    assert check("valid") == (0, "")
    code, err = check("none")
    assert code == 1
    assert err.endswith("it has no verified RFC 3161 timestamp, and the policy requires one)\n")
    # Bytes that are not a TimeStampResp fail the bundle itself (as sigstore-python and
    # sigstore-java refuse it, issue 23); so the policy is not satisfied either.
    code, err = check("garbage")
    assert code == 1
    assert "timestamp #0 is not a valid DER TimeStampResp" in err

"""`keyless gate serve` TLS and registry credentials: the self-signed mode prints a caBundle
that verifies the gate, TLS flags are checked before anything starts, and `--registry-auth`
(a docker config, as an image pull secret's .dockerconfigjson holds it) lets the gate resolve
tags in a registry that wants a password."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import requests

from tests.gate.webhook import admission_review, decoded_patch, pod, run_gate

POLICY = """apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: release}
spec:
  images: [{glob: "**"}]
  authorities: [{name: pipeline, static: {action: pass}}]
"""


def test_self_signed_mode_prints_a_ca_bundle_that_verifies_the_gate(tmp_path):
    (tmp_path / "policy.yaml").write_text(POLICY)
    policy = ["--policy", str(tmp_path / "policy.yaml")]
    with run_gate(tmp_path, *policy, self_signed=True) as gate:
        label, _, bundle = (tmp_path / "gate.out").read_text().strip().partition(": ")
        assert label == "caBundle"
        pem = base64.b64decode(bundle, validate=True)
        assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
        # The gate's session trusts that PEM and nothing else.
        assert Path(gate.session.verify).read_bytes() == pem
        assert gate.session.get(f"{gate.url}/healthz", timeout=5).status_code == 200
        # Another trust store refuses the same server: the bundle is what makes it trusted.
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{gate.url}/healthz", timeout=5)


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ((), "give --tls-cert and --tls-key, or --tls-self-signed DIR"),
        (("--tls-cert", "c.pem"), "give --tls-cert and --tls-key, or --tls-self-signed DIR"),
        (
            ("--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-self-signed", "dir"),
            "give --tls-cert/--tls-key or --tls-self-signed, not both",
        ),
    ],
    ids=["none", "cert-without-key", "both"],
)
def test_tls_flags_are_checked_first(tmp_path, capsys, tls, message):
    from keyless.cli.main import main

    (tmp_path / "policy.yaml").write_text(POLICY)
    with pytest.raises(SystemExit) as exit_:
        main(["gate", "serve", "--policy", str(tmp_path / "policy.yaml"), *tls])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory):
    from tests.registry import run_registry

    workdir = tmp_path_factory.mktemp("private-registry")
    with run_registry(workdir, username="deployer", password="s3cret-pull") as running:
        yield running


def test_registry_auth_file_lets_the_gate_pin_private_tags(private_registry, tmp_path):
    from tests.registry import Pusher

    image = Pusher(private_registry).push_image("private/app", "1.0", seed="gate private")
    (tmp_path / "policy.yaml").write_text(POLICY)
    secret = base64.b64encode(b"deployer:s3cret-pull").decode()
    auth = tmp_path / ".dockerconfigjson"
    auth.write_text(json.dumps({"auths": {private_registry.host: {"auth": secret}}}))
    common = ["--policy", str(tmp_path / "policy.yaml"), "--allow-insecure-registry"]
    review = admission_review(pod(image.reference))

    with run_gate(tmp_path / "with", *common, "--registry-auth", str(auth)) as gate:
        mutation = gate.review("/mutations", review)
        assert decoded_patch(mutation) == [
            {
                "op": "replace",
                "path": "/spec/containers/0/image",
                "value": f"{private_registry.host}/private/app:1.0@{image.digest}",
            }
        ]

    with run_gate(tmp_path / "without", *common) as gate:
        mutation = gate.review("/mutations", review)
        assert decoded_patch(mutation) == []
        answer = gate.review("/validations", review)
        assert answer["allowed"] is False
        assert "could not resolve" in answer["status"]["message"]

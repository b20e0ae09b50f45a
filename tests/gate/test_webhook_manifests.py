"""`keyless gate manifests`: the printed YAML is valid Kubernetes (checked by kubernetes-validate
against the API schemas, strictly: unknown fields are errors) and wires the webhooks as the
gate needs them: v1 reviews, failurePolicy Fail, sideEffects None, a namespace opt-in label,
a timeout under Kubernetes' 30 s cap, and rules for every kind the gate judges."""

from __future__ import annotations

import base64

import kubernetes_validate
import pytest
import yaml

from keyless.cli.main import main
from keyless.client.policy.workloads import images_in_files
from tests.conftest import REPO

KINDS_JUDGED = {
    "": {"pods", "pods/ephemeralcontainers"},
    "apps": {"deployments", "replicasets", "statefulsets", "daemonsets"},
    "batch": {"jobs", "cronjobs"},
}


def _manifests(capsys, *argv: str) -> tuple[str, list[dict]]:
    assert main(["gate", "manifests", *argv]) == 0
    text = capsys.readouterr().out
    return text, [d for d in yaml.safe_load_all(text) if d is not None]


@pytest.mark.parametrize(
    "argv",
    [
        (),
        ("--namespace", "gatekeeping", "--ca-bundle", base64.b64encode(b"PEM").decode()),
    ],
    ids=["defaults", "namespace-and-ca-bundle"],
)
def test_every_document_is_valid_kubernetes(capsys, argv):
    _, documents = _manifests(capsys, *argv)
    kinds = [d["kind"] for d in documents]
    for needed in (
        "Deployment",
        "Service",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ):
        assert kinds.count(needed) == 1, kinds
    version = kubernetes_validate.latest_version()
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)


def test_webhooks_are_wired_as_the_gate_needs(capsys):
    bundle = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode()
    _, documents = _manifests(capsys, "--namespace", "gatekeeping", "--ca-bundle", bundle)
    by_kind = {d["kind"]: d for d in documents}
    service = by_kind["Service"]
    assert service["metadata"]["namespace"] == "gatekeeping"
    assert by_kind["Deployment"]["metadata"]["namespace"] == "gatekeeping"
    for kind, path in (
        ("MutatingWebhookConfiguration", "/mutations"),
        ("ValidatingWebhookConfiguration", "/validations"),
    ):
        (webhook,) = by_kind[kind]["webhooks"]
        assert webhook["admissionReviewVersions"] == ["v1"]
        assert webhook["failurePolicy"] == "Fail"
        assert webhook["sideEffects"] == "None"
        assert 1 <= webhook["timeoutSeconds"] <= 30
        assert webhook["namespaceSelector"] == {
            "matchExpressions": [
                {"key": "keyless.dev/include", "operator": "In", "values": ["true"]}
            ]
        }
        client = webhook["clientConfig"]
        assert client["caBundle"] == bundle
        assert client["service"]["name"] == service["metadata"]["name"]
        assert client["service"]["namespace"] == "gatekeeping"
        assert client["service"]["path"] == path
        resources: dict[str, set[str]] = {}
        for rule in webhook["rules"]:
            assert rule["operations"] == ["CREATE", "UPDATE"]
            for group in rule["apiGroups"]:
                resources.setdefault(group, set()).update(rule["resources"])
        assert resources == KINDS_JUDGED


def test_timeout_seconds_is_passed_and_bounded(capsys):
    _, documents = _manifests(capsys, "--timeout-seconds", "10")
    for document in documents:
        for webhook in document.get("webhooks", ()):
            assert webhook["timeoutSeconds"] == 10
    with pytest.raises(SystemExit) as exit_:
        main(["gate", "manifests", "--timeout-seconds", "31"])
    assert exit_.value.code == 2
    assert "--timeout-seconds must be 1 to 30" in capsys.readouterr().err


def test_the_printed_manifests_are_read_by_policy_check_resource(capsys, tmp_path):
    """No YAML aliases (manifest readers, ours included, refuse them), and the gate's own
    Deployment image is found where `keyless policy check --resource` looks."""
    text, _ = _manifests(capsys, "--image", "ghcr.io/acme/keyless:1.0")
    path = tmp_path / "gate.yaml"
    path.write_text(text)
    assert images_in_files([path]) == ["ghcr.io/acme/keyless:1.0"]


def test_manifests_carry_a_policy_directory_and_the_default_trusted_root(capsys, tmp_path):
    """What `gate manifests` prints runs with the trust `policy check` judged with: the
    policies of a directory and the `--trusted-root` of authorities without trustRootRef."""
    from tests.gate.webhook import cip, static

    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "a.yaml").write_text(cip("first", static("pass")))
    (policies / "b.yml").write_text(cip("second", static("pass"), glob="ghcr.io/**"))
    (policies / "notes.txt").write_text("not a policy")
    root = REPO / "client/data/staging_trusted_root.json"
    _, documents = _manifests(
        capsys, "--policy", str(policies), "--trusted-root", str(root), "--ca-bundle", "UEVN"
    )
    config_maps = {d["metadata"]["name"]: d["data"] for d in documents if d["kind"] == "ConfigMap"}
    assert set(config_maps["keyless-gate-policies"]) == {"a.yaml", "b.yml"}
    assert config_maps["keyless-gate-trust"]["_trusted_root.json"] == root.read_text()
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--trusted-root=/etc/keyless-gate/trust/_trusted_root.json" in container["args"]


def test_manifests_refuse_a_policy_the_gate_would_refuse(capsys, tmp_path):
    from tests.gate.webhook import cip, static

    policy = tmp_path / "policy.yaml"
    policy.write_text(cip("acme", static("pass")).replace("mode: enforce", "mode: loud"))
    assert main(["gate", "manifests", "--policy", str(policy), "--ca-bundle", "UEVN"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"error: {policy}: document 1 (acme): spec.mode: must be enforce or warn, not 'loud'\n"
    )


def test_manifests_refuse_a_trusted_root_the_gate_could_not_use(capsys, tmp_path):
    from tests.gate.webhook import cip, static

    policy, root = tmp_path / "policy.yaml", tmp_path / "root.json"
    policy.write_text(cip("acme", static("pass")))
    root.write_text("[]")
    argv = ["--policy", str(policy), "--trusted-root", str(root), "--ca-bundle", "UEVN"]
    assert main(["gate", "manifests", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "error: malformed trusted root: Input should be an object\n"


def _violations(rego: str, review: dict, system_error: str = "") -> list[str]:
    """The ConstraintTemplate's violations for `review`, with Gatekeeper's `external_data`
    stood in for by a function answering as the provider does: an error for images whose
    name starts with `bad`, and `system_error` as given."""
    import json

    from regopy import Interpreter

    stub = f"""
external_data(request) := {{
  "responses": [[key, {{}}] | some key in request.keys; not startswith(key, "bad")],
  "errors": [[key, "unsigned"] | some key in request.keys; startswith(key, "bad")],
  "system_error": {json.dumps(system_error)},
}}
"""
    interpreter = Interpreter()
    interpreter.add_module("template.rego", rego + stub)
    interpreter.set_input_term(json.dumps({"review": review}))
    answer = json.loads(str(interpreter.query("data.keylessverified.violation")))
    return sorted(v["msg"] for v in answer["expressions"][0])


def test_gatekeeper_provider_template_and_constraint(capsys):
    from tests.gate.webhook import admission_review, cronjob, deployment, pod

    _, documents = _manifests(capsys, "--gatekeeper", "--ca-bundle", "UEVN")
    kinds = [d["kind"] for d in documents]
    assert "MutatingWebhookConfiguration" not in kinds  # Gatekeeper's webhooks ask the gate
    assert kinds[-3:] == ["Provider", "ConstraintTemplate", "KeylessVerified"]
    provider, template, constraint = documents[-3:]
    assert provider["apiVersion"] == "externaldata.gatekeeper.sh/v1beta1"
    assert provider["spec"] == {
        "url": "https://keyless-gate.keyless-system:443/externaldata/verify",
        "timeout": 3,
        "caBundle": "UEVN",
    }
    assert constraint["spec"]["match"]["namespaceSelector"] == {
        "matchLabels": {"keyless.dev/include": "true"}
    }
    (target,) = template["spec"]["targets"]
    rego = target["rego"]
    review = admission_review(pod("bad/one", "good/two", init=("bad/three",)))["request"]
    assert _violations(rego, review) == [
        "keyless gate refused bad/one: unsigned",
        "keyless gate refused bad/three: unsigned",
    ]
    for workload in (deployment("good/app"), cronjob("good/job")):
        assert _violations(rego, admission_review(workload)["request"]) == []
    refused = _violations(rego, admission_review(cronjob("bad/job"))["request"])
    assert refused == ["keyless gate refused bad/job: unsigned"]
    down = _violations(rego, admission_review(deployment("good/app"))["request"], "registry down")
    assert down == ["keyless gate could not decide: registry down"]


def test_secrets_are_mounted_owner_only_and_read_through_the_fsgroup(capsys):
    """The kubelet writes a Secret's files as root: the gate (not root) reads its TLS key and
    registry credentials through the pod's fsGroup, mounted owner-only (defaultMode 0400,
    which the fsGroup makes 0440), never 0644 for anyone in the container (issue 24 item 9)."""
    _, documents = _manifests(capsys, "--registry-auth-secret", "pull-secret")
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    secrets = {v["name"]: v["secret"] for v in spec["volumes"] if "secret" in v}
    assert secrets == {
        "tls": {"secretName": "keyless-gate-tls", "defaultMode": 0o400},
        "registry-0": {"secretName": "pull-secret", "defaultMode": 0o400},
    }
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
    }
    kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)

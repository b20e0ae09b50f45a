"""Bad input to a running `keyless gate serve`, as an attacker or a broken client would send
it: each gets a clean answer (a 4xx, or an AdmissionReview refusal naming the defect) well
inside the API server's timeout, never a 500 and never an allow.

A registry that accepts connections and never answers (a loopback socket nobody reads) stands
in for a hung registry: the answer still comes within the `?timeout=` the API server sends,
and it is a refusal under enforce, a warning under warn.
"""

from __future__ import annotations

import json

import pytest

from tests.gate.webhook import admission_review, decoded_patch, deployment, pod, run_gate

DIGEST = "sha256:" + "ab" * 32
POLICIES = """apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: release}
spec:
  images: [{glob: "ghcr.io/acme/**"}]
  authorities: [{name: pipeline, static: {action: pass}}]
"""


def _hanging_policies(host: str) -> str:
    keyless = """  authorities:
  - name: signed
    keyless:
      identities: [{issuer: "https://token.actions.githubusercontent.com", subject: "x"}]
"""
    return f"""apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {{name: hung}}
spec:
  images: [{{glob: "{host}/enforced/**"}}]
{keyless}---
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {{name: hung-audit}}
spec:
  images: [{{glob: "{host}/audited/**"}}]
  mode: warn
{keyless}"""


@pytest.fixture(scope="module")
def gate(tmp_path_factory, hanging_registry):
    workdir = tmp_path_factory.mktemp("gate-bad-input")
    (workdir / "policy.yaml").write_text(POLICIES + "---\n" + _hanging_policies(hanging_registry))
    arguments = ["--policy", str(workdir / "policy.yaml"), "--allow-insecure-registry"]
    with run_gate(workdir, *arguments) as running:
        yield running


def _http_error(answer) -> str:
    assert answer.headers["Content-Type"].startswith("application/json")
    return answer.json()["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "the AdmissionReview is not valid JSON"),
        (b"[]", "the AdmissionReview must be a JSON object"),
        (b"\xff\xfe", "the AdmissionReview is not UTF-8"),
        (b"[" * 5000 + b"]" * 5000, "the AdmissionReview is nested too deeply"),
        (b'{"apiVersion":"admission.k8s.io/v1","apiVersion":"x"}', "duplicate field"),
        (
            json.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}),
            "apiVersion must be admission.k8s.io/v1, not 'admission.k8s.io/v1beta1' (v1 only)",
        ),
        (
            json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "Pod"}),
            "kind must be AdmissionReview, not 'Pod'",
        ),
        (
            json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
            "request: must be an object",
        ),
        (
            json.dumps(
                {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}
            ),
            "request.uid: must be a string of 1 to 128 characters",
        ),
        (
            json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "request": {"uid": "u" * 129},
                }
            ),
            "request.uid: must be a string of 1 to 128 characters",
        ),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "not-utf8",
        "nested-too-deeply",
        "duplicate-key",
        "v1beta1",
        "wrong-kind",
        "no-request",
        "no-uid",
        "long-uid",
    ],
)
def test_unanswerable_bodies_are_http_400(gate, body, message):
    raw = body.encode() if isinstance(body, str) else body
    for path in ("/mutations", "/validations"):
        answer = gate.post(path, raw)
        assert answer.status_code == 400, answer.text
        assert message in _http_error(answer)


def test_huge_body_is_413(gate):
    huge = b'{"apiVersion":"admission.k8s.io/v1","pad":"' + b"x" * (5 * 1024 * 1024) + b'"}'
    answer = gate.post("/validations", huge)
    assert answer.status_code == 413
    assert _http_error(answer) == "the body is larger than 4194304 bytes"


def test_wrong_method_content_type_and_path(gate):
    assert gate.session.get(f"{gate.url}/validations", timeout=10).status_code == 405
    answer = gate.session.post(
        f"{gate.url}/validations", data=b"{}", headers={"Content-Type": "text/plain"}, timeout=10
    )
    assert answer.status_code == 415
    assert gate.session.post(f"{gate.url}/admit", json={}, timeout=10).status_code == 404


def _refused(answer: dict, message: str, code: int = 400) -> None:
    assert answer["allowed"] is False
    assert answer["status"] == {"code": code, "message": message}
    assert "patch" not in answer


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["request"].update(operation=7), "request.operation: must be a string"),
        (lambda r: r["request"].pop("kind"), "request.kind: missing"),
        (lambda r: r["request"].update(kind="Pod"), "request.kind: must be an object"),
        (lambda r: r["request"].update(dryRun="yes"), "request.dryRun: must be a boolean"),
        (
            lambda r: r["request"]["object"]["spec"].update(containers={"app": "nginx"}),
            "spec.containers: must be a list, not a mapping",
        ),
        (
            lambda r: r["request"]["object"]["spec"]["containers"][0].update(image=["nginx"]),
            "spec.containers[0].image: must be a string, not a list",
        ),
        (
            lambda r: r["request"]["object"]["spec"]["initContainers"].append("busybox"),
            "spec.initContainers[0]: must be a mapping, not a string",
        ),
        (
            lambda r: r["request"].update(object="a pod"),
            "the object: must be a mapping, not a string",
        ),
    ],
    ids=[
        "operation-number",
        "kind-missing",
        "kind-string",
        "dry-run-string",
        "containers-mapping",
        "image-list",
        "container-string",
        "object-string",
    ],
)
def test_wrong_types_are_refused_with_code_400(gate, mutate, message):
    review = admission_review(pod(f"ghcr.io/acme/app@{DIGEST}"))
    review["request"]["object"]["spec"]["initContainers"] = []
    mutate(review)
    for path in ("/mutations", "/validations"):
        answer = gate.review(path, review)
        assert answer["allowed"] is False
        assert answer["status"]["code"] == 400
        assert message in answer["status"]["message"]


def test_unknown_kind_is_refused(gate):
    review = admission_review(
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "spec": {}},
        kind=("argoproj.io", "v1alpha1", "Rollout", "rollouts"),
    )
    for path in ("/mutations", "/validations"):
        answer = gate.review(path, review)
        assert answer["allowed"] is False
        assert answer["status"]["code"] == 400
        assert answer["status"]["message"].endswith("; not argoproj.io/Rollout")


@pytest.mark.parametrize(
    "image",
    [
        "",
        "GHCR.IO/Acme/App:1.0",
        "ghcr.io/acme/app@sha256:abc",
        "ghcr.io/acme/app:" + "t" * 200,
        "ghcr.io/" + "a" * 5000,
        "-leading-dash",
        "ghcr.io/acme/app:1.0@md5:" + "0" * 32,
        "ghcr.io/acme/../app",
        "a" * 64,
    ],
    ids=[
        "empty",
        "uppercase-repository",
        "short-digest",
        "long-tag",
        "very-long",
        "leading-dash",
        "md5-digest",
        "dot-dot",
        "hex-identifier",
    ],
)
def test_odd_image_references_are_refused_never_allowed(gate, image):
    review = admission_review(pod(image))
    mutation = gate.review("/mutations", review)
    assert mutation["allowed"] is True
    assert decoded_patch(mutation) == []
    answer = gate.review("/validations", review)
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 403
    assert answer["status"]["message"].startswith("spec.containers[0].image: ")


def test_a_hanging_registry_refuses_under_enforce_inside_the_timeout(gate, hanging_registry):
    image = f"{hanging_registry}/enforced/app@{DIGEST}"
    # The client gives up after 6 s (a ReadTimeout fails the test): the gate must answer
    # within the 2 s the API server asked for, as the API server would give up too.
    review = admission_review(deployment(image))
    answer = gate.review("/validations", review, timeout="2s", wait_seconds=6)
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 403
    message = answer["status"]["message"]
    assert message.startswith(f"spec.template.spec.containers[0].image: could not judge {image}")
    assert "did not finish in time" in message


def test_a_hanging_registry_only_warns_under_warn(gate, hanging_registry):
    image = f"{hanging_registry}/audited/app@{DIGEST}"
    review = admission_review(pod(image))
    answer = gate.review("/validations", review, timeout="2s", wait_seconds=6)
    assert answer["allowed"] is True
    (warning,) = answer["warnings"]
    assert warning.startswith(f"spec.containers[0].image: could not judge {image}")


def test_a_hanging_registry_leaves_a_tag_unpinned_inside_the_timeout(gate, hanging_registry):
    review = admission_review(pod(f"{hanging_registry}/enforced/app:1.0"))
    mutation = gate.review("/mutations", review, timeout="2s", wait_seconds=6)
    assert mutation["allowed"] is True
    assert decoded_patch(mutation) == []
    answer = gate.review("/validations", review, timeout="2s", wait_seconds=6)
    assert answer["allowed"] is False


def test_refusals_and_bad_requests_are_counted(gate):
    gate.post("/validations", b"{")
    invalid = 'keyless_gate_admissions_total{result="invalid",webhook="validations"}'
    assert gate.metric(invalid, required=True) >= 1

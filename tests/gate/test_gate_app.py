"""The gate's composition root, in process: admission logic that needs no registry is tested
through `create_gate_app` and werkzeug's test client, without gunicorn or TLS (those have their
own tests, tests/gate/test_webhook_tls_and_auth.py)."""

from __future__ import annotations

import json

import pytest
from werkzeug.test import Client

from keyless.client.policy import load_policy_set
from keyless.server.gate.app import create_gate_app
from keyless.server.gate.gate import GateSettings
from tests.gate.webhook import admission_review, cip, pod, static

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def client(tmp_path) -> Client:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        cip("acme", static("pass"), glob="ghcr.io/acme/**")
        + "---\n"
        + cip(
            "vendor",
            static("fail", message="vendor images are not allowed"),
            glob="vendor.example/**",
        )
    )
    app = create_gate_app(load_policy_set([policy]), GateSettings(timeout=5.0, workers=2))
    return Client(app)


def _review(client: Client, path: str, *images: str) -> dict:
    answer = client.post(path, json=admission_review(pod(*images)))
    assert answer.status_code == 200
    return json.loads(answer.data)["response"]


def test_health_and_metrics(client) -> None:
    assert client.get("/healthz").data == b"ok\n"
    assert b"keyless_gate_" in client.get("/metrics").data


def test_a_passing_policy_admits_and_a_failing_one_refuses(client) -> None:
    assert _review(client, "/validations", f"ghcr.io/acme/app@{DIGEST}")["allowed"] is True
    refused = _review(client, "/validations", f"vendor.example/tool@{DIGEST}")
    assert refused["allowed"] is False
    assert "vendor images are not allowed" in refused["status"]["message"]


def test_an_image_no_policy_matches_is_refused_by_default(client) -> None:
    other = f"docker.io/library/nginx@{DIGEST}"
    refused = _review(client, "/validations", other)
    assert refused["allowed"] is False
    assert refused["status"]["message"] == (
        f"spec.containers[0].image: no matching policies for index.docker.io/library/nginx@{DIGEST}"
    )


def test_a_body_that_is_not_a_review_is_a_400(client) -> None:
    answer = client.post("/validations", data=b"[]", content_type="application/json")
    assert answer.status_code == 400


@pytest.mark.parametrize(
    "spelled",
    ["GHCR.IO/acme/app", "Ghcr.Io/acme/app", "ghcr.io:443/acme/app", "GHCR.IO:443/acme/app"],
)
def test_a_registry_spelled_otherwise_does_not_escape_its_policy(tmp_path, spelled) -> None:
    """With `no-match-policy: allow`, an image that escapes the `ghcr.io/acme/**` policy by its
    spelling would be admitted unsigned; the runtime pulls it from the same registry."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(cip("acme", static("fail", message="unsigned"), glob="ghcr.io/acme/**"))
    policies = load_policy_set([policy], no_match_policy="allow")
    client = Client(create_gate_app(policies, GateSettings(timeout=5.0, workers=2)))
    refused = _review(client, "/validations", f"{spelled}@{DIGEST}")
    assert refused["allowed"] is False
    assert "acme/static: disallowed by static policy: unsigned" in refused["status"]["message"]


@pytest.mark.parametrize("operation", ["create", "PATCH", "Update", ""])
def test_an_operation_the_api_server_never_sends_is_refused(client, operation) -> None:
    review = admission_review(pod(f"vendor.example/tool@{DIGEST}"), operation=operation)
    answer = json.loads(client.post("/validations", json=review).data)["response"]
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 400
    assert (
        "request.operation: must be one of CREATE, UPDATE, DELETE, CONNECT"
        in (answer["status"]["message"])
    )


@pytest.mark.parametrize("operation", ["DELETE", "CONNECT"])
def test_delete_and_connect_are_allowed_untouched(client, operation) -> None:
    review = admission_review(pod(f"vendor.example/tool@{DIGEST}"), operation=operation)
    answer = json.loads(client.post("/validations", json=review).data)["response"]
    assert answer["allowed"] is True


def test_each_decision_is_one_json_line_with_no_object_or_secret(tmp_path) -> None:
    import io

    from keyless.server.gate.decisions import DecisionLog

    policy = tmp_path / "policy.yaml"
    policy.write_text(
        cip("acme", static("pass"), glob="ghcr.io/acme/**")
        + "---\n"
        + cip("vendor", static("fail", message="not ours"), glob="vendor.example/**")
    )
    out = io.StringIO()
    app = create_gate_app(
        load_policy_set([policy]),
        GateSettings(timeout=5.0, workers=2),
        decisions=DecisionLog(out),
    )
    client = Client(app)
    review = admission_review(pod(f"ghcr.io/acme/app@{DIGEST}", f"vendor.example/tool@{DIGEST}"))
    review["request"]["userInfo"]["extra"] = {"token": ["secret-token-value"]}
    for _ in range(2):
        assert client.post("/validations", json=review).status_code == 200
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["uid"] == review["request"]["uid"]
    assert (first["webhook"], first["operation"], first["kind"]) == (
        "validations",
        "CREATE",
        "core/v1/Pod",
    )
    assert (first["namespace"], first["name"], first["allowed"]) == ("prod", "web", False)
    assert first["user"] == "system:serviceaccount:kube-system:replicaset-controller"
    acme, vendor = first["images"]
    assert acme == {
        "field": "spec.containers[0].image",
        "image": f"ghcr.io/acme/app@{DIGEST}",
        "digest": DIGEST,
        "outcome": "pass",
        "cached": False,
        "policies": [
            {
                "name": "acme",
                "mode": "enforce",
                "passed": True,
                "authority": "static",
                "signer": None,
                "issuer": None,
            }
        ],
    }
    assert vendor["outcome"] == "fail" and vendor["policies"][0]["passed"] is False
    assert first["ms"] >= 0
    # The second time the verdicts come from the cache, and say so.
    assert [i["cached"] for i in second["images"]] == [True, False]
    assert "secret-token-value" not in out.getvalue()
    assert "regcred" not in out.getvalue()  # nothing of the object but names and images


def _metric(client: Client, name: str) -> float:
    for line in client.get("/metrics").data.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def _until(check, seconds: float = 10.0):
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("the gate did not pick up the policy change in time")


def test_policies_reload_and_a_bad_file_keeps_the_last_good_set(tmp_path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(cip("acme", static("pass"), glob="ghcr.io/acme/**"))

    def load():
        return load_policy_set([policy])

    app = create_gate_app(
        load(), GateSettings(timeout=5.0, workers=2), reload=load, reload_interval=0.05
    )
    try:
        _reloading(Client(app), policy)
    finally:
        app.close()


def _reloading(client: Client, policy) -> None:
    image = f"ghcr.io/acme/app@{DIGEST}"
    assert _review(client, "/validations", image)["allowed"] is True
    # A changed policy replaces the old; the cached pass does not outlive it.
    policy.write_text(cip("acme", static("fail", message="revoked"), glob="ghcr.io/acme/**"))
    refused = _until(
        lambda: (r := _review(client, "/validations", image))["allowed"] is False and r
    )
    assert "revoked" in refused["status"]["message"]
    assert _metric(client, 'keyless_gate_policy_reloads_total{result="reloaded"}') == 1
    # A file that does not load keeps the last good set, and says so in a metric.
    policy.write_text("apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\n")
    _until(lambda: _metric(client, "keyless_gate_policy_reload_failing") == 1)
    still = _review(client, "/validations", image)
    assert still["allowed"] is False and "revoked" in still["status"]["message"]
    policy.write_text("")  # no policy at all is refused too, never an empty set
    _until(lambda: _metric(client, 'keyless_gate_policy_reloads_total{result="refused"}') >= 2)
    assert _review(client, "/validations", image)["allowed"] is False
    policy.write_text(cip("acme", static("pass"), glob="ghcr.io/acme/**"))
    _until(lambda: _review(client, "/validations", image)["allowed"] is True)
    assert _metric(client, "keyless_gate_policy_reload_failing") == 0

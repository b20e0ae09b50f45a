"""`keyless gate serve` over real TLS: AdmissionReview v1 in and out, mutations, warn versus
enforce, exact messages, and bad input (each a clean answer, never a 500, never an allow).

Static authorities decide here, so what is tested is the webhook itself; signatures are judged
end to end in test_end_to_end.py. Tags are resolved against Debian's docker-registry.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.gate.webhook import (
    admission_review,
    apply_patch,
    cip,
    cronjob,
    deployment,
    pod,
    run_gate,
    static,
)

FAKE = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def gate(registry, hanging_registry, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gate")
    host = registry.host
    keyless = """  - name: sigstore
    keyless:
      identities:
      - issuer: https://token.actions.githubusercontent.com
        subject: https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main
"""
    policies = (
        cip(
            "denied",
            static("fail", message="unsigned images are not allowed"),
            glob=f"{host}/denied/**",
        )
        + "---"
        + cip("ok", static("pass"), glob=f"{host}/ok/**")
        + "---"
        + cip("audit", static("fail", message="audit only"), glob=f"{host}/audit/**", mode="warn")
        + "---"
        + cip("signed", keyless, glob=f"{hanging_registry}/app**")
        + "---"
        + cip("audited", keyless, glob=f"{hanging_registry}/audited/**", mode="warn")
    )
    (tmp / "policy.yaml").write_text(policies)
    args = ["--policy", str(tmp / "policy.yaml"), "--allow-insecure-registry", "--timeout", "20s"]
    with run_gate(tmp, *args, self_signed=True) as running:
        yield running


@pytest.fixture(scope="module")
def ok_image(registry, pusher_module):
    return pusher_module.push_image("ok/app", "1.0", seed="ok app")


@pytest.fixture(scope="module")
def pusher_module(registry):
    from tests.registry import Pusher

    return Pusher(registry)


def _ok(registry, digest: str = FAKE) -> str:
    return f"{registry.host}/ok/app@{digest}"


def test_a_signed_off_digest_is_admitted_and_the_uid_echoed(gate, registry):
    sent = admission_review(pod(_ok(registry)))
    answer = gate.review("/validations", sent)
    assert answer == {"uid": sent["request"]["uid"], "allowed": True}


def test_enforce_refuses_with_403_naming_field_policy_and_authority(gate, registry):
    image = f"{registry.host}/denied/app@{FAKE}"
    answer = gate.review("/validations", admission_review(pod(_ok(registry), image)))
    assert answer["allowed"] is False
    assert answer["status"] == {
        "code": 403,
        "message": f"spec.containers[1].image: {image}: denied/static: disallowed by static "
        "policy: unsigned images are not allowed",
    }
    assert "warnings" not in answer
    assert f"denied CREATE Pod prod/web: {answer['status']['message']}\n" in gate.log.read_text()


def test_warn_mode_admits_with_a_warning(gate, registry):
    image = f"{registry.host}/audit/app@{FAKE}"
    answer = gate.review("/validations", admission_review(pod(image)))
    assert answer["allowed"] is True
    assert answer["warnings"] == [
        f"spec.containers[0].image: {image}: audit/static: disallowed by static policy: audit only"
    ]
    assert "status" not in answer


def test_no_matching_policy_is_denied(gate):
    image = f"docker.io/library/nginx@{FAKE}"
    answer = gate.review("/validations", admission_review(pod(image)))
    assert answer["allowed"] is False
    assert answer["status"]["message"] == (
        f"spec.containers[0].image: no matching policies for index.docker.io/library/nginx@{FAKE}"
    )


def test_every_refused_image_gets_its_line_with_its_field(gate, registry):
    denied = f"{registry.host}/denied/x@{FAKE}"
    answer = gate.review(
        "/validations", admission_review(deployment(_ok(registry), denied, denied))
    )
    lines = answer["status"]["message"].splitlines()
    tail = ": denied/static: disallowed by static policy: unsigned images are not allowed"
    assert lines == [
        f"spec.template.spec.containers[1].image: {denied}{tail}",
        f"spec.template.spec.containers[2].image: {denied}{tail}",
    ]
    answer = gate.review("/validations", admission_review(cronjob(denied)))
    assert answer["status"]["message"] == (
        f"spec.jobTemplate.spec.template.spec.containers[0].image: {denied}{tail}"
    )


def test_mutation_pins_tags_enforce_policies_match(gate, registry, ok_image):
    tagged = ok_image.reference  # HOST/ok/app:1.0
    audit = f"{registry.host}/audit/app:1.0"  # warn only: never pinned, never resolved
    unmatched = "docker.io/library/nginx:1.27"
    pinned_already = _ok(registry)
    obj = pod(tagged, audit, unmatched, pinned_already, init=(tagged,))
    answer = gate.review("/mutations", admission_review(obj))
    assert answer["allowed"] is True
    patched = apply_patch(obj, answer)
    expected = f"{registry.host}/ok/app:1.0@{ok_image.digest}"
    assert patched["spec"]["initContainers"][0]["image"] == expected
    assert [c["image"] for c in patched["spec"]["containers"]] == [
        expected,
        audit,
        unmatched,
        pinned_already,
    ]
    # The patched pod passes validation; the same pod with its tags does not.
    assert gate.review("/validations", admission_review(patched))["allowed"] is False  # audit/nginx
    only_ok = pod(tagged)
    refused = gate.review("/validations", admission_review(only_ok))
    assert refused["allowed"] is False
    assert refused["status"]["message"] == (
        f"spec.containers[0].image: {tagged} must be an image digest: an enforce policy matches "
        f"it, and only a digest pins what was judged (the mutating webhook pins it: {expected})"
    )
    admitted = gate.review(
        "/validations",
        admission_review(
            apply_patch(only_ok, gate.review("/mutations", admission_review(only_ok)))
        ),
    )
    assert admitted == {"uid": admitted["uid"], "allowed": True}


def test_mutation_of_deployment_and_cronjob_uses_their_pointers(gate, registry, ok_image):
    expected = f"{registry.host}/ok/app:1.0@{ok_image.digest}"
    obj = deployment(ok_image.reference)
    patched = apply_patch(obj, gate.review("/mutations", admission_review(obj)))
    assert patched["spec"]["template"]["spec"]["containers"][0]["image"] == expected
    obj = cronjob(ok_image.reference)
    patched = apply_patch(obj, gate.review("/mutations", admission_review(obj)))
    job_spec = patched["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert job_spec["containers"][0]["image"] == expected


def test_nothing_to_pin_is_an_allow_without_patch(gate, registry):
    sent = admission_review(pod(_ok(registry)))
    assert gate.review("/mutations", sent) == {"uid": sent["request"]["uid"], "allowed": True}


def test_ephemeral_container_update_is_judged(gate, registry):
    old = pod(_ok(registry))
    new = pod(_ok(registry))
    denied = f"{registry.host}/denied/debug@{FAKE}"
    new["spec"]["ephemeralContainers"] = [{"name": "debug", "image": denied}]
    sent = admission_review(new, operation="UPDATE", old=old, sub_resource="ephemeralcontainers")
    answer = gate.review("/validations", sent)
    assert answer["allowed"] is False
    assert answer["status"]["message"].startswith(f"spec.ephemeralContainers[0].image: {denied}: ")
    # The old object's images are not what is admitted: an UPDATE to allowed images passes.
    sent = admission_review(old, operation="UPDATE", old=new)
    assert gate.review("/validations", sent)["allowed"] is True


def test_an_object_being_deleted_may_drop_finalizers_but_not_change_images(gate, registry):
    denied = f"{registry.host}/denied/x@{FAKE}"
    old = pod(denied)
    old["metadata"]["deletionTimestamp"] = "2026-11-28T10:00:00Z"
    old["metadata"]["finalizers"] = ["acme.io/cleanup"]
    new = pod(denied)
    new["metadata"]["deletionTimestamp"] = "2026-11-28T10:00:00Z"
    sent = admission_review(new, operation="UPDATE", old=old)
    assert gate.review("/validations", sent) == {"uid": sent["request"]["uid"], "allowed": True}
    changed = pod(f"{registry.host}/denied/y@{FAKE}")
    changed["metadata"]["deletionTimestamp"] = "2026-11-28T10:00:00Z"
    answer = gate.review("/validations", admission_review(changed, operation="UPDATE", old=old))
    assert answer["allowed"] is False
    # Without deletionTimestamp an unchanged UPDATE is judged as ever.
    answer = gate.review(
        "/validations", admission_review(pod(denied), operation="UPDATE", old=pod(denied))
    )
    assert answer["allowed"] is False


def test_dry_run_is_judged_like_a_real_request(gate, registry):
    denied = pod(f"{registry.host}/denied/x@{FAKE}")
    real = gate.review("/validations", admission_review(denied))
    dry = gate.review("/validations", admission_review(denied, dry_run=True))
    assert (dry["allowed"], dry["status"]) == (real["allowed"], real["status"])


@pytest.mark.parametrize("operation", ["DELETE", "CONNECT"])
def test_delete_and_connect_are_allowed_untouched(gate, registry, operation):
    sent = admission_review(pod(f"{registry.host}/denied/x:1"), operation=operation)
    skipped = 'keyless_gate_admissions_total{result="skipped",webhook="validations"}'
    before = gate.metric(skipped)
    for path in ("/validations", "/mutations"):
        assert gate.review(path, sent) == {"uid": sent["request"]["uid"], "allowed": True}
    assert gate.metric(skipped) == before + 1


# Bad input.


def _error(answer) -> str:
    assert answer.headers["Content-Type"] == "application/json"
    return answer.json()["error"]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "the AdmissionReview is not valid JSON: "),
        (b"\xff\xfe", 400, "the AdmissionReview is not UTF-8"),
        (b"[]", 400, "the AdmissionReview must be a JSON object"),
        (
            b'{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}',
            400,
            "apiVersion must be admission.k8s.io/v1, not 'admission.k8s.io/v1beta1' (v1 only)",
        ),
        (
            b'{"apiVersion":"admission.k8s.io/v1","kind":"Pod","request":{}}',
            400,
            "kind must be AdmissionReview, not 'Pod'",
        ),
        (
            b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}',
            400,
            "request: must be an object",
        ),
        (
            b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7}}',
            400,
            "request.uid: must be a string of 1 to 128 characters",
        ),
        (
            b'{"apiVersion":"admission.k8s.io/v1","apiVersion":"admission.k8s.io/v1"}',
            400,
            "the AdmissionReview has a duplicate field 'apiVersion'",
        ),
        (b"[" * 100_000 + b"]" * 100_000, 400, "the AdmissionReview is nested "),
    ],
)
@pytest.mark.parametrize("path", ["/validations", "/mutations"])
def test_what_is_not_an_admission_review_v1_is_a_400(gate, path, body, status, error):
    answer = gate.post(path, body)
    assert answer.status_code == status
    assert _error(answer).startswith(error)


def test_huge_bodies_wrong_types_methods_and_paths(gate):
    huge = gate.post("/validations", b'{"a":"' + b"x" * (5 * 1024 * 1024) + b'"}')
    assert (huge.status_code, _error(huge)) == (413, "the body is larger than 4194304 bytes")
    # Chunked, without a Content-Length: read up to the limit, not beyond.
    chunks = (b"x" * (1024 * 1024) for _ in range(6))
    chunked = gate.session.post(
        gate.url + "/validations",
        data=chunks,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert (chunked.status_code, _error(chunked)) == (413, "the body is larger than 4194304 bytes")
    small = (part for part in (b'{"apiVersion":', b'"admission.k8s.io/v1beta1"}'))
    chunked = gate.session.post(
        gate.url + "/validations", data=small, headers={"Content-Type": "application/json"}
    )
    assert chunked.status_code == 400
    assert _error(chunked).startswith("apiVersion must be admission.k8s.io/v1, not ")
    form = gate.post("/validations", b"{}", headers={"Content-Type": "text/plain"})
    assert (form.status_code, _error(form)) == (415, "Content-Type must be application/json")
    get = gate.session.get(gate.url + "/validations", timeout=10)
    assert (get.status_code, _error(get)) == (405, "use POST with an AdmissionReview v1")
    missing = gate.post("/admit", b"{}")
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(kind="Pod"), "request.kind: must be an object"),
        (lambda r: r.update(operation=None), "request.operation: missing"),
        (lambda r: r.update(dryRun="yes"), "request.dryRun: must be a boolean"),
        (lambda r: r.update(object=None), "the object: must be a mapping, not null"),
        (
            lambda r: r["object"]["spec"].update(containers={"image": "x"}),
            "spec.containers: must be a list, not a mapping",
        ),
        (
            lambda r: r["object"]["spec"]["containers"][0].update(image=["x"]),
            "spec.containers[0].image: must be a string, not a list",
        ),
        (
            lambda r: r.update(kind={"group": "", "version": "v1", "kind": "Service"}),
            "keyless gate judges core/Pod, apps/Deployment, apps/ReplicaSet, apps/StatefulSet, "
            "apps/DaemonSet, batch/Job, batch/CronJob; not core/Service",
        ),
        (
            lambda r: r.update(kind={"group": "acme.io", "version": "v1", "kind": "Deployment"}),
            "keyless gate judges core/Pod, apps/Deployment, apps/ReplicaSet, apps/StatefulSet, "
            "apps/DaemonSet, batch/Job, batch/CronJob; not acme.io/Deployment",
        ),
    ],
)
@pytest.mark.parametrize("path", ["/validations", "/mutations"])
def test_requests_that_cannot_be_judged_are_refused_with_400(gate, registry, path, change, message):
    sent = admission_review(pod(_ok(registry)))
    change(sent["request"])
    answer = gate.review(path, sent)
    assert answer["allowed"] is False
    assert answer["status"] == {"code": 400, "message": message}


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("", "invalid reference"),
        ("ghcr.io/Acme/app:1", "invalid reference"),
        ("ghcr.io/acme/app@sha256:abc", "invalid"),
        ("ghcr.io/acme/app:a:b", "invalid reference"),
        ("../../etc/passwd", "invalid reference"),
        ("ghcr.io/" + "a" * 600 + ":1", "longer than"),
        ("ghcr.io/acme/app:1\nX-Header: y", "invalid reference"),
    ],
)
def test_odd_image_references_are_refused_and_left_unpatched(gate, image, problem):
    sent = admission_review(pod(image))
    answer = gate.review("/validations", sent)
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 403
    assert answer["status"]["message"].startswith(f"spec.containers[0].image: {image}: ")
    assert problem in answer["status"]["message"].lower()
    assert gate.review("/mutations", sent) == {"uid": sent["request"]["uid"], "allowed": True}


def test_a_hanging_registry_is_refused_within_the_time_limit(gate, hanging_registry):
    # A tag to resolve and a digest whose signatures must be read: both hang.
    for image in (f"{hanging_registry}/app:1.0", f"{hanging_registry}/app@{FAKE}"):
        started = time.monotonic()
        answer = gate.review("/validations", admission_review(pod(image)), timeout="3s")
        elapsed = time.monotonic() - started
        assert elapsed < 10
        assert answer["allowed"] is False
        assert answer["status"] == {
            "code": 403,
            "message": f"spec.containers[0].image: could not judge {image} within 2.5s: the "
            "registry or the verification did not finish in time",
        }
    # Two admissions of one digest at once: still a refusal each, in time.
    image = f"{hanging_registry}/app-other@{FAKE}"
    answers: list = []

    def admit() -> None:
        answers.append(gate.review("/validations", admission_review(pod(image)), timeout="2s"))

    threads = [threading.Thread(target=admit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [a["allowed"] for a in answers] == [False, False]
    # The mutation leaves the unresolvable tag alone (validation refuses it).
    sent = admission_review(pod(f"{hanging_registry}/app:2.0"))
    answer = gate.review("/mutations", sent, timeout="2s")
    assert answer == {"uid": sent["request"]["uid"], "allowed": True}


def test_a_hanging_registry_only_warns_when_only_warn_policies_match(gate, hanging_registry):
    image = f"{hanging_registry}/audited/app@{FAKE}"
    answer = gate.review("/validations", admission_review(pod(image)), timeout="2s")
    assert answer["allowed"] is True
    assert answer["warnings"] == [
        f"spec.containers[0].image: could not judge {image} within 1.5s: the registry or the "
        "verification did not finish in time"
    ]


def test_health_and_metrics(gate, registry):
    assert gate.session.get(gate.url + "/healthz", timeout=10).text == "ok\n"
    before = gate.metric('keyless_gate_admissions_total{result="denied",webhook="validations"}')
    gate.review("/validations", admission_review(pod(f"{registry.host}/denied/m@{FAKE}")))
    after = gate.metric('keyless_gate_admissions_total{result="denied",webhook="validations"}')
    assert after == before + 1
    hits = gate.metric("keyless_gate_cache_hits_total")
    for _ in range(2):  # the first may be the miss that fills the cache
        gate.review("/validations", admission_review(pod(_ok(registry), _ok(registry))))
    assert gate.metric("keyless_gate_cache_hits_total") >= hits + 1
    text = gate.session.get(gate.url + "/metrics", timeout=10).text
    assert "keyless_gate_verify_seconds_bucket" in text
    assert "keyless_gate_cache_misses_total" in text

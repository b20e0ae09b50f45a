"""AdmissionReview v1 fixtures (Pod, Deployment, CronJob, ephemeral containers, UPDATE with
oldObject, dryRun, DELETE) POSTed over TLS to a running `keyless gate serve`.

Static authorities (`static: {action: pass|fail}`) keep signing out of the way, so each answer
shows the gate's own work: the uid echoed, the JSONPatch that applies (with `jsonpatch`) and
pins the digest at the right pointer, the field paths in the messages, warn versus enforce.
Tags are resolved against a real registry (Debian's docker-registry on loopback).
"""

from __future__ import annotations

import jsonpatch
import pytest

from tests.gate.webhook import (
    admission_review,
    cronjob,
    decoded_patch,
    deployment,
    pod,
    run_gate,
)

POLICIES = """apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: release}
spec:
  images: [{glob: "127.0.0.1*/reviews/allowed*"}]
  authorities: [{name: pipeline, static: {action: pass}}]
---
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: blocked}
spec:
  images: [{glob: "127.0.0.1*/reviews/refused*"}]
  authorities: [{name: never, static: {action: fail, message: not from the release pipeline}}]
---
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata: {name: audit}
spec:
  images: [{glob: "127.0.0.1*/reviews/audited*"}]
  mode: warn
  authorities: [{name: trial, static: {action: fail, message: would be refused}}]
"""


@pytest.fixture(scope="module")
def images(registry):
    from tests.registry import Pusher

    pusher = Pusher(registry)
    return {
        name: pusher.push_image(f"reviews/{name}", "1.0", seed=f"reviews {name}")
        for name in ("allowed", "refused", "audited", "other")
    }


@pytest.fixture(scope="module")
def gate(registry, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gate-reviews")
    (workdir / "policy.yaml").write_text(POLICIES)
    arguments = ["--policy", str(workdir / "policy.yaml"), "--allow-insecure-registry"]
    with run_gate(workdir, *arguments) as running:
        yield running


def _pinned(registry, name: str, image) -> str:
    return f"{registry.host}/reviews/{name}@{image.digest}"


def _tag_pinned(registry, name: str, image) -> str:
    return f"{registry.host}/reviews/{name}:1.0@{image.digest}"


def test_pod_tag_is_pinned_and_the_patched_pod_admitted(gate, registry, images):
    obj = pod(images["allowed"].reference, init=(images["allowed"].reference,))
    review = admission_review(obj)
    mutation = gate.review("/mutations", review)
    assert mutation["allowed"] is True
    value = _tag_pinned(registry, "allowed", images["allowed"])
    assert sorted(decoded_patch(mutation), key=lambda op: op["path"]) == [
        {"op": "replace", "path": "/spec/containers/0/image", "value": value},
        {"op": "replace", "path": "/spec/initContainers/0/image", "value": value},
    ]
    patched = jsonpatch.apply_patch(obj, decoded_patch(mutation))
    assert patched["spec"]["containers"][0]["image"] == value
    assert patched["spec"]["initContainers"][0]["image"] == value
    assert obj["spec"]["containers"][0]["image"] == images["allowed"].reference
    validation = gate.review("/validations", admission_review(patched))
    assert validation == {"uid": validation["uid"], "allowed": True}


def test_a_tag_an_enforce_policy_matches_is_refused_by_validation(gate, registry, images):
    tagged = images["allowed"].reference
    answer = gate.review("/validations", admission_review(pod(tagged)))
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 403
    pinned = _tag_pinned(registry, "allowed", images["allowed"])
    assert answer["status"]["message"] == (
        f"spec.containers[0].image: {tagged} must be an image digest: an enforce policy "
        f"matches it, and only a digest pins what was judged (the mutating webhook pins it: "
        f"{pinned})"
    )


def test_deployment_pointers_and_messages(gate, registry, images):
    obj = deployment(images["allowed"].reference, images["refused"].reference)
    mutation = gate.review("/mutations", admission_review(obj))
    assert [op["path"] for op in decoded_patch(mutation)] == [
        "/spec/template/spec/containers/0/image",
        "/spec/template/spec/containers/1/image",
    ]
    patched = jsonpatch.apply_patch(obj, decoded_patch(mutation))
    answer = gate.review("/validations", admission_review(patched))
    refused = _pinned(registry, "refused", images["refused"])
    assert answer["allowed"] is False
    assert answer["status"] == {
        "code": 403,
        "message": (
            f"spec.template.spec.containers[1].image: {refused}: blocked/never: "
            "disallowed by static policy: not from the release pipeline"
        ),
    }


def test_cronjob_pointer_is_the_job_templates(gate, registry, images):
    obj = cronjob(images["allowed"].reference)
    mutation = gate.review("/mutations", admission_review(obj))
    (operation,) = decoded_patch(mutation)
    assert operation["path"] == "/spec/jobTemplate/spec/template/spec/containers/0/image"
    patched = jsonpatch.apply_patch(obj, [operation])
    assert gate.review("/validations", admission_review(patched))["allowed"] is True
    refused = cronjob(_pinned(registry, "refused", images["refused"]))
    answer = gate.review("/validations", admission_review(refused))
    assert answer["status"]["message"].startswith(
        "spec.jobTemplate.spec.template.spec.containers[0].image: "
    )


def test_ephemeral_container_is_judged(gate, registry, images):
    obj = pod(_pinned(registry, "allowed", images["allowed"]))
    debug = _pinned(registry, "refused", images["refused"])
    updated = {
        **obj,
        "spec": {
            **obj["spec"],
            "ephemeralContainers": [{"name": "debugger", "image": debug, "stdin": True}],
        },
    }
    review = admission_review(
        updated, operation="UPDATE", old=obj, sub_resource="ephemeralcontainers"
    )
    answer = gate.review("/validations", review)
    assert answer["allowed"] is False
    assert answer["status"]["message"] == (
        f"spec.ephemeralContainers[0].image: {debug}: blocked/never: "
        "disallowed by static policy: not from the release pipeline"
    )


def test_update_judges_the_new_object_not_the_old(gate, registry, images):
    good = pod(_pinned(registry, "allowed", images["allowed"]))
    bad = pod(_pinned(registry, "refused", images["refused"]))
    assert gate.review("/validations", admission_review(good, operation="UPDATE", old=bad))[
        "allowed"
    ]
    answer = gate.review("/validations", admission_review(bad, operation="UPDATE", old=good))
    assert answer["allowed"] is False


def test_dry_run_gets_the_same_answer(gate, registry, images):
    obj = pod(images["allowed"].reference, _pinned(registry, "refused", images["refused"]))
    real, dry = admission_review(obj), admission_review(obj, dry_run=True)
    for path in ("/mutations", "/validations"):
        first, second = gate.review(path, real), gate.review(path, dry)
        assert first.pop("uid") != second.pop("uid")
        assert first == second


def test_delete_is_allowed_untouched(gate, registry, images):
    obj = pod(_pinned(registry, "refused", images["refused"]))
    for path in ("/mutations", "/validations"):
        answer = gate.review(path, admission_review(obj, operation="DELETE", old=obj))
        assert set(answer) == {"uid", "allowed"}
        assert answer["allowed"] is True


def test_warn_mode_admits_with_a_warning(gate, registry, images):
    audited = _pinned(registry, "audited", images["audited"])
    mutation = gate.review("/mutations", admission_review(pod(images["audited"].reference)))
    assert decoded_patch(mutation) == []
    answer = gate.review("/validations", admission_review(pod(audited)))
    assert answer == {
        "uid": answer["uid"],
        "allowed": True,
        "warnings": [
            f"spec.containers[0].image: {audited}: audit/trial: disallowed by static policy: "
            "would be refused"
        ],
    }


def test_no_matching_policy_is_denied_by_default(gate, registry, images):
    other = _pinned(registry, "other", images["other"])
    answer = gate.review("/validations", admission_review(pod(other)))
    assert answer["allowed"] is False
    assert answer["status"]["message"] == (
        f"spec.containers[0].image: no matching policies for {other}"
    )


def test_eight_containers_of_one_digest_are_judged_once(gate, registry, images):
    def misses() -> float:
        return gate.metric("keyless_gate_cache_misses_total")

    pinned = _pinned(registry, "allowed", images["allowed"])
    before = misses()
    answer = gate.review("/validations", admission_review(pod(*[pinned] * 8)))
    assert answer == {"uid": answer["uid"], "allowed": True}
    # At most one verification: none when an earlier test already cached this digest.
    assert misses() - before <= 1


def test_an_image_volume_is_judged_and_pinned(gate, registry, images):
    """A Kubernetes ImageVolume mounts an OCI image: a refused image there is refused, and an
    allowed tag there is pinned, exactly as for containers."""
    allowed = _pinned(registry, "allowed", images["allowed"])
    obj = pod(allowed)
    obj["spec"]["volumes"] = [
        {"name": "model", "image": {"reference": images["allowed"].reference}}
    ]
    mutation = gate.review("/mutations", admission_review(obj))
    assert decoded_patch(mutation) == [
        {
            "op": "replace",
            "path": "/spec/volumes/0/image/reference",
            "value": _tag_pinned(registry, "allowed", images["allowed"]),
        }
    ]
    refused = _pinned(registry, "refused", images["refused"])
    obj["spec"]["volumes"] = [{"name": "model", "image": {"reference": refused}}]
    answer = gate.review("/validations", admission_review(obj))
    assert answer["allowed"] is False
    assert answer["status"]["message"] == (
        f"spec.volumes[0].image.reference: {refused}: blocked/never: "
        "disallowed by static policy: not from the release pipeline"
    )

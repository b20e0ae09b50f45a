"""The images of Kubernetes workloads: every kind, every container list, pointers and field
paths as policy-controller prints them, and malformed objects refused with their field."""

from __future__ import annotations

import pytest

from keyless.client.policy.workloads import WorkloadError, images_in_files, object_images

DIGEST = "sha256:" + "a" * 64


def _pod_spec() -> dict:
    return {
        "containers": [{"name": "app", "image": "ghcr.io/acme/app:1.0"}],
        "initContainers": [{"name": "init", "image": "busybox"}],
        "ephemeralContainers": [{"name": "debug", "image": f"ghcr.io/acme/debug@{DIGEST}"}],
    }


def _fields(obj):
    return [(f.image, f.pointer, f.field) for f in object_images(obj)]


def test_pod_has_init_regular_and_ephemeral_containers():
    pod = {"apiVersion": "v1", "kind": "Pod", "spec": _pod_spec()}
    assert _fields(pod) == [
        ("busybox", "/spec/initContainers/0/image", "spec.initContainers[0].image"),
        ("ghcr.io/acme/app:1.0", "/spec/containers/0/image", "spec.containers[0].image"),
        (
            f"ghcr.io/acme/debug@{DIGEST}",
            "/spec/ephemeralContainers/0/image",
            "spec.ephemeralContainers[0].image",
        ),
    ]


def test_image_volumes_are_images_too():
    """Kubernetes ImageVolume mounts an OCI image into the pod: it must be judged and pinned
    like a container's image, or it is a way around the policy."""
    spec = {
        "containers": [{"name": "app", "image": "ghcr.io/acme/app:1.0"}],
        "volumes": [
            {"name": "config", "configMap": {"name": "app"}},
            {
                "name": "model",
                "image": {"reference": "ghcr.io/acme/model:v2", "pullPolicy": "Always"},
            },
            {"name": "empty", "image": {}},
        ],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "spec": {"template": {"spec": spec}},
    }
    assert _fields(deployment) == [
        (
            "ghcr.io/acme/app:1.0",
            "/spec/template/spec/containers/0/image",
            "spec.template.spec.containers[0].image",
        ),
        (
            "ghcr.io/acme/model:v2",
            "/spec/template/spec/volumes/1/image/reference",
            "spec.template.spec.volumes[1].image.reference",
        ),
    ]
    bad = {
        "apiVersion": "v1",
        "kind": "Pod",
        "spec": {"volumes": [{"image": {"reference": 3}}, {"image": "x"}]},
    }
    with pytest.raises(WorkloadError) as caught:
        object_images(bad)
    assert caught.value.problems == [
        "spec.volumes[0].image.reference: must be a string, not a number",
        "spec.volumes[1].image: must be a mapping, not a string",
    ]


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("apps/v1", "Deployment"),
        ("apps/v1", "ReplicaSet"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("batch/v1", "Job"),
    ],
)
def test_template_workloads(api_version, kind):
    obj = {"apiVersion": api_version, "kind": kind, "spec": {"template": {"spec": _pod_spec()}}}
    assert _fields(obj)[1] == (
        "ghcr.io/acme/app:1.0",
        "/spec/template/spec/containers/0/image",
        "spec.template.spec.containers[0].image",
    )
    assert [f[1] for f in _fields(obj)] == [
        "/spec/template/spec/initContainers/0/image",
        "/spec/template/spec/containers/0/image",
        "/spec/template/spec/ephemeralContainers/0/image",
    ]


def test_cronjob():
    containers = [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}]
    obj = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": containers}}}}},
    }
    assert _fields(obj) == [
        (
            "a:1",
            "/spec/jobTemplate/spec/template/spec/containers/0/image",
            "spec.jobTemplate.spec.template.spec.containers[0].image",
        ),
        (
            "b:2",
            "/spec/jobTemplate/spec/template/spec/containers/1/image",
            "spec.jobTemplate.spec.template.spec.containers[1].image",
        ),
    ]


def test_kinds_without_a_pod_spec_and_kinds_of_another_group_have_no_images():
    spec = {"spec": {"template": {"spec": _pod_spec()}}}
    assert object_images({"apiVersion": "v1", "kind": "Service", **spec}) == []
    assert object_images({"apiVersion": "acme.io/v1", "kind": "Deployment", **spec}) == []


@pytest.mark.parametrize(
    ("obj", "problems"),
    [
        ([], ["the object must be a mapping, not a list"]),
        ({"kind": "Pod", "spec": {}}, ["apiVersion and kind: must be strings"]),
        ({"apiVersion": "v1", "kind": "Pod", "spec": []}, ["spec: must be a mapping, not a list"]),
        (
            {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": "x"}},
            ["spec.template: must be a mapping, not a string"],
        ),
        (
            {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": {"image": "x"}}},
            ["spec.containers: must be a list, not a mapping"],
        ),
        (
            {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": ["x:1"]}},
            ["spec.containers[0]: must be a mapping, not a string"],
        ),
        (
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "spec": {"containers": [{"image": 7}], "initContainers": [{"image": ["a"]}]},
            },
            [
                "spec.initContainers[0].image: must be a string, not a list",
                "spec.containers[0].image: must be a string, not a number",
            ],
        ),
        (
            {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"image": "a"}] * 1025}},
            ["spec.containers: more than 1024 containers"],
        ),
    ],
)
def test_malformed_objects_are_refused(obj, problems):
    with pytest.raises(WorkloadError) as caught:
        object_images(obj)
    assert caught.value.problems == problems


def test_manifest_files_give_the_images_of_workloads_and_skip_other_kinds(tmp_path):
    manifest = tmp_path / "app.yaml"
    manifest.write_text(
        """
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers: [{name: web, image: "ghcr.io/acme/web:1"}, {name: side, image: "envoy:1"}]
---
"""
    )
    assert images_in_files([manifest]) == ["ghcr.io/acme/web:1", "envoy:1"]


def test_a_duplicate_image_key_is_refused_with_its_line(tmp_path):
    """A reviewer reads the first `image:`, PyYAML kept the last: the policy would have
    judged another image than the one in the review."""
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
        "  - name: app\n    image: ghcr.io/acme/app:1\n    image: ghcr.io/evil/app:1\n"
    )
    with pytest.raises(WorkloadError) as caught:
        images_in_files([manifest])
    assert caught.value.problems == [f"{manifest}:8:5: duplicate key 'image' (first at line 7)"]


def test_manifest_problems_are_one_line_each(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Pod\nspec:\n  containers: nope\n")
    alias = tmp_path / "alias.yaml"
    alias.write_text("a: &x [1]\nb: *x\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [\n")
    with pytest.raises(WorkloadError) as caught:
        images_in_files([bad, alias, broken, tmp_path / "missing.yaml"])
    problems = caught.value.problems
    assert problems[:3] == [
        f"{bad}: document 1: spec.containers: must be a list, not a string",
        f"{alias}:1:4: YAML anchors (&x) are not allowed",
        f"{broken}:2:1: not valid YAML: expected the node content, but found '<stream end>'",
    ]
    assert (
        problems[3]
        == f"{tmp_path / 'missing.yaml'}: cannot read the file: No such file or directory"
    )


def test_a_manifest_without_images_is_refused(tmp_path):
    empty = tmp_path / "svc.yaml"
    empty.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n")
    with pytest.raises(WorkloadError) as caught:
        images_in_files([empty])
    assert caught.value.problems[0].startswith(f"{empty}: no image found in a Pod, Deployment")

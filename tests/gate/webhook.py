"""Test-only: run `keyless gate serve` as a process over real TLS, and write AdmissionReviews.

The reviews follow `k8s.io/api/admission/v1` `AdmissionReview` and the workload types of
`k8s.io/api` (core/v1 Pod, apps/v1 Deployment, batch/v1 CronJob), as the API server sends them
(POST, `Content-Type: application/json`, `?timeout=10s` on the URL). The gate is the real
command in a subprocess; its certificate comes from `tests.registry.make_tls_material` (a test
CA and a server certificate for 127.0.0.1), so clients verify TLS against that CA.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.registry import make_tls_material

START_TIMEOUT_SECONDS = 30.0
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunningGate:
    """A `keyless gate serve` process: its HTTPS URL, the CA that verifies it, its output."""

    url: str
    ca_bundle: str
    process: subprocess.Popen
    log: Path
    session: requests.Session

    def post(
        self,
        path: str,
        review: Any,
        *,
        timeout: str | None = "10s",
        raw: bytes | None = None,
        wait_seconds: float = 60,
    ) -> requests.Response:
        """POST an AdmissionReview (or raw bytes) as the API server does; the client gives up
        after `wait_seconds`, as the API server gives up after its timeout."""
        query = f"?timeout={timeout}" if timeout else ""
        body = raw if raw is not None else json.dumps(review).encode()
        return self.session.post(
            f"{self.url}{path}{query}",
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": "kube-apiserver-admission"},
            timeout=wait_seconds,
        )

    def review(self, path: str, review: dict[str, Any], **options: Any) -> dict[str, Any]:
        """POST a review, check the envelope and the echoed uid, return `response`."""
        answer = self.post(path, review, **options)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["apiVersion"] == "admission.k8s.io/v1"
        assert body["kind"] == "AdmissionReview"
        assert body["response"]["uid"] == review["request"]["uid"]
        return body["response"]

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def run_gate(workdir: Path, *arguments: str, tls: bool = True) -> Iterator[RunningGate]:
    """Start `keyless gate serve ARGUMENTS` on a free loopback port with a test certificate."""
    workdir.mkdir(parents=True, exist_ok=True)
    ca_bundle, certificate, key = make_tls_material(workdir)
    port = free_port()
    argv = [sys.executable, "-m", "cli.main", "gate", "serve", "--host", "127.0.0.1"]
    argv += ["--port", str(port), *arguments]
    if tls:
        argv += ["--tls-cert", certificate, "--tls-key", key]
    log = workdir / "gate.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            argv,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=REPOSITORY_ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    session = requests.Session()
    session.trust_env = False
    session.verify = ca_bundle
    gate = RunningGate(f"https://127.0.0.1:{port}", ca_bundle, process, log, session)
    try:
        wait_until_healthy(gate)
        yield gate
    finally:
        session.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_until_healthy(gate: RunningGate) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if gate.process.poll() is not None:
            raise RuntimeError(f"keyless gate serve exited:\n{gate.output()[-3000:]}")
        with suppress(requests.RequestException):
            if gate.session.get(f"{gate.url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"keyless gate serve did not become healthy:\n{gate.output()[-3000:]}")


# AdmissionReview v1 requests, from the Kubernetes API types.

GVK = {
    "Pod": ("", "v1", "pods"),
    "Deployment": ("apps", "v1", "deployments"),
    "ReplicaSet": ("apps", "v1", "replicasets"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "DaemonSet": ("apps", "v1", "daemonsets"),
    "Job": ("batch", "v1", "jobs"),
    "CronJob": ("batch", "v1", "cronjobs"),
}


def admission_review(
    obj: dict[str, Any],
    *,
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    dry_run: bool = False,
    sub_resource: str | None = None,
    kind: tuple[str, str, str, str] | None = None,
) -> dict[str, Any]:
    """An AdmissionReview v1 request for `obj`, as the API server writes it."""
    if kind is None:
        group, version, resource = GVK[obj["kind"]]
        kind = (group, version, obj["kind"], resource)
    group, version, kind_name, resource = kind
    options_kind = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions"}.get(
        operation, "DeleteOptions"
    )
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind_name},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind_name},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "name": obj.get("metadata", {}).get("name", ""),
        "namespace": "prod",
        "operation": operation,
        "userInfo": {
            "username": "system:serviceaccount:kube-system:replicaset-controller",
            "uid": "2c0b6b4a-9f3e-4d67-8f35-7d1c1f0c5a10",
            "groups": ["system:serviceaccounts", "system:authenticated"],
        },
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": options_kind},
    }
    if sub_resource:
        request["subResource"] = sub_resource
        request["requestSubResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def container(name: str, image: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }


def pod_spec(*images: str, init: tuple[str, ...] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [container(f"app-{i}", image) for i, image in enumerate(images)],
        "restartPolicy": "Always",
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "imagePullSecrets": [{"name": "regcred"}],
    }
    if init:
        spec["initContainers"] = [container(f"init-{i}", image) for i, image in enumerate(init)]
    return spec


def pod(*images: str, init: tuple[str, ...] = (), name: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "prod", "labels": {"app": "web"}},
        "spec": pod_spec(*images, init=init),
    }


def deployment(*images: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod", "generation": 1},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": pod_spec(*images),
            },
            "strategy": {"type": "RollingUpdate"},
        },
    }


def cronjob(*images: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "prod"},
        "spec": {
            "schedule": "0 3 * * *",
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 2,
                    "template": {"spec": {**pod_spec(*images), "restartPolicy": "OnFailure"}},
                }
            },
        },
    }


def decoded_patch(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSONPatch of a mutating answer (base64 of compact JSON), [] when there is none."""
    if "patch" not in response:
        assert "patchType" not in response
        return []
    assert response["patchType"] == "JSONPatch"
    return json.loads(base64.b64decode(response["patch"], validate=True))

"""A running `keyless gate serve` (a real process, real TLS), and AdmissionReview v1 fixtures
written from the Kubernetes API types (k8s.io/api admission/v1, core/v1, apps/v1, batch/v1)."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonpatch
import requests

from tests.conftest import REPO

START_TIMEOUT_SECONDS = 30.0


@dataclass
class RunningGate:
    url: str
    ca: Path
    log: Path
    ca_bundle: str
    session: requests.Session

    def post(self, path: str, review: Any, *, timeout: float = 30, **kw: Any) -> requests.Response:
        body = review if isinstance(review, bytes) else json.dumps(review).encode()
        headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
        return self.session.post(self.url + path, data=body, headers=headers, timeout=timeout, **kw)

    def review(self, path: str, review: dict[str, Any], **kw: Any) -> dict[str, Any]:
        """POST a review; the answer's `response`, after checking the envelope."""
        answer = self.post(path, review, **kw)
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Type"] == "application/json"
        body = answer.json()
        assert body["apiVersion"] == "admission.k8s.io/v1"
        assert body["kind"] == "AdmissionReview"
        assert body["response"]["uid"] == review["request"]["uid"]
        return body["response"]

    def metric(self, line_start: str) -> float:
        text = self.session.get(self.url + "/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith(line_start + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


@contextmanager
def running_gate(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[RunningGate]:
    """`keyless gate serve ARGS --tls-self-signed` on a free loopback port, until the end."""
    tls_dir = tmp / "tls"
    log = tmp / "gate.log"
    out = tmp / "gate.out"
    argv = [sys.executable, "-m", "cli.main", "gate", "serve", "--port", "0"]
    argv += ["--tls-self-signed", str(tls_dir), *args]
    with log.open("wb") as err, out.open("wb") as stdout:
        process = subprocess.Popen(
            argv,
            cwd=REPO,
            stdout=stdout,
            stderr=err,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    try:
        url = _wait_for_start(process, log)
        session = requests.Session()
        session.trust_env = False
        session.verify = str(tls_dir / "tls.crt")
        _wait_healthy(session, url, process, log)
        (line,) = out.read_text().splitlines()
        assert line.startswith("caBundle: ")
        bundle = line.removeprefix("caBundle: ")
        yield RunningGate(url, tls_dir / "tls.crt", log, bundle, session)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _wait_for_start(process: subprocess.Popen, log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        found = re.search(r"listening on (https://\S+) ", log.read_text())
        if found:
            return found.group(1)
        if process.poll() is not None:
            raise AssertionError(f"keyless gate exited {process.returncode}:\n{log.read_text()}")
        time.sleep(0.05)
    raise AssertionError(f"keyless gate did not start:\n{log.read_text()}")


def _wait_healthy(session: requests.Session, url: str, process, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            if session.get(url + "/healthz", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if process.poll() is not None:
            raise AssertionError(f"keyless gate exited {process.returncode}:\n{log.read_text()}")
        time.sleep(0.05)
    raise AssertionError(f"keyless gate is not healthy:\n{log.read_text()}")


# AdmissionReview v1 fixtures. Field names and shapes from k8s.io/api admission/v1 types.go
# (AdmissionRequest), core/v1 (Pod, PodSpec, Container, EphemeralContainer), apps/v1
# (Deployment), batch/v1 (CronJob), meta/v1 (CreateOptions, UpdateOptions).

GVK = {
    "Pod": ("", "v1", "pods"),
    "Deployment": ("apps", "v1", "deployments"),
    "ReplicaSet": ("apps", "v1", "replicasets"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "DaemonSet": ("apps", "v1", "daemonsets"),
    "Job": ("batch", "v1", "jobs"),
    "CronJob": ("batch", "v1", "cronjobs"),
}


def containers(*images: str) -> list[dict[str, Any]]:
    return [
        {"name": f"c{i}", "image": image, "imagePullPolicy": "IfNotPresent"}
        for i, image in enumerate(images)
    ]


def pod(*images: str, init: tuple[str, ...] = (), name: str = "web") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": containers(*images),
        "restartPolicy": "Always",
        "serviceAccountName": "default",
        "imagePullSecrets": [{"name": "regcred"}],
    }
    if init:
        spec["initContainers"] = [
            {**c, "name": f"init{i}"} for i, c in enumerate(containers(*init))
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "prod", "labels": {"app": "web"}},
        "spec": spec,
    }


def deployment(*images: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers(*images)},
            },
        },
    }


def cronjob(*images: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "prod"},
        "spec": {
            "schedule": "0 3 * * *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {"containers": containers(*images), "restartPolicy": "OnFailure"}
                    }
                }
            },
        },
    }


def review(
    obj: dict[str, Any],
    *,
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    dry_run: bool = False,
    sub_resource: str | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """An AdmissionReview v1 request as the API server POSTs it."""
    kind = kind or obj["kind"]
    group, version, resource = GVK.get(kind, ("acme.io", "v1", kind.lower() + "s"))
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "name": obj.get("metadata", {}).get("name", ""),
        "namespace": "prod",
        "operation": operation,
        "userInfo": {
            "username": "system:serviceaccount:kube-system:replicaset-controller",
            "groups": ["system:serviceaccounts", "system:authenticated"],
        },
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
        "options": {
            "apiVersion": "meta.k8s.io/v1",
            "kind": "CreateOptions" if operation == "CREATE" else "UpdateOptions",
        },
    }
    if sub_resource:
        request["subResource"] = sub_resource
        request["requestSubResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def apply_patch(obj: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """The object after the response's JSONPatch (checked to be one), as the API server would."""
    assert response["patchType"] == "JSONPatch"
    operations = json.loads(base64.b64decode(response["patch"], validate=True))
    return jsonpatch.JsonPatch(operations).apply(obj)


def cip(name: str, authorities: str, *, glob: str = "**", mode: str = "enforce") -> str:
    return f"""
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata:
  name: {name}
spec:
  images:
  - glob: "{glob}"
  mode: {mode}
  authorities:
{authorities}
"""


def static(action: str, name: str = "static", message: str = "") -> str:
    extra = f", message: {json.dumps(message)}" if message else ""
    return f"  - name: {name}\n    static: {{action: {action}{extra}}}\n"

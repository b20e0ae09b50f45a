"""Test-only: run `keyless gate serve` as a process over real TLS, and write AdmissionReviews and
ClusterImagePolicies for it.

The reviews follow `k8s.io/api/admission/v1` `AdmissionReview` (AdmissionRequest) and the
workload types of `k8s.io/api` (core/v1 Pod, PodSpec, Container; apps/v1 Deployment; batch/v1
CronJob; meta/v1 CreateOptions, UpdateOptions, DeleteOptions), as the API server sends them
(POST, `Content-Type: application/json`, `?timeout=10s` on the URL). The gate is the real
command in a subprocess on a port it picks itself (`--port 0`; the URL is read from its
"listening on" line). Its certificate comes from `tests.registry.make_tls_material` (a test CA
and a server certificate for 127.0.0.1), or, with `self_signed=True`, from the gate's own
`--tls-self-signed`, trusted through the `caBundle` it prints, as a cluster would.
"""

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonpatch
import requests

from tests.conftest import REPO
from tests.registry import make_tls_material

START_TIMEOUT_SECONDS = 30.0


@dataclass
class RunningGate:
    """A `keyless gate serve` process: its HTTPS URL, the CA file that verifies it, its log
    (stderr) and a session that trusts that CA."""

    url: str
    ca_bundle: str
    process: subprocess.Popen
    log: Path
    session: requests.Session

    def post(
        self,
        path: str,
        body: dict[str, Any] | bytes,
        *,
        timeout: str | None = "10s",
        wait_seconds: float = 60,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """POST an AdmissionReview (or raw bytes) as the API server does, `?timeout=` and all;
        the client gives up after `wait_seconds`, as the API server gives up after its timeout."""
        query = f"?timeout={timeout}" if timeout else ""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", "User-Agent": "kube-apiserver-admission"}
        return self.session.post(
            f"{self.url}{path}{query}",
            data=data,
            headers={**sent, **(headers or {})},
            timeout=wait_seconds,
        )

    def review(self, path: str, review: dict[str, Any], **options: Any) -> dict[str, Any]:
        """POST a review, check the envelope and the echoed uid, return `response`."""
        answer = self.post(path, review, **options)
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Type"] == "application/json"
        body = answer.json()
        assert body["apiVersion"] == "admission.k8s.io/v1"
        assert body["kind"] == "AdmissionReview"
        assert body["response"]["uid"] == review["request"]["uid"]
        return body["response"]

    def metric(self, sample: str, *, required: bool = False) -> float:
        """The value of the /metrics sample `sample` (name and labels, as exposed): 0 if absent
        (a labelled counter appears once counted), unless `required`."""
        text = self.session.get(self.url + "/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith(sample + " "):
                return float(line.rsplit(" ", 1)[1])
        assert not required, f"no {sample} in /metrics:\n{text}"
        return 0.0

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def run_gate(workdir: Path, *arguments: str, self_signed: bool = False) -> Iterator[RunningGate]:
    """`keyless gate serve ARGUMENTS` on a loopback port of its choosing, until the end."""
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "keyless.cli.main", "gate", "serve", "--host", "127.0.0.1"]
    argv += ["--port", "0", *arguments]
    if self_signed:
        argv += ["--tls-self-signed", str(workdir / "tls")]
    else:
        ca_bundle, certificate, key = make_tls_material(workdir)
        argv += ["--tls-cert", certificate, "--tls-key", key]
    log, out = workdir / "gate.log", workdir / "gate.out"
    with log.open("wb") as stderr, out.open("wb") as stdout:
        process = subprocess.Popen(
            argv,
            stdout=stdout,
            stderr=stderr,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
    session = requests.Session()
    session.trust_env = False
    try:
        url = _wait_for(process, log, "start", lambda: _listening_url(log))
        if self_signed:
            printed = _wait_for(process, log, "print its caBundle", lambda: _whole_lines(out))
            ca_bundle = _saved_ca_bundle(printed, workdir / "ca-bundle.pem")
        session.verify = ca_bundle
        gate = RunningGate(url, ca_bundle, process, log, session)
        _wait_for(process, log, "become healthy", lambda: _healthy(gate))
        yield gate
    finally:
        session.close()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _wait_for(process: subprocess.Popen, log: Path, what: str, ready: Callable[[], Any]) -> Any:
    """`ready()`'s first true value; fails with the gate's log if it exits or takes too long."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        value = ready()
        if value:
            return value
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"keyless gate serve exited {process.returncode}:\n{tail}")
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:]
    raise AssertionError(f"keyless gate serve did not {what}:\n{tail}")


def _listening_url(log: Path) -> str | None:
    found = re.search(r"listening on (https://\S+) ", log.read_text(errors="replace"))
    return found.group(1) if found else None


def _whole_lines(out: Path) -> list[str]:
    text = out.read_text()
    return text.splitlines() if text.endswith("\n") else []


def _saved_ca_bundle(lines: list[str], pem_file: Path) -> str:
    """The one stdout line of `--tls-self-signed`, `caBundle: BASE64-PEM`, saved as a CA file."""
    (line,) = lines
    label, _, bundle = line.partition(": ")
    assert label == "caBundle"
    pem = base64.b64decode(bundle, validate=True)
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
    pem_file.write_bytes(pem)
    return str(pem_file)


def _healthy(gate: RunningGate) -> bool:
    with suppress(requests.ConnectionError):
        return gate.session.get(f"{gate.url}/healthz", timeout=5).status_code == 200
    return False


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
    """An AdmissionReview v1 request for `obj`, as the API server writes it; `kind` is
    (group, version, kind, resource) for a kind GVK does not know."""
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


def apply_patch(obj: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """`obj` after the answer's JSONPatch, as the API server would apply it; the answer must
    carry a patch."""
    assert "patch" in response, response
    return jsonpatch.apply_patch(obj, decoded_patch(response))


# ClusterImagePolicy (policy.sigstore.dev/v1beta1) documents.


def cip(name: str, authorities: str, *, glob: str = "**", mode: str = "enforce") -> str:
    """A ClusterImagePolicy for images matching `glob`; `authorities` is its YAML list."""
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
    """A `static` authority (action pass or fail) as an item of a CIP's authorities list."""
    extra = f", message: {json.dumps(message)}" if message else ""
    return f"  - name: {name}\n    static: {{action: {action}{extra}}}\n"

"""The container image and the Kubernetes manifests, checked without a Docker engine or a cluster:
the Dockerfile parsed (every path it copies exists and covers the packages pip installs, no
active config, a volume for the state), its entrypoint run directly with the same arguments,
and the manifests validated against the Kubernetes schema."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import requests
import yaml
from dockerfile_parse import DockerfileParser

REPO = Path(__file__).resolve().parents[1]
KUBERNETES_VERSION = "1.30.0"


@pytest.fixture(scope="module")
def dockerfile() -> list[dict]:
    parser = DockerfileParser(path=str(REPO / "Dockerfile"))
    return parser.structure


def _instructions(structure: list[dict], name: str) -> list[str]:
    return [item["value"] for item in structure if item["instruction"] == name]


def _final_stage(structure: list[dict]) -> list[dict]:
    starts = [i for i, item in enumerate(structure) if item["instruction"] == "FROM"]
    return structure[starts[-1] :]


def test_every_copied_path_exists_and_covers_the_packages(dockerfile) -> None:
    copied: set[str] = set()
    for value in _instructions(dockerfile, "COPY"):
        words = shlex.split(value)
        if any(word.startswith("--from") for word in words):
            continue
        for source in words[:-1]:
            assert (REPO / source).exists(), f"the Dockerfile copies {source}, which is missing"
            copied.add(source)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = set(project["tool"]["setuptools"]["package-dir"].values())
    assert packages - copied == set(), "packages pip installs but the image does not copy"
    assert {"pyproject.toml", "README.md"} <= copied


def test_no_active_config_and_state_is_a_volume(dockerfile) -> None:
    final = _final_stage(dockerfile)
    for value in _instructions(final, "COPY"):
        assert not shlex.split(value)[-1].startswith("/etc/keyless"), value
    assert any("/var/lib/keyless" in value for value in _instructions(final, "VOLUME"))
    (user,) = _instructions(final, "USER")
    assert user not in ("root", "0")
    # The image runs every production backend: a PostgreSQL log, CA and TSA keys in a token.
    assert any(".[postgres,pkcs11]" in value for value in _instructions(dockerfile, "RUN"))


def _entrypoint(dockerfile) -> list[str]:
    import json

    final = _final_stage(dockerfile)
    (entrypoint,) = _instructions(final, "ENTRYPOINT")
    (cmd,) = _instructions(final, "CMD")
    return json.loads(entrypoint) + json.loads(cmd)


def test_entrypoint_without_a_mounted_config_refuses(dockerfile, tmp_path: Path) -> None:
    argv = _entrypoint(dockerfile)
    assert argv == ["keyless", "serve", "--config", "/etc/keyless/server.yaml"]
    missing = tmp_path / "etc" / "keyless" / "server.yaml"
    argv[-1] = str(missing)
    result = _keyless(argv[1:], timeout=60)
    assert result.returncode != 0
    assert f"error: {missing} is invalid:" in result.stderr
    assert "cannot read the file: No such file or directory" in result.stderr
    assert "Traceback" not in result.stderr


def _manifests() -> list[dict]:
    return list(yaml.safe_load_all((REPO / "config/kubernetes/server.yaml").read_text()))


def test_entrypoint_serves_the_kubernetes_config(dockerfile, tmp_path: Path) -> None:
    """The ConfigMap's server.yaml and issuers.yaml, mounted as the manifests mount them."""
    (config_map,) = [doc for doc in _manifests() if doc["kind"] == "ConfigMap"]
    etc = tmp_path / "etc" / "keyless"
    etc.mkdir(parents=True)
    port = _free_port()
    server = yaml.safe_load(config_map["data"]["server.yaml"])
    server["listen"] = {"host": "127.0.0.1", "port": port}
    server["public-url"] = f"http://127.0.0.1:{port}"
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    server["state-dir"] = str(state)
    (etc / "server.yaml").write_text(yaml.safe_dump(server))
    (etc / "issuers.yaml").write_text(config_map["data"]["issuers.yaml"])
    argv = _entrypoint(dockerfile)
    argv[-1] = str(etc / "server.yaml")
    process = subprocess.Popen(
        [sys.executable, "-m", "keyless.cli.main", *argv[1:]],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _wait_healthy(f"http://127.0.0.1:{port}/healthz", process), process.stderr.read()
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=30)
    # An access line per request, with its time, on stdout.
    assert re.search(r'127\.0\.0\.1 \[[^]]+\] "GET /healthz HTTP/1\.1" 200 \d+ \d+ms', out), out


def test_kubernetes_manifests_validate() -> None:
    import kubernetes_validate

    documents = _manifests()
    assert [doc["kind"] for doc in documents] == [
        "Namespace",
        "ConfigMap",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
    ]
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    (deployment,) = [doc for doc in documents if doc["kind"] == "Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["/var/lib/keyless"] == "state" and mounts["/etc/keyless"] == "config"
    # Issue 24 item 9: the state directory is one keyless makes inside the volume (the kubelet
    # makes the volume's root group-writable for the fsGroup), and the kubelet leaves the
    # volume's files alone after the first mount, so that key files stay owner-only.
    (config_map,) = [doc for doc in documents if doc["kind"] == "ConfigMap"]
    state_dir = Path(yaml.safe_load(config_map["data"]["server.yaml"])["state-dir"])
    assert state_dir.parent == Path("/var/lib/keyless")
    assert spec["securityContext"]["fsGroup"] == 10001
    assert spec["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
    # Keys brought in a Secret are mounted owner-only, read through the fsGroup.
    (keys,) = [v["secret"] for v in spec["volumes"] if v["name"] == "keys"]
    assert keys == {"secretName": "keyless-keys", "defaultMode": 0o400, "optional": True}
    assert mounts["/etc/keyless-keys"] == "keys"
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    (pin,) = spec["containers"][0]["env"]
    assert pin["valueFrom"]["secretKeyRef"] == {
        "name": "keyless-pkcs11",
        "key": "pin",
        "optional": True,
    }
    # The validator is not a rubber stamp: a misspelt field fails.
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def _keyless(args: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keyless.cli.main", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen[str]) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False

"""`keyless gate serve` refuses what it cannot serve with one line, before listening."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyless.cli.main import main
from tests.conftest import REPO
from tests.gate.webhook import cip, static


@pytest.fixture
def policy(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(cip("ok", static("pass")))
    return str(path)


def _serve(*argv: str) -> int:
    return main(["gate", "serve", "--port", "0", *argv])


def test_tls_files_that_cannot_be_used(policy, tmp_path, capsys):
    from keyless.server.gate.tls import self_signed

    cert, key = self_signed(tmp_path / "tls", ["localhost"])
    assert _serve("--policy", policy, "--tls-cert", str(cert), "--tls-key", policy) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: --tls-cert {cert} and --tls-key {policy} cannot be used together: they must be "
        "a PEM certificate chain and the PEM private key of its first certificate ("
    )
    missing = tmp_path / "missing.pem"
    assert _serve("--policy", policy, "--tls-cert", str(missing), "--tls-key", str(key)) == 1
    assert capsys.readouterr().err == (
        f"error: --tls-cert {missing}: cannot read the file: No such file or directory\n"
    )
    _, other_key = self_signed(tmp_path / "other", ["localhost"])
    assert _serve("--policy", policy, "--tls-cert", str(cert), "--tls-key", str(other_key)) == 1
    assert "cannot be used together" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give --tls-cert and --tls-key, or --tls-self-signed DIR"),
        (
            ["--tls-cert", "c", "--tls-self-signed", "d"],
            "give --tls-cert/--tls-key or --tls-self-signed, not both",
        ),
        (["--tls-self-signed", "d", "--timeout", "45s"], "--timeout within (0, 30s]"),
        (
            ["--tls-self-signed", "d", "--registry-auth", "/nonexistent/config.json"],
            "--registry-auth /nonexistent/config.json: no such file",
        ),
    ],
)
def test_usage_errors(policy, argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        _serve("--policy", policy, *argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_bad_policy_is_exit_2_with_its_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(cip("bad", static("pass")).replace("glob:", "globe:"))
    assert _serve("--policy", str(bad), "--tls-self-signed", str(tmp_path / "tls")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: document 1 (bad): ")
    assert not (tmp_path / "tls").exists()


def test_the_self_signed_certificate_is_kept_across_restarts(tmp_path):
    from cryptography import x509

    from keyless.server.gate.tls import self_signed, service_names

    names = ["localhost", "127.0.0.1", *service_names("keyless-system")]
    cert, key = self_signed(tmp_path, names)
    first = cert.read_bytes()
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert self_signed(tmp_path, names)[0].read_bytes() == first
    parsed = x509.load_pem_x509_certificate(first)
    alt = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "keyless-gate.keyless-system.svc" in alt.get_values_for_type(x509.DNSName)
    # A name the certificate does not cover makes a new one.
    assert self_signed(tmp_path, [*names, "gate.example"])[0].read_bytes() != first


def test_manifests_with_every_option_validate_and_mount_what_the_gate_reads(
    policy, tmp_path, capsys
):
    import kubernetes_validate
    import yaml

    trust = tmp_path / "acme.json"
    # A trusted root the gate can load: manifests check what the gate will read.
    trust.write_bytes((REPO / "client/data/staging_trusted_root.json").read_bytes())
    argv = ["gate", "manifests", "--tls-self-signed", str(tmp_path / "tls"), "--policy", policy]
    argv += ["--trust-root", f"acme={trust}", "--registry-auth-secret", "regcred"]
    argv += ["--registry-auth-secret", "mirror-cred", "--namespace", "gates"]
    assert main(argv) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30.0", strict=True)
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    secret = by_kind[("Secret", "keyless-gate-tls")]
    deployment = by_kind[("Deployment", "keyless-gate")]
    pod_spec = deployment["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    # Every file the gate is told to read sits under a mounted volume of the right source.
    sources = {}
    for arg in container["args"]:
        flag, _, value = arg.partition("=")
        if flag in ("--policy", "--tls-cert", "--tls-key", "--trust-root", "--registry-auth"):
            path = value.rpartition("=")[2]
            (mount,) = [m for m in mounts if path == m or path.startswith(m + "/")]
            volume = volumes[mounts[mount]]
            sources[flag, path] = volume.get("configMap", volume.get("secret"))
    assert sources[("--tls-cert", "/etc/keyless-gate/tls/tls.crt")] == {
        "secretName": "keyless-gate-tls",
        "defaultMode": 0o400,
    }
    assert {s.get("secretName") for (f, _), s in sources.items() if f == "--registry-auth"} == {
        "regcred",
        "mirror-cred",
    }
    assert sources[("--trust-root", "/etc/keyless-gate/trust/acme.json")] == {
        "name": "keyless-gate-trust"
    }
    assert "acme.json" in by_kind[("ConfigMap", "keyless-gate-trust")]["data"]
    assert Path(policy).name in by_kind[("ConfigMap", "keyless-gate-policies")]["data"]
    # Both webhooks trust the certificate the Secret ships, and reach the Service.
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        (webhook,) = by_kind[(kind, "keyless-gate.keyless.dev")]["webhooks"]
        assert webhook["clientConfig"]["caBundle"] == secret["data"]["tls.crt"]
        assert webhook["clientConfig"]["service"]["namespace"] == "gates"
        assert webhook["failurePolicy"] == "Fail"
        assert webhook["namespaceSelector"]["matchExpressions"] == [
            {"key": "keyless.dev/include", "operator": "In", "values": ["true"]}
        ]

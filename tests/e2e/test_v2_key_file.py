"""The Rekor v2 log's checkpoint key from an operator's file (`log: v2-key:`): Ed25519 or
ECDSA P-256, checked at load; the server signs checkpoints with it, the trusted root lists it
under its C2SP key ID, and keyless and sigstore-python verify what it logged."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keyless.cli.main import main
from keyless.server.config import ServerConfigError, load_server_config
from keyless.tlog import checkpoint_key_id, checkpoint_origin
from tests.conftest import dev_server
from tests.e2e.sigstore_python import save_trust_config, verify_identity


def _write_key(path: Path, key, mode: int = 0o600) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(mode)


def _config(tmp_path: Path, key, mode: int = 0o600) -> Path:
    _write_key(tmp_path / "rekor-v2-key.pem", key, mode)
    config = tmp_path / "server.yaml"
    config.write_text("dev-issuer: {enabled: true}\nlog: {v2-key: rekor-v2-key.pem}\n")
    return config


@pytest.mark.parametrize(
    "key",
    [ed25519.Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())],
    ids=["ed25519", "p256"],
)
def test_the_v2_log_signs_with_the_operators_key(tmp_path: Path, key) -> None:
    config = load_server_config(_config(tmp_path, key))
    assert config.log_v2_key == tmp_path / "rekor-v2-key.pem"
    artifact = tmp_path / "artifact.txt"
    artifact.write_text("logged under the operator's v2 key\n")
    with dev_server(tmp_path / "state", log_v2_key=config.log_v2_key) as server:
        root = requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=5).json()
        listed = root["tlogs"][1]
        assert base64.b64decode(listed["publicKey"]["rawBytes"]) == key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        key_id = checkpoint_key_id(key.public_key(), name=checkpoint_origin(server.url))
        assert base64.b64decode(listed["logId"]["keyId"]) == key_id
        assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200
        token = server.email_token("alice@example.com")
        assert main(["sign", "--server", server.url, "--identity-token", token, str(artifact)]) == 0
        bundle = json.loads(Path(f"{artifact}.sigstore.json").read_text())
        [entry] = bundle["verificationMaterial"]["tlogEntries"]
        assert entry["kindVersion"]["version"] == "0.0.2"
        assert base64.b64decode(entry["logId"]["keyId"]) == key_id
        issuer = f"{server.url}/oidc"
        verify = ["verify", "--server", server.url, "--bundle", f"{artifact}.sigstore.json"]
        identity = ["--certificate-identity", "alice@example.com"]
        assert main([*verify, *identity, "--certificate-oidc-issuer", issuer, str(artifact)]) == 0
        trust = save_trust_config(server.url, tmp_path / "trust_config.json")
        bundle = f"{artifact}.sigstore.json"
        result = verify_identity(trust, bundle, artifact, "alice@example.com", issuer)
        assert result.returncode == 0, result.stderr
    assert not (tmp_path / "state" / "rekor-v2-key.pem").exists()


@pytest.mark.parametrize("name", ["p384", "rsa", "readable-by-others", "missing"])
def test_a_bad_v2_key_is_refused_at_load(tmp_path: Path, name: str) -> None:
    path = tmp_path / "rekor-v2-key.pem"
    if name == "p384":
        config = _config(tmp_path, ec.generate_private_key(ec.SECP384R1()))
        expected = (
            f"log: v2-key: {path} is not an Ed25519 or ECDSA P-256 key (the key types Rekor v2 "
            "checkpoints are signed with)"
        )
    elif name == "rsa":
        config = _config(tmp_path, rsa.generate_private_key(public_exponent=65537, key_size=2048))
        expected = (
            f"log: v2-key: {path} is not an Ed25519 or ECDSA P-256 key (the key types Rekor v2 "
            "checkpoints are signed with)"
        )
    elif name == "readable-by-others":
        config = _config(tmp_path, ed25519.Ed25519PrivateKey.generate(), mode=0o640)
        expected = f"log: v2-key: key file {path} is readable or writable by others (mode 640)"
    else:
        config = _config(tmp_path, ed25519.Ed25519PrivateKey.generate())
        path.unlink()
        expected = f"log: v2-key: key file {path} cannot be read: No such file or directory"
    with pytest.raises(ServerConfigError) as info:
        load_server_config(config)
    assert info.value.problems == [expected]


def test_a_p256_v2_log_is_monitored_and_audited(tmp_path: Path, capsys) -> None:
    """An ECDSA checkpoint key's log ID is the SHA-256 of the key, as a v1 log's is: the
    server's signing config (majorApiVersion 2) is what tells `keyless monitor` and `keyless
    audit` that this log is a tile log, so it is not left unwatched."""
    config = load_server_config(_config(tmp_path, ec.generate_private_key(ec.SECP256R1())))
    artifact = tmp_path / "artifact.txt"
    artifact.write_text("logged in a v2 log with a P-256 checkpoint key\n")
    with dev_server(tmp_path / "state", log_v2_key=config.log_v2_key) as server:
        token = server.email_token("alice@example.com")
        assert main(["sign", "--server", server.url, "--identity-token", token, str(artifact)]) == 0
        capsys.readouterr()
        state = tmp_path / "monitor.json"
        watch = ["--identity", "alice@example.com", "--from-index", "0", "-o", "json"]
        assert main(["monitor", "--server", server.url, "--state", str(state), *watch]) == 0
        v1, v2, ct = (json.loads(line) for line in capsys.readouterr().out.splitlines())
        assert (ct["log"], ct["treeSize"]) == ("ct", 1)
        assert (v1["rekorVersion"], v1["treeSize"]) == (1, 0)
        assert (v2["rekorVersion"], v2["treeSize"]) == (2, 1)
        assert [(f["logIndex"], f["identity"]) for f in v2["findings"]] == [
            (0, "alice@example.com")
        ]
        audit = ["audit", "--server", server.url, "--identity", "alice@example.com", "-o", "json"]
        assert main(audit) == 0
        report = json.loads(capsys.readouterr().out)
        [cert] = report["certificates"]
        assert [(e["log"], e["logIndex"]) for e in cert["signatureLogEntries"]] == [("rekor-v2", 0)]

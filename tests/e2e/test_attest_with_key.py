"""`keyless attest --key` and `keyless verify-attestation --key` (issue 20): in-toto
attestations signed with a cosign key file, on a file and on an image, logged by default, and
verified by key instead of identity."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests

from keyless.cli.main import main
from tests.registry import Pusher

PREDICATE = {
    "buildDefinition": {"buildType": "https://example.com/build@v1", "externalParameters": {}},
    "runDetails": {"builder": {"id": "https://example.com/vendor-ci"}},
}


@pytest.fixture
def keys(tmp_path: Path, monkeypatch, capsys) -> Path:
    monkeypatch.setenv("COSIGN_PASSWORD", "pw")
    for name in ("vendor", "other"):
        assert main(["generate-key-pair", "--output-key-prefix", str(tmp_path / name)]) == 0
    (tmp_path / "predicate.json").write_text(json.dumps(PREDICATE))
    capsys.readouterr()
    return tmp_path


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def test_attest_a_file_with_a_key(server, keys: Path, capsys) -> None:
    artifact = keys / "tool.tar.gz"
    artifact.write_bytes(b"tool\n")
    argv = ["attest", "--server", server.url, "--key", str(keys / "vendor.key")]
    argv += ["--predicate", str(keys / "predicate.json"), "--type", "slsaprovenance1"]
    code, _, err = _run([*argv, str(artifact)], capsys)
    assert code == 0, err
    assert re.fullmatch(
        rf"attested {re.escape(str(artifact))} \(https://slsa\.dev/provenance/v1\) with key "
        rf"{re.escape(str(keys))}/vendor\.key, log index \d+; bundle written to "
        rf"{re.escape(str(artifact))}\.intoto\.jsonl\n",
        err,
    )
    (line,) = (keys / "tool.tar.gz.intoto.jsonl").read_text().splitlines()
    assert "publicKey" in json.loads(line)["verificationMaterial"]
    verify = ["verify-attestation", "--server", server.url, "--type", "slsaprovenance1"]
    code, out, _ = _run(
        [*verify, "--key", str(keys / "vendor.pub"), "-o", "json", str(artifact)], capsys
    )
    assert code == 0
    (attestation,) = json.loads(out)["attestations"]
    assert attestation["key"] == str(keys / "vendor.pub")
    assert attestation["statement"]["predicate"] == PREDICATE
    code, _, err = _run([*verify, "--key", str(keys / "vendor.pub"), str(artifact)], capsys)
    assert code == 0
    assert f"attested (https://slsa.dev/provenance/v1) with key {keys}/vendor.pub, log index" in err
    code, _, err = _run([*verify, "--key", str(keys / "other.pub"), str(artifact)], capsys)
    assert code == 1
    assert err.startswith("error: verification failed (signature): ")


def test_attest_an_image_with_a_key(server, registry, keys: Path, capsys) -> None:
    image = Pusher(registry).push_image("attestkey/app", "1.0", seed="attest with a key")
    argv = ["attest", "--server", server.url, "--key", str(keys / "vendor.key")]
    argv += ["--predicate", str(keys / "predicate.json"), "--allow-insecure-registry"]
    code, _, err = _run([*argv, image.reference], capsys)
    assert code == 0, err
    verify = ["verify-attestation", "--server", server.url, "--allow-insecure-registry"]
    code, out, err = _run(
        [*verify, "--key", str(keys / "vendor.pub"), "-o", "json", image.reference], capsys
    )
    assert code == 0, err
    (attestation,) = json.loads(out)["attestations"]
    assert (attestation["key"], attestation["source"]) == (str(keys / "vendor.pub"), "fallback-tag")
    code, _, _ = _run([*verify, "--key", str(keys / "other.pub"), image.reference], capsys)
    assert code == 1
    # An attestation is not a signature: `verify --key` does not count it.
    code, _, err = _run(
        [
            "verify",
            "--server",
            server.url,
            "--allow-insecure-registry",
            "--key",
            str(keys / "vendor.pub"),
            image.reference,
        ],
        capsys,
    )
    assert code == 1
    assert (
        "it is an attestation (https://cosign.sigstore.dev/attestation/v1), not a signature" in err
    )


def test_attest_with_a_key_and_no_tlog_upload_logs_nothing(server, keys: Path, capsys) -> None:
    artifact = keys / "offline.bin"
    artifact.write_bytes(b"offline\n")
    size = requests.get(f"{server.url}/api/v1/log", timeout=30).json()["treeSize"]
    argv = ["attest", "--key", str(keys / "vendor.key"), "--no-tlog-upload"]
    code, _, err = _run([*argv, "--predicate", str(keys / "predicate.json"), str(artifact)], capsys)
    assert code == 0, err
    assert "not logged (--no-tlog-upload)" in err
    assert requests.get(f"{server.url}/api/v1/log", timeout=30).json()["treeSize"] == size
    (line,) = (keys / "offline.bin.intoto.jsonl").read_text().splitlines()
    assert json.loads(line)["verificationMaterial"]["tlogEntries"] == []


def test_verify_attestation_key_excludes_identity_flags(keys: Path, capsys) -> None:
    code, _, err = _run(
        [
            "verify-attestation",
            "--key",
            str(keys / "vendor.pub"),
            "--certificate-identity",
            "a@b.c",
            "--certificate-oidc-issuer",
            "https://i",
            str(keys / "predicate.json"),
        ],
        capsys,
    )
    assert code == 2
    assert err.strip().endswith("error: --key verifies a managed key; identity flags do not apply")

"""`keyless sign` follows the signing config into the Rekor v2 log: the signature is timestamped
at the TSA first, logged as hashedrekord 0.0.2, and the bundle carries both; keyless and
sigstore-python verify it. `--rekor-version 1` keeps the v1 log. A TSA that refuses or cannot be
reached stops the signing with one line, before anything is logged."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
import requests
from flask import Flask, Response
from rfc3161_client import decode_timestamp_response

from keyless.cli.main import main
from keyless.tsa.authority import reject
from tests.conftest import serve_wsgi
from tests.e2e.sigstore_python import save_trust_config, verify_identity


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "release.tar.gz"
    path.write_bytes(b"signed into the v2 log by keyless\n" * 50)
    return path


def _sign(server, artifact: Path, email: str, *extra: str) -> int:
    return main(
        [
            "sign",
            "--server",
            server.url,
            "--identity-token",
            server.email_token(email),
            *extra,
            str(artifact),
        ]
    )


def _bundle(artifact: Path) -> dict:
    return json.loads(artifact.with_name(artifact.name + ".sigstore.json").read_text())


def _keyless_verifies(server, artifact: Path, email: str) -> int:
    return main(
        [
            "verify",
            "--server",
            server.url,
            "--bundle",
            str(artifact.with_name(artifact.name + ".sigstore.json")),
            "--certificate-identity",
            email,
            "--certificate-oidc-issuer",
            f"{server.url}/oidc",
            str(artifact),
        ]
    )


def _key_id(server, key_details: str) -> str:
    root = requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=5).json()
    [log] = [t for t in root["tlogs"] if t["publicKey"]["keyDetails"] == key_details]
    return log["logId"]["keyId"]


def _log_sizes(server) -> tuple[int, int]:
    """(v1 tree size, v2 tree size), to show that nothing was logged."""
    v1 = requests.get(f"{server.url}/api/v1/log", timeout=5).json()["treeSize"]
    v2 = requests.get(f"{server.url}/api/v2/checkpoint", timeout=5).text.splitlines()[1]
    return int(v1), int(v2)


def test_default_signs_into_v2_with_a_timestamp_and_keyless_verifies(
    server, artifact, capsys
) -> None:
    before = _log_sizes(server)
    assert _sign(server, artifact, "v2@example.com") == 0
    assert "log index" in capsys.readouterr().err
    bundle = _bundle(artifact)
    material = bundle["verificationMaterial"]
    [entry] = material["tlogEntries"]
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.2"}
    assert "inclusionPromise" not in entry
    assert entry.get("integratedTime", "0") == "0"
    assert entry["logId"]["keyId"] == _key_id(server, "PKIX_ED25519")
    assert entry["inclusionProof"]["checkpoint"]["envelope"]
    body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    signature = base64.b64decode(bundle["messageSignature"]["signature"])
    logged = body["spec"]["hashedRekordV002"]
    assert (
        base64.b64decode(logged["data"]["digest"]) == hashlib.sha256(artifact.read_bytes()).digest()
    )
    assert base64.b64decode(logged["signature"]["content"]) == signature
    [stamp] = material["timestampVerificationData"]["rfc3161Timestamps"]
    reply = decode_timestamp_response(base64.b64decode(stamp["signedTimestamp"]))
    assert reply.tst_info.message_imprint.message == hashlib.sha256(signature).digest()
    assert _log_sizes(server) == (before[0], before[1] + 1)
    assert _keyless_verifies(server, artifact, "v2@example.com") == 0
    assert "Verified OK" in capsys.readouterr().err


def test_rekor_version_1_keeps_the_v1_log(server, artifact) -> None:
    before = _log_sizes(server)
    assert _sign(server, artifact, "v1@example.com", "--rekor-version", "1") == 0
    material = _bundle(artifact)["verificationMaterial"]
    [entry] = material["tlogEntries"]
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.1"}
    assert entry["inclusionPromise"]["signedEntryTimestamp"]
    assert "timestampVerificationData" not in material
    assert _log_sizes(server) == (before[0] + 1, before[1])
    assert _keyless_verifies(server, artifact, "v1@example.com") == 0


def test_sigstore_python_verifies_keylesss_v2_bundle(server, artifact, tmp_path) -> None:
    assert _sign(server, artifact, "v2@example.com", "--rekor-version", "2") == 0
    trust_config = save_trust_config(server.url, tmp_path / "client_trust_config.json")
    bundle = artifact.with_name(artifact.name + ".sigstore.json")
    issuer = f"{server.url}/oidc"
    verified = verify_identity(trust_config, bundle, artifact, "v2@example.com", issuer)
    assert verified.returncode == 0, verified.stderr
    assert "OK" in verified.stderr


def _refusing_tsa() -> Flask:
    """A TSA that answers every request with a genuine rejection `TimeStampResp`."""
    app = Flask("refusing-tsa")

    @app.post("/api/v1/timestamp")
    def timestamp() -> Response:
        der = reject("system_failure", "the TSA is closed for maintenance")
        return Response(der, status=400, mimetype="application/timestamp-reply")

    return app


def _config_with_tsa(server, tmp_path: Path, tsa_url: str) -> list[str]:
    config = requests.get(f"{server.url}/api/v1/trust/signing_config.json", timeout=5).json()
    config["tsaUrls"][0]["url"] = tsa_url
    config_path = tmp_path / "signing_config.json"
    config_path.write_text(json.dumps(config))
    root_path = tmp_path / "trusted_root.json"
    root_path.write_text(
        requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=5).text
    )
    return ["--signing-config", str(config_path), "--trusted-root", str(root_path)]


def _sign_with(server, artifact: Path, flags: list[str]) -> int:
    token = server.email_token("v2@example.com")
    return main(["sign", *flags, "--identity-token", token, str(artifact)])


def test_a_refusing_tsa_stops_the_signing_before_anything_is_logged(
    server, artifact, tmp_path, capsys
) -> None:
    with serve_wsgi(_refusing_tsa()) as tsa:
        flags = _config_with_tsa(server, tmp_path, f"{tsa}/api/v1/timestamp")
        before = _log_sizes(server)
        assert _sign_with(server, artifact, flags) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == (
        f"error: the timestamp authority at {tsa}/api/v1/timestamp refused the request "
        "(HTTP 400): the TSA is closed for maintenance"
    )
    assert _log_sizes(server) == before
    assert not artifact.with_name(artifact.name + ".sigstore.json").exists()


def test_an_unreachable_tsa_stops_the_signing_before_anything_is_logged(
    server, artifact, tmp_path, capsys
) -> None:
    with serve_wsgi(_refusing_tsa()) as gone:
        pass  # a loopback port that was just closed
    flags = _config_with_tsa(server, tmp_path, f"{gone}/api/v1/timestamp")
    before = _log_sizes(server)
    assert _sign_with(server, artifact, flags) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith(f"error: cannot reach the timestamp authority at {gone}/api/v1/")
    assert _log_sizes(server) == before
    assert not artifact.with_name(artifact.name + ".sigstore.json").exists()


def test_rekor_version_must_be_1_or_2(server, artifact, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        _sign(server, artifact, "v2@example.com", "--rekor-version", "3")
    assert exited.value.code == 2
    assert "--rekor-version: invalid choice: 3 (choose from 1, 2)" in capsys.readouterr().err


def test_an_image_signed_into_v2_has_no_legacy_tag_and_verifies(
    server, registry, pusher, tmp_path, capsys
) -> None:
    image = pusher.push_image("e2e/rekor-v2", "v1", seed="rekor v2 image")
    path = tmp_path / "image.sigstore.json"
    token = server.email_token("v2@example.com")
    argv = ["sign", "--server", server.url, "--identity-token", token]
    argv += ["--allow-insecure-registry", "--rekor-version", "2", "--bundle", str(path)]
    assert main([*argv, image.reference]) == 0
    err = capsys.readouterr().err
    assert "Rekor v2: no cosign v2 legacy .sig tag (it needs a v1 entry)\n" in err
    assert "cosign v2 signature" not in err
    hex_digest = image.digest.removeprefix("sha256:")
    legacy = requests.get(
        f"{registry.url}/v2/e2e/rekor-v2/manifests/sha256-{hex_digest}.sig", timeout=30
    )
    assert legacy.status_code == 404
    material = json.loads(path.read_text())["verificationMaterial"]
    [entry] = material["tlogEntries"]
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.2"}
    assert "inclusionPromise" not in entry
    assert material["timestampVerificationData"]["rfc3161Timestamps"]
    verify = ["verify", "--server", server.url, "--allow-insecure-registry"]
    verify += ["--certificate-identity", "v2@example.com"]
    verify += ["--certificate-oidc-issuer", f"{server.url}/oidc", image.reference]
    assert main(verify) == 0
    assert "Verified OK" in capsys.readouterr().err


def _edited_config(server, tmp_path: Path, edit) -> list[str]:
    flags = _config_with_tsa(server, tmp_path, f"{server.url}/api/v1/timestamp")
    path = Path(flags[1])
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))
    return flags


def test_a_config_without_a_v2_log_signs_into_v1_unless_v2_is_asked_for(
    server, artifact, tmp_path, capsys
) -> None:
    def only_v1(config: dict) -> None:
        config["rekorTlogUrls"] = [
            log for log in config["rekorTlogUrls"] if log["majorApiVersion"] == 1
        ]

    flags = _edited_config(server, tmp_path, only_v1)
    before = _log_sizes(server)
    assert _sign_with(server, artifact, [*flags, "--rekor-version", "2"]) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        "error: the signing config lists no current v2 service in rekorTlogUrls"
    )
    assert _log_sizes(server) == before
    assert _sign_with(server, artifact, flags) == 0
    [entry] = _bundle(artifact)["verificationMaterial"]["tlogEntries"]
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.1"}
    assert _log_sizes(server) == (before[0] + 1, before[1])


def test_a_v2_log_without_a_tsa_is_refused_before_anything_is_logged(
    server, artifact, tmp_path, capsys
) -> None:
    flags = _edited_config(server, tmp_path, lambda config: config.update(tsaUrls=[]))
    before = _log_sizes(server)
    assert _sign_with(server, artifact, flags) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: the signing config offers a Rekor v2 log but no current timestamp authority "
        "in tsaUrls (a v2 entry has no signed time without one)",
        "hint: use --rekor-version 1",
    ]
    assert _log_sizes(server) == before
    assert not artifact.with_name(artifact.name + ".sigstore.json").exists()


def _sign_bundle(server, tmp_path: Path, target: Path, *flags: str) -> tuple[int, Path]:
    """The conformance protocol's sign-bundle with the server's signing config and root."""
    config = _config_with_tsa(server, tmp_path, f"{server.url}/api/v1/timestamp")
    bundle = tmp_path / f"{target.name}.bundle.json"
    token = server.email_token("v2@example.com")
    argv = ["sign-bundle", *config, "--identity-token", token, "--bundle", str(bundle)]
    return main([*argv, *flags, str(target)]), bundle


def _verify_bundle(server, tmp_path: Path, bundle: Path, target: Path) -> int:
    argv = ["verify-bundle", "--bundle", str(bundle), "--certificate-identity", "v2@example.com"]
    argv += ["--certificate-oidc-issuer", f"{server.url}/oidc"]
    return main([*argv, "--trusted-root", str(tmp_path / "trusted_root.json"), str(target)])


@pytest.fixture
def statement(tmp_path: Path, artifact: Path) -> Path:
    path = tmp_path / "statement.json"
    subject = {
        "name": artifact.name,
        "digest": {"sha256": hashlib.sha256(artifact.read_bytes()).hexdigest()},
    }
    path.write_text(
        json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [subject],
                "predicateType": "https://example.com/test/v1",
                "predicate": {"ok": True},
            }
        )
    )
    return path


@pytest.mark.parametrize(
    ("flags", "kind_version", "grown"),
    [
        ((), {"kind": "hashedrekord", "version": "0.0.2"}, (0, 1)),
        (("--rekor-version", "1"), {"kind": "hashedrekord", "version": "0.0.1"}, (1, 0)),
        (("--in-toto",), {"kind": "hashedrekord", "version": "0.0.2"}, (0, 1)),
        (("--in-toto", "--rekor-version", "1"), {"kind": "dsse", "version": "0.0.1"}, (1, 0)),
    ],
)
def test_sign_bundle_follows_the_signing_config(
    server, artifact, statement, tmp_path, flags, kind_version, grown
) -> None:
    before = _log_sizes(server)
    target = statement if "--in-toto" in flags else artifact
    code, bundle = _sign_bundle(server, tmp_path, target, *flags)
    assert code == 0
    material = json.loads(bundle.read_text())["verificationMaterial"]
    [entry] = material["tlogEntries"]
    assert entry["kindVersion"] == kind_version
    assert ("timestampVerificationData" in material) == (grown == (0, 1))
    assert _log_sizes(server) == (before[0] + grown[0], before[1] + grown[1])
    assert _verify_bundle(server, tmp_path, bundle, artifact) == 0


def test_sign_bundle_refuses_a_bad_rekor_version_before_anything_is_logged(
    server, artifact, tmp_path, capsys
) -> None:
    before = _log_sizes(server)
    with pytest.raises(SystemExit) as exited:
        _sign_bundle(server, tmp_path, artifact, "--rekor-version", "3")
    assert exited.value.code == 2
    assert "--rekor-version: invalid choice: 3 (choose from 1, 2)" in capsys.readouterr().err
    assert _log_sizes(server) == before


def test_sign_bundle_stops_at_a_refusing_tsa_before_anything_is_logged(
    server, artifact, statement, tmp_path, capsys
) -> None:
    with serve_wsgi(_refusing_tsa()) as tsa:
        flags = _config_with_tsa(server, tmp_path, f"{tsa}/api/v1/timestamp")
        before = _log_sizes(server)
        bundle = tmp_path / "refused.bundle.json"
        token = server.email_token("v2@example.com")
        argv = ["sign-bundle", *flags, "--identity-token", token, "--bundle", str(bundle)]
        assert main([*argv, "--in-toto", str(statement)]) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        f"error: the timestamp authority at {tsa}/api/v1/timestamp refused the request "
        "(HTTP 400): the TSA is closed for maintenance"
    )
    assert _log_sizes(server) == before
    assert not bundle.exists()

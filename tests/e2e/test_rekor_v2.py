"""Rekor v2 and the TSA against the reference client: sigstore-python 4.x signs through keyless
with the v2 log (asked for, and by default once the signing config offers it), verifies, and
keyless verifies those bundles; a v2 bundle without its timestamp has no signed time."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from sigstore.models import SigningConfig

from keyless.cli.main import main
from tests.e2e import test_sigstore_js as js_tests

SIGSTORE = [sys.executable, "-m", "sigstore"]
JS_DRIVER = js_tests.JS / "sigstore_js_signing_config.mjs"
# sigstore-js fixtures: node (skips without it on a developer machine) and our TUF root.
node = js_tests.node
tuf_root = js_tests.tuf_root


@pytest.fixture
def trust_config(server, tmp_path: Path) -> Path:
    path = tmp_path / "client_trust_config.json"
    path.write_text(
        requests.get(f"{server.url}/api/v1/trust/client_trust_config.json", timeout=5).text
    )
    return path


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "artifact.txt"
    path.write_text("signed into the v2 log\n")
    return path


def _sigstore(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "1000"}
    return subprocess.run([*SIGSTORE, *args], capture_output=True, text=True, timeout=120, env=env)


def _sign(server, trust_config: Path, artifact: Path, bundle: Path, email: str, *flags: str):
    signed = _sigstore(
        "--trust-config",
        str(trust_config),
        "sign",
        *flags,
        "--identity-token",
        server.email_token(email),
        "--bundle",
        str(bundle),
        str(artifact),
    )
    assert signed.returncode == 0, signed.stderr
    return json.loads(bundle.read_text())


def _sigstore_verifies(server, trust_config, bundle, artifact, email) -> None:
    verified = _sigstore(
        "--trust-config",
        str(trust_config),
        "verify",
        "identity",
        "--bundle",
        str(bundle),
        "--cert-identity",
        email,
        "--cert-oidc-issuer",
        f"{server.url}/oidc",
        str(artifact),
    )
    assert verified.returncode == 0, verified.stderr


def _keyless_verify(server, trust_config, bundle, artifact, email) -> int:
    return main(
        [
            "verify",
            "--trust-config",
            str(trust_config),
            "--bundle",
            str(bundle),
            "--certificate-identity",
            email,
            "--certificate-oidc-issuer",
            f"{server.url}/oidc",
            str(artifact),
        ]
    )


def _v2_key_id(server) -> str:
    root = requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=5).json()
    [log] = [t for t in root["tlogs"] if t["publicKey"]["keyDetails"] == "PKIX_ED25519"]
    return log["logId"]["keyId"]


@pytest.mark.parametrize("flags", [("--rekor-version", "2"), ()], ids=["asked", "default"])
def test_sigstore_python_signs_into_rekor_v2_and_both_verify(
    server, trust_config, artifact, tmp_path, flags
) -> None:
    bundle_path = tmp_path / "v2.sigstore.json"
    bundle = _sign(server, trust_config, artifact, bundle_path, "v2@example.com", *flags)
    [entry] = bundle["verificationMaterial"]["tlogEntries"]
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.2"}
    assert entry["logId"]["keyId"] == _v2_key_id(server)
    assert "inclusionPromise" not in entry
    assert entry["integratedTime"] == "0"
    [stamp] = bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
    assert base64.b64decode(stamp["signedTimestamp"])
    _sigstore_verifies(server, trust_config, bundle_path, artifact, "v2@example.com")
    assert _keyless_verify(server, trust_config, bundle_path, artifact, "v2@example.com") == 0


def test_rekor_v1_signing_still_works_and_carries_a_timestamp(
    server, trust_config, artifact, tmp_path
) -> None:
    bundle_path = tmp_path / "v1.sigstore.json"
    bundle = _sign(
        server, trust_config, artifact, bundle_path, "v1@example.com", "--rekor-version", "1"
    )
    [entry] = bundle["verificationMaterial"]["tlogEntries"]
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.1"}
    assert entry["inclusionPromise"]["signedEntryTimestamp"]
    assert bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
    _sigstore_verifies(server, trust_config, bundle_path, artifact, "v1@example.com")
    assert _keyless_verify(server, trust_config, bundle_path, artifact, "v1@example.com") == 0


def test_a_v2_bundle_without_its_timestamp_is_refused(
    server, trust_config, artifact, tmp_path, capsys
) -> None:
    bundle_path = tmp_path / "v2.sigstore.json"
    bundle = _sign(
        server, trust_config, artifact, bundle_path, "v2@example.com", "--rekor-version", "2"
    )
    del bundle["verificationMaterial"]["timestampVerificationData"]
    stripped = tmp_path / "stripped.sigstore.json"
    stripped.write_text(json.dumps(bundle))
    assert _keyless_verify(server, trust_config, stripped, artifact, "v2@example.com") == 1
    assert "neither an inclusion promise nor an RFC 3161 timestamp" in capsys.readouterr().err
    refused = _sigstore(
        "--trust-config",
        str(trust_config),
        "verify",
        "identity",
        "--bundle",
        str(stripped),
        "--cert-identity",
        "v2@example.com",
        "--cert-oidc-issuer",
        f"{server.url}/oidc",
        str(artifact),
    )
    assert refused.returncode != 0


def test_signing_config_offers_v1_v2_and_the_tsa(server, tmp_path) -> None:
    document = requests.get(f"{server.url}/api/v1/trust/signing_config.json", timeout=5).json()
    logs = [(s["url"], s["majorApiVersion"]) for s in document["rekorTlogUrls"]]
    assert logs == [(server.url, 2), (server.url, 1)]
    assert [s["url"] for s in document["tsaUrls"]] == [f"{server.url}/api/v1/timestamp"]
    assert all("start" in s["validFor"] for s in document["tsaUrls"] + document["rekorTlogUrls"])
    path = tmp_path / "signing_config.json"
    path.write_text(json.dumps(document))
    # The reference client keeps the highest version per operator, unless told otherwise.
    config = SigningConfig.from_file(str(path))
    assert [type(t).__name__ for t in config.get_tlogs()] == ["RekorV2Client"]
    assert [t.url for t in config.get_tsas()] == [f"{server.url}/api/v1/timestamp"]
    inner = config._inner
    assert [type(t).__name__ for t in SigningConfig(inner, tlog_version=1).get_tlogs()] == [
        "RekorClient"
    ]


def test_sigstore_python_attests_into_rekor_v2(server, trust_config, artifact, tmp_path) -> None:
    """DSSE goes to the v2 log as a hashedrekord over the envelope's PAE, as upstream does."""
    predicate = tmp_path / "predicate.json"
    predicate.write_text(
        json.dumps({"buildType": "https://example.com/build", "builder": {"id": "https://ci"}})
    )
    bundle_path = tmp_path / "attestation.sigstore.json"
    attested = _sigstore(
        "--trust-config",
        str(trust_config),
        "attest",
        "--rekor-version",
        "2",
        "--predicate",
        str(predicate),
        "--predicate-type",
        "https://slsa.dev/provenance/v0.2",
        "--identity-token",
        server.email_token("attester@example.com"),
        "--bundle",
        str(bundle_path),
        str(artifact),
    )
    assert attested.returncode == 0, attested.stderr
    bundle = json.loads(bundle_path.read_text())
    assert "dsseEnvelope" in bundle
    [entry] = bundle["verificationMaterial"]["tlogEntries"]
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.2"}
    body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    signature = body["spec"]["hashedRekordV002"]["signature"]["content"]
    assert signature == bundle["dsseEnvelope"]["signatures"][0]["sig"]
    _sigstore_verifies(server, trust_config, bundle_path, artifact, "attester@example.com")
    verified = main(
        [
            "verify-attestation",
            "--trust-config",
            str(trust_config),
            "--bundle",
            str(bundle_path),
            "--certificate-identity",
            "attester@example.com",
            "--certificate-oidc-issuer",
            f"{server.url}/oidc",
            "--type",
            "https://slsa.dev/provenance/v0.2",
            str(artifact),
        ]
    )
    assert verified == 0


def _signing_config_with_logs(server, tmp_path: Path, versions: tuple[int, ...]) -> Path:
    document = requests.get(f"{server.url}/api/v1/trust/signing_config.json", timeout=5).json()
    document["rekorTlogUrls"] = [
        s for s in document["rekorTlogUrls"] if s["majorApiVersion"] in versions
    ]
    path = tmp_path / "signing_config.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize("version", [2, 1, None], ids=["v2", "v1", "as-served"])
def test_sigstore_js_signs_by_signing_config_and_both_verify(
    server,
    node,
    tuf_root,
    artifact,
    tmp_path,
    version,
) -> None:
    """sigstore-js 5.x: with a v2 log in its signing config it timestamps with the TSA and
    logs into v2; keyless and sigstore-js verify. Of logs with one start time it takes the
    first listed: the server lists v2 first, so its config as served leads to v2 too."""
    config = _signing_config_with_logs(server, tmp_path, (version,) if version else (1, 2))
    version = version or 2
    bundle_path = tmp_path / "js.sigstore.json"
    signed = subprocess.run(
        [node, str(JS_DRIVER), str(config), str(artifact), str(bundle_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SIGSTORE_ID_TOKEN": server.email_token("js@example.com")},
    )
    assert signed.returncode == 0, signed.stderr
    bundle = json.loads(bundle_path.read_text())
    [entry] = bundle["verificationMaterial"]["tlogEntries"]
    assert entry["kindVersion"]["version"] == ("0.0.2" if version == 2 else "0.0.1")
    [stamp] = bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
    assert stamp["signedTimestamp"]
    root = tmp_path / "trusted_root.json"
    assert main(["trust", "--server", server.url, "-o", str(root)]) == 0
    assert (
        main(
            [
                "verify",
                "--trusted-root",
                str(root),
                "--bundle",
                str(bundle_path),
                "--certificate-identity",
                "js@example.com",
                "--certificate-oidc-issuer",
                f"{server.url}/oidc",
                str(artifact),
            ]
        )
        == 0
    )
    verified = js_tests._js_verify(
        node,
        server.url,
        tuf_root,
        bundle_path,
        artifact,
        "--certificate-issuer",
        f"{server.url}/oidc",
        "--certificate-identity-email",
        "js@example.com",
    )
    assert verified.returncode == 0, verified.stderr


def test_a_signed_entry_is_found_in_the_servers_tiles(
    server, trust_config, artifact, tmp_path
) -> None:
    """What a monitor does: the checkpoint verifies with the trusted root's v2 key, and the
    bundle's entry is in the entry bundle and hash tile at its index."""
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    from keyless.tlog import leaf_hash, verify_checkpoint
    from keyless.tlog.tiles import TILE_WIDTH, encode_index, parse_entry_bundle

    bundle = _sign(
        server,
        trust_config,
        artifact,
        tmp_path / "b.sigstore.json",
        "monitor@example.com",
        "--rekor-version",
        "2",
    )
    [entry] = bundle["verificationMaterial"]["tlogEntries"]
    root = requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=5).json()
    [log] = [t for t in root["tlogs"] if t["publicKey"]["keyDetails"] == "PKIX_ED25519"]
    key = load_der_public_key(base64.b64decode(log["publicKey"]["rawBytes"]))
    note = requests.get(f"{server.url}/api/v2/checkpoint", timeout=5)
    assert note.headers["Cache-Control"] == "no-cache"
    origin = server.url.split("://", 1)[1]
    head = verify_checkpoint(note.content, public_key=key, name=origin)
    index = int(entry["logIndex"])
    assert head.size > index
    tile, offset = divmod(index, TILE_WIDTH)
    width = min(TILE_WIDTH, head.size - tile * TILE_WIDTH)
    suffix = encode_index(tile) + ("" if width == TILE_WIDTH else f".p/{width}")
    bundle_tile = requests.get(f"{server.url}/api/v2/tile/entries/{suffix}", timeout=5)
    hash_tile = requests.get(f"{server.url}/api/v2/tile/0/{suffix}", timeout=5)
    body = base64.b64decode(entry["canonicalizedBody"])
    assert parse_entry_bundle(bundle_tile.content)[offset] == body
    assert hash_tile.content[offset * 32 : offset * 32 + 32] == leaf_hash(body)

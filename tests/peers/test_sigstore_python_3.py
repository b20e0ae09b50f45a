"""sigstore-python 3.x against `keyless serve`: it signs with keyless's CA, Rekor v1 log and TSA
through the client trust config keyless serves for it (a v0.1 signing config: 3.x reads
`caUrl` and `tlogUrls`, not v0.2's service lists), and verifies keyless's Rekor v1 bundles;
keyless verifies its bundles, timestamp included."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
import requests
from cryptography import x509
from rfc3161_client import decode_timestamp_response

from tests.peers.conftest import Served
from tests.peers.venvs import PeerVenv, peer_venv

pytestmark = pytest.mark.timeout(1200)  # the first run builds the venv
REQUIREMENTS = ("sigstore==3.6.*",)
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
SLSA_PREDICATE = {
    "buildDefinition": {"buildType": "https://keyless.example/build/v1", "externalParameters": {}},
    "runDetails": {"builder": {"id": "https://keyless.example/builder"}},
}


@pytest.fixture(scope="module")
def sigstore3() -> PeerVenv:
    venv = peer_venv("sigstore-python-3", REQUIREMENTS)
    assert venv.installed()["sigstore"].startswith("3.6.")
    return venv


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "artifact.txt"
    path.write_text("signed for sigstore-python 3\n")
    return path


@pytest.fixture
def trust_config(served: Served, tmp_path: Path) -> Path:
    return served.trust_document("client_trust_config.v0.1", tmp_path / "trust_config.json")


def _sign(sigstore3: PeerVenv, config: Path, token: str, artifact: Path, bundle: Path):
    return sigstore3.run(
        "-m", "sigstore", "--trust-config", str(config), "sign", "--identity-token", token,
        "--bundle", str(bundle), str(artifact),
    )  # fmt: skip


def _verify(
    sigstore3: PeerVenv, config: Path, bundle: Path, artifact: Path, identity: str, issuer: str
):
    return sigstore3.run(
        "-m", "sigstore", "--trust-config", str(config), "verify", "identity",
        "--bundle", str(bundle), "--cert-identity", identity, "--cert-oidc-issuer", issuer,
        str(artifact),
    )  # fmt: skip


def _keyless_verify(served: Served, bundle: Path, artifact: Path, identity: str, capsys) -> dict:
    capsys.readouterr()
    code = served.keyless(
        "verify", "--bundle", str(bundle), "--certificate-identity", identity,
        "--certificate-oidc-issuer", served.issuer, "-o", "json", str(artifact),
    )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    return report


def test_the_v01_documents_name_the_ca_the_v1_log_and_the_tsa(served: Served) -> None:
    """Bare URLs have no API version, so the Rekor v2 log, on the same origin, is left out."""
    url = served.url
    documents = {
        name: requests.get(f"{url}/api/v1/trust/{name}.json", timeout=10).json()
        for name in ("signing_config.v0.1", "client_trust_config.v0.1", "client_trust_config")
    }
    assert documents["signing_config.v0.1"] == {
        "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.1+json",
        "caUrl": url,
        "oidcUrl": f"{url}/oidc",
        "tlogUrls": [url],
        "tsaUrls": [f"{url}/api/v1/timestamp"],
    }
    assert documents["client_trust_config.v0.1"] == {
        **documents["client_trust_config"],
        "signingConfig": documents["signing_config.v0.1"],
    }


def test_the_v02_trust_config_is_one_sigstore_python_3_cannot_use(
    sigstore3, served, artifact, tmp_path
) -> None:
    """Why keyless serves a second trust config: 3.x finds no log in a v0.2 signing config."""
    config = served.trust_document("client_trust_config", tmp_path / "v02.json")
    token = served.token("olga@example.com")
    signed = _sign(sigstore3, config, token, artifact, tmp_path / "bundle.json")
    assert signed.returncode == 1
    assert signed.stderr.rstrip().endswith("IndexError: list index out of range")


def test_sigstore_python_3_signs_against_keyless_and_both_verify(
    sigstore3, served, trust_config, artifact, tmp_path, capsys
) -> None:
    bundle = tmp_path / "artifact.sigstore.json"
    signed = _sign(sigstore3, trust_config, served.token("olga@example.com"), artifact, bundle)
    assert signed.returncode == 0, signed.stderr
    document = json.loads(bundle.read_text())
    material = document["verificationMaterial"]
    assert material["tlogEntries"][0]["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.1"}
    (timestamp,) = material["timestampVerificationData"]["rfc3161Timestamps"]
    # 3.x asks for a SHA-512 imprint of the signature (rfc3161-client's default).
    imprint = decode_timestamp_response(base64.b64decode(timestamp["signedTimestamp"]))
    imprint = imprint.tst_info.message_imprint
    assert imprint.hash_algorithm == x509.ObjectIdentifier("2.16.840.1.101.3.4.2.3")
    signature = base64.b64decode(document["messageSignature"]["signature"])
    assert imprint.message == hashlib.sha512(signature).digest()

    verified = _verify(sigstore3, trust_config, bundle, artifact, "olga@example.com", served.issuer)
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr.rstrip().endswith(f"OK: {artifact}")

    report = _keyless_verify(served, bundle, artifact, "olga@example.com", capsys)
    # The log's integrated time and the TSA's time both count (the SHA-512 imprint checked).
    assert len(report["signatures"][0]["signedTimes"]) == 2
    assert report["signatures"][0]["log"]["kind"] == "hashedrekord/0.0.1"


def test_sigstore_python_3_attests_against_keyless_and_keyless_verifies_it(
    sigstore3, served, trust_config, artifact, tmp_path
) -> None:
    """3.x checks an SLSA predicate's shape itself, so this one is complete."""
    predicate = tmp_path / "provenance.json"
    predicate.write_text(json.dumps(SLSA_PREDICATE))
    bundle = tmp_path / "attestation.sigstore.json"
    attested = sigstore3.run(
        "-m", "sigstore", "--trust-config", str(trust_config), "attest",
        "--identity-token", served.token("olga@example.com"), "--predicate", str(predicate),
        "--predicate-type", SLSA_PROVENANCE, "--bundle", str(bundle), str(artifact),
    )  # fmt: skip
    assert attested.returncode == 0, attested.stderr
    entry = json.loads(bundle.read_text())["verificationMaterial"]["tlogEntries"][0]
    assert entry["kindVersion"] == {"kind": "dsse", "version": "0.0.1"}
    verified = served.keyless(
        "verify-attestation", "--bundle", str(bundle), "--type", SLSA_PROVENANCE,
        "--certificate-identity", "olga@example.com", "--certificate-oidc-issuer", served.issuer,
        str(artifact),
    )  # fmt: skip
    assert verified == 0


@pytest.mark.parametrize("command", ["sign", "attest"])
def test_sigstore_python_3_verifies_a_keyless_rekor_v1_bundle(
    sigstore3, served, trust_config, artifact, tmp_path, command
) -> None:
    bundle = tmp_path / f"keyless-{command}.sigstore.json"
    made = ["--identity-token", served.token("pavel@example.com"), "--rekor-version", "1"]
    made += ["--bundle", str(bundle)]
    if command == "attest":
        predicate = tmp_path / "provenance.json"
        predicate.write_text(json.dumps(SLSA_PREDICATE))
        made += ["--predicate", str(predicate), "--type", SLSA_PROVENANCE]
    assert served.keyless(command, *made, str(artifact)) == 0
    verified = _verify(
        sigstore3, trust_config, bundle, artifact, "pavel@example.com", served.issuer
    )
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr.rstrip().endswith(f"OK: {artifact}")


def test_sigstore_python_3_refuses_a_keyless_bundle_for_another_identity(
    sigstore3, served, trust_config, artifact
) -> None:
    token = served.token("pavel@example.com")
    assert (
        served.keyless("sign", "--identity-token", token, "--rekor-version", "1", str(artifact))
        == 0
    )
    bundle = artifact.with_name(artifact.name + ".sigstore.json")
    refused = _verify(
        sigstore3, trust_config, bundle, artifact, "mallory@example.com", served.issuer
    )
    assert refused.returncode == 1
    assert (
        "Certificate's SANs do not match mallory@example.com; "
        "actual SANs: {'pavel@example.com'}" in refused.stderr
    )

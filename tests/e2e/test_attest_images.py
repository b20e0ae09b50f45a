"""`keyless attest IMAGE` / `keyless verify-attestation IMAGE` against real registries.

Storage is checked byte for byte against cosign v3's form (referrer manifest with the bundle
artifact type and the predicate type annotation); verification against a wrong identity, a
wrong type, a denying Rego policy, and an image that only carries a signature.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import requests

from keyless.cli.main import main
from tests.e2e.test_attest_files import _check_logged_as
from tests.registry import OCI_INDEX, OCI_MANIFEST, Pusher

BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SLSA_V1 = "https://slsa.dev/provenance/v1"
PROVENANCE = {
    "buildDefinition": {"buildType": "https://actions.github.io/buildtypes/workflow/v1"},
    "runDetails": {"builder": {"id": "https://github.com/acme/app/.github/workflows/r.yml"}},
}
ALICE = "alice@example.com"


@pytest.fixture
def predicate(tmp_path: Path) -> Path:
    path = tmp_path / "provenance.json"
    path.write_text(json.dumps(PROVENANCE))
    return path


def _attest(
    server, image: str, predicate: Path, kind: str = "slsaprovenance1", *flags: str, email=ALICE
) -> int:
    return main(
        [
            "attest",
            "--server",
            server.url,
            "--identity-token",
            server.email_token(email),
            "--allow-insecure-registry",
            "--predicate",
            str(predicate),
            "--type",
            kind,
            *flags,
            image,
        ]
    )


def _verify(server, image: str, *extra: str, email=ALICE) -> int:
    return main(
        [
            "verify-attestation",
            "--server",
            server.url,
            "--allow-insecure-registry",
            "--certificate-identity",
            email,
            "--certificate-oidc-issuer",
            f"{server.url}/oidc",
            *extra,
            image,
        ]
    )


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0].removeprefix("error: ")


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def _tree_size(server) -> tuple[int, int]:
    """(v1 tree size, v2 tree size)."""
    v1 = requests.get(f"{server.url}/api/v1/log", timeout=30).json()["treeSize"]
    v2 = requests.get(f"{server.url}/api/v2/checkpoint", timeout=30).text.splitlines()[1]
    return int(v1), int(v2)


@pytest.mark.parametrize(("flags", "rekor_version"), [((), 2), (("--rekor-version", "1"), 1)])
def test_attest_an_image_stores_a_cosign_v3_referrer(
    server, registry, pusher, predicate, capsys, flags, rekor_version
):
    image = pusher.push_image("att/app", f"v{rekor_version}", seed=f"attest storage {flags}")
    before = _tree_size(server)
    assert _attest(server, image.reference, predicate, "slsaprovenance1", *flags) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"{registry.host}/att/app@{image.digest}"
    assert "(fallback-tag)" in captured.err
    index = requests.get(
        f"{registry.url}/v2/att/app/manifests/sha256-{_hex(image.digest)}",
        headers={"Accept": OCI_INDEX},
        timeout=30,
    ).json()
    (entry,) = index["manifests"]
    assert entry["artifactType"] == BUNDLE_TYPE
    referrer = requests.get(
        f"{registry.url}/v2/att/app/manifests/{entry['digest']}",
        headers={"Accept": OCI_MANIFEST},
        timeout=30,
    ).json()
    assert referrer["artifactType"] == BUNDLE_TYPE
    assert referrer["subject"]["digest"] == image.digest
    assert referrer["annotations"]["dev.sigstore.bundle.predicateType"] == SLSA_V1
    assert referrer["annotations"]["dev.sigstore.bundle.content"] == "dsse-envelope"
    (layer,) = referrer["layers"]
    assert layer["mediaType"] == BUNDLE_TYPE
    bundle = requests.get(f"{registry.url}/v2/att/app/blobs/{layer['digest']}", timeout=30).json()
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    assert statement["subject"] == [
        {"name": f"{registry.host}/att/app", "digest": {"sha256": _hex(image.digest)}}
    ]
    assert statement["predicate"] == PROVENANCE
    _check_logged_as(bundle, rekor_version)
    grown = (1, 0) if rekor_version == 1 else (0, 1)
    assert _tree_size(server) == (before[0] + grown[0], before[1] + grown[1])
    assert _verify(server, image.reference, "--type", "slsaprovenance1") == 0


def test_subject_name_names_an_image_subject(server, registry, pusher, predicate, tmp_path):
    image = pusher.push_image("att/named", "v1", seed="attest a named subject")
    bundle = tmp_path / "named.sigstore.json"
    flags = ("--subject-name", "acme/app", "--bundle", str(bundle))
    assert _attest(server, image.reference, predicate, "slsaprovenance1", *flags) == 0
    statement = json.loads(
        base64.b64decode(json.loads(bundle.read_text())["dsseEnvelope"]["payload"])
    )
    assert statement["subject"] == [{"name": "acme/app", "digest": {"sha256": _hex(image.digest)}}]
    assert _verify(server, image.reference, "--type", "slsaprovenance1") == 0


def test_verify_an_image_attestation_by_tag_with_type_and_policy(
    server, registry, pusher, predicate, tmp_path, capsys
):
    image = pusher.push_image("att/verify", "2.0", seed="attest verify")
    assert (
        main(
            [
                "sign",
                "--server",
                server.url,
                "--identity-token",
                server.email_token(ALICE),
                "--allow-insecure-registry",
                image.reference,
            ]
        )
        == 0
    )
    assert _attest(server, image.reference, predicate) == 0
    capsys.readouterr()
    policy = tmp_path / "builder.rego"
    policy.write_text(
        "package signature\n"
        'allow { input.predicate.runDetails.builder.id == "https://github.com/acme/app/.github/workflows/r.yml" }\n'
    )
    assert (
        _verify(
            server,
            image.reference,
            "--type",
            "slsaprovenance1",
            "--policy",
            str(policy),
            "-o",
            "json",
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["target"] == f"{registry.host}/att/verify@{image.digest}"
    (attestation,) = out["attestations"]  # the image signature is not an attestation
    assert attestation["statement"]["predicate"] == PROVENANCE
    assert attestation["source"] == "fallback-tag"
    # the signature still verifies as a signature
    assert (
        main(
            [
                "verify",
                "--server",
                server.url,
                "--allow-insecure-registry",
                "--certificate-identity",
                ALICE,
                "--certificate-oidc-issuer",
                f"{server.url}/oidc",
                image.reference,
            ]
        )
        == 0
    )


def test_image_refusals_name_the_check(server, registry, pusher, predicate, tmp_path, capsys):
    image = pusher.push_image("att/refuse", "1", seed="attest refusals")
    assert _attest(server, image.reference, predicate, email="bob@example.com") == 0
    capsys.readouterr()
    assert _verify(server, image.reference) == 1
    assert _error(capsys) == (
        f"verification failed (identity): no attestation on {image.digest} passed (1 checked): "
        'certificate identity "bob@example.com" does not match expected "alice@example.com"'
    )
    assert _verify(server, image.reference, "--type", "spdx", email="bob@example.com") == 1
    assert _error(capsys) == (
        f"verification failed (type): none of the attestations on {image.digest} is of "
        f"predicate type 'https://spdx.dev/Document'; found: {SLSA_V1}"
    )
    deny = tmp_path / "deny.rego"
    deny.write_text('package signature\nimport rego.v1\ndeny contains "never" if true\n')
    assert _verify(server, image.reference, "--policy", str(deny), email="bob@example.com") == 1
    assert _error(capsys) == (
        f"verification failed (policy): no attestation on {image.digest} passed (1 checked): "
        "policy deny.rego denies: never"
    )


def test_an_image_with_only_a_signature_has_no_attestations(server, registry, pusher, capsys):
    image = pusher.push_image("att/none", "1", seed="only signed")
    assert (
        main(
            [
                "sign",
                "--server",
                server.url,
                "--identity-token",
                server.email_token(ALICE),
                "--allow-insecure-registry",
                image.reference,
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert _verify(server, image.reference) == 1
    assert _error(capsys) == f"no attestations found for {image.digest}"


def test_referrers_api_registry(server, referrers_registry, predicate, capsys):
    image = Pusher(referrers_registry).push_image("att/api", "1", seed="attest api")
    assert _attest(server, image.reference, predicate) == 0
    assert "(referrers-api)" in capsys.readouterr().err
    listed = requests.get(
        f"{referrers_registry.url}/v2/att/api/referrers/{image.digest}", timeout=30
    ).json()
    (entry,) = listed["manifests"]
    assert entry["artifactType"] == BUNDLE_TYPE
    assert entry["annotations"]["dev.sigstore.bundle.predicateType"] == SLSA_V1
    assert _verify(server, image.reference, "--type", SLSA_V1, "-o", "json") == 0
    assert json.loads(capsys.readouterr().out)["attestations"][0]["source"] == "referrers-api"


def test_a_bad_predicate_for_an_image_touches_neither_log_nor_registry(
    server, registry, pusher, tmp_path, capsys
):
    image = pusher.push_image("att/bad", "1", seed="bad predicate")
    bad = tmp_path / "bad.json"
    bad.write_text('{"spdxVersion": "SPDX-2.3"}')
    size = _tree_size(server)
    assert _attest(server, image.reference, bad, kind="cyclonedx") == 1
    assert "is not a https://cyclonedx.org/bom predicate" in _error(capsys)
    assert _tree_size(server) == size
    fallback = requests.get(
        f"{registry.url}/v2/att/bad/manifests/sha256-{_hex(image.digest)}",
        headers={"Accept": OCI_INDEX},
        timeout=30,
    )
    assert fallback.status_code == 404


def test_a_bad_rekor_version_for_an_image_touches_neither_log_nor_registry(
    server, registry, pusher, predicate, capsys
):
    image = pusher.push_image("att/flag", "1", seed="bad flag")
    size = _tree_size(server)
    with pytest.raises(SystemExit) as exited:
        _attest(server, image.reference, predicate, "slsaprovenance1", "--rekor-version", "0")
    assert exited.value.code == 2
    assert "argument --rekor-version: invalid choice: 0 (choose from 1, 2)" in (
        capsys.readouterr().err
    )
    assert _tree_size(server) == size
    fallback = requests.get(
        f"{registry.url}/v2/att/flag/manifests/sha256-{_hex(image.digest)}",
        headers={"Accept": OCI_INDEX},
        timeout=30,
    )
    assert fallback.status_code == 404

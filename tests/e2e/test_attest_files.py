"""`keyless attest` / `keyless verify-attestation` on files and digests, against a real dev server.

Round trips with the right signer and type; refusals of a wrong identity, a wrong type, a
tampered statement, another artifact, and a Rego policy that denies; bad predicates refused
before anything is logged (the log's tree size is unchanged); sigstore-python as an oracle.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from keyless.cli.main import main

SLSA_V1 = "https://slsa.dev/provenance/v1"
PROVENANCE = {
    "buildDefinition": {
        "buildType": "https://actions.github.io/buildtypes/workflow/v1",
        "externalParameters": {"workflow": {"ref": "refs/heads/main", "repository": "acme/app"}},
    },
    "runDetails": {"builder": {"id": "https://github.com/acme/app/.github/workflows/r.yml"}},
}
ALLOW_RELEASE_BUILDER = """package signature

default allow = false

allow {
    input.predicateType == "https://slsa.dev/provenance/v1"
    input.predicate.runDetails.builder.id == "https://github.com/acme/app/.github/workflows/r.yml"
}

deny[msg] {
    not allow
    msg := sprintf("builder %v is not the release workflow", [input.predicate.runDetails.builder.id])
}
"""


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "app.tar.gz"
    path.write_bytes(b"release bytes\n" * 64)
    return path


@pytest.fixture
def predicate(tmp_path: Path) -> Path:
    path = tmp_path / "provenance.json"
    path.write_text(json.dumps(PROVENANCE))
    return path


def _alice(server) -> list[str]:
    return [
        "--certificate-identity",
        "alice@example.com",
        "--certificate-oidc-issuer",
        f"{server.url}/oidc",
    ]


def _attest(
    server, target: str, predicate: Path, kind: str, *extra: str, email="alice@example.com"
) -> int:
    token = server.email_token(email)
    return main(
        [
            "attest",
            "--server",
            server.url,
            "--identity-token",
            token,
            "--predicate",
            str(predicate),
            "--type",
            kind,
            *extra,
            target,
        ]
    )


def _verify(server, target: str, *extra: str) -> int:
    return main(["verify-attestation", "--server", server.url, *extra, target])


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0].removeprefix("error: ")


def _tree_size(server) -> tuple[int, int]:
    """(v1 tree size, v2 tree size): attestations go to either log."""
    v1 = requests.get(f"{server.url}/api/v1/log", timeout=30).json()["treeSize"]
    v2 = requests.get(f"{server.url}/api/v2/checkpoint", timeout=30).text.splitlines()[1]
    return int(v1), int(v2)


def _statement(bundle_line: str) -> dict:
    envelope = json.loads(bundle_line)["dsseEnvelope"]
    return json.loads(base64.b64decode(envelope["payload"]))


def _check_logged_as(bundle: dict, rekor_version: int) -> None:
    """v1: a dsse 0.0.1 entry with a signed entry timestamp. v2 (as upstream logs DSSE since it
    dropped the dsse kind): a hashedrekord 0.0.2 over SHA-256 of the envelope's PAE, with the
    envelope's signature, and an RFC 3161 timestamp over that signature."""
    from rfc3161_client import decode_timestamp_response

    from keyless.core.dsse import pae

    material = bundle["verificationMaterial"]
    [entry] = material["tlogEntries"]
    if rekor_version == 1:
        assert entry["kindVersion"] == {"kind": "dsse", "version": "0.0.1"}
        assert entry["inclusionPromise"]["signedEntryTimestamp"]
        assert "timestampVerificationData" not in material
        return
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.2"}
    assert "inclusionPromise" not in entry
    envelope = bundle["dsseEnvelope"]
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    logged = json.loads(base64.b64decode(entry["canonicalizedBody"]))["spec"]["hashedRekordV002"]
    signed = pae(envelope["payloadType"], base64.b64decode(envelope["payload"]))
    assert base64.b64decode(logged["data"]["digest"]) == hashlib.sha256(signed).digest()
    assert base64.b64decode(logged["signature"]["content"]) == signature
    [stamp] = material["timestampVerificationData"]["rfc3161Timestamps"]
    reply = decode_timestamp_response(base64.b64decode(stamp["signedTimestamp"]))
    assert reply.tst_info.message_imprint.message == hashlib.sha256(signature).digest()


@pytest.mark.parametrize(("flags", "rekor_version"), [((), 2), (("--rekor-version", "1"), 1)])
def test_attest_a_file_then_verify_by_identity_and_type(
    server, artifact, predicate, capsys, flags, rekor_version
) -> None:
    before = _tree_size(server)
    assert _attest(server, str(artifact), predicate, "slsaprovenance1", *flags) == 0
    err = capsys.readouterr().err
    bundles = artifact.with_name("app.tar.gz.intoto.jsonl")
    assert f"bundle written to {bundles}" in err
    lines = bundles.read_text().splitlines()
    assert len(lines) == 1
    bundle = json.loads(lines[0])
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    _check_logged_as(bundle, rekor_version)
    grown = (1, 0) if rekor_version == 1 else (0, 1)
    assert _tree_size(server) == (before[0] + grown[0], before[1] + grown[1])
    statement = _statement(lines[0])
    assert statement == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {
                "name": "app.tar.gz",
                "digest": {"sha256": hashlib.sha256(artifact.read_bytes()).hexdigest()},
            }
        ],
        "predicateType": SLSA_V1,
        "predicate": PROVENANCE,
    }
    assert (
        _verify(server, str(artifact), *_alice(server), "--type", "slsaprovenance1", "-o", "json")
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["verified"] is True
    assert [a["statement"] for a in out["attestations"]] == [statement]
    assert out["attestations"][0]["identity"] == "alice@example.com"


def test_a_second_attestation_is_appended_and_selected_by_type(
    server, artifact, predicate, tmp_path, capsys
) -> None:
    sbom = tmp_path / "sbom.json"
    sbom.write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []}))
    assert _attest(server, str(artifact), predicate, "slsaprovenance1") == 0
    assert _attest(server, str(artifact), sbom, "cyclonedx") == 0
    assert len(artifact.with_name("app.tar.gz.intoto.jsonl").read_text().splitlines()) == 2
    capsys.readouterr()
    assert _verify(server, str(artifact), *_alice(server), "--type", "cyclonedx", "-o", "json") == 0
    out = json.loads(capsys.readouterr().out)
    assert [a["statement"]["predicateType"] for a in out["attestations"]] == [
        "https://cyclonedx.org/bom"
    ]
    assert _verify(server, str(artifact), *_alice(server), "--type", "spdx") == 1
    assert _error(capsys) == (
        "verification failed (type): none of the 2 attestations is of predicate type "
        "'https://spdx.dev/Document'"
    )


def test_a_digest_with_a_custom_type_uri(server, predicate, tmp_path, capsys) -> None:
    digest = "sha256:" + hashlib.sha256(b"elsewhere").hexdigest()
    bundle = tmp_path / "digest.sigstore.json"
    custom = "https://example.com/attestation/test-result/v1"
    assert _attest(server, digest, predicate, custom, "--bundle", str(bundle)) == 0
    statement = _statement(bundle.read_text())
    # A bare digest has no name to take: it is named by itself (model-signing needs a name).
    assert statement["subject"] == [
        {"name": digest, "digest": {"sha256": digest.removeprefix("sha256:")}}
    ]
    assert statement["predicateType"] == custom
    assert _verify(server, digest, *_alice(server), "--bundle", str(bundle), "--type", custom) == 0


@pytest.mark.parametrize("target", ["file", "digest"])
def test_subject_name_names_the_subject(server, artifact, predicate, tmp_path, target) -> None:
    sha256 = hashlib.sha256(artifact.read_bytes()).hexdigest()
    bundle = tmp_path / "named.sigstore.json"
    where = str(artifact) if target == "file" else f"sha256:{sha256}"
    name = "pkg:pypi/acme-model@1.0 ñ"
    assert (
        _attest(server, where, predicate, "custom", "--subject-name", name, "--bundle", str(bundle))
        == 0
    )
    statement = _statement(bundle.read_text())
    assert statement["subject"] == [{"name": name, "digest": {"sha256": sha256}}]
    assert _verify(server, str(artifact), *_alice(server), "--bundle", str(bundle)) == 0


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("", "the subject name is empty"),
        ("x" * 1025, "the subject name is longer than 1024 characters"),
        ("app\nforged", "the subject name has a control character"),
        ("app\x85", "the subject name has a control character"),
        # What Python makes of command-line bytes that are not UTF-8.
        ("app\udcff", "the subject name is not valid UTF-8"),
    ],
    ids=["empty", "too-long", "newline", "c1-control", "not-utf-8"],
)
def test_a_bad_subject_name_is_refused_and_nothing_is_logged(
    server, artifact, predicate, capsys, name, expected
) -> None:
    size = _tree_size(server)
    assert _attest(server, str(artifact), predicate, "custom", "--subject-name", name) == 1
    assert _error(capsys) == expected
    assert _tree_size(server) == size
    assert not artifact.with_name("app.tar.gz.intoto.jsonl").exists()


def test_wrong_identity_is_refused(server, artifact, predicate, capsys) -> None:
    assert (
        _attest(server, str(artifact), predicate, "slsaprovenance1", email="mallory@example.com")
        == 0
    )
    capsys.readouterr()
    assert _verify(server, str(artifact), *_alice(server)) == 1
    assert _error(capsys) == (
        'verification failed (identity): certificate identity "mallory@example.com" does not '
        'match expected "alice@example.com"'
    )


def test_wrong_type_is_refused(server, artifact, predicate, capsys) -> None:
    assert _attest(server, str(artifact), predicate, "slsaprovenance1") == 0
    capsys.readouterr()
    assert _verify(server, str(artifact), *_alice(server), "--type", "spdxjson", "-o", "json") == 1
    out = json.loads(capsys.readouterr().out)
    assert out == {
        "verified": False,
        "check": "type",
        "message": "verification failed (type): the attestation is of predicate type "
        "'https://slsa.dev/provenance/v1', not 'https://spdx.dev/Document'",
    }


def test_a_tampered_statement_is_refused(server, artifact, predicate, capsys) -> None:
    assert _attest(server, str(artifact), predicate, "slsaprovenance1") == 0
    path = artifact.with_name("app.tar.gz.intoto.jsonl")
    bundle = json.loads(path.read_text())
    statement = _statement(path.read_text())
    statement["predicate"]["runDetails"]["builder"]["id"] = "https://evil.example/builder"
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    path.write_text(json.dumps(bundle) + "\n")
    capsys.readouterr()
    assert _verify(server, str(artifact), *_alice(server)) == 1
    assert _error(capsys) == (
        "verification failed (signature): the signature over the DSSE envelope does not verify "
        "with the signing key"
    )


def test_another_artifact_is_refused(server, artifact, predicate, tmp_path, capsys) -> None:
    assert _attest(server, str(artifact), predicate, "slsaprovenance1") == 0
    other = tmp_path / "other.tar.gz"
    other.write_bytes(b"not the release")
    bundle = artifact.with_name("app.tar.gz.intoto.jsonl")
    capsys.readouterr()
    assert _verify(server, str(other), *_alice(server), "--bundle", str(bundle)) == 1
    sha = hashlib.sha256(other.read_bytes()).hexdigest()
    assert _error(capsys).startswith(
        f"verification failed (dsse): artifact sha256:{sha} is not a subject of the in-toto statement"
    )


def test_a_rego_policy_allows_and_denies(server, artifact, predicate, tmp_path, capsys) -> None:
    policy = tmp_path / "release.rego"
    policy.write_text(ALLOW_RELEASE_BUILDER)
    assert _attest(server, str(artifact), predicate, "slsaprovenance1") == 0
    assert _verify(server, str(artifact), *_alice(server), "--policy", str(policy)) == 0
    other = tmp_path / "other-builder.json"
    other.write_text(
        json.dumps({**PROVENANCE, "runDetails": {"builder": {"id": "https://ci.example/x"}}})
    )
    second = tmp_path / "second.tar.gz"
    second.write_bytes(b"second")
    assert _attest(server, str(second), other, "slsaprovenance1") == 0
    capsys.readouterr()
    assert _verify(server, str(second), *_alice(server), "--policy", str(policy)) == 1
    assert _error(capsys) == (
        "verification failed (policy): policy release.rego denies: builder "
        "https://ci.example/x is not the release workflow"
    )


def test_a_policy_that_does_not_compile_or_is_not_rego_is_a_clear_error(
    server, artifact, predicate, tmp_path, capsys
) -> None:
    assert _attest(server, str(artifact), predicate, "slsaprovenance1") == 0
    broken = tmp_path / "broken.rego"
    broken.write_text("package signature\nallow {{{\n")
    capsys.readouterr()
    assert _verify(server, str(artifact), *_alice(server), "--policy", str(broken)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # regopy's own error printing is silenced
    assert "error: policy broken.rego does not compile: " in captured.err
    cue = tmp_path / "policy.cue"
    cue.write_text("predicateType: string")
    with pytest.raises(SystemExit) as exit_info:
        _verify(server, str(artifact), *_alice(server), "--policy", str(cue))
    assert exit_info.value.code == 2
    assert "only Rego (.rego) policies are supported" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "kind", "expected"),
    [
        (
            "{not json",
            "custom",
            "is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2",
        ),
        ('["a"]', "custom", "is a JSON list, not an object"),
        ('{"x": NaN}', "custom", "is not valid JSON: NaN is not JSON"),
        (
            json.dumps({"spdxVersion": "SPDX-2.3"}),
            "cyclonedx",
            'is not a https://cyclonedx.org/bom predicate: a CycloneDX BOM has bomFormat "CycloneDX"',
        ),
        (
            json.dumps({"bomFormat": "CycloneDX"}),
            "slsaprovenance1",
            "is not a https://slsa.dev/provenance/v1 predicate: SLSA v1 provenance has buildDefinition and runDetails objects",
        ),
        (
            json.dumps({"bomFormat": "CycloneDX"}),
            "spdxjson",
            'is not a https://spdx.dev/Document predicate: an SPDX JSON document has spdxVersion "SPDX-x.y"',
        ),
        (
            json.dumps(
                {
                    "_type": "https://in-toto.io/Statement/v1",
                    "subject": [],
                    "predicateType": "x",
                    "predicate": {},
                }
            ),
            "custom",
            "is a whole in-toto statement, not a predicate",
        ),
        ('{"x": "\\ud800"}', "custom", "has a string that is not valid Unicode (a lone surrogate)"),
    ],
)
def test_bad_predicates_are_refused_and_nothing_is_logged(
    server, artifact, tmp_path, capsys, content, kind, expected
) -> None:
    predicate = tmp_path / "predicate.json"
    predicate.write_text(content)
    size = _tree_size(server)
    assert _attest(server, str(artifact), predicate, kind) == 1
    message = _error(capsys)
    assert message.endswith(expected), message
    assert _tree_size(server) == size
    assert not artifact.with_name("app.tar.gz.intoto.jsonl").exists()


def test_an_oversized_predicate_or_unknown_type_is_refused_and_nothing_is_logged(
    server, artifact, predicate, tmp_path, capsys
) -> None:
    large = tmp_path / "large.json"
    large.write_text(json.dumps({"blob": "x" * (512 * 1024)}))
    size = _tree_size(server)
    assert _attest(server, str(artifact), large, "custom") == 1
    assert _error(capsys) == f"predicate: {large} is larger than 524288 bytes"
    assert _attest(server, str(artifact), predicate, "slsa") == 1
    assert _error(capsys).startswith(
        "unknown predicate type 'slsa': use a URI or one of custom, cyclonedx"
    )
    assert _tree_size(server) == size


@pytest.mark.parametrize(("flags", "rekor_version"), [((), 2), (("--rekor-version", "1"), 1)])
def test_sigstore_python_verifies_a_keyless_attestation(
    server, artifact, predicate, tmp_path, flags, rekor_version
) -> None:
    """sigstore-python as the oracle: our DSSE bundle (v2: a hashedrekord over the PAE with an
    RFC 3161 timestamp; v1: a dsse entry) verifies with its Verifier.verify_dsse."""
    from sigstore.models import Bundle as SigstoreBundle
    from sigstore.models import TrustedRoot as SigstoreTrustedRoot
    from sigstore.verify import Verifier as SigstoreVerifier
    from sigstore.verify.policy import Identity

    bundle_path = tmp_path / "one.sigstore.json"
    made = _attest(
        server, str(artifact), predicate, "slsaprovenance1", "--bundle", str(bundle_path), *flags
    )
    assert made == 0
    _check_logged_as(json.loads(bundle_path.read_text()), rekor_version)
    root = tmp_path / "trusted_root.json"
    root.write_bytes(
        requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=30).content
    )
    verifier = SigstoreVerifier(trusted_root=SigstoreTrustedRoot.from_file(str(root)))
    payload_type, payload = verifier.verify_dsse(
        SigstoreBundle.from_json(bundle_path.read_text()),
        Identity(identity="alice@example.com", issuer=f"{server.url}/oidc"),
    )
    assert payload_type == "application/vnd.in-toto+json"
    assert json.loads(payload)["predicate"] == PROVENANCE


def test_keyless_verifies_a_sigstore_python_attestation(
    server, artifact, predicate, tmp_path, capsys
) -> None:
    """`sigstore attest` (sigstore-python 4.x) against keyless serve, verified by keyless."""
    trust_config = tmp_path / "client_trust_config.json"
    trust_config.write_bytes(
        requests.get(f"{server.url}/api/v1/trust/client_trust_config.json", timeout=30).content
    )
    bundle = tmp_path / "sigstore-python.sigstore.json"
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "sigstore",
            "--trust-config",
            str(trust_config),
            "attest",
            "--predicate",
            str(predicate),
            "--predicate-type",
            SLSA_V1,
            "--identity-token",
            server.email_token("carol@example.com"),
            "--bundle",
            str(bundle),
            str(artifact),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    carol = [
        "--certificate-identity",
        "carol@example.com",
        "--certificate-oidc-issuer",
        f"{server.url}/oidc",
    ]
    assert (
        main(
            [
                "verify-attestation",
                "--trust-config",
                str(trust_config),
                "--bundle",
                str(bundle),
                *carol,
                "--type",
                "slsaprovenance1",
                "-o",
                "json",
                str(artifact),
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["attestations"][0]["statement"]["predicate"] == PROVENANCE
    assert out["attestations"][0]["identity"] == "carol@example.com"


def test_a_missing_target_is_refused_before_anything_is_logged(
    server, predicate, tmp_path, capsys
) -> None:
    size = _tree_size(server)
    missing = tmp_path / "missing.tar.gz"
    assert _attest(server, str(missing), predicate, "slsaprovenance1") == 1
    assert _error(capsys) == f"cannot read {missing}: No such file or directory"
    assert _tree_size(server) == size


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", "invalid choice: 3 (choose from 1, 2)"), ("v2", "invalid int value: 'v2'")],
)
def test_a_bad_rekor_version_is_a_usage_error_and_nothing_is_logged(
    server, artifact, predicate, capsys, value, expected
) -> None:
    size = _tree_size(server)
    with pytest.raises(SystemExit) as exited:
        _attest(server, str(artifact), predicate, "slsaprovenance1", "--rekor-version", value)
    assert exited.value.code == 2
    assert f"argument --rekor-version: {expected}" in capsys.readouterr().err
    assert _tree_size(server) == size
    assert not artifact.with_name("app.tar.gz.intoto.jsonl").exists()


def _signing_config(server, tmp_path: Path, edit) -> list[str]:
    """--signing-config/--trusted-root flags for the server's config changed by `edit`."""
    config = requests.get(f"{server.url}/api/v1/trust/signing_config.json", timeout=30).json()
    edit(config)
    config_path = tmp_path / "signing_config.json"
    config_path.write_text(json.dumps(config))
    root_path = tmp_path / "trusted_root.json"
    root_path.write_bytes(
        requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=30).content
    )
    return ["--signing-config", str(config_path), "--trusted-root", str(root_path)]


def _attest_with(server, flags: list[str], predicate: Path, target: Path) -> int:
    token = server.email_token("alice@example.com")
    argv = ["attest", *flags, "--identity-token", token, "--predicate", str(predicate)]
    return main([*argv, "--type", "slsaprovenance1", str(target)])


def test_rekor_version_2_without_a_v2_log_is_refused_and_nothing_is_logged(
    server, artifact, predicate, tmp_path, capsys
) -> None:
    def only_v1(config: dict) -> None:
        config["rekorTlogUrls"] = [
            log for log in config["rekorTlogUrls"] if log["majorApiVersion"] == 1
        ]

    flags = _signing_config(server, tmp_path, only_v1)
    size = _tree_size(server)
    assert _attest_with(server, [*flags, "--rekor-version", "2"], predicate, artifact) == 1
    assert _error(capsys) == "the signing config lists no current v2 service in rekorTlogUrls"
    assert _tree_size(server) == size
    assert not artifact.with_name("app.tar.gz.intoto.jsonl").exists()
    # Without the flag, such a config is followed into its v1 log.
    assert _attest_with(server, flags, predicate, artifact) == 0
    _check_logged_as(json.loads(artifact.with_name("app.tar.gz.intoto.jsonl").read_text()), 1)
    assert _tree_size(server) == (size[0] + 1, size[1])


def test_a_refusing_tsa_stops_the_attestation_before_anything_is_logged(
    server, artifact, predicate, tmp_path, capsys
) -> None:
    from flask import Flask, Response

    from keyless.tsa.authority import reject
    from tests.conftest import serve_wsgi

    refusing = Flask("refusing-tsa")

    @refusing.post("/api/v1/timestamp")
    def timestamp() -> Response:
        der = reject("system_failure", "the TSA is closed for maintenance")
        return Response(der, status=400, mimetype="application/timestamp-reply")

    with serve_wsgi(refusing) as tsa:
        url = f"{tsa}/api/v1/timestamp"
        flags = _signing_config(server, tmp_path, lambda c: c["tsaUrls"][0].update(url=url))
        size = _tree_size(server)
        assert _attest_with(server, flags, predicate, artifact) == 1
    assert _error(capsys) == (
        f"the timestamp authority at {url} refused the request (HTTP 400): "
        "the TSA is closed for maintenance"
    )
    assert _tree_size(server) == size
    assert not artifact.with_name("app.tar.gz.intoto.jsonl").exists()

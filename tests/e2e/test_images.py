"""Container images end to end (issue 6): `keyless sign IMAGE`, `keyless verify IMAGE`, `tree`.

Real pieces only: the dev-mode keyless server (CA, log, trust root, dev tokens for alice and
bob), Debian's docker-registry on loopback (with and without htpasswd), images generated and
pushed by the test with plain `requests` (tests/registry.py), and `cli.main.main` in-process.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
import requests

from keyless.cli.main import main
from tests.registry import OCI_INDEX, OCI_MANIFEST, Pusher, RunningRegistry

BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
ALICE = "alice@example.com"
BOB = "bob@example.com"


def _sign(server, image: str, email: str, *extra: str) -> int:
    token = server.email_token(email)
    return main(
        [
            "sign",
            "--server",
            server.url,
            "--identity-token",
            token,
            "--allow-insecure-registry",
            *extra,
            image,
        ]
    )


def _policy(server, email: str) -> list[str]:
    return [
        "--certificate-identity",
        email,
        "--certificate-oidc-issuer",
        f"{server.url}/oidc",
    ]


def _verify(server, image: str, email: str = ALICE, *extra: str) -> int:
    return main(
        [
            "verify",
            "--server",
            server.url,
            "--allow-insecure-registry",
            *_policy(server, email),
            *extra,
            image,
        ]
    )


def _error(capsys) -> str:
    return _error_in(capsys.readouterr().err)


def _error_in(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert lines, f"expected an error line on stderr, got {err!r}"
    return lines[0].removeprefix("error: ")


def _get(registry: RunningRegistry, path: str, accept: str = OCI_MANIFEST) -> requests.Response:
    return requests.get(f"{registry.url}{path}", headers={"Accept": accept}, timeout=30)


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


@pytest.fixture
def signed_image(server, registry, pusher: Pusher, capsys, request):
    """An image pushed as `<test>:1.0` and signed by alice by tag."""
    repository = f"e2e/{request.node.name.replace('_', '-')[:60]}"
    image = pusher.push_image(repository, "1.0", seed=request.node.name)
    assert _sign(server, image.reference, ALICE) == 0
    captured = capsys.readouterr()
    assert f"resolved {image.reference} to {image.digest}" in captured.err
    assert captured.out.strip() == f"{registry.host}/{repository}@{image.digest}"
    return image


def test_sign_by_tag_then_verify_by_tag_and_by_digest(server, registry, signed_image, capsys):
    assert _verify(server, signed_image.reference) == 0
    err = capsys.readouterr().err
    assert f"resolved {signed_image.reference} to {signed_image.digest}" in err
    assert f"@{signed_image.digest} signed by {ALICE}" in err
    pinned = signed_image.reference.rsplit(":", 1)[0] + "@" + signed_image.digest
    assert _verify(server, pinned) == 0
    assert "Verified OK" in capsys.readouterr().err


def test_json_output_lists_each_verified_payload(server, registry, signed_image, capsys):
    assert _verify(server, signed_image.reference, ALICE, "-o", "json") == 0
    result = json.loads(capsys.readouterr().out)
    repository = signed_image.reference.rsplit(":", 1)[0]
    assert result["verified"] is True
    assert result["outcome"] == "pass"
    assert result["artifact"] == f"{repository}@{signed_image.digest}"
    assert result["digest"] == signed_image.digest
    assert (result["identity"], result["issuer"]) == (ALICE, f"{server.url}/oidc")
    assert result["error"] is None
    payloads = result["signatures"]
    sources = sorted(p["source"] for p in payloads)
    assert sources == ["fallback-tag", "legacy-tag"]
    for payload in payloads:
        assert payload["identity"] == ALICE
        assert payload["issuer"] == f"{server.url}/oidc"
        assert isinstance(payload["log"]["index"], int)
        assert payload["log"]["url"] == server.url
        assert len(payload["signedTimes"]) >= 1
    types = {p["source"]: p["type"] for p in payloads}
    assert types == {
        "fallback-tag": COSIGN_PREDICATE,
        "legacy-tag": "cosign container image signature",
    }


def test_referrer_and_legacy_tag_carry_the_expected_media_types(registry, signed_image):
    repository = signed_image.reference.split("/", 1)[1].rsplit(":", 1)[0]
    fallback = _get(
        registry, f"/v2/{repository}/manifests/sha256-{_hex(signed_image.digest)}", OCI_INDEX
    )
    assert fallback.status_code == 200
    assert fallback.headers["Content-Type"] == OCI_INDEX
    (entry,) = fallback.json()["manifests"]
    assert entry["artifactType"] == BUNDLE_TYPE
    assert entry["annotations"]["dev.sigstore.bundle.predicateType"] == COSIGN_PREDICATE
    referrer = _get(registry, f"/v2/{repository}/manifests/{entry['digest']}").json()
    assert referrer["artifactType"] == BUNDLE_TYPE
    assert referrer["subject"]["digest"] == signed_image.digest
    assert referrer["subject"]["mediaType"] == OCI_MANIFEST
    assert referrer["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    (layer,) = referrer["layers"]
    assert layer["mediaType"] == BUNDLE_TYPE
    bundle = _get(registry, f"/v2/{repository}/blobs/{layer['digest']}").json()
    assert bundle["mediaType"] == BUNDLE_TYPE
    assert bundle["verificationMaterial"]["tlogEntries"][0]["kindVersion"] == {
        "kind": "dsse",
        "version": "0.0.1",
    }
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    assert statement["predicateType"] == COSIGN_PREDICATE
    assert statement["subject"] == [{"digest": {"sha256": _hex(signed_image.digest)}}]

    legacy = _get(registry, f"/v2/{repository}/manifests/sha256-{_hex(signed_image.digest)}.sig")
    assert legacy.status_code == 200
    (layer,) = legacy.json()["layers"]
    assert layer["mediaType"] == SIMPLESIGNING
    assert set(layer["annotations"]) == {
        "dev.cosignproject.cosign/signature",
        "dev.sigstore.cosign/certificate",
        "dev.sigstore.cosign/chain",
        "dev.sigstore.cosign/bundle",
    }
    payload = _get(registry, f"/v2/{repository}/blobs/{layer['digest']}").json()
    assert payload["critical"]["image"]["docker-manifest-digest"] == signed_image.digest
    assert payload["critical"]["type"] == "cosign container image signature"
    rekor = json.loads(layer["annotations"]["dev.sigstore.cosign/bundle"])
    assert set(rekor["Payload"]) == {"body", "integratedTime", "logIndex", "logID"}


def test_signing_again_keeps_the_existing_legacy_signature(server, registry, signed_image, capsys):
    assert _sign(server, signed_image.reference, BOB) == 0
    capsys.readouterr()
    repository = signed_image.reference.split("/", 1)[1].rsplit(":", 1)[0]
    legacy = _get(registry, f"/v2/{repository}/manifests/sha256-{_hex(signed_image.digest)}.sig")
    assert len(legacy.json()["layers"]) == 2
    fallback = _get(
        registry, f"/v2/{repository}/manifests/sha256-{_hex(signed_image.digest)}", OCI_INDEX
    )
    assert len(fallback.json()["manifests"]) == 2
    assert _verify(server, signed_image.reference, ALICE) == 0
    assert _verify(server, signed_image.reference, BOB) == 0


def test_repointed_tag_has_no_signatures_while_the_old_digest_still_verifies(
    server, registry, pusher, signed_image, capsys
):
    repository = signed_image.reference.split("/", 1)[1].rsplit(":", 1)[0]
    unsigned = pusher.push_image(repository, "1.0", seed="a different, unsigned build")
    assert unsigned.digest != signed_image.digest
    assert _verify(server, signed_image.reference) == 1
    assert _error(capsys) == f"no signatures found for {unsigned.digest}"
    pinned = f"{registry.host}/{repository}@{signed_image.digest}"
    assert _verify(server, pinned) == 0


def test_image_signed_by_bob_fails_for_alice_naming_bob(server, registry, pusher, capsys):
    image = pusher.push_image("e2e/bobs-image", "latest", seed="bob's build")
    assert _sign(server, image.reference, BOB) == 0
    capsys.readouterr()
    assert _verify(server, image.reference, ALICE) == 1
    message = _error(capsys)
    assert message.startswith(
        f"none of the signatures on {image.digest} is by the expected identity"
    )
    assert message.endswith(f"signed by: {BOB} (issuer {server.url}/oidc)")


def test_no_legacy_tag_writes_only_the_referrer(server, registry, pusher, capsys):
    image = pusher.push_image("e2e/no-legacy", "v1", seed="no legacy")
    assert _sign(server, image.reference, ALICE, "--no-legacy-tag") == 0
    assert "and tag" not in capsys.readouterr().err
    legacy = _get(registry, f"/v2/e2e/no-legacy/manifests/sha256-{_hex(image.digest)}.sig")
    assert legacy.status_code == 404
    assert _verify(server, image.reference, ALICE, "-o", "json") == 0
    payloads = json.loads(capsys.readouterr().out)["signatures"]
    assert [p["source"] for p in payloads] == ["fallback-tag"]


def test_bundle_option_writes_the_image_bundle(server, registry, pusher, tmp_path, capsys):
    image = pusher.push_image("e2e/local-bundle", "v1", seed="local bundle")
    path = tmp_path / "image.sigstore.json"
    assert _sign(server, image.reference, ALICE, "--bundle", str(path)) == 0
    bundle = json.loads(path.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    assert statement["subject"] == [{"digest": {"sha256": _hex(image.digest)}}]
    # The local bundle verifies as a bundle for the digest, like any other.
    assert (
        main(
            [
                "verify",
                "--server",
                server.url,
                *_policy(server, ALICE),
                "--bundle",
                str(path),
                image.digest,
            ]
        )
        == 0
    )


def test_multi_arch_index_recursive(server, registry, pusher: Pusher, capsys):
    index, children = pusher.push_index(
        "e2e/multi", "2.0", seed="multi", platforms=[("linux", "amd64"), ("linux", "arm64")]
    )
    assert _sign(server, index.reference, ALICE, "--recursive") == 0
    captured = capsys.readouterr()
    signed = captured.out.split()
    assert signed == [
        f"{registry.host}/e2e/multi@{d}" for d in [index.digest] + [c.digest for c in children]
    ]
    assert "[linux/arm64]" in captured.err
    for digest in [index.digest] + [c.digest for c in children]:
        assert _verify(server, f"{registry.host}/e2e/multi@{digest}") == 0


def test_index_without_recursive_signs_only_the_index(server, registry, pusher: Pusher, capsys):
    index, children = pusher.push_index(
        "e2e/multi-top", "2.0", seed="multi-top", platforms=[("linux", "amd64")]
    )
    assert _sign(server, index.reference, ALICE) == 0
    assert capsys.readouterr().out.split() == [f"{registry.host}/e2e/multi-top@{index.digest}"]
    assert _verify(server, index.reference) == 0
    capsys.readouterr()
    assert _verify(server, f"{registry.host}/e2e/multi-top@{children[0].digest}") == 1
    assert _error(capsys) == f"no signatures found for {children[0].digest}"


def test_signature_for_a_different_digest_is_named(server, registry, pusher, signed_image, capsys):
    """A copy of another digest's signatures (legacy tag and fallback index) does not count."""
    repository = signed_image.reference.split("/", 1)[1].rsplit(":", 1)[0]
    other = pusher.push_image(repository, "other", seed="an image nobody signed")
    for suffix, accept in ((".sig", OCI_MANIFEST), ("", OCI_INDEX)):
        copied = _get(
            registry,
            f"/v2/{repository}/manifests/sha256-{_hex(signed_image.digest)}{suffix}",
            accept,
        )
        pusher.push_manifest(
            repository,
            f"sha256-{_hex(other.digest)}{suffix}",
            copied.content,
            copied.headers["Content-Type"],
        )
    assert _verify(server, other.reference) == 1
    message = _error(capsys)
    assert message.startswith(f"the signatures found for {other.digest} are for a different digest")
    assert signed_image.digest in message


def test_referrers_api_registry(server, referrers_registry, capsys):
    pusher = Pusher(referrers_registry)
    image = pusher.push_image("e2e/referrers", "1.0", seed="referrers api")
    assert _sign(server, image.reference, ALICE) == 0
    assert "(referrers-api)" in capsys.readouterr().err
    # No fallback tag is written when the registry indexes referrers itself.
    fallback = requests.get(
        f"{referrers_registry.url}/v2/e2e/referrers/manifests/sha256-{_hex(image.digest)}",
        headers={"Accept": OCI_INDEX},
        timeout=30,
    )
    assert fallback.status_code == 404
    assert _verify(server, image.reference, ALICE, "-o", "json") == 0
    signatures = json.loads(capsys.readouterr().out)["signatures"]
    sources = sorted(p["source"] for p in signatures)
    assert sources == ["legacy-tag", "referrers-api"]


def test_tree_lists_what_is_attached(server, registry, signed_image, capsys):
    assert main(["tree", "--allow-insecure-registry", "-o", "json", signed_image.reference]) == 0
    listing = json.loads(capsys.readouterr().out)
    name = signed_image.reference.rsplit(":", 1)[0]
    assert listing["image"] == f"{name}@{signed_image.digest}"
    assert listing["referrersApi"] is False
    (referrer,) = listing["referrers"]
    assert referrer["artifactType"] == BUNDLE_TYPE
    assert referrer["source"] == "fallback-tag"
    assert listing["tags"] == [f"sha256-{_hex(signed_image.digest)}.sig"]
    assert main(["tree", "--allow-insecure-registry", signed_image.reference]) == 0
    text = capsys.readouterr().out
    assert f"predicate {COSIGN_PREDICATE}" in text
    assert f"tag {name}:sha256-{_hex(signed_image.digest)}.sig" in text


def test_tree_of_an_unsigned_image(registry, pusher, capsys):
    image = pusher.push_image("e2e/bare", "1", seed="bare")
    assert main(["tree", "--allow-insecure-registry", image.reference]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "  no attached artifacts found"


# Registry access.


@pytest.fixture
def auth_image(auth_registry):
    return Pusher(auth_registry).push_image("private/app", "1.0", seed="private")


@pytest.mark.parametrize("command", ["sign", "verify", "tree"])
def test_auth_registry_without_credentials_is_a_clear_error(
    server, auth_registry, auth_image, command, capsys
):
    if command == "sign":
        code = _sign(server, auth_image.reference, ALICE)
    elif command == "verify":
        code = _verify(server, auth_image.reference)
    else:
        code = main(["tree", "--allow-insecure-registry", auth_image.reference])
    # verify cannot decide (3) when the registry refuses it; sign and tree fail (1).
    assert code == (3 if command == "verify" else 1)
    message = _error(capsys)
    assert message == (
        f"authentication required: {auth_registry.host} needs credentials to pull from private/app"
    )
    # Nothing was attached to the image.
    assert (
        requests.get(
            f"{auth_registry.url}/v2/private/app/manifests/sha256-{_hex(auth_image.digest)}.sig",
            auth=("ci", "push-secret-9"),
            timeout=30,
        ).status_code
        == 404
    )


def test_auth_registry_with_credentials_from_stdin(
    server, auth_registry, auth_image, monkeypatch, capsys
):
    monkeypatch.setattr("sys.stdin", io.StringIO("push-secret-9\n"))
    creds = ["--registry-username", "ci", "--registry-password-stdin"]
    assert _sign(server, auth_image.reference, ALICE, *creds) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("push-secret-9\n"))
    assert _verify(server, auth_image.reference, ALICE, *creds) == 0


def test_auth_registry_with_docker_config(server, auth_registry, auth_image, tmp_path, monkeypatch):
    config = tmp_path / "docker"
    config.mkdir()
    auth = base64.b64encode(b"ci:push-secret-9").decode()
    (config / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    assert _sign(server, auth_image.reference, ALICE) == 0
    assert _verify(server, auth_image.reference) == 0


def test_plain_http_registry_needs_allow_insecure(server, registry, pusher, capsys):
    image = pusher.push_image("e2e/insecure", "1", seed="insecure")
    assert main(["tree", image.reference]) == 1
    err = capsys.readouterr().err
    assert _error_in(err).startswith(f"cannot reach {registry.host}")
    assert "hint: if the registry speaks plain HTTP (loopback or a private network), pass " in err


def test_missing_file_is_not_taken_for_an_image(server, tmp_path: Path, capsys):
    missing = tmp_path / "dist" / "app.tar.gz"
    assert _sign(server, str(missing), ALICE) == 1
    assert _error(capsys) == f"cannot read {missing}: No such file or directory"


def test_sigstore_python_verifies_the_image_bundle(server, registry, pusher, tmp_path, capsys):
    """The reference client accepts the DSSE bundle and finds the image digest as its subject."""
    from sigstore.models import Bundle as SigstoreBundle
    from sigstore.models import TrustedRoot as SigstoreRoot
    from sigstore.verify import Verifier as SigstoreVerifier
    from sigstore.verify import policy

    image = pusher.push_image("e2e/interop", "1", seed="interop")
    path = tmp_path / "image.sigstore.json"
    assert _sign(server, image.reference, ALICE, "--bundle", str(path)) == 0
    root = tmp_path / "trusted_root.json"
    root.write_bytes(
        requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=30).content
    )
    verifier = SigstoreVerifier(trusted_root=SigstoreRoot.from_file(str(root)))
    payload_type, payload = verifier.verify_dsse(
        SigstoreBundle.from_json(path.read_text()),
        policy.Identity(identity=ALICE, issuer=f"{server.url}/oidc"),
    )
    assert payload_type == "application/vnd.in-toto+json"
    statement = json.loads(payload)
    assert statement["predicateType"] == COSIGN_PREDICATE
    assert statement["subject"] == [{"digest": {"sha256": _hex(image.digest)}}]


def test_token_registry_push_needs_credentials_pull_does_not(
    server, token_registry, monkeypatch, capsys
):
    """The bearer-token challenge flow: anonymous tokens pull, pushing needs a login."""
    image = Pusher(token_registry).push_image("team/app", "1.0", seed="token realm")
    assert _sign(server, image.reference, ALICE) == 1
    assert _error(capsys) == (
        f"authentication required: {token_registry.host} needs credentials to push to team/app"
    )
    capsys.readouterr()
    assert _verify(server, image.reference) == 1
    assert _error(capsys) == f"no signatures found for {image.digest}"
    monkeypatch.setattr("sys.stdin", io.StringIO("token-secret-3\n"))
    creds = ["--registry-username", "ci", "--registry-password-stdin"]
    assert _sign(server, image.reference, ALICE, *creds) == 0
    assert _verify(server, image.reference) == 0
    scopes = {scope for _, scope in token_registry.token_server.requests_seen}
    assert "repository:team/app:pull,push" in scopes


GITHUB_SAN = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"


def test_github_actions_signer_with_workflow_claims(server, registry, pusher, capsys):
    """The CI case: a release workflow signs, the deploy gate pins repository and ref."""
    image = pusher.push_image("acme/app", "1.4", seed="release 1.4")
    token = server.github_token()
    assert (
        main(
            [
                "sign",
                "--server",
                server.url,
                "--identity-token",
                token,
                "--allow-insecure-registry",
                image.reference,
            ]
        )
        == 0
    )
    capsys.readouterr()
    gate = [
        "verify",
        "--server",
        server.url,
        "--allow-insecure-registry",
        "--certificate-identity",
        GITHUB_SAN,
        "--certificate-oidc-issuer",
        f"{server.url}/oidc/github",
        "--certificate-github-workflow-repository",
    ]
    assert (
        main(
            [
                *gate,
                "acme/app",
                "--certificate-github-workflow-ref",
                "refs/heads/main",
                image.reference,
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main([*gate, "evil/app", image.reference]) == 1
    message = _error(capsys)
    assert message.startswith(
        f"none of the signatures on {image.digest} is by the expected identity"
    )
    assert message.endswith(f"signed by: {GITHUB_SAN} (issuer {server.url}/oidc/github)")


def test_verify_of_a_digest_the_registry_lacks_is_undecided(server, registry, pusher, capsys):
    pusher.push_image("e2e/present", "1", seed="present")
    missing = f"{registry.host}/e2e/present@sha256:{'0' * 64}"
    assert _verify(server, missing, ALICE, "-o", "json") == 3
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert (result["outcome"], result["error"]["reason"]) == ("error", "not-found")
    assert _error_in(captured.err) == result["error"]["message"]


def test_refusal_in_json_names_the_pinned_image_and_the_reason(server, registry, pusher, capsys):
    image = pusher.push_image("e2e/json-refusal", "2", seed="json refusal")
    assert _sign(server, image.reference, BOB) == 0
    capsys.readouterr()
    assert _verify(server, image.reference, ALICE, "-o", "json") == 1
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result == {
        "verified": False,
        "outcome": "fail",
        "artifact": f"{registry.host}/e2e/json-refusal@{image.digest}",
        "digest": image.digest,
        "identity": None,
        "issuer": None,
        "signatures": [],
        "error": {"reason": "identity-mismatch", "message": _error_in(captured.err)},
    }

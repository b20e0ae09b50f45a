"""Image signatures that must not count, and signings that must not happen, one defect each.

Each verification case leaves exactly one signature on a real image in a real registry (the
other form is deleted), changes it the way an attacker or a broken tool would, and asserts
the exact one-line failure. Signing refusals assert that nothing reached the registry or log.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import requests

from keyless.cli.main import main
from keyless.client.oci import RegistryClient, parse_reference, push_bundle
from keyless.client.sign.fulcio import CAClient
from keyless.client.sign.images import cosign_statement
from keyless.client.sign.rekor import LogClient
from keyless.client.sign.signer import EphemeralSigner
from tests.registry import OCI_INDEX, OCI_MANIFEST, PushedImage, Pusher, RunningRegistry

ALICE = "alice@example.com"
SIGNATURE = "dev.cosignproject.cosign/signature"
CERTIFICATE = "dev.sigstore.cosign/certificate"
REKOR_BUNDLE = "dev.sigstore.cosign/bundle"


def _verify(server, image: str) -> int:
    return main(
        [
            "verify",
            "--server",
            server.url,
            "--allow-insecure-registry",
            "--certificate-identity",
            ALICE,
            "--certificate-oidc-issuer",
            f"{server.url}/oidc",
            image,
        ]
    )


def _sign(server, image: str, token: str, *extra: str) -> int:
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


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    return line.removeprefix("error: ")


def _manifest(registry: RunningRegistry, repository: str, tag: str, accept: str):
    return requests.get(
        f"{registry.url}/v2/{repository}/manifests/{tag}", headers={"Accept": accept}, timeout=30
    )


def _tree_size(server) -> int:
    return requests.get(f"{server.url}/api/v1/log", timeout=30).json()["treeSize"]


@dataclass(frozen=True)
class LegacyOnly:
    """An image whose only signature is alice's cosign v2 layer at `sha256-<hex>.sig`."""

    pusher: Pusher
    repository: str
    image: PushedImage
    manifest: dict

    @property
    def tag(self) -> str:
        return f"sha256-{self.image.digest.removeprefix('sha256:')}.sig"

    def rewrite(self, **annotations: str | None) -> None:
        """Push the `.sig` manifest again with these layer annotations changed (None: removed)."""
        manifest = json.loads(json.dumps(self.manifest))
        layer = manifest["layers"][0]["annotations"]
        for key, value in annotations.items():
            if value is None:
                layer.pop(_ANNOTATIONS[key])
            else:
                layer[_ANNOTATIONS[key]] = value
        self.pusher.push_manifest(
            self.repository, self.tag, json.dumps(manifest).encode(), OCI_MANIFEST
        )


_ANNOTATIONS = {"signature": SIGNATURE, "certificate": CERTIFICATE, "rekor": REKOR_BUNDLE}


def _sign_legacy_only(server, registry, pusher, repository: str, seed: str) -> LegacyOnly:
    image = pusher.push_image(repository, "1", seed=seed)
    assert _sign(server, image.reference, server.email_token(ALICE)) == 0
    hex_digest = image.digest.removeprefix("sha256:")
    fallback = _manifest(registry, repository, f"sha256-{hex_digest}", OCI_INDEX)
    pusher.delete_manifest(repository, fallback.headers["Docker-Content-Digest"])
    legacy = _manifest(registry, repository, f"sha256-{hex_digest}.sig", OCI_MANIFEST)
    return LegacyOnly(pusher, repository, image, legacy.json())


@pytest.fixture
def legacy_only(server, registry, pusher, request) -> LegacyOnly:
    return _sign_legacy_only(
        server, registry, pusher, _repository(request.node.name), request.node.name
    )


def _repository(test_name: str) -> str:
    """A valid repository name for a test (no `_`, no trailing separator)."""
    return "refusals/" + test_name.removeprefix("test_")[:40].replace("_", "-").strip("-")


def test_legacy_only_signature_verifies_untouched(server, legacy_only, capsys):
    """The baseline for the cases below: the one remaining signature is valid."""
    assert _verify(server, legacy_only.image.reference) == 0
    assert "found via legacy-tag" in capsys.readouterr().err


def _invalid(digest: str, detail: str) -> str:
    return f"no valid signature for {digest}: 1 found, none verifies (legacy-tag: {detail})"


def test_tampered_legacy_signature(server, legacy_only, capsys):
    raw = bytearray(base64.b64decode(legacy_only.manifest["layers"][0]["annotations"][SIGNATURE]))
    raw[-1] ^= 0x01
    legacy_only.rewrite(signature=base64.b64encode(bytes(raw)).decode())
    assert _verify(server, legacy_only.image.reference) == 1
    assert _error(capsys) == _invalid(
        legacy_only.image.digest,
        "verification failed (signature): the signature over the artifact does not verify "
        "with the signing key",
    )


def test_legacy_signature_without_certificate(server, legacy_only, capsys):
    legacy_only.rewrite(certificate=None)
    assert _verify(server, legacy_only.image.reference) == 1
    assert _error(capsys) == _invalid(
        legacy_only.image.digest, "it is signed with a managed key, not a certificate"
    )


def test_legacy_signature_with_malformed_log_annotation(server, legacy_only, capsys):
    legacy_only.rewrite(rekor='{"Payload": []}')
    assert _verify(server, legacy_only.image.reference) == 1
    assert _error(capsys) == _invalid(
        legacy_only.image.digest, "its transparency log annotation is malformed"
    )


def test_legacy_signature_logged_in_an_untrusted_log(server, legacy_only, capsys):
    rekor = json.loads(legacy_only.manifest["layers"][0]["annotations"][REKOR_BUNDLE])
    rekor["Payload"]["logID"] = "ab" * 32
    legacy_only.rewrite(rekor=json.dumps(rekor))
    assert _verify(server, legacy_only.image.reference) == 1
    assert _error(capsys) == _invalid(
        legacy_only.image.digest, f"it is logged in a log not in the trusted root ({'ab' * 32})"
    )


def test_legacy_signature_pointing_at_another_log_entry(
    server, registry, pusher, legacy_only, capsys
):
    """The log evidence of another real signing, attached to this one."""
    other = _sign_legacy_only(server, registry, pusher, "refusals/other-entry", "other entry")
    rekor = other.manifest["layers"][0]["annotations"][REKOR_BUNDLE]
    legacy_only.rewrite(rekor=rekor)
    assert _verify(server, legacy_only.image.reference) == 1
    logged = other.manifest["layers"][0]["digest"]
    signed = legacy_only.manifest["layers"][0]["digest"]
    assert _error(capsys) == _invalid(
        legacy_only.image.digest,
        f"verification failed (log-body): log entry is for artifact {logged}, not {signed}",
    )


def test_legacy_signature_naming_an_entry_with_another_body(server, legacy_only, capsys):
    rekor = json.loads(legacy_only.manifest["layers"][0]["annotations"][REKOR_BUNDLE])
    index = rekor["Payload"]["logIndex"]
    rekor["Payload"]["logIndex"] = index - 1
    legacy_only.rewrite(rekor=json.dumps(rekor))
    assert _verify(server, legacy_only.image.reference) == 1
    assert _error(capsys) == _invalid(
        legacy_only.image.digest, f"log entry {index - 1} is not the entry the signature names"
    )


# Referrer bundles made with the library, pushed next to an unsigned image.


@pytest.fixture
def bare(registry, pusher, request) -> PushedImage:
    return pusher.push_image(_repository(request.node.name), "1", seed=request.node.name)


def _push(image: PushedImage, bundle: bytes, *, predicate: str | None = None) -> None:
    ref = parse_reference(image.reference)
    with RegistryClient(allow_insecure=True) as client:
        subject = client.resolve(ref).descriptor
        options = {"predicate_type": predicate} if predicate else {}
        push_bundle(
            client,
            ref,
            subject,
            bundle,
            created_at=datetime.now(UTC).replace(microsecond=0),
            **options,
        )


def _signer(server) -> EphemeralSigner:
    return EphemeralSigner(
        token=server.email_token(ALICE),
        ca=CAClient(server.url),
        log=LogClient(server.url),
        trusted_root=None,
    )


def test_attestation_is_not_a_signature(server, bare, capsys):
    statement = json.loads(cosign_statement(bare.digest))
    statement["predicateType"] = "https://slsa.dev/provenance/v1"
    digest = bytes.fromhex(bare.digest.removeprefix("sha256:"))
    result = _signer(server).sign_dsse(
        json.dumps(statement).encode(),
        payload_type="application/vnd.in-toto+json",
        subject_sha256=digest,
    )
    _push(bare, result.to_json().encode(), predicate="https://slsa.dev/provenance/v1")
    assert _verify(server, bare.reference) == 1
    assert _error(capsys) == (
        f"no valid signature for {bare.digest}: 1 found, none verifies (fallback-tag: it is an "
        "attestation (https://slsa.dev/provenance/v1), not a signature)"
    )


def test_tampered_bundle_signature(server, bare, capsys):
    digest = bytes.fromhex(bare.digest.removeprefix("sha256:"))
    result = _signer(server).sign_dsse(
        cosign_statement(bare.digest),
        payload_type="application/vnd.in-toto+json",
        subject_sha256=digest,
    )
    bundle = json.loads(result.to_json())
    raw = bytearray(base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"]))
    raw[-1] ^= 0x01
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    _push(bare, json.dumps(bundle).encode())
    assert _verify(server, bare.reference) == 1
    assert _error(capsys) == (
        f"no valid signature for {bare.digest}: 1 found, none verifies (fallback-tag: "
        "verification failed (signature): the signature over the DSSE envelope does not verify "
        "with the signing key)"
    )


def test_malformed_bundle(server, bare, capsys):
    _push(bare, b'{"dsseEnvelope": {"payload": 1}}')
    assert _verify(server, bare.reference) == 1
    message = _error(capsys)
    assert message.startswith(
        f"no valid signature for {bare.digest}: 1 found, none verifies (fallback-tag: malformed bundle: "
    )


def test_message_signature_over_another_digest(server, bare, capsys):
    result = _signer(server).sign_digest(b"\x11" * 32)
    _push(bare, result.to_json().encode())
    assert _verify(server, bare.reference) == 1
    assert _error(capsys) == (
        f"the signatures found for {bare.digest} are for a different digest "
        f"(fallback-tag: it signs sha256:{'11' * 32})"
    )


def test_message_signature_over_the_manifest_digest_counts(server, bare, capsys):
    """A plain `sha256:` digest signature (keyless sign sha256:...) is a valid image signature."""
    result = _signer(server).sign_digest(bytes.fromhex(bare.digest.removeprefix("sha256:")))
    _push(bare, result.to_json().encode())
    assert _verify(server, bare.reference) == 0
    assert "found via fallback-tag" in capsys.readouterr().err


# Signing refusals: nothing reaches the registry, and the log does not grow.


def _untouched(registry: RunningRegistry, image: PushedImage) -> None:
    repository = image.reference.split("/", 1)[1].rsplit(":", 1)[0]
    hex_digest = image.digest.removeprefix("sha256:")
    for tag in (f"sha256-{hex_digest}", f"sha256-{hex_digest}.sig"):
        assert _manifest(registry, repository, tag, OCI_MANIFEST).status_code == 404


def test_expired_token_signs_nothing(server, registry, bare, capsys):
    size = _tree_size(server)
    expired = server.issuer.mint(
        server.issuer.email_claims(ALICE),
        issuer_url=server.issuer.issuer_url,
        now=datetime.now(UTC),
        expires_in=-600,
    )
    assert _sign(server, bare.reference, expired) == 1
    assert _error(capsys).startswith("the identity token expired at ")
    _untouched(registry, bare)
    assert _tree_size(server) == size


def test_unknown_tag_signs_nothing(server, registry, capsys):
    size = _tree_size(server)
    assert _sign(server, f"{registry.host}/refusals/never-pushed:1", server.email_token(ALICE)) == 1
    assert _error(capsys) == (
        f"manifest {registry.host}/refusals/never-pushed:1 not found (MANIFEST_UNKNOWN)"
    )
    assert _tree_size(server) == size


def test_token_for_another_audience_signs_nothing(server, registry, bare, capsys):
    size = _tree_size(server)
    token = server.issuer.mint(
        server.issuer.email_claims(ALICE),
        issuer_url=server.issuer.issuer_url,
        now=datetime.now(UTC),
        audience="not-sigstore",
    )
    assert _sign(server, bare.reference, token) == 1
    assert _error(capsys).startswith("the CA refused the request: ")
    _untouched(registry, bare)
    assert _tree_size(server) == size


def test_dsse_bundle_that_is_not_an_in_toto_statement(server, bare, capsys):
    digest = bytes.fromhex(bare.digest.removeprefix("sha256:"))
    result = _signer(server).sign_dsse(
        b"just some text", payload_type="text/plain", subject_sha256=digest
    )
    _push(bare, result.to_json().encode())
    assert _verify(server, bare.reference) == 1
    assert _error(capsys) == (
        f"no valid signature for {bare.digest}: 1 found, none verifies (fallback-tag: "
        "verification failed (dsse): envelope payload type 'text/plain' is not "
        "'application/vnd.in-toto+json')"
    )


def test_recursive_refuses_an_oversized_index(server, registry, pusher, capsys):
    child = pusher.push_image("refusals/oversized-index", None, seed="one platform")
    entry = {"mediaType": OCI_MANIFEST, "digest": child.digest, "size": child.size}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry] * 129}
    pushed = pusher.push_manifest(
        "refusals/oversized-index", "all", json.dumps(index).encode(), OCI_INDEX
    )
    size = _tree_size(server)
    token = server.email_token(ALICE)
    assert _sign(server, pushed.reference, token, "--recursive") == 1
    assert _error(capsys) == (
        f"index {registry.host}/refusals/oversized-index@{pushed.digest} lists 129 manifests; "
        "--recursive signs at most 128"
    )
    _untouched(registry, pushed)
    assert _tree_size(server) == size

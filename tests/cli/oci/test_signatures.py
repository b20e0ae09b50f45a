"""Signature storage in a real registry: cosign v3 referrers, the fallback tag, cosign v2 tags."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime

import pytest

from keyless.client.oci import RegistryClient, parse_reference
from keyless.client.oci.descriptors import (
    COSIGN_SIMPLESIGNING,
    OCI_EMPTY,
    OCI_EMPTY_DIGEST,
    OCI_INDEX,
    OCI_MANIFEST,
    SIGSTORE_BUNDLE_V03,
    digest_of,
    tag_for_digest,
)
from keyless.client.oci.discovery import find_signatures, list_attachment_tags, list_referrers
from keyless.client.oci.errors import AuthRequiredError, RegistryProtocolError, TooLargeError
from keyless.client.oci.signatures import (
    LegacySignature,
    append_legacy_signature,
    push_bundle,
    simple_signing_payload,
)
from tests.cli.oci.conftest import alice
from tests.cli.oci.referrers_proxy import referrers_proxy
from tests.conftest import serve_wsgi
from tests.registry import Pusher

CREATED = datetime(2026, 11, 22, 4, 30, 0, tzinfo=UTC)


def _bundle(name: str) -> bytes:
    """Bundle-shaped bytes; the storage layer looks only at the top-level content key."""
    return json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "dsseEnvelope": {"payloadType": "application/vnd.in-toto+json", "signer": name},
        }
    ).encode()


def _legacy(ref, digest: str, signature: str) -> LegacySignature:
    return LegacySignature(
        payload=simple_signing_payload(ref.name, digest),
        signature=signature,
        certificate="-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n",
        chain="-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n",
        rekor_bundle='{"SignedEntryTimestamp":"c2V0","Payload":{"logIndex":7}}',
    )


@pytest.fixture
def image(pusher):
    return pusher.push_image(
        f"acme/signed-{secrets.token_hex(4)}", "1.4", seed=secrets.token_hex(8)
    )


def test_simple_signing_payload_matches_cosign_bytes():
    digest = "sha256:" + "ab" * 32
    assert simple_signing_payload("ghcr.io/acme/app", digest) == (
        b'{"critical":{"identity":{"docker-reference":"ghcr.io/acme/app"},"image":'
        b'{"docker-manifest-digest":"sha256:' + b"ab" * 32 + b'"},'
        b'"type":"cosign container image signature"},"optional":null}'
    )


def test_bundle_referrer_has_the_cosign_v3_shape(image, client):
    ref = parse_reference(image.reference)
    subject = client.resolve(ref)
    descriptor, source = push_bundle(
        client, ref, subject.descriptor, _bundle("alice"), created_at=CREATED
    )
    assert source == "fallback-tag"
    manifest = client.get_manifest(ref.with_digest(descriptor.digest)).json()
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["artifactType"] == SIGSTORE_BUNDLE_V03
    assert manifest["config"] == {"mediaType": OCI_EMPTY, "digest": OCI_EMPTY_DIGEST, "size": 2}
    assert [layer["mediaType"] for layer in manifest["layers"]] == [SIGSTORE_BUNDLE_V03]
    assert manifest["layers"][0]["digest"] == digest_of(_bundle("alice"))
    assert manifest["subject"] == {
        "mediaType": OCI_MANIFEST,
        "digest": image.digest,
        "size": image.size,
    }
    assert manifest["annotations"] == {
        "org.opencontainers.image.created": "2026-11-22T04:30:00Z",
        "dev.sigstore.bundle.content": "dsse-envelope",
        "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1",
    }
    assert client.get_blob(ref, OCI_EMPTY_DIGEST) == b"{}"


def test_fallback_index_lists_each_referrer_once(image, client):
    ref = parse_reference(image.reference)
    subject = client.resolve(ref).descriptor
    first, _ = push_bundle(client, ref, subject, _bundle("alice"), created_at=CREATED)
    again, _ = push_bundle(client, ref, subject, _bundle("alice"), created_at=CREATED)
    second, _ = push_bundle(client, ref, subject, _bundle("bob"), created_at=CREATED)
    assert again == first
    index = client.get_manifest(ref.with_tag(tag_for_digest(image.digest)))
    assert index.media_type == OCI_INDEX
    entries = index.json()["manifests"]
    assert [e["digest"] for e in entries] == [first.digest, second.digest]
    assert all(e["artifactType"] == SIGSTORE_BUNDLE_V03 for e in entries)
    assert entries[0]["annotations"]["dev.sigstore.bundle.content"] == "dsse-envelope"


def test_fallback_tag_holding_something_else_is_not_overwritten(image, pusher, client):
    ref = parse_reference(image.reference)
    repo = ref.repository
    squatter = pusher.push_image(repo, tag_for_digest(image.digest), seed="squatter")
    with pytest.raises(RegistryProtocolError) as caught:
        push_bundle(client, ref, client.resolve(ref).descriptor, _bundle("a"), created_at=CREATED)
    assert caught.value.message == (
        f"{ref.name}:{tag_for_digest(image.digest)} exists and is not an OCI index; "
        "not overwriting it"
    )
    assert client.resolve(ref.with_tag(tag_for_digest(image.digest))).digest == squatter.digest


def test_legacy_signature_manifest_has_the_cosign_v2_shape(image, client):
    ref = parse_reference(image.reference)
    append_legacy_signature(client, ref, image.digest, _legacy(ref, image.digest, "c2lnLTE="))
    manifest = client.get_manifest(ref.with_tag(f"sha256-{image.digest[7:]}.sig"))
    body = manifest.json()
    assert manifest.media_type == OCI_MANIFEST
    layer = body["layers"][0]
    assert layer["mediaType"] == COSIGN_SIMPLESIGNING
    assert sorted(layer["annotations"]) == [
        "dev.cosignproject.cosign/signature",
        "dev.sigstore.cosign/bundle",
        "dev.sigstore.cosign/certificate",
        "dev.sigstore.cosign/chain",
    ]
    assert layer["annotations"]["dev.cosignproject.cosign/signature"] == "c2lnLTE="
    payload = json.loads(client.get_blob(ref, layer["digest"]))
    assert payload["critical"]["image"]["docker-manifest-digest"] == image.digest
    config = json.loads(client.get_blob(ref, body["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == [layer["digest"]]


def test_legacy_signatures_are_appended_not_overwritten(image, client):
    ref = parse_reference(image.reference)
    first = append_legacy_signature(client, ref, image.digest, _legacy(ref, image.digest, "b25l"))
    second = append_legacy_signature(client, ref, image.digest, _legacy(ref, image.digest, "dHdv"))
    again = append_legacy_signature(client, ref, image.digest, _legacy(ref, image.digest, "dHdv"))
    assert first.digest != second.digest and again.digest == second.digest
    found = find_signatures(client, ref, image.digest)
    assert [sig.signature for sig in found.legacy] == ["b25l", "dHdv"]


def test_find_all_forms_for_a_digest(image, client):
    ref = parse_reference(image.reference)
    subject = client.resolve(ref).descriptor
    referrer, _ = push_bundle(client, ref, subject, _bundle("alice"), created_at=CREATED)
    append_legacy_signature(client, ref, image.digest, _legacy(ref, image.digest, "c2ln"))
    found = find_signatures(client, ref, image.digest)
    assert not found.empty and not found.referrers_api and found.problems == ()
    [bundle] = found.bundles
    assert (bundle.manifest_digest, bundle.subject_digest, bundle.source) == (
        referrer.digest,
        image.digest,
        "fallback-tag",
    )
    assert bundle.bundle == _bundle("alice")
    [legacy] = found.legacy
    assert legacy.certificate.startswith("-----BEGIN CERTIFICATE-----")
    assert json.loads(legacy.payload)["critical"]["image"]["docker-manifest-digest"] == (
        image.digest
    )


def test_repointed_tag_has_no_signatures_but_old_digest_keeps_them(image, pusher, client):
    ref = parse_reference(image.reference)
    push_bundle(client, ref, client.resolve(ref).descriptor, _bundle("a"), created_at=CREATED)
    unsigned = pusher.push_image(ref.repository, "1.4", seed="unsigned-" + secrets.token_hex(4))
    now = client.resolve(ref)
    assert now.digest == unsigned.digest != image.digest
    assert find_signatures(client, ref, now.digest).empty
    assert len(find_signatures(client, ref, image.digest).bundles) == 1


def test_index_and_each_platform_can_be_signed(pusher, client):
    index, children = pusher.push_index(
        f"acme/multi-{secrets.token_hex(4)}",
        "2.0",
        seed=secrets.token_hex(8),
        platforms=[("linux", "amd64"), ("linux", "arm64")],
    )
    ref = parse_reference(index.reference)
    top = client.resolve(ref)
    push_bundle(client, ref, top.descriptor, _bundle("index"), created_at=CREATED)
    for child in children:
        manifest = client.get_manifest(ref.with_digest(child.digest))
        push_bundle(client, ref, manifest.descriptor, _bundle(child.digest), created_at=CREATED)
    top_found = find_signatures(client, ref, index.digest)
    referrer = client.get_manifest(ref.with_digest(top_found.bundles[0].manifest_digest))
    assert referrer.json()["subject"]["mediaType"] == OCI_INDEX
    for child in children:
        [found] = find_signatures(client, ref, child.digest).bundles
        assert found.bundle == _bundle(child.digest)


def test_malformed_referrer_is_skipped_and_named(image, client):
    ref = parse_reference(image.reference)
    subject = client.resolve(ref).descriptor
    good, _ = push_bundle(client, ref, subject, _bundle("good"), created_at=CREATED)
    # A referrer with two bundle layers: listed in the fallback index, but not readable.
    layer = client.push_blob(ref, _bundle("x"), SIGSTORE_BUNDLE_V03)
    config = client.push_blob(ref, b"{}", OCI_EMPTY)
    bad = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SIGSTORE_BUNDLE_V03,
            "config": config.to_json(),
            "layers": [layer.to_json(), layer.to_json()],
            "subject": subject.to_json(),
        }
    ).encode()
    pushed = client.put_manifest(ref, bad, OCI_MANIFEST)
    index_tag = ref.with_tag(tag_for_digest(image.digest))
    index = client.get_manifest(index_tag).json()
    index["manifests"].append(
        {
            "mediaType": OCI_MANIFEST,
            "digest": pushed.digest,
            "size": len(bad),
            "artifactType": SIGSTORE_BUNDLE_V03,
        }
    )
    client.put_manifest(ref, json.dumps(index).encode(), OCI_INDEX, tag=index_tag.tag)
    found = find_signatures(client, ref, image.digest)
    assert [b.manifest_digest for b in found.bundles] == [good.digest]
    assert found.problems == (f"referrer {pushed.digest}: has 2 bundle layers, expected 1",)


def test_push_without_credentials_fails_clearly_and_writes_nothing(auth_registry):
    image = Pusher(auth_registry).push_image(f"acme/locked-{secrets.token_hex(4)}", "1", seed="l")
    ref = parse_reference(image.reference)
    with RegistryClient(allow_insecure=True, credentials=alice(auth_registry)) as reader:
        subject = reader.resolve(ref).descriptor
        tags_before = reader.list_tags(ref)
    with (
        RegistryClient(allow_insecure=True) as anonymous,
        pytest.raises(AuthRequiredError) as caught,
    ):
        push_bundle(anonymous, ref, subject, _bundle("x"), created_at=CREATED)
    assert caught.value.message == (
        f"authentication required: {auth_registry.host} needs credentials to pull from "
        f"{ref.repository}"
    )
    with RegistryClient(allow_insecure=True, credentials=alice(auth_registry)) as writer:
        assert writer.list_tags(ref) == tags_before
        _, source = push_bundle(writer, ref, subject, _bundle("x"), created_at=CREATED)
        assert source == "fallback-tag"
        assert len(find_signatures(writer, ref, image.digest).bundles) == 1


def test_registry_with_referrers_api_gets_no_fallback_tag(registry, pusher):
    image = pusher.push_image(f"acme/api-{secrets.token_hex(4)}", "1", seed=secrets.token_hex(8))
    with serve_wsgi(referrers_proxy(registry.url)) as proxy_url:
        host = proxy_url.removeprefix("http://")
        ref = parse_reference(f"{host}/{image.reference.split('/', 1)[1]}")
        with RegistryClient(allow_insecure=True) as client:
            subject = client.resolve(ref).descriptor
            descriptor, source = push_bundle(
                client, ref, subject, _bundle("api"), created_at=CREATED
            )
            assert source == "referrers-api"
            assert tag_for_digest(image.digest) not in client.list_tags(ref)
            listed = client.referrers(ref, image.digest, artifact_type=SIGSTORE_BUNDLE_V03)
            assert [d.digest for d in listed] == [descriptor.digest]
            found = find_signatures(client, ref, image.digest)
    assert found.referrers_api
    assert [(b.manifest_digest, b.source) for b in found.bundles] == [
        (descriptor.digest, "referrers-api")
    ]


def test_listing_for_tree_shows_every_referrer_and_attachment_tag(image, pusher, client):
    ref = parse_reference(image.reference)
    subject = client.resolve(ref).descriptor
    bundle, _ = push_bundle(client, ref, subject, _bundle("tree"), created_at=CREATED)
    append_legacy_signature(client, ref, image.digest, _legacy(ref, image.digest, "dHJlZQ=="))
    listing = list_referrers(client, ref, image.digest)
    assert [(d.digest, d.artifact_type, source) for d, source in listing.entries] == [
        (bundle.digest, SIGSTORE_BUNDLE_V03, "fallback-tag")
    ]
    assert list_attachment_tags(client, ref, image.digest) == [tag_for_digest(image.digest, ".sig")]
    assert list_attachment_tags(client, ref, OCI_EMPTY_DIGEST) == []


def test_index_at_the_legacy_tag_is_skipped_and_named(image, pusher, client):
    ref = parse_reference(image.reference)
    push_bundle(client, ref, client.resolve(ref).descriptor, _bundle("ok"), created_at=CREATED)
    legacy_tag = tag_for_digest(image.digest, ".sig")
    pusher.push_index(ref.repository, legacy_tag, seed="squat", platforms=[("linux", "amd64")])
    found = find_signatures(client, ref, image.digest)
    assert len(found.bundles) == 1 and found.legacy == ()
    assert found.problems == (f"tag {legacy_tag}: is an index, not a signature manifest",)


def test_legacy_layer_whose_blob_is_gone_is_skipped_and_named(image, pusher, client):
    ref = parse_reference(image.reference)
    kept = _legacy(ref, image.digest, "a2VwdA==")
    lost = LegacySignature(payload=b'{"lost":true}', signature="bG9zdA==")
    append_legacy_signature(client, ref, image.digest, kept)
    append_legacy_signature(client, ref, image.digest, lost)
    pusher.delete_blob(ref.repository, digest_of(lost.payload))
    found = find_signatures(client, ref, image.digest)
    assert [sig.signature for sig in found.legacy] == ["a2VwdA=="]
    [problem] = found.problems
    assert problem.startswith(
        f"tag {tag_for_digest(image.digest, '.sig')}: layer {digest_of(lost.payload)}: blob "
    )
    assert problem.endswith("not found (BLOB_UNKNOWN)")


@pytest.mark.parametrize(
    ("case", "content", "predicate"),
    [
        ("happy-path-v0.3", "message-signature", None),
        ("happy-path-intoto-in-dsse-v3", "dsse-envelope", "https://sigstore.dev/cosign/sign/v1"),
    ],
)
def test_real_bundles_round_trip_byte_for_byte(vectors, image, client, case, content, predicate):
    bundle = (
        vectors / "sigstore-conformance/test/assets/bundle-verify" / case / "bundle.sigstore.json"
    ).read_bytes()
    ref = parse_reference(image.reference)
    descriptor, _ = push_bundle(
        client, ref, client.resolve(ref).descriptor, bundle, created_at=CREATED
    )
    assert descriptor.annotations["dev.sigstore.bundle.content"] == content
    assert descriptor.annotations.get("dev.sigstore.bundle.predicateType") == predicate
    [found] = find_signatures(client, ref, image.digest).bundles
    assert found.bundle == bundle


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"not json", "bundle is not valid JSON", id="not-json"),
        pytest.param(b"[]", "bundle has neither dsseEnvelope nor messageSignature", id="list"),
        pytest.param(
            b'{"mediaType": "x"}',
            "bundle has neither dsseEnvelope nor messageSignature",
            id="no-content",
        ),
    ],
)
def test_non_bundle_bytes_are_a_caller_bug_and_nothing_is_written(image, client, data, message):
    ref = parse_reference(image.reference)
    tags_before = client.list_tags(ref)
    with pytest.raises(RuntimeError, match=message):
        push_bundle(client, ref, client.resolve(ref).descriptor, data, created_at=CREATED)
    assert client.list_tags(ref) == tags_before
    assert not client.blob_exists(ref, digest_of(data))


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        pytest.param(
            LegacySignature(payload=b"x" * (256 * 1024 + 1), signature="c2ln"),
            "payload is larger than 262144 bytes",
            id="huge-payload",
        ),
        pytest.param(
            LegacySignature(payload=b"{}", signature="c2ln", chain="x" * 70000),
            "annotation dev.sigstore.cosign/chain is larger than 65536 chars",
            id="huge-chain",
        ),
    ],
)
def test_legacy_signature_the_reader_would_refuse_is_not_written(image, client, signature, message):
    ref = parse_reference(image.reference)
    with pytest.raises(TooLargeError) as caught:
        append_legacy_signature(client, ref, image.digest, signature)
    assert caught.value.message == message
    assert not client.manifest_exists(ref.with_tag(tag_for_digest(image.digest, ".sig")))

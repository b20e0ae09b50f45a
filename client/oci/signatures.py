"""Writing image signatures into a registry, in the three forms verifiers look for.

Three forms (shared/reference/rekor-bundle.md §7, ecosystem.md §2):
- cosign v3: a Sigstore bundle pushed as an OCI 1.1 referrer of the image (artifactType
  `application/vnd.dev.sigstore.bundle.v0.3+json`, config = the empty descriptor);
- the OCI 1.1 referrers fallback: an index at tag `sha256-<hex>` listing those referrers, kept
  up to date when the registry has no referrers API (it says so by not answering `OCI-Subject`);
- cosign v2: one image manifest at tag `sha256-<hex>.sig`, one simple-signing layer per signature.

This module only stores bytes (`client.oci.discovery` finds them again); building and verifying
bundles happens elsewhere. What it writes stays within the bounds the reader enforces.
Updates of the two tags are read-modify-write: a concurrent writer can lose an entry, as with
cosign, because registries offer no conditional PUT.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from keyless.client.oci.descriptors import (
    COSIGN_SIMPLESIGNING,
    MAX_ANNOTATION_CHARS,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_EMPTY_BLOB,
    OCI_INDEX,
    OCI_MANIFEST,
    SIGSTORE_BUNDLE_V03,
    Descriptor,
    check_digest,
    tag_for_digest,
)
from keyless.client.oci.errors import (
    RegistryProtocolError,
    TooLargeError,
)
from keyless.client.oci.reference import Reference
from keyless.client.oci.registry import RegistryClient, parse_index_manifests
from keyless.core.encoding import format_rfc3339

COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
COSIGN_PAYLOAD_TYPE = "cosign container image signature"
LEGACY_SUFFIX = ".sig"

ANNOTATION_SIGNATURE = "dev.cosignproject.cosign/signature"
ANNOTATION_CERTIFICATE = "dev.sigstore.cosign/certificate"
ANNOTATION_CHAIN = "dev.sigstore.cosign/chain"
ANNOTATION_BUNDLE = "dev.sigstore.cosign/bundle"
ANNOTATION_RFC3161 = "dev.sigstore.cosign/rfc3161timestamp"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_BUNDLE_CONTENT = "dev.sigstore.bundle.content"
ANNOTATION_BUNDLE_PREDICATE = "dev.sigstore.bundle.predicateType"

# The bundle's content field, and the value cosign annotates for it.
BUNDLE_CONTENTS = {"dsseEnvelope": "dsse-envelope", "messageSignature": "message-signature"}
MAX_BUNDLE_BYTES = 1024 * 1024
MAX_PAYLOAD_BYTES = 256 * 1024

SOURCE_REFERRERS_API = "referrers-api"
SOURCE_FALLBACK_TAG = "fallback-tag"


@dataclass(frozen=True)
class LegacySignature:
    """One cosign v2 signature: the payload and the annotations of its layer."""

    payload: bytes
    signature: str
    certificate: str | None = None
    chain: str | None = None
    rekor_bundle: str | None = None
    rfc3161_timestamp: str | None = None

    def annotations(self) -> dict[str, str]:
        """The layer annotations cosign reads, only those that are set."""
        pairs = {
            ANNOTATION_SIGNATURE: self.signature,
            ANNOTATION_CERTIFICATE: self.certificate,
            ANNOTATION_CHAIN: self.chain,
            ANNOTATION_BUNDLE: self.rekor_bundle,
            ANNOTATION_RFC3161: self.rfc3161_timestamp,
        }
        return {key: value for key, value in pairs.items() if value is not None}


def simple_signing_payload(
    docker_reference: str, digest: str, optional: Mapping[str, str] | None = None
) -> bytes:
    """The cosign simple-signing payload for `digest`, byte for byte as cosign writes it."""
    check_digest(digest)
    body = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": COSIGN_PAYLOAD_TYPE,
        },
        "optional": dict(optional) if optional else None,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def push_bundle(
    client: RegistryClient,
    image: Reference,
    subject: Descriptor,
    bundle: bytes,
    *,
    created_at: datetime,
    predicate_type: str = COSIGN_SIGN_PREDICATE,
) -> tuple[Descriptor, str]:
    """Attach `bundle` to `subject` as an OCI 1.1 referrer; returns its descriptor and source.

    The source is `referrers-api` when the registry indexes referrers itself, or
    `fallback-tag` when it does not and the `sha256-<hex>` index was updated instead.
    `predicate_type` is annotated for DSSE bundles only, as cosign does.
    """
    if created_at.utcoffset() != timedelta(0):
        raise RuntimeError("created_at must be an aware UTC datetime")
    if len(bundle) > MAX_BUNDLE_BYTES:
        raise TooLargeError(f"bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    content = _bundle_content(bundle)
    config = client.push_blob(image, OCI_EMPTY_BLOB, OCI_EMPTY)
    layer = client.push_blob(image, bundle, SIGSTORE_BUNDLE_V03)
    annotations = {
        ANNOTATION_CREATED: format_rfc3339(created_at, whole_seconds=True),
        ANNOTATION_BUNDLE_CONTENT: content,
    }
    if content == "dsse-envelope":
        annotations[ANNOTATION_BUNDLE_PREDICATE] = predicate_type
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIGSTORE_BUNDLE_V03,
        "config": config.to_json(),
        "layers": [layer.to_json()],
        "subject": Descriptor(subject.media_type, subject.digest, subject.size).to_json(),
        "annotations": annotations,
    }
    data = _canonical(manifest)
    pushed = client.put_manifest(image, data, OCI_MANIFEST)
    descriptor = Descriptor(
        OCI_MANIFEST, pushed.digest, len(data), SIGSTORE_BUNDLE_V03, annotations
    )
    if pushed.subject_header == subject.digest:
        return descriptor, SOURCE_REFERRERS_API
    _add_to_fallback_index(client, image, subject.digest, descriptor)
    return descriptor, SOURCE_FALLBACK_TAG


def append_legacy_signature(
    client: RegistryClient, image: Reference, digest: str, signature: LegacySignature
) -> Descriptor:
    """Add `signature` to the cosign v2 `sha256-<hex>.sig` manifest, keeping the ones there.

    Returns the descriptor of the manifest now at that tag. A signature already present
    (same payload and signature) is not added twice.
    """
    tag = tag_for_digest(digest, LEGACY_SUFFIX)
    if len(signature.payload) > MAX_PAYLOAD_BYTES:
        raise TooLargeError(f"payload is larger than {MAX_PAYLOAD_BYTES} bytes")
    for key, value in signature.annotations().items():
        if len(key) + len(value) > MAX_ANNOTATION_CHARS:
            raise TooLargeError(f"annotation {key} is larger than {MAX_ANNOTATION_CHARS} chars")
    layers: list[Descriptor] = []
    existing = client.find_manifest(image.with_tag(tag))
    if existing is not None:
        if existing.is_index:
            raise RegistryProtocolError(
                f"{image.name}:{tag} is an index, not a signature manifest; not overwriting it"
            )
        layers = existing.layers(what=f"{image.name}:{tag}")
    payload = client.push_blob(image, signature.payload, COSIGN_SIMPLESIGNING)
    new_layer = Descriptor(
        COSIGN_SIMPLESIGNING, payload.digest, payload.size, annotations=signature.annotations()
    )
    if not any(
        old.digest == new_layer.digest
        and old.annotations.get(ANNOTATION_SIGNATURE) == signature.signature
        for old in layers
    ):
        layers.append(new_layer)
    config_blob = _canonical(
        {
            "architecture": "",
            "os": "",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        }
    )
    config = client.push_blob(image, config_blob, OCI_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    data = _canonical(manifest)
    if existing is not None and existing.data == data:
        return existing.descriptor
    pushed = client.put_manifest(image, data, OCI_MANIFEST, tag=tag)
    return Descriptor(OCI_MANIFEST, pushed.digest, len(data))


def _add_to_fallback_index(
    client: RegistryClient, image: Reference, subject_digest: str, descriptor: Descriptor
) -> None:
    """Add `descriptor` to the `sha256-<hex>` referrers index, creating it if needed."""
    tag = tag_for_digest(subject_digest)
    existing = client.find_manifest(image.with_tag(tag))
    manifests: list[Descriptor] = []
    if existing is not None:
        if existing.media_type != OCI_INDEX:
            raise RegistryProtocolError(
                f"{image.name}:{tag} exists and is not an OCI index; not overwriting it"
            )
        manifests = parse_index_manifests(existing.json(), what=f"{image.name}:{tag}")
    if any(item.digest == descriptor.digest for item in manifests):
        return
    manifests.append(descriptor)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [item.to_json() for item in manifests],
    }
    client.put_manifest(image, _canonical(index), OCI_INDEX, tag=tag)


def _bundle_content(bundle: bytes) -> str:
    """What the bundle holds, for the `dev.sigstore.bundle.content` annotation.

    Only the top-level key is looked at; the bundle was built, and is verified, elsewhere.
    Bytes that are not a bundle at all mean the caller passed the wrong thing.
    """
    try:
        value = json.loads(bundle)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RuntimeError("bundle is not valid JSON") from exc
    if isinstance(value, dict):
        for key, content in BUNDLE_CONTENTS.items():
            if key in value:
                return content
    raise RuntimeError("bundle has neither dsseEnvelope nor messageSignature")


def _canonical(value: object) -> bytes:
    """Compact JSON with sorted keys: the same object always gets the same digest."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()

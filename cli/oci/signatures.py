"""Where image signatures live in a registry, and how to write and find them.

Three forms (shared/reference/rekor-bundle.md §7, ecosystem.md §2):
- cosign v3: a Sigstore bundle pushed as an OCI 1.1 referrer of the image (artifactType
  `application/vnd.dev.sigstore.bundle.v0.3+json`, config = the empty descriptor);
- the OCI 1.1 referrers fallback: an index at tag `sha256-<hex>` listing those referrers, kept
  up to date when the registry has no referrers API (it says so by not answering `OCI-Subject`);
- cosign v2: one image manifest at tag `sha256-<hex>.sig`, one simple-signing layer per signature.

This module only stores and finds bytes; building and verifying bundles happens elsewhere.
Updates of the two tags are read-modify-write: a concurrent writer can lose an entry, as with
cosign, because registries offer no conditional PUT.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cli.oci.descriptors import (
    COSIGN_SIMPLESIGNING,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_EMPTY_BLOB,
    OCI_INDEX,
    OCI_MANIFEST,
    SIGSTORE_BUNDLE_V03,
    Descriptor,
    check_digest,
    parse_annotations,
    tag_for_digest,
)
from cli.oci.errors import (
    DigestMismatchError,
    NotFoundError,
    RegistryError,
    RegistryProtocolError,
    ResponseTooLargeError,
)
from cli.oci.reference import Reference
from cli.oci.registry import Manifest, RegistryClient, parse_index_manifests

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

BUNDLE_CONTENTS = frozenset({"dsse-envelope", "message-signature"})
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


@dataclass(frozen=True)
class BundleReferrer:
    """A Sigstore bundle found attached to an image, and where it was found."""

    manifest_digest: str
    subject_digest: str | None
    bundle: bytes
    annotations: Mapping[str, str]
    source: str


@dataclass(frozen=True)
class ImageSignatures:
    """Everything signature-shaped attached to one digest, plus what was skipped and why."""

    digest: str
    bundles: tuple[BundleReferrer, ...]
    legacy: tuple[LegacySignature, ...]
    referrers_api: bool
    problems: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        """Whether no signature of any form was found."""
        return not self.bundles and not self.legacy


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
    content: str = "dsse-envelope",
    predicate_type: str | None = COSIGN_SIGN_PREDICATE,
) -> tuple[Descriptor, str]:
    """Attach `bundle` to `subject` as an OCI 1.1 referrer; returns its descriptor and source.

    The source is `referrers-api` when the registry indexes referrers itself, or
    `fallback-tag` when it does not and the `sha256-<hex>` index was updated instead.
    """
    if content not in BUNDLE_CONTENTS:
        raise RuntimeError(f"unknown bundle content {content!r}")
    if created_at.utcoffset() != timedelta(0):
        raise RuntimeError("created_at must be an aware UTC datetime")
    if len(bundle) > MAX_BUNDLE_BYTES:
        raise ResponseTooLargeError(f"bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    _check_json_object(bundle, what="bundle")
    config = client.push_blob(image, OCI_EMPTY_BLOB, OCI_EMPTY)
    layer = client.push_blob(image, bundle, SIGSTORE_BUNDLE_V03)
    annotations = {
        ANNOTATION_CREATED: created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ANNOTATION_BUNDLE_CONTENT: content,
    }
    if predicate_type is not None:
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
    layers: list[Descriptor] = []
    existing = _get_optional(client, image.with_tag(tag))
    if existing is not None:
        if existing.is_index:
            raise RegistryProtocolError(
                f"{image.name}:{tag} is an index, not a signature manifest; not overwriting it"
            )
        layers = _manifest_layers(existing, what=f"{image.name}:{tag}")
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


@dataclass(frozen=True)
class ReferrerListing:
    """The referrers of a digest: each descriptor with where it was listed, and any problems."""

    entries: tuple[tuple[Descriptor, str], ...]
    referrers_api: bool
    problems: tuple[str, ...] = field(default=())


def list_referrers(
    client: RegistryClient, image: Reference, digest: str, *, artifact_type: str | None = None
) -> ReferrerListing:
    """Referrers of `digest` from the referrers API and from the `sha256-<hex>` fallback index.

    Both are read, since a registry may have gained the API after signatures were pushed
    through the fallback tag; an entry listed in both is reported once, as from the API.
    """
    check_digest(digest)
    problems: list[str] = []
    listed: dict[str, tuple[Descriptor, str]] = {}
    api = client.referrers(image, digest, artifact_type=artifact_type)
    for descriptor in api or []:
        listed.setdefault(descriptor.digest, (descriptor, SOURCE_REFERRERS_API))
    tag = tag_for_digest(digest)
    fallback = _get_optional(client, image.with_tag(tag))
    if fallback is not None:
        try:
            if fallback.media_type != OCI_INDEX:
                raise RegistryProtocolError("it is not an OCI index")
            for descriptor in parse_index_manifests(fallback.json(), what="the index"):
                if artifact_type in (None, descriptor.artifact_type):
                    listed.setdefault(descriptor.digest, (descriptor, SOURCE_FALLBACK_TAG))
        except RegistryError as exc:
            problems.append(f"fallback tag {tag}: {exc.message}")
    return ReferrerListing(tuple(listed.values()), api is not None, tuple(problems))


def find_signatures(client: RegistryClient, image: Reference, digest: str) -> ImageSignatures:
    """Find bundles (referrers API and fallback tag) and cosign v2 signatures for `digest`.

    Entries that cannot be read (malformed, wrong digest, missing blob) are skipped and named
    in `problems`, so one bad entry cannot hide good ones. Authentication and connection
    failures are raised.
    """
    listing = list_referrers(client, image, digest, artifact_type=SIGSTORE_BUNDLE_V03)
    problems = list(listing.problems)
    limit = client.limits.max_signatures
    bundles: list[BundleReferrer] = []
    for descriptor, source in listing.entries[:limit]:
        try:
            bundles.append(_read_bundle(client, image, descriptor.digest, source))
        except (RegistryProtocolError, DigestMismatchError, NotFoundError) as exc:
            problems.append(f"referrer {descriptor.digest}: {exc.message}")
    legacy = _read_legacy(client, image, digest, limit, problems)
    return ImageSignatures(
        digest, tuple(bundles), tuple(legacy), listing.referrers_api, tuple(problems)
    )


def _read_bundle(
    client: RegistryClient, image: Reference, manifest_digest: str, source: str
) -> BundleReferrer:
    """Fetch one referrer manifest and its bundle layer."""
    manifest = client.get_manifest(image.with_digest(manifest_digest))
    body = manifest.json()
    if manifest.media_type != OCI_MANIFEST:
        raise RegistryProtocolError(f"is a {manifest.media_type}, not an OCI image manifest")
    if body.get("artifactType") != SIGSTORE_BUNDLE_V03:
        raise RegistryProtocolError("is not a Sigstore bundle artifact")
    subject = body.get("subject")
    subject_digest = (
        Descriptor.from_json(subject, what="subject").digest if subject is not None else None
    )
    layers = [
        layer
        for layer in _manifest_layers(manifest, what="referrer")
        if layer.media_type == SIGSTORE_BUNDLE_V03
    ]
    if len(layers) != 1:
        raise RegistryProtocolError(f"has {len(layers)} bundle layers, expected 1")
    if layers[0].size > MAX_BUNDLE_BYTES:
        raise RegistryProtocolError(f"bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    bundle = client.get_blob(image, layers[0].digest, max_bytes=MAX_BUNDLE_BYTES)
    annotations = parse_annotations(body.get("annotations"), what="referrer")
    return BundleReferrer(manifest_digest, subject_digest, bundle, annotations, source)


def _read_legacy(
    client: RegistryClient, image: Reference, digest: str, limit: int, problems: list[str]
) -> list[LegacySignature]:
    """Read the simple-signing layers of the `sha256-<hex>.sig` manifest, if there is one."""
    tag = tag_for_digest(digest, LEGACY_SUFFIX)
    manifest = _get_optional(client, image.with_tag(tag))
    if manifest is None:
        return []
    try:
        layers = _manifest_layers(manifest, what=f"tag {tag}")
    except RegistryProtocolError as exc:
        problems.append(exc.message)
        return []
    found: list[LegacySignature] = []
    for layer in layers[:limit]:
        if layer.media_type != COSIGN_SIMPLESIGNING:
            continue
        notes = layer.annotations
        if ANNOTATION_SIGNATURE not in notes or layer.size > MAX_PAYLOAD_BYTES:
            problems.append(f"tag {tag}: layer {layer.digest} has no signature or is too large")
            continue
        try:
            payload = client.get_blob(image, layer.digest, max_bytes=MAX_PAYLOAD_BYTES)
        except (DigestMismatchError, NotFoundError, RegistryProtocolError) as exc:
            problems.append(f"tag {tag}: layer {layer.digest}: {exc.message}")
            continue
        found.append(
            LegacySignature(
                payload=payload,
                signature=notes[ANNOTATION_SIGNATURE],
                certificate=notes.get(ANNOTATION_CERTIFICATE),
                chain=notes.get(ANNOTATION_CHAIN),
                rekor_bundle=notes.get(ANNOTATION_BUNDLE),
                rfc3161_timestamp=notes.get(ANNOTATION_RFC3161),
            )
        )
    return found


def _add_to_fallback_index(
    client: RegistryClient, image: Reference, subject_digest: str, descriptor: Descriptor
) -> None:
    """Add `descriptor` to the `sha256-<hex>` referrers index, creating it if needed."""
    tag = tag_for_digest(subject_digest)
    existing = _get_optional(client, image.with_tag(tag))
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


def _get_optional(client: RegistryClient, ref: Reference) -> Manifest | None:
    """The manifest at `ref`, or None if there is none."""
    try:
        return client.get_manifest(ref)
    except NotFoundError:
        return None


def _manifest_layers(manifest: Manifest, *, what: str) -> list[Descriptor]:
    """The layers of an image manifest, parsed strictly."""
    layers = manifest.json().get("layers")
    if not isinstance(layers, list):
        raise RegistryProtocolError(f"{what}: layers is not a list")
    return [
        Descriptor.from_json(item, what=f"{what}: layers[{i}]") for i, item in enumerate(layers)
    ]


def _check_json_object(data: bytes, *, what: str) -> None:
    """Refuse bytes that are not a JSON object: the caller passed the wrong thing."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RuntimeError(f"{what} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise RuntimeError(f"{what} is not a JSON object")


def _canonical(value: object) -> bytes:
    """Compact JSON with sorted keys: the same object always gets the same digest."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()

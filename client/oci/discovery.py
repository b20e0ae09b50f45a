"""Finding what is attached to an image digest: bundles, cosign v2 signatures, other referrers.

Reads the three storage forms that `client.oci.signatures` writes (referrers API, the
`sha256-<hex>` fallback index, the `sha256-<hex>.sig` tag), and any other cosign tag
(`.att`, `.sbom`) for listings such as `keyless tree`. Nothing here judges a signature: it
returns bytes and says where each came from, and names every entry it had to skip.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from keyless.client.oci.descriptors import (
    COSIGN_SIMPLESIGNING,
    OCI_INDEX,
    OCI_MANIFEST,
    SIGSTORE_BUNDLE_V03,
    Descriptor,
    check_digest,
    parse_annotations,
    tag_for_digest,
)
from keyless.client.oci.errors import (
    DigestMismatchError,
    InvalidDigestError,
    NotFoundError,
    RegistryProtocolError,
    TooLargeError,
)
from keyless.client.oci.reference import Reference
from keyless.client.oci.registry import RegistryClient, parse_index_manifests
from keyless.client.oci.signatures import (
    ANNOTATION_BUNDLE,
    ANNOTATION_CERTIFICATE,
    ANNOTATION_CHAIN,
    ANNOTATION_RFC3161,
    ANNOTATION_SIGNATURE,
    LEGACY_SUFFIX,
    MAX_BUNDLE_BYTES,
    MAX_PAYLOAD_BYTES,
    SOURCE_FALLBACK_TAG,
    SOURCE_REFERRERS_API,
    LegacySignature,
)

# The tag suffixes cosign uses for what it attaches to a digest.
ATTACHMENT_SUFFIXES = (".sig", ".att", ".sbom")

# Failures confined to one stored entry: it is skipped and named, and the search goes on.
# Authentication and connection failures are not among them; they end the search.
_ENTRY_FAILURES = (
    RegistryProtocolError,
    DigestMismatchError,
    InvalidDigestError,
    NotFoundError,
    TooLargeError,
)


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
    try:
        fallback = client.find_manifest(image.with_tag(tag))
        if fallback is not None:
            if fallback.media_type != OCI_INDEX:
                raise RegistryProtocolError("it is not an OCI index")
            for descriptor in parse_index_manifests(fallback.json(), what="the index"):
                if artifact_type in (None, descriptor.artifact_type):
                    listed.setdefault(descriptor.digest, (descriptor, SOURCE_FALLBACK_TAG))
    except _ENTRY_FAILURES as exc:
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
        except _ENTRY_FAILURES as exc:
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
        for layer in manifest.layers(what="referrer")
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
    try:
        manifest = client.find_manifest(image.with_tag(tag))
        if manifest is None:
            return []
        if manifest.is_index:
            raise RegistryProtocolError("is an index, not a signature manifest")
        layers = manifest.layers(what="layers")
    except _ENTRY_FAILURES as exc:
        problems.append(f"tag {tag}: {exc.message}")
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
        except _ENTRY_FAILURES as exc:
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


def list_attachment_tags(client: RegistryClient, image: Reference, digest: str) -> list[str]:
    """Which cosign attachment tags (`sha256-<hex>.sig`, `.att`, `.sbom`) exist for `digest`."""
    return [
        tag
        for tag in (tag_for_digest(digest, suffix) for suffix in ATTACHMENT_SUFFIXES)
        if client.manifest_exists(image.with_tag(tag))
    ]

"""OCI media types, content descriptors and digests: the byte-level facts of image storage."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from keyless.client.oci.errors import DigestMismatchError, InvalidDigestError, RegistryProtocolError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

# The OCI empty descriptor: the two-byte blob `{}`, used as the config of artifact manifests.
OCI_EMPTY_BLOB = b"{}"
OCI_EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

SIGSTORE_BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"

IMAGE_MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = IMAGE_MANIFEST_TYPES | INDEX_TYPES

MAX_ANNOTATIONS = 64
MAX_ANNOTATION_CHARS = 64 * 1024

_HASHES = {"sha256": (hashlib.sha256, 64), "sha512": (hashlib.sha512, 128)}
_HEX_RE = re.compile(r"[a-f0-9]+", re.ASCII)
_MEDIA_TYPE_RE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}", re.ASCII
)


def check_digest(digest: str) -> None:
    """Check that `digest` is `sha256:<64 hex>` or `sha512:<128 hex>`, lowercase.

    Raises:
        InvalidDigestError: anything else, including other algorithms.
    """
    algorithm, sep, encoded = digest.partition(":")
    if not sep:
        raise InvalidDigestError(f"invalid digest {digest[:80]!r}: expected algorithm:hex")
    if algorithm not in _HASHES:
        raise InvalidDigestError(f"unsupported digest algorithm {algorithm[:20]!r}")
    length = _HASHES[algorithm][1]
    if len(encoded) != length or not _HEX_RE.fullmatch(encoded):
        raise InvalidDigestError(
            f"invalid digest {digest[:80]!r}: expected {length} lowercase hex characters"
        )


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """The digest of `data` as `algorithm:hex`."""
    return f"{algorithm}:{_HASHES[algorithm][0](data).hexdigest()}"


def check_content(data: bytes, digest: str, *, what: str) -> None:
    """Check that `data` hashes to `digest` with the digest's own algorithm.

    Raises:
        InvalidDigestError: `digest` is malformed.
        DigestMismatchError: the content does not match.
    """
    check_digest(digest)
    actual = digest_of(data, digest.partition(":")[0])
    if not hmac.compare_digest(actual, digest):
        raise DigestMismatchError(f"{what}: content hashes to {actual}, expected {digest}")


def tag_for_digest(digest: str, suffix: str = "") -> str:
    """The tag cosign and the OCI fallback use for a digest: `sha256-<hex>` plus `suffix`."""
    check_digest(digest)
    return digest.replace(":", "-", 1) + suffix


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a manifest, index or blob is, and how to find it."""

    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    platform: Mapping[str, Any] | None = field(default=None, hash=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The descriptor as a JSON object, with optional fields only when set."""
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type is not None:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = dict(self.platform)
        return out

    @classmethod
    def from_json(cls, obj: object, *, what: str = "descriptor") -> Descriptor:
        """Parse a descriptor strictly: known field types, a valid digest, bounded annotations.

        Raises:
            RegistryProtocolError: the object is not a well-formed descriptor.
        """
        if not isinstance(obj, dict):
            raise RegistryProtocolError(f"{what} is not a JSON object")
        media_type = obj.get("mediaType")
        digest = obj.get("digest")
        size = obj.get("size")
        if not isinstance(media_type, str) or not _MEDIA_TYPE_RE.fullmatch(media_type):
            raise RegistryProtocolError(f"{what} has an invalid mediaType")
        if not isinstance(digest, str):
            raise RegistryProtocolError(f"{what} has no digest")
        try:
            check_digest(digest)
        except InvalidDigestError as exc:
            raise RegistryProtocolError(f"{what}: {exc.message}") from exc
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise RegistryProtocolError(f"{what} has an invalid size")
        artifact_type = obj.get("artifactType")
        if artifact_type is not None and (
            not isinstance(artifact_type, str) or not _MEDIA_TYPE_RE.fullmatch(artifact_type)
        ):
            raise RegistryProtocolError(f"{what} has an invalid artifactType")
        platform = obj.get("platform")
        if platform is not None and not isinstance(platform, dict):
            raise RegistryProtocolError(f"{what} has an invalid platform")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            artifact_type=artifact_type,
            annotations=parse_annotations(obj.get("annotations"), what=what),
            platform=platform,
        )


def parse_annotations(value: object, *, what: str) -> dict[str, str]:
    """Parse an `annotations` map: string keys and values, bounded in count and size.

    Raises:
        RegistryProtocolError: the map is malformed or too large.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RegistryProtocolError(f"{what} has invalid annotations")
    if len(value) > MAX_ANNOTATIONS:
        raise RegistryProtocolError(f"{what} has more than {MAX_ANNOTATIONS} annotations")
    for key, item in value.items():
        if not isinstance(item, str) or len(key) + len(item) > MAX_ANNOTATION_CHARS:
            raise RegistryProtocolError(f"{what} has an invalid annotation {key[:80]!r}")
    return dict(value)

"""A small OCI distribution client over `requests`: manifests, blobs, tags and referrers.

Why not `oras` (oras-py 0.2.x)? It was checked and does not fit: it has no referrers API and no
referrers fallback tag, does not verify the digest of what it fetches, reads manifests without
a size bound, is built around pushing and pulling files on disk, and logs to stdout. What we
need is a few hundred lines, so we keep our own client here, separate from the signature logic.

The HTTP rules (TLS, redirects, auth, retries, bounds) live in `client.oci.transport`; this
module adds the API operations, and verifies the digest of everything fetched by digest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from keyless.client.oci.credentials import CredentialSource
from keyless.client.oci.descriptors import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    Descriptor,
    check_content,
    check_digest,
    digest_of,
)
from keyless.client.oci.errors import (
    NotFoundError,
    RegistryProtocolError,
)
from keyless.client.oci.reference import Reference
from keyless.client.oci.transport import MAX_ERROR_BYTES, RegistryLimits, RegistryTransport

_ACCEPT_MANIFESTS = ", ".join(sorted(MANIFEST_TYPES))


@dataclass(frozen=True)
class Manifest:
    """A manifest or index as fetched: its exact bytes, media type and verified digest."""

    data: bytes
    media_type: str
    digest: str

    @property
    def descriptor(self) -> Descriptor:
        """The descriptor that points at this manifest (for a `subject`, or an index entry)."""
        return Descriptor(self.media_type, self.digest, len(self.data))

    @property
    def is_index(self) -> bool:
        """Whether this is a multi-platform index rather than an image manifest."""
        return self.media_type in INDEX_TYPES

    def json(self) -> dict[str, Any]:
        """The parsed JSON object (the manifest was checked to be one when fetched)."""
        return json.loads(self.data)

    def layers(self, *, what: str) -> list[Descriptor]:
        """The layers of an image manifest, each parsed strictly.

        Raises:
            RegistryProtocolError: `layers` is missing or malformed.
        """
        layers = self.json().get("layers")
        if not isinstance(layers, list):
            raise RegistryProtocolError(f"{what}: layers is not a list")
        return [
            Descriptor.from_json(item, what=f"{what}: layers[{i}]") for i, item in enumerate(layers)
        ]


@dataclass(frozen=True)
class PushedManifest:
    """What a manifest PUT returned: the digest, and `OCI-Subject` if the registry set it."""

    digest: str
    subject_header: str | None


class RegistryClient:
    """Talks to OCI registries for one operation or session; caches schemes and tokens."""

    def __init__(
        self,
        *,
        credentials: CredentialSource | None = None,
        allow_insecure: bool = False,
        ca_bundle: str | None = None,
        limits: RegistryLimits | None = None,
    ) -> None:
        self.limits = limits or RegistryLimits()
        self._transport = RegistryTransport(
            credentials=credentials,
            allow_insecure=allow_insecure,
            ca_bundle=ca_bundle,
            limits=self.limits,
        )

    def close(self) -> None:
        """Close pooled connections."""
        self._transport.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Manifests.

    def get_manifest(self, ref: Reference) -> Manifest:
        """Fetch the manifest or index `ref` names, verifying its digest.

        A reference by digest must hash to that digest; a reference by tag must hash to the
        `Docker-Content-Digest` the registry announces, when it announces one.

        Raises:
            NotFoundError, DigestMismatchError, TooLargeError, RegistryProtocolError,
            and the authentication and connection errors of every request.
        """
        response, body = self._transport.request(
            "GET",
            ref,
            f"manifests/{ref.identifier}",
            scope="pull",
            headers={"Accept": _ACCEPT_MANIFESTS},
            max_bytes=self.limits.max_manifest_bytes,
            what=f"manifest {ref}",
        )
        media_type = _media_type(response)
        if ref.digest is not None:
            check_content(body, ref.digest, what=f"manifest {ref}")
            digest = ref.digest
        else:
            digest = digest_of(body)
            announced = response.headers.get("Docker-Content-Digest")
            if announced and announced.startswith("sha256:"):
                check_content(body, announced, what=f"manifest {ref}")
        _check_manifest_json(body, media_type, what=f"manifest {ref}")
        return Manifest(body, media_type, digest)

    def find_manifest(self, ref: Reference) -> Manifest | None:
        """Like `get_manifest`, but None when there is no such manifest or tag."""
        try:
            return self.get_manifest(ref)
        except NotFoundError:
            return None

    def resolve(self, ref: Reference) -> Manifest:
        """Resolve a tag (or check a digest) to its manifest, once; the caller signs its digest.

        The manifest is fetched rather than HEADed so the digest is computed from the bytes
        themselves, and the subject descriptor (media type, size) comes with it.
        """
        return self.get_manifest(ref)

    def manifest_exists(self, ref: Reference) -> bool:
        """Whether the manifest `ref` names exists (HEAD); False on 404."""
        try:
            self._transport.request(
                "HEAD",
                ref,
                f"manifests/{ref.identifier}",
                scope="pull",
                headers={"Accept": _ACCEPT_MANIFESTS},
                max_bytes=0,
                what=f"manifest {ref}",
            )
        except NotFoundError:
            return False
        return True

    def put_manifest(
        self, ref: Reference, data: bytes, media_type: str, *, tag: str | None = None
    ) -> PushedManifest:
        """Upload a manifest under `tag`, or under its own digest when `tag` is None.

        Raises:
            RegistryProtocolError: the registry announced a different digest.
        """
        if media_type not in MANIFEST_TYPES:
            raise RuntimeError(f"not a manifest media type: {media_type}")
        digest = digest_of(data)
        target = tag if tag is not None else digest
        response, _ = self._transport.request(
            "PUT",
            ref,
            f"manifests/{target}",
            scope="pull,push",
            headers={"Content-Type": media_type},
            data=data,
            max_bytes=MAX_ERROR_BYTES,
            what=f"manifest {ref.name}:{target}",
            expect=(201,),
        )
        announced = response.headers.get("Docker-Content-Digest")
        if announced and announced != digest:
            raise RegistryProtocolError(
                f"{ref.registry} stored manifest {target} as {announced}, expected {digest}"
            )
        return PushedManifest(digest, response.headers.get("OCI-Subject"))

    # Blobs.

    def blob_exists(self, ref: Reference, digest: str) -> bool:
        """Whether the repository of `ref` holds blob `digest`."""
        check_digest(digest)
        try:
            self._transport.request(
                "HEAD", ref, f"blobs/{digest}", scope="pull", max_bytes=0, what=f"blob {digest}"
            )
        except NotFoundError:
            return False
        return True

    def push_blob(self, ref: Reference, data: bytes, media_type: str) -> Descriptor:
        """Upload `data` as a blob in one PUT, unless the repository already has it."""
        digest = digest_of(data)
        descriptor = Descriptor(media_type, digest, len(data))
        if self.blob_exists(ref, digest):
            return descriptor
        response, _ = self._transport.request(
            "POST",
            ref,
            "blobs/uploads/",
            scope="pull,push",
            max_bytes=MAX_ERROR_BYTES,
            what=f"upload to {ref.name}",
            expect=(202,),
        )
        location = response.headers.get("Location")
        if not location:
            raise RegistryProtocolError(f"{ref.registry} started an upload without a Location")
        url = urljoin(response.url, location)
        separator = "&" if urlsplit(url).query else "?"
        self._transport.request(
            "PUT",
            ref,
            f"{url}{separator}digest={digest}",
            scope="pull,push",
            headers={"Content-Type": "application/octet-stream"},
            data=data,
            max_bytes=MAX_ERROR_BYTES,
            what=f"blob {digest}",
            expect=(201,),
        )
        return descriptor

    def get_blob(self, ref: Reference, digest: str, *, max_bytes: int | None = None) -> bytes:
        """Fetch blob `digest` from the repository of `ref`, bounded and verified."""
        check_digest(digest)
        _, body = self._transport.request(
            "GET",
            ref,
            f"blobs/{digest}",
            scope="pull",
            max_bytes=min(max_bytes or self.limits.max_blob_bytes, self.limits.max_blob_bytes),
            what=f"blob {digest}",
        )
        check_content(body, digest, what=f"blob {digest}")
        return body

    # Tags and referrers.

    def list_tags(self, ref: Reference) -> list[str]:
        """All tags of the repository of `ref`, following pagination within the bounds."""
        tags: list[str] = []
        path: str | None = "tags/list"
        for _ in range(self.limits.max_pages):
            response, body = self._transport.request(
                "GET",
                ref,
                path,
                scope="pull",
                max_bytes=self.limits.max_manifest_bytes,
                what=f"tag list of {ref.name}",
            )
            page = _json_object(body, what=f"tag list of {ref.name}").get("tags") or []
            if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
                raise RegistryProtocolError(f"{ref.registry} sent a malformed tag list")
            tags.extend(page)
            if len(tags) > self.limits.max_tags:
                raise RegistryProtocolError(f"{ref.name} has more than {self.limits.max_tags} tags")
            path = _next_link(response)
            if path is None:
                return tags
        raise RegistryProtocolError(f"tag list of {ref.name} has too many pages")

    def referrers(
        self, ref: Reference, digest: str, *, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        """Referrers of `digest` from the OCI 1.1 referrers API, or None if the API is missing.

        Results are filtered by `artifact_type` here when the registry did not say (with
        `OCI-Filters-Applied`) that it filtered them.
        """
        check_digest(digest)
        found: list[Descriptor] = []
        path: str | None = f"referrers/{digest}"
        if artifact_type is not None:
            path += "?" + urlencode({"artifactType": artifact_type})
        filtered = True
        for page in range(self.limits.max_pages):
            try:
                response, body = self._transport.request(
                    "GET",
                    ref,
                    path,
                    scope="pull",
                    max_bytes=self.limits.max_manifest_bytes,
                    headers={"Accept": OCI_INDEX},
                    what=f"referrers of {digest}",
                )
            except NotFoundError:
                if page == 0:
                    return None
                raise
            applied = response.headers.get("OCI-Filters-Applied", "")
            filtered = filtered and "artifactType" in (f.strip() for f in applied.split(","))
            index = _json_object(body, what=f"referrers of {digest}")
            found.extend(parse_index_manifests(index, what=f"referrers of {digest}"))
            path = _next_link(response)
            if path is None:
                break
        else:
            raise RegistryProtocolError(f"referrers of {digest} have too many pages")
        if artifact_type is not None and not filtered:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found


def parse_index_manifests(index: Mapping[str, Any], *, what: str) -> list[Descriptor]:
    """The `manifests` of an OCI index, each parsed strictly."""
    manifests = index.get("manifests")
    if manifests is None:
        return []
    if not isinstance(manifests, list):
        raise RegistryProtocolError(f"{what}: manifests is not a list")
    return [
        Descriptor.from_json(item, what=f"{what}: manifests[{i}]")
        for i, item in enumerate(manifests)
    ]


def _check_manifest_json(body: bytes, media_type: str, *, what: str) -> None:
    """A manifest must be a JSON object whose own `mediaType`, if any, matches the header."""
    manifest = _json_object(body, what=what)
    declared = manifest.get("mediaType")
    if declared is not None and declared != media_type:
        raise RegistryProtocolError(f"{what}: served as {media_type} but declares {declared}")
    if manifest.get("schemaVersion") != 2:
        raise RegistryProtocolError(f"{what}: schemaVersion is not 2")


def _json_object(body: bytes, *, what: str) -> dict[str, Any]:
    """Parse `body` as a JSON object."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryProtocolError(f"{what} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise RegistryProtocolError(f"{what} is not a JSON object")
    return value


def _media_type(response: requests.Response) -> str:
    """The manifest media type from `Content-Type`, which must be one we asked for."""
    media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip()
    if media_type not in MANIFEST_TYPES:
        raise RegistryProtocolError(f"unsupported manifest media type {media_type[:100]!r}")
    return media_type


def _next_link(response: requests.Response) -> str | None:
    """The `rel="next"` URL of a paginated answer, kept on the same origin."""
    link = response.links.get("next", {}).get("url")
    if not link:
        return None
    url = urljoin(response.url, link)
    if urlsplit(url).netloc != urlsplit(response.url).netloc:
        raise RegistryProtocolError("pagination link points to another host")
    return url

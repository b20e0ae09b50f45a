"""Image references parsed and normalised the way docker/distribution does it.

`ghcr.io/acme/app:1.4`, `ubuntu` and `localhost:5000/x@sha256:...` mean what `docker pull`
makes of them: a bare name lives on Docker Hub under `library/`, the first path component is a
registry only if it holds a `.` or `:`, is `localhost`, or has an uppercase letter, and a name
with neither tag nor digest gets `latest`. The registry is written as a runtime reaches it:
lowercase, without `:443`, and `docker.io` for each of Docker Hub's names. A reference with both
keeps the digest, which is what gets fetched; the tag is kept only to show the user what they
typed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keyless.client.oci.descriptors import check_digest
from keyless.client.oci.errors import InvalidReferenceError

DOCKER_HUB = "docker.io"
DOCKER_HUB_LEGACY = "index.docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
# Every name a runtime pulls Docker Hub images from.
DOCKER_HUB_ALIASES = frozenset({DOCKER_HUB, DOCKER_HUB_LEGACY, DOCKER_HUB_API_HOST})
HTTPS_DEFAULT_PORT = ":443"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"

MAX_REFERENCE_CHARS = 512
MAX_NAME_CHARS = 255

# The grammar of docker/distribution's reference package (regexp.go), written out here.
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_REFERENCE_RE = re.compile(
    rf"(?:(?P<domain>{_DOMAIN_AND_PORT})/)?(?P<path>{_REMOTE_NAME})"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?",
    re.ASCII,
)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}", re.ASCII)
_TAG_RE = re.compile(_TAG, re.ASCII)


@dataclass(frozen=True)
class Reference:
    """A normalised image reference: registry, repository, and a tag and/or a digest.

    Build it with `parse_reference`; the constructor does not validate.
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The fully qualified repository name, `registry/repository`."""
        return f"{self.registry}/{self.repository}"

    @property
    def identifier(self) -> str:
        """What the registry is asked for: the digest when there is one, else the tag."""
        if self.digest is not None:
            return self.digest
        if self.tag is None:
            raise RuntimeError("a Reference needs a tag or a digest")
        return self.tag

    @property
    def api_host(self) -> str:
        """The host:port that serves the registry API (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API_HOST if self.registry == DOCKER_HUB else self.registry

    def with_digest(self, digest: str) -> Reference:
        """The same repository pinned to `digest`; the tag is kept for display."""
        check_digest(digest)
        return Reference(self.registry, self.repository, self.tag, digest)

    def with_tag(self, tag: str) -> Reference:
        """The same repository at `tag`, without a digest."""
        if len(tag) > 128 or not _TAG_RE.fullmatch(tag):
            raise InvalidReferenceError(f"invalid tag {tag!r}")
        return Reference(self.registry, self.repository, tag, None)

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> Reference:
    """Parse and normalise an image reference as `docker pull` would.

    Raises:
        InvalidReferenceError: the text is not a reference, is too long, has an uppercase
            repository, is a bare 64-hex identifier, or carries a malformed digest.
    """
    if len(text) > MAX_REFERENCE_CHARS:
        raise InvalidReferenceError(
            f"invalid reference: longer than {MAX_REFERENCE_CHARS} characters"
        )
    if not text:
        raise InvalidReferenceError("invalid reference: empty")
    if _IDENTIFIER_RE.fullmatch(text):
        raise InvalidReferenceError(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_domain(text)
    remote = remainder.split("@", 1)[0].split(":", 1)[0]
    if remote.lower() != remote:
        raise InvalidReferenceError(
            f"invalid reference format: repository name ({remote}) must be lowercase"
        )
    match = _REFERENCE_RE.fullmatch(f"{domain}/{remainder}")
    if match is None or match["domain"] is None:
        raise InvalidReferenceError(f"invalid reference format: {text!r}")
    name = f"{match['domain']}/{match['path']}"
    if len(name) > MAX_NAME_CHARS:
        raise InvalidReferenceError(
            f"invalid reference: repository name must not be more than {MAX_NAME_CHARS} characters"
        )
    digest = match["digest"]
    if digest is not None:
        check_digest(digest)
    tag = match["tag"]
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(match["domain"], match["path"], tag, digest)


def _registry_host(domain: str) -> str:
    """The registry as a runtime reaches it: host names are case-insensitive, `:443` is the
    port HTTPS uses anyway, and Docker Hub has three names. Without this, `GHCR.IO/acme/app`
    or `ghcr.io:443/acme/app` would escape a `ghcr.io/acme/**` policy while pulling from the
    same registry."""
    host = domain.lower()
    if host.endswith(HTTPS_DEFAULT_PORT):
        host = host[: -len(HTTPS_DEFAULT_PORT)]
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


def _split_domain(text: str) -> tuple[str, str]:
    """Split off the registry as distribution's splitDockerDomain does."""
    first, sep, rest = text.partition("/")
    if not sep:
        return DOCKER_HUB, OFFICIAL_PREFIX + text
    if first == "localhost" or any(c in first for c in ".:") or first.lower() != first:
        domain, remote = _registry_host(first), rest
    else:
        domain, remote = DOCKER_HUB, text
    if domain == DOCKER_HUB and "/" not in remote:
        remote = OFFICIAL_PREFIX + remote
    return domain, remote

"""Image references as Kyverno matches them: `*` and `?` wildcards over the whole string.

Kyverno's `imageReferences` and `skipImageReferences` (`ext/wildcard`, IGLOU-EU/go-wildcard
1.0.3) know two wildcards and nothing else: `*` matches any run of characters, `/` included, and
`?` exactly one character, `/` included; every other character is itself, and the whole name
must match. This is not policy-controller's glob (`client.policy.glob`), where `*` stops at `/`.

Kyverno matches the image as the pod spells it, normalised by its `ImageInfo.String()`: a
registry is added only to a name without one (`nginx` is `docker.io/nginx:latest`, not
`docker.io/library/nginx`), a missing tag is `:latest`, and a digest reference is
`registry/path@sha256:...` with its tag dropped. keyless matches the normalised reference the
runtime pulls (`client.oci.reference`), so a pattern is tried against every spelling Kyverno could
have seen for it (`spellings`): Docker Hub's three registry names, with and without `library/`.
A policy therefore applies wherever Kyverno would apply it, and also where a spelling (`GHCR.IO`,
`ghcr.io:443`) would have let an image slip past Kyverno's pattern. Patterns that only such a
spelling could match (an uppercase registry, `:443`) are refused when loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_PATTERN_CHARS = 1024
_DOCKER_HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io")
_OFFICIAL = "library/"
_HTTPS_PORT = re.compile(r":443(?![0-9])")


class WildcardError(ValueError):
    """The pattern is too long, empty, or could only match a spelling keyless normalises."""


@dataclass(frozen=True)
class WildcardPattern:
    """A compiled Kyverno image pattern.

    Matching walks the pattern once over the set of reachable positions in the name, in time
    linear in pattern length times name length: go-wildcard backtracks, and image names come
    from whoever creates a pod.
    """

    pattern: str

    def fullmatch(self, name: str) -> bool:
        """Whether the whole of `name` matches, as Kyverno's `wildcard.Match(pattern, name)`."""
        positions = {0}
        for char in self.pattern:
            if char == "*":
                positions = set(range(min(positions), len(name) + 1))
            elif char == "?":
                positions = {p + 1 for p in positions if p < len(name)}
            else:
                positions = {p + 1 for p in positions if p < len(name) and name[p] == char}
            if not positions:
                return False
        return len(name) in positions

    def spellings(self, name: str) -> tuple[str, ...]:
        """The names to try for the canonical match name `name` (see `spellings`)."""
        return spellings(name)


def compile_wildcard(pattern: str) -> WildcardPattern:
    """Check a Kyverno image pattern.

    Raises:
        WildcardError: empty, longer than MAX_PATTERN_CHARS, or with a registry that only a
            spelling keyless normalises away could match.
    """
    if not pattern:
        raise WildcardError("must not be empty")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise WildcardError(f"longer than {MAX_PATTERN_CHARS} characters")
    head, slash, _ = pattern.partition("/")
    registry = head if slash else head.partition(":")[0]
    if registry.lower() != registry:
        raise WildcardError(
            f"{pattern!r}: write the registry in lowercase (keyless matches images by the "
            "registry a runtime reaches, whatever its spelling)"
        )
    if slash and _HTTPS_PORT.search(head):
        raise WildcardError(
            f"{pattern!r}: write the registry without :443 (keyless matches images by the "
            "registry a runtime reaches, whatever its spelling)"
        )
    return WildcardPattern(pattern)


def spellings(name: str) -> tuple[str, ...]:
    """Every way Kyverno could spell the image whose canonical match name is `name`.

    `name` is one of the evaluator's match names (`ResolvedImage.match_names`): a lowercase
    registry without `:443`, Docker Hub as `index.docker.io`, official images under `library/`.
    Other registries are spelled one way; a Docker Hub image three or six ways.
    """
    registry, _, rest = name.partition("/")
    if registry != "index.docker.io":
        return (name,)
    paths = [rest]
    repository = re.split(r"[@:]", rest, maxsplit=1)[0]
    if rest.startswith(_OFFICIAL) and "/" not in repository[len(_OFFICIAL) :]:
        paths.append(rest[len(_OFFICIAL) :])
    return tuple(f"{host}/{path}" for host in _DOCKER_HUB_NAMES for path in paths)


def match_wildcard(pattern: str, name: str) -> bool:
    """Kyverno's `wildcard.Match(pattern, name)` over plain strings (identities, values)."""
    return WildcardPattern(pattern).fullmatch(name)

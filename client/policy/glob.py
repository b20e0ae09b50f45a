"""Image globs exactly as policy-controller reads them (`pkg/apis/glob/glob.go`).

A glob may hold only letters, digits and `-_:/*.@`. `.` is literal, `**` matches anything
(slashes included), `*` matches anything but `/`, and the whole name must match. The name
matched is go-containerregistry's `ref.Name()`: Docker Hub images are
`index.docker.io/library/nginx:latest`, a missing tag is `:latest`, and a digest reference is
`repo@sha256:...` with its tag dropped. So `*` never matches `nginx`; write
`index.docker.io/library/*` (the glob `*` alone is read as exactly that, and `*/*` as
`index.docker.io/*/*`), and end a glob with `:**` to match every tag. When the full name does
not match, the text as given is tried too (policy-controller's deprecated fallback).

One difference from go-containerregistry: `localhost/x` names the registry `localhost` here
(as `docker pull` reads it), where go-containerregistry reads a Docker Hub user `localhost`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keyless.client.oci import Reference, parse_reference
from keyless.client.oci.reference import DOCKER_HUB, DOCKER_HUB_LEGACY

# policy-controller's validGlob, `^[a-zA-Z0-9-_:\/\*\.@]+$` (the `-` there is a literal).
_VALID_GLOB = re.compile(r"[a-zA-Z0-9\-_:/*.@]+")
MAX_GLOB_CHARS = 1024


class GlobError(ValueError):
    """The glob has characters policy-controller does not allow, or is too long."""


@dataclass(frozen=True)
class GlobPattern:
    """A compiled glob; `regexp` is the anchored regexp policy-controller would build.

    Matching does not run that regexp: a backtracking engine can take time polynomial in the
    name to the power of the number of wildcards, and image names come from whoever creates a
    pod. `fullmatch` walks the glob's tokens once over the set of reachable name positions,
    in time linear in glob length times name length.
    """

    glob: str
    regexp: str
    tokens: tuple[tuple[str, str], ...]

    def fullmatch(self, name: str) -> bool:
        positions = [0]
        end = len(name)
        for kind, text in self.tokens:
            if kind == _LITERAL:
                positions = [p + len(text) for p in positions if name.startswith(text, p)]
            elif kind == _ANY:
                positions = list(range(positions[0], end + 1))
            else:
                # Each position reaches up to the next `/`; positions stay sorted and unique.
                reached: list[int] = []
                for start in positions:
                    stop = name.find("/", start)
                    stop = end if stop < 0 else stop
                    low = max(start, reached[-1] + 1) if reached else start
                    reached.extend(range(low, stop + 1))
                positions = reached
            if not positions:
                return False
        return positions[-1] == end

    def spellings(self, name: str) -> tuple[str, ...]:
        """The names to try for a match name: the name itself (globs read the canonical form)."""
        return (name,)


_LITERAL, _ANY, _SEGMENT = "literal", "**", "*"


def compile_glob(glob: str) -> GlobPattern:
    """Check a glob and compile it for `fullmatch`.

    Raises:
        GlobError: the glob is empty, too long, or has a character outside the allowed set.
    """
    if glob == "*/*":
        glob = "index.docker.io/*/*"
    elif glob == "*":
        glob = "index.docker.io/library/*"
    if len(glob) > MAX_GLOB_CHARS:
        raise GlobError(f"invalid glob: longer than {MAX_GLOB_CHARS} characters")
    if not _VALID_GLOB.fullmatch(glob):
        raise GlobError(f"invalid glob {glob!r}: only letters, digits and -_:/*.@ are allowed")
    pattern = glob.replace(".", r"\.").replace("**", "#").replace("*", "[^/]*")
    # As policy-controller does: `**` first (to a placeholder outside the charset), then `*`.
    tokens: list[tuple[str, str]] = []
    for part in re.split(r"([*\0])", glob.replace("**", "\0")):
        if part == "\0":
            tokens.append((_ANY, ""))
        elif part == "*":
            tokens.append((_SEGMENT, ""))
        elif part:
            tokens.append((_LITERAL, part))
    return GlobPattern(glob, pattern.replace("#", ".*"), tuple(tokens))


def reference_name(reference: Reference) -> str:
    """go-containerregistry's `ref.Name()`: `index.docker.io/...`, and `@digest` over `:tag`."""
    registry = DOCKER_HUB_LEGACY if reference.registry == DOCKER_HUB else reference.registry
    name = f"{registry}/{reference.repository}"
    if reference.digest is not None:
        return f"{name}@{reference.digest}"
    return f"{name}:{reference.tag}"


def match_glob(glob: str, image: str) -> bool:
    """Whether `image` (a reference as written) matches `glob`, as policy-controller's Match.

    Raises:
        GlobError: the glob is invalid.
        RegistryError: the image is not a valid reference (it matches nothing).
    """
    pattern = compile_glob(glob)
    name = reference_name(parse_reference(image))
    if pattern.fullmatch(name):
        return True
    return name != image and pattern.fullmatch(image)

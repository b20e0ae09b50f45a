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

from cli.oci import Reference, parse_reference
from cli.oci.reference import DOCKER_HUB, DOCKER_HUB_LEGACY

# policy-controller's validGlob, `^[a-zA-Z0-9-_:\/\*\.@]+$` (the `-` there is a literal).
_VALID_GLOB = re.compile(r"[a-zA-Z0-9\-_:/*.@]+")
MAX_GLOB_CHARS = 1024


class GlobError(ValueError):
    """The glob has characters policy-controller does not allow, or is too long."""


def compile_glob(glob: str) -> re.Pattern[str]:
    """The anchored regexp a glob stands for (use it with `fullmatch`).

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
    return re.compile(pattern.replace("#", ".*"))


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
    regexp = compile_glob(glob)
    name = reference_name(parse_reference(image))
    if regexp.fullmatch(name):
        return True
    return name != image and regexp.fullmatch(image) is not None

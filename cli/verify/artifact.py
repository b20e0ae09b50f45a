"""What is being verified: a file on disk or a bare `sha256:<hex>` digest, reduced to SHA-256."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from cli.verify.errors import VerificationError

_DIGEST_RE = re.compile(r"sha256:([0-9a-fA-F]{64})")
_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Artifact:
    """An artifact's SHA-256 and how the user named it."""

    sha256: bytes
    name: str
    path: Path | None


def resolve_artifact(value: str) -> Artifact:
    """A `sha256:<64 hex>` digest that is not an existing path, or else a file to hash.

    This is the conformance protocol's rule for FILE_OR_DIGEST, used by `keyless verify` too.

    Raises:
        VerificationError("artifact"): the file cannot be read.
    """
    match = _DIGEST_RE.fullmatch(value)
    if match is not None and not Path(value).exists():
        return Artifact(sha256=bytes.fromhex(match.group(1)), name=value.lower(), path=None)
    path = Path(value)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK_BYTES):
                digest.update(chunk)
    except OSError as exc:
        raise VerificationError("artifact", f"cannot read {value}: {exc.strerror}") from exc
    return Artifact(sha256=digest.digest(), name=value, path=path)

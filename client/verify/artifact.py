"""What is being verified: a file on disk, or a bare `sha256:`/`sha384:`/`sha512:` digest.

A file is hashed with SHA-256 once; a bundle that signed another digest of it (SHA-384 or
SHA-512, as P-384 and P-521 signers do) or an in-toto subject named by another algorithm asks
for that digest, and the file is hashed again with that algorithm. A bare digest can only
match what was signed with its own algorithm.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from keyless.client.verify.errors import VerificationError
from keyless.core.errors import Reason

# The digest algorithms keyless accepts, by their in-toto / OCI names, with hex lengths.
DIGEST_ALGORITHMS: dict[str, int] = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST_RE = re.compile(r"(sha256|sha384|sha512):([0-9a-fA-F]+)")
_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Artifact:
    """An artifact: how the user named it, one digest of it, and the file if there is one."""

    name: str
    path: Path | None
    algorithm: str  # "sha256", "sha384" or "sha512": the algorithm of `value`
    value: bytes

    @classmethod
    def from_sha256(cls, sha256: bytes) -> Artifact:
        """An artifact known only by its SHA-256 (callers that hashed it themselves)."""
        return cls(name=f"sha256:{sha256.hex()}", path=None, algorithm="sha256", value=sha256)

    @property
    def label(self) -> str:
        """`algorithm:hex`, as printed and as `-o json` reports it."""
        return f"{self.algorithm}:{self.value.hex()}"

    @property
    def sha256(self) -> bytes | None:
        """The SHA-256, None for an artifact given only by another algorithm's digest."""
        return self.digest("sha256")

    def digest(self, algorithm: str) -> bytes | None:
        """The artifact's digest by `algorithm`, hashing the file if need be; None when the
        artifact is a bare digest of another algorithm.

        Raises:
            VerificationError("artifact"): the file cannot be read any more.
        """
        if algorithm == self.algorithm:
            return self.value
        if self.path is None or algorithm not in DIGEST_ALGORITHMS:
            return None
        return _hash_file(self.path, algorithm, self.name)


def is_digest(value: str, *, algorithms: tuple[str, ...] = tuple(DIGEST_ALGORITHMS)) -> bool:
    """True when `value` is `<algorithm>:<hex of the right length>` for one of `algorithms`."""
    match = _DIGEST_RE.fullmatch(value)
    return (
        match is not None
        and match.group(1) in algorithms
        and len(match.group(2)) == DIGEST_ALGORITHMS[match.group(1)]
    )


def resolve_artifact(value: str, *, algorithms: tuple[str, ...] = ("sha256",)) -> Artifact:
    """A digest (`sha256:<64 hex>`, or one of `algorithms`) that is not an existing path, or
    else a file to hash.

    This is the conformance protocol's rule for FILE_OR_DIGEST, used by `keyless verify` too,
    which also accepts `sha384:` and `sha512:` digests.

    Raises:
        VerificationError("artifact"): the file cannot be read.
    """
    if is_digest(value, algorithms=algorithms) and not Path(value).exists():
        algorithm, hex_value = value.split(":", 1)
        return Artifact(
            name=value.lower(), path=None, algorithm=algorithm, value=bytes.fromhex(hex_value)
        )
    path = Path(value)
    return Artifact(
        name=value, path=path, algorithm="sha256", value=_hash_file(path, "sha256", value)
    )


def _hash_file(path: Path, algorithm: str, name: str) -> bytes:
    digest = hashlib.new(algorithm)
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK_BYTES):
                digest.update(chunk)
    except OSError as exc:
        raise VerificationError(
            reason=Reason.ARTIFACT, detail=f"cannot read {name}: {exc.strerror}"
        ) from exc
    return digest.digest()

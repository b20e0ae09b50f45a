"""Reading user-named files with a size bound, read incrementally so a huge file costs nothing."""

from __future__ import annotations

from pathlib import Path

from keyless.client.errors import ClientError


def read_bounded(path: Path, *, limit: int) -> bytes:
    """The bytes of `path`, or ClientError if it is unreadable or larger than `limit` bytes."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror}") from exc
    if len(data) > limit:
        raise ClientError(f"{path} is larger than {limit} bytes")
    return data

"""Attestation bundle files: one bundle (`.json`) or several, one per line (`.jsonl`).

A file can carry several attestations (provenance, an SBOM, a scan), so the default beside an
artifact is `<file>.intoto.jsonl`, the SLSA convention that `gh attestation verify --bundle`
also reads: `keyless attest` appends a line, `keyless verify-attestation` tries each.
A path not ending in `.jsonl` holds exactly one bundle and is overwritten.
"""

from __future__ import annotations

import os
from pathlib import Path

from keyless.client.bundle import Bundle
from keyless.client.errors import ClientError
from keyless.client.files import read_bounded
from keyless.client.verify import BundleError

MAX_BUNDLE_FILE_BYTES = 32 * 1024 * 1024
MAX_BUNDLES_PER_FILE = 256
JSONL_SUFFIX = ".jsonl"


def default_bundle_path(artifact: Path) -> Path:
    """Where an artifact's attestations live unless --bundle says otherwise."""
    return artifact.with_name(artifact.name + ".intoto" + JSONL_SUFFIX)


def read_bundles(path: Path) -> list[Bundle]:
    """Every bundle in a JSON or JSON Lines file; a malformed line is an error, not skipped.

    Raises:
        BundleError: unreadable, too large, too many lines, or a line that is not a bundle.
    """
    try:
        data = read_bounded(path, limit=MAX_BUNDLE_FILE_BYTES)
    except ClientError as exc:
        raise BundleError(detail=exc.message) from exc
    text = data.strip()
    if not text:
        raise BundleError(detail=f"{path} holds no bundle")
    try:
        return [Bundle.from_json(text)]
    except BundleError as single:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) == 1:
            raise single
    if len(lines) > MAX_BUNDLES_PER_FILE:
        raise BundleError(detail=f"{path} holds more than {MAX_BUNDLES_PER_FILE} bundles")
    bundles = []
    for number, line in enumerate(lines, start=1):
        try:
            bundles.append(Bundle.from_json(line))
        except BundleError as exc:
            raise BundleError(detail=f"{path} line {number}: {exc.detail}") from exc
    return bundles


def write_bundle(path: Path, bundle_json: str) -> None:
    """Add a bundle to a `.jsonl` file, or write it as the only bundle of any other file.

    The new content is written to a temporary file and renamed over the old, so a reader never
    sees half a line and a failure leaves the old file as it was.

    Raises:
        ClientError: the file cannot be read or written.
    """
    line = bundle_json.replace("\n", "") + "\n"
    content = line
    if path.name.endswith(JSONL_SUFFIX) and path.exists():
        try:
            existing = read_bounded(path, limit=MAX_BUNDLE_FILE_BYTES).decode()
        except UnicodeDecodeError as exc:
            raise ClientError(f"{path} is not a UTF-8 JSON Lines file; not appending") from exc
        if existing and not existing.endswith("\n"):
            existing += "\n"
        content = existing + line
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(content)
        temporary.replace(path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ClientError(f"cannot write the bundle to {path}: {exc.strerror}") from exc

"""Rekor v1 JSON: strict request parsing and response rendering. No Flask, no crypto decisions.

Shapes follow Rekor's `openapi.yaml`: numbers are JSON integers, hashes lowercase hex, bytes
standard base64, errors `{"code": <int>, "message": <str>}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keyless import strictjson
from keyless.core.encoding import b64encode
from keyless.tlog.errors import RequestError
from keyless.tlog.pki import decode_b64
from keyless.tlog.rekor import RekorEntry, SearchQuery

MAX_ENTRY_REQUEST_BYTES = 2 * 1024 * 1024
MAX_RETRIEVE_REQUEST_BYTES = 4 * 1024 * 1024
MAX_SEARCH_REQUEST_BYTES = 64 * 1024
MAX_JSON_DEPTH = strictjson.MAX_DEPTH
MAX_INT64 = 2**63 - 1


def parse_json(body: bytes) -> Any:
    """Strict JSON (`strictjson`): UTF-8, no duplicate keys, no NaN/Infinity, bounded nesting.

    Raises:
        RequestError: the body is not such JSON.
    """
    try:
        return strictjson.loads(body, max_depth=MAX_JSON_DEPTH)
    except strictjson.JSONError as exc:
        raise RequestError(str(exc)) from exc


def _int(value: object, what: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_INT64:
        raise RequestError(f"{what} must be an integer in [{minimum}, {MAX_INT64}]")
    return value


def parse_int_param(value: str | None, what: str, *, default: int | None = None) -> int:
    """A decimal query parameter (no sign, no leading zeros beyond "0")."""
    if value is None:
        if default is None:
            raise RequestError(f"{what} is required")
        return default
    if not value.isascii() or not value.isdigit() or (len(value) > 1 and value[0] == "0"):
        raise RequestError(f"{what} must be a non-negative decimal integer")
    if len(value) > 19 or int(value) > MAX_INT64:
        raise RequestError(f"{what} is too large")
    return int(value)


@dataclass(frozen=True)
class RetrieveRequest:
    """`POST /api/v1/log/entries/retrieve`: entry IDs, log indexes and proposed entries."""

    entry_ids: tuple[str, ...]
    indexes: tuple[int, ...]
    entries: tuple[object, ...]


def _list(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RequestError(f"{what} must be a list")
    return value


def parse_retrieve(value: object) -> RetrieveRequest:
    """Parse a retrieve request; the item count is bounded by the service."""
    if not isinstance(value, dict):
        raise RequestError("request body must be a JSON object")
    unknown = set(value) - {"entryUUIDs", "logIndexes", "entries"}
    if unknown:
        raise RequestError(f"unknown field {sorted(unknown)[0]!r}")
    entry_ids = _list(value.get("entryUUIDs"), "entryUUIDs")
    if any(not isinstance(item, str) for item in entry_ids):
        raise RequestError("entryUUIDs must be strings")
    indexes = [_int(i, "logIndexes item") for i in _list(value.get("logIndexes"), "logIndexes")]
    entries = _list(value.get("entries"), "entries")
    return RetrieveRequest(tuple(entry_ids), tuple(indexes), tuple(entries))


def parse_search(value: object) -> SearchQuery:
    """Parse an index search request (`hash`, `email`, `publicKey`, `operator`)."""
    if not isinstance(value, dict):
        raise RequestError("request body must be a JSON object")
    unknown = set(value) - {"hash", "email", "publicKey", "operator"}
    if unknown:
        raise RequestError(f"unknown field {sorted(unknown)[0]!r}")
    artifact_hash = value.get("hash")
    email = value.get("email")
    for name, item in (("hash", artifact_hash), ("email", email)):
        if item is not None and (not isinstance(item, str) or len(item) > 512):
            raise RequestError(f"{name} must be a string of at most 512 characters")
    pem = None
    public_key = value.get("publicKey")
    if public_key is not None:
        if not isinstance(public_key, dict) or set(public_key) - {"format", "content"}:
            raise RequestError("publicKey must be {format, content}")
        if public_key.get("format") != "x509":
            raise RequestError("publicKey format must be x509")
        pem = decode_b64(public_key.get("content"), "publicKey content", max_bytes=32 * 1024)
    operator = value.get("operator", "or")
    if operator not in ("and", "or"):
        raise RequestError("operator must be 'and' or 'or'")
    return SearchQuery(
        artifact_hash=artifact_hash, public_key_pem=pem, email=email, operator=operator
    )


def entry_json(entry: RekorEntry) -> dict[str, Any]:
    """The LogEntry map `{entryID: {...}}` of Rekor's API."""
    return {
        entry.entry_id: {
            "body": b64encode(entry.body),
            "integratedTime": entry.integrated_time,
            "logID": entry.log_id,
            "logIndex": entry.log_index,
            "verification": {
                "inclusionProof": {
                    "checkpoint": entry.checkpoint,
                    "hashes": [h.hex() for h in entry.hashes],
                    "logIndex": entry.log_index,
                    "rootHash": entry.root_hash.hex(),
                    "treeSize": entry.tree_size,
                },
                "signedEntryTimestamp": b64encode(entry.signed_entry_timestamp),
            },
        }
    }


def error_json(code: int, message: str) -> dict[str, Any]:
    """Rekor's error body."""
    return {"code": code, "message": message}

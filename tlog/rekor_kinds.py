"""Rekor v1 entry kinds: validate a proposed entry, verify its signatures, canonicalise it.

Supported: `hashedrekord` 0.0.1, `dsse` 0.0.1 and `intoto` 0.0.2, as Rekor's
`pkg/types/*/entry.go` define them. The canonical body (the Merkle leaf) is the RFC 8785 JSON of
what Rekor keeps. Search keys use this log's own namespaces: `hash:<alg>:<hex>`, `pk:<hex
SHA-256 of the canonical PEM>` and `san:<lower-cased SAN>`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from keyless.core.dsse import pae
from keyless.core.encoding import b64encode
from keyless.tlog.errors import EntryError
from keyless.tlog.log import MAX_KEY_CHARS, MAX_KEYS_PER_ENTRY
from keyless.tlog.pki import (
    MAX_SIGNATURE_BYTES,
    EntryKey,
    decode_b64,
    parse_pem_key,
    verify_message,
    verify_prehashed,
)

MAX_ENVELOPE_BYTES = 1024 * 1024
MAX_DSSE_SIGNATURES = 8
MAX_PAYLOAD_TYPE_CHARS = 256
MAX_KEYID_CHARS = 256
_HEX = {
    "sha256": re.compile(r"[0-9a-f]{64}\Z"),
    "sha384": re.compile(r"[0-9a-f]{96}\Z"),
    "sha512": re.compile(r"[0-9a-f]{128}\Z"),
}


@dataclass(frozen=True)
class CanonicalEntry:
    """A validated entry: its kind, version, canonical body bytes and search keys."""

    kind: str
    api_version: str
    body: bytes
    keys: tuple[str, ...]


def _object(
    value: object, what: str, *, required: set[str], optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """A JSON object with exactly the given keys; optional keys may be absent or null."""
    if not isinstance(value, dict):
        raise EntryError(f"{what} must be a JSON object")
    unknown = set(value) - required - optional
    if unknown:
        raise EntryError(f"{what} has unknown field {sorted(unknown)[0]!r}")
    present = {key: item for key, item in value.items() if item is not None}
    missing = required - set(present)
    if missing:
        raise EntryError(f"{what} is missing {sorted(missing)[0]!r}")
    return present


def _string(value: object, what: str, *, max_chars: int) -> str:
    if not isinstance(value, str) or not value:
        raise EntryError(f"{what} must be a non-empty string")
    if len(value) > max_chars:
        raise EntryError(f"{what} is longer than {max_chars} characters")
    return value


def _hash(value: object, what: str, *, algorithms: tuple[str, ...]) -> dict[str, str]:
    fields = _object(value, what, required={"algorithm", "value"})
    algorithm = fields["algorithm"]
    if algorithm not in algorithms:
        raise EntryError(f"{what} algorithm must be one of {', '.join(algorithms)}")
    digest = fields["value"]
    if not isinstance(digest, str) or not _HEX[algorithm].match(digest):
        raise EntryError(f"invalid value for hash: {what} must be lowercase hex of {algorithm}")
    return {"algorithm": algorithm, "value": digest}


def _key_search(key: EntryKey) -> list[str]:
    """Index keys: the verifier as given, its bare public key (so a search by key finds the
    entries signed under a certificate for it: `keyless audit` asks that of every certificate
    the CA issued), and its SAN values."""
    keys = ["pk:" + hashlib.sha256(key.canonical_pem).hexdigest()]
    if key.certificate is not None:
        spki = key.key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        keys.append("pk:" + hashlib.sha256(spki).hexdigest())
    return keys + ["san:" + subject for subject in key.subjects()]


def _body(kind: str, api_version: str, spec: dict[str, Any]) -> bytes:
    return rfc8785.dumps({"apiVersion": api_version, "kind": kind, "spec": spec})


def canonicalize(proposed: object) -> CanonicalEntry:
    """Validate a proposed entry (parsed JSON), verify its signatures, return its canonical form.

    Raises:
        EntryError: unknown kind or version, malformed fields, or a signature that does not
            verify; the message says which.
    """
    entry = _object(proposed, "entry", required={"kind", "apiVersion", "spec"})
    kind, version = entry["kind"], entry["apiVersion"]
    handler = _KINDS.get((kind, version)) if isinstance(kind, str) else None
    if handler is None:
        raise EntryError(f"unsupported entry kind {str(kind)[:40]!r} version {str(version)[:20]!r}")
    canonical = handler(entry["spec"])
    # The search index is best effort, as Rekor's is: a certificate with very many or very
    # long SANs is still logged, with only the keys that fit the log's bounds.
    keys = [key for key in dict.fromkeys(canonical.keys) if len(key) <= MAX_KEY_CHARS]
    return CanonicalEntry(
        canonical.kind, canonical.api_version, canonical.body, tuple(keys[:MAX_KEYS_PER_ENTRY])
    )


def _hashedrekord(spec_value: object) -> CanonicalEntry:
    spec = _object(spec_value, "spec", required={"signature", "data"})
    signature = _object(spec["signature"], "signature", required={"content", "publicKey"})
    public_key = _object(signature["publicKey"], "publicKey", required={"content"})
    data = _object(spec["data"], "data", required={"hash"})
    digest = _hash(data["hash"], "data.hash", algorithms=("sha256", "sha384", "sha512"))
    raw_signature = decode_b64(
        signature["content"], "signature content", max_bytes=MAX_SIGNATURE_BYTES
    )
    pem = decode_b64(public_key["content"], "publicKey content", max_bytes=32 * 1024)
    key = parse_pem_key(pem)
    verify_prehashed(key.key, raw_signature, bytes.fromhex(digest["value"]), digest["algorithm"])
    canonical_spec = {
        "data": {"hash": digest},
        "signature": {
            "content": b64encode(raw_signature),
            "publicKey": {"content": b64encode(key.canonical_pem)},
        },
    }
    keys = [f"hash:{digest['algorithm']}:{digest['value']}", *_key_search(key)]
    return CanonicalEntry(
        "hashedrekord", "0.0.1", _body("hashedrekord", "0.0.1", canonical_spec), tuple(keys)
    )


def _parse_envelope_json(text: str) -> dict[str, Any]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):
            raise EntryError("DSSE envelope has a duplicate field")
        return result

    try:
        value = json.loads(text, object_pairs_hook=no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise EntryError("DSSE envelope is not valid JSON") from exc
    return _object(value, "DSSE envelope", required={"payload", "payloadType", "signatures"})


def _no_constant(name: str) -> None:
    raise EntryError(f"DSSE envelope contains {name}")


def _signature_list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise EntryError(f"{what} must be a non-empty list")
    if len(value) > MAX_DSSE_SIGNATURES:
        raise EntryError(f"{what} has more than {MAX_DSSE_SIGNATURES} entries")
    return value


def _dsse(spec_value: object) -> CanonicalEntry:
    spec = _object(
        spec_value,
        "spec",
        required={"proposedContent"},
        optional=frozenset({"signatures", "envelopeHash", "payloadHash"}),
    )
    if len(spec) != 1:
        raise EntryError("only proposedContent may be given for a new dsse entry")
    content = _object(
        spec["proposedContent"], "proposedContent", required={"envelope", "verifiers"}
    )
    text = _string(content["envelope"], "envelope", max_chars=MAX_ENVELOPE_BYTES)
    envelope = _parse_envelope_json(text)
    payload_type = _string(envelope["payloadType"], "payloadType", max_chars=MAX_PAYLOAD_TYPE_CHARS)
    payload = decode_b64(envelope["payload"], "DSSE payload", max_bytes=MAX_ENVELOPE_BYTES)
    verifiers = [
        parse_pem_key(decode_b64(item, "verifier", max_bytes=32 * 1024))
        for item in _signature_list(content["verifiers"], "verifiers")
    ]
    message = pae(payload_type, payload)
    verified: dict[str, EntryKey] = {}
    for position, item in enumerate(_signature_list(envelope["signatures"], "DSSE signatures")):
        fields = _object(
            item, f"DSSE signature #{position}", required={"sig"}, optional=frozenset({"keyid"})
        )
        sig_text = fields["sig"]
        raw = decode_b64(sig_text, "DSSE signature", max_bytes=MAX_SIGNATURE_BYTES)
        verified[sig_text] = _find_verifier(verifiers, raw, message)
    envelope_hash = hashlib.sha256(text.encode()).hexdigest()
    payload_hash = hashlib.sha256(payload).hexdigest()
    canonical_spec = {
        "envelopeHash": {"algorithm": "sha256", "value": envelope_hash},
        "payloadHash": {"algorithm": "sha256", "value": payload_hash},
        "signatures": [
            {"signature": sig, "verifier": b64encode(verified[sig].canonical_pem)}
            for sig in sorted(verified)
        ],
    }
    keys = [f"hash:sha256:{payload_hash}", f"hash:sha256:{envelope_hash}"]
    for key in verified.values():
        keys.extend(_key_search(key))
    return CanonicalEntry("dsse", "0.0.1", _body("dsse", "0.0.1", canonical_spec), tuple(keys))


def _find_verifier(verifiers: list[EntryKey], signature: bytes, message: bytes) -> EntryKey:
    for candidate in verifiers:
        try:
            verify_message(candidate.key, signature, message)
        except EntryError:
            continue
        return candidate
    raise EntryError("all signatures must have a key that verifies it")


def _intoto(spec_value: object) -> CanonicalEntry:
    spec = _object(spec_value, "spec", required={"content"})
    content = _object(
        spec["content"],
        "content",
        required={"envelope", "hash"},
        optional=frozenset({"payloadHash"}),
    )
    envelope = _object(
        content["envelope"], "envelope", required={"payloadType", "payload", "signatures"}
    )
    envelope_hash = _hash(content["hash"], "content.hash", algorithms=("sha256",))
    payload_type = _string(envelope["payloadType"], "payloadType", max_chars=MAX_PAYLOAD_TYPE_CHARS)
    # Rekor's intoto 0.0.2 double-encodes: base64 of the envelope's base64 payload and sigs.
    payload_b64 = decode_b64(envelope["payload"], "payload", max_bytes=MAX_ENVELOPE_BYTES)
    payload = decode_b64(
        payload_b64.decode("ascii", "replace"), "payload", max_bytes=MAX_ENVELOPE_BYTES
    )
    message = pae(payload_type, payload)
    signatures = []
    keys: list[str] = []
    for position, item in enumerate(_signature_list(envelope["signatures"], "signatures")):
        what = f"signature #{position}"
        fields = _object(item, what, required={"sig", "publicKey"}, optional=frozenset({"keyid"}))
        sig_b64 = decode_b64(fields["sig"], f"{what} sig", max_bytes=MAX_SIGNATURE_BYTES * 2)
        raw = decode_b64(
            sig_b64.decode("ascii", "replace"), f"{what} sig", max_bytes=MAX_SIGNATURE_BYTES
        )
        pem = decode_b64(fields["publicKey"], f"{what} publicKey", max_bytes=32 * 1024)
        key = parse_pem_key(pem)
        verify_message(key.key, raw, message)
        signature = {"publicKey": fields["publicKey"], "sig": fields["sig"]}
        keyid = fields.get("keyid", "")
        if keyid:
            signature["keyid"] = _string(keyid, "keyid", max_chars=MAX_KEYID_CHARS)
        signatures.append(signature)
        keys.extend(_key_search(key))
    payload_hash = hashlib.sha256(payload).hexdigest()
    if "payloadHash" in content:
        given = _hash(content["payloadHash"], "content.payloadHash", algorithms=("sha256",))
        if given["value"] != payload_hash:
            raise EntryError("content.payloadHash does not match the payload")
    canonical_spec = {
        "content": {
            "envelope": {"payloadType": payload_type, "signatures": signatures},
            "hash": envelope_hash,
            "payloadHash": {"algorithm": "sha256", "value": payload_hash},
        }
    }
    keys.append(f"hash:sha256:{payload_hash}")
    return CanonicalEntry("intoto", "0.0.2", _body("intoto", "0.0.2", canonical_spec), tuple(keys))


_KINDS = {
    ("hashedrekord", "0.0.1"): _hashedrekord,
    ("dsse", "0.0.1"): _dsse,
    ("intoto", "0.0.2"): _intoto,
}

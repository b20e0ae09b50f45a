"""The client half of Rekor's v1 and v2 APIs: upload an entry, get back its log evidence."""

from __future__ import annotations

import json
from typing import Any

import requests
from sigstore_models.rekor.v1 import TransparencyLogEntry

from keyless.client.errors import NetworkError, ServiceRefusedError
from keyless.client.http import error_message, json_body, new_session, request
from keyless.core.encoding import b64decode, b64encode
from keyless.core.errors import Reason


def hashedrekord_entry(
    *, digest: bytes, signature: bytes, certificate_pem: bytes
) -> dict[str, Any]:
    """A hashedrekord 0.0.1 proposed entry for a SHA-256 `digest` signed by a certificate."""
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
            "signature": {
                "content": b64encode(signature),
                "publicKey": {"content": b64encode(certificate_pem)},
            },
        },
    }


class LogClient:
    """A Rekor v1 log at `base_url`."""

    def __init__(self, base_url: str, *, session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session or new_session()

    def upload(self, proposed: dict[str, Any]) -> TransparencyLogEntry:
        """Log `proposed`; returns the entry as a bundle holds it.

        Raises:
            ServiceRefusedError: the log refused the entry (its message is quoted).
            NetworkError: the log is unreachable or answered malformed data.
        """
        url = f"{self.base_url}/api/v1/log/entries"
        response, body = request(
            self._session, "POST", url, what="the transparency log", json=proposed
        )
        if response.status_code != 201:
            raise ServiceRefusedError(
                f"the transparency log refused the entry: {error_message(body)}",
                reason=Reason.LOG_REFUSED,
            )
        return entry_from_response(json_body(body, what="the transparency log"))


def entry_from_response(payload: Any) -> TransparencyLogEntry:
    """Map a v1 `{uuid: entry}` answer to a bundle's TransparencyLogEntry (rekor-bundle.md §3.4)."""
    try:
        ((_, entry),) = payload.items()
        body = b64decode(entry["body"], what="the entry body")
        kind = json.loads(body)
        proof = entry["verification"]["inclusionProof"]
        wire = {
            "logIndex": str(entry["logIndex"]),
            "logId": {"keyId": _b64_hex(entry["logID"])},
            "kindVersion": {"kind": kind["kind"], "version": kind["apiVersion"]},
            "integratedTime": str(entry["integratedTime"]),
            "inclusionPromise": {
                "signedEntryTimestamp": entry["verification"]["signedEntryTimestamp"]
            },
            "inclusionProof": {
                "logIndex": str(proof["logIndex"]),
                "rootHash": _b64_hex(proof["rootHash"]),
                "treeSize": str(proof["treeSize"]),
                "hashes": [_b64_hex(h) for h in proof["hashes"]],
                "checkpoint": {"envelope": proof["checkpoint"]},
            },
            "canonicalizedBody": entry["body"],
        }
        return TransparencyLogEntry.from_json(json.dumps(wire))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise NetworkError(f"the transparency log's answer is not a log entry: {exc}") from exc


class LogV2Client:
    """A Rekor v2 (rekor-tiles) log at `base_url`: hashedrekord 0.0.2 entries only.

    A v2 entry has no inclusion promise and no integrated time; the signed time comes from a
    timestamp authority, asked before the upload (`cli.timestamping`).
    """

    major_api_version = 2

    def __init__(self, base_url: str, *, session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session or new_session()

    def upload_hashedrekord(
        self,
        *,
        digest: bytes,
        signature: bytes,
        certificate_der: bytes | None = None,
        public_key_der: bytes | None = None,
        key_details: str = "PKIX_ECDSA_P256_SHA_256",
    ) -> TransparencyLogEntry:
        """Log a signature over a SHA-256 `digest` made by a certificate's key (ECDSA P-256) or
        by a managed key (its DER SPKI and PublicKeyDetails).

        Raises:
            ServiceRefusedError: the log refused the entry (its message is quoted).
            NetworkError: the log is unreachable or answered malformed data.
        """
        if (certificate_der is None) == (public_key_der is None):
            raise TypeError("give exactly one of certificate_der and public_key_der")
        url = f"{self.base_url}/api/v2/log/entries"
        material = (
            {"x509Certificate": {"rawBytes": b64encode(certificate_der)}}
            if certificate_der is not None
            else {"publicKey": {"rawBytes": b64encode(public_key_der or b"")}}
        )
        proposed = {
            "hashedRekordRequestV002": {
                "digest": b64encode(digest),
                "signature": {
                    "content": b64encode(signature),
                    "verifier": {**material, "keyDetails": key_details},
                },
            }
        }
        response, body = request(
            self._session, "POST", url, what="the transparency log", json=proposed
        )
        if response.status_code != 201:
            raise ServiceRefusedError(
                f"the transparency log refused the entry: {error_message(body)}",
                reason=Reason.LOG_REFUSED,
            )
        return v2_entry_from_response(json_body(body, what="the transparency log"))


def v2_entry_from_response(payload: Any) -> TransparencyLogEntry:
    """Read a v2 answer, which is already a bundle's TransparencyLogEntry; refuse anything else.

    It must be a hashedrekord 0.0.2 entry with an inclusion proof and a checkpoint, and carry
    no inclusion promise: a v2 log makes none, so one here would be a v1 answer in disguise.
    """
    try:
        if not isinstance(payload, dict):
            raise TypeError("not a JSON object")
        if payload.get("inclusionPromise") is not None:
            raise ValueError("a v2 entry carries no inclusion promise")
        kind = payload["kindVersion"]
        if (kind["kind"], kind["version"]) != ("hashedrekord", "0.0.2"):
            raise ValueError(f"kind {kind['kind']!r} {kind['version']!r} is not hashedrekord 0.0.2")
        wire = {key: value for key, value in payload.items() if key != "inclusionPromise"}
        entry = TransparencyLogEntry.from_json(json.dumps(wire))
        if entry.inclusion_proof is None or not entry.inclusion_proof.checkpoint.envelope:
            raise ValueError("no inclusion proof with a checkpoint")
        return entry
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise NetworkError(f"the transparency log's answer is not a v2 log entry: {exc}") from exc


def _b64_hex(value: str) -> str:
    return b64encode(bytes.fromhex(value))

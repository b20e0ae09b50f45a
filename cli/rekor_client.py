"""The client half of Rekor's v1 API: upload an entry, get back its log evidence."""

from __future__ import annotations

import base64
import json
from typing import Any

import requests
from sigstore_models.rekor.v1 import TransparencyLogEntry

from cli.errors import NetworkError, ServiceRefusedError
from cli.http import error_message, json_body, new_session, request


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
                "content": base64.b64encode(signature).decode(),
                "publicKey": {"content": base64.b64encode(certificate_pem).decode()},
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
                reason="log-refused",
            )
        return entry_from_response(json_body(body, what="the transparency log"))


def entry_from_response(payload: Any) -> TransparencyLogEntry:
    """Map a v1 `{uuid: entry}` answer to a bundle's TransparencyLogEntry (rekor-bundle.md §3.4)."""
    try:
        ((_, entry),) = payload.items()
        body = base64.b64decode(entry["body"], validate=True)
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


def _b64_hex(value: str) -> str:
    return base64.b64encode(bytes.fromhex(value)).decode()

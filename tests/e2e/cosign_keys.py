"""TEST-ONLY: image signatures made with a long-lived key in the two layouts cosign writes,
without keyless's signing code (its OCI writer only stores the bytes):

- cosign v2 (`cosign sign --key`, legacy format): the simple-signing payload signed with the
  key, a `hashedrekord` entry with the PEM public key posted to the log's v1 API, a `.sig`
  layer with `dev.cosignproject.cosign/signature` and `dev.sigstore.cosign/bundle` (no
  certificate annotation); `--tlog-upload=false` leaves the log and the bundle annotation out;
- cosign v3 (the default since v3): a DSSE in-toto statement (predicate
  `https://sigstore.dev/cosign/sign/v1`), logged as a `dsse` entry, in a bundle v0.3 whose
  `verificationMaterial.publicKey.hint` is base64(SHA-256(DER SPKI)), pushed as a referrer;
  without the log, the bundle has no `tlogEntries`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from keyless.client.oci import (
    LegacySignature,
    RegistryClient,
    append_legacy_signature,
    parse_reference,
    push_bundle,
)

INTOTO = "application/vnd.in-toto+json"
PREDICATE = "https://sigstore.dev/cosign/sign/v1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def hint(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _b64(hashlib.sha256(der).digest())


def _post(log_url: str, proposed: dict) -> dict:
    answer = requests.post(f"{log_url}/api/v1/log/entries", json=proposed, timeout=30)
    assert answer.status_code == 201, answer.text
    ((_, entry),) = answer.json().items()
    return entry


def sign_v2(
    image,
    key: ec.EllipticCurvePrivateKey,
    *,
    log_url: str | None,
    optional: dict | None = None,
    forged_set: str | None = None,
) -> dict | None:
    """A cosign v2 key signature on `image` (a tests.registry image), with `optional` in its
    payload (cosign's `-a key=value`), and `forged_set` in its bundle annotation instead of the
    log's signed entry timestamp; returns its log entry."""
    reference = parse_reference(image.reference)
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": reference.name},
                "image": {"docker-manifest-digest": image.digest},
                "type": "cosign container image signature",
            },
            "optional": optional,
        },
        separators=(",", ":"),
    ).encode()
    digest = hashlib.sha256(payload).digest()
    signature = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    entry = annotation = None
    if log_url is not None:
        entry = _post(
            log_url,
            {
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                    "signature": {
                        "content": _b64(signature),
                        "publicKey": {"content": _b64(public_pem(key))},
                    },
                },
            },
        )
        annotation = json.dumps(
            {
                "SignedEntryTimestamp": forged_set or entry["verification"]["signedEntryTimestamp"],
                "Payload": {
                    "body": entry["body"],
                    "integratedTime": entry["integratedTime"],
                    "logIndex": entry["logIndex"],
                    "logID": entry["logID"],
                },
            }
        )
    with RegistryClient(allow_insecure=True) as client:
        append_legacy_signature(
            client,
            reference.with_digest(image.digest),
            image.digest,
            LegacySignature(payload=payload, signature=_b64(signature), rekor_bundle=annotation),
        )
    return entry


def sign_v3(
    image,
    key: ec.EllipticCurvePrivateKey,
    *,
    log_url: str | None,
    predicate: str = PREDICATE,
    annotations: dict | None = None,
) -> dict:
    """A cosign v3 key-signed bundle attached to `image` (with another `predicate`, an
    attestation; with `annotations` on its subject, cosign's `-a key=value`); returns the
    bundle."""
    subject: dict = {"digest": {"sha256": image.digest.removeprefix("sha256:")}}
    if annotations is not None:
        subject["annotations"] = annotations
    from keyless.client.sign.rekor import entry_from_response

    statement = json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [subject],
            "predicateType": predicate,
            "predicate": {},
        },
        separators=(",", ":"),
    ).encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(INTOTO), INTOTO.encode(), len(statement), statement)
    envelope = {
        "payload": _b64(statement),
        "payloadType": INTOTO,
        "signatures": [{"sig": _b64(key.sign(pae, ec.ECDSA(hashes.SHA256())))}],
    }
    entries = []
    if log_url is not None:
        logged = _post(
            log_url,
            {
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {
                    "proposedContent": {
                        "envelope": json.dumps(envelope),
                        "verifiers": [_b64(public_pem(key))],
                    }
                },
            },
        )
        # The v1 answer in a bundle's shape (rekor-bundle.md §3.4).
        entries = [entry_from_response({"uuid": logged}).to_dict()]
    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": hint(key)}, "tlogEntries": entries},
        "dsseEnvelope": envelope,
    }
    reference = parse_reference(image.reference).with_digest(image.digest)
    with RegistryClient(allow_insecure=True) as client:
        subject = client.get_manifest(reference).descriptor
        push_bundle(
            client, reference, subject, json.dumps(bundle).encode(), created_at=datetime.now(UTC)
        )
    return bundle

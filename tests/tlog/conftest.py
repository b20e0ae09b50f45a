"""Fixtures for the log tests: a real Rekor app on loopback, and signing material for entries."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask

from keyless.server.paths import clean_paths
from keyless.tlog import rekor_api
from keyless.tlog.rekor import RekorService
from keyless.tlog.sqlite_storage import SQLiteStorage
from tests.conftest import serve_wsgi

LOG_HOST = "127.0.0.1"


def build_app(db: Path, key: ec.EllipticCurvePrivateKey) -> tuple[Flask, RekorService]:
    """A minimal app with only the Rekor blueprint, over a SQLite log at `db`, its paths cleaned
    as `keyless serve` cleans them (sigstore-python posts to `.../retrieve/`)."""
    service = RekorService.open(storage=SQLiteStorage(db), private_key=key, host=LOG_HOST)
    app = Flask("tlog-test")
    app.wsgi_app = clean_paths(app.wsgi_app)  # type: ignore[method-assign]
    rekor_api.init_app(app, service)
    return app, service


@dataclass
class RekorServer:
    url: str
    service: RekorService
    key: ec.EllipticCurvePrivateKey

    def post(self, path: str, body: object) -> requests.Response:
        return requests.post(self.url + path, json=body, timeout=30)

    def get(self, path: str, **params: object) -> requests.Response:
        return requests.get(self.url + path, params=params, timeout=30)

    def size(self) -> int:
        return self.service.log.head().size


@pytest.fixture
def rekor(tmp_path: Path) -> Iterator[RekorServer]:
    key = ec.generate_private_key(ec.SECP256R1())
    app, service = build_app(tmp_path / "rekor.db", key)
    with serve_wsgi(app) as url:
        yield RekorServer(url, service, key)


@dataclass
class Signer:
    """An ephemeral key with a self-signed code-signing certificate, like a Fulcio leaf."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def hashedrekord(self, artifact: bytes, *, pem: bytes | None = None) -> dict:
        digest = hashlib.sha256(artifact).digest()
        signature = self.key.sign(artifact, ec.ECDSA(hashes.SHA256()))
        return hashedrekord(digest.hex(), signature, pem or self.cert_pem)

    def envelope(self, payload: bytes, payload_type: str = "application/vnd.in-toto+json") -> dict:
        kind = payload_type.encode()
        pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)
        sig = self.key.sign(pae, ec.ECDSA(hashes.SHA256()))
        return {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": payload_type,
            "signatures": [{"sig": base64.b64encode(sig).decode(), "keyid": ""}],
        }


def hashedrekord(digest_hex: str, signature: bytes, pem: bytes, algorithm: str = "sha256") -> dict:
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": algorithm, "value": digest_hex}},
            "signature": {
                "content": base64.b64encode(signature).decode(),
                "publicKey": {"content": base64.b64encode(pem).decode()},
            },
        },
    }


def dsse_request(envelope: dict, pem: bytes) -> dict:
    return {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "proposedContent": {
                "envelope": json.dumps(envelope),
                "verifiers": [base64.b64encode(pem).decode()],
            }
        },
    }


def make_signer(email: str = "alice@example.com") -> Signer:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Signer(key, cert)


@pytest.fixture
def signer() -> Signer:
    return make_signer()


def check_tree(log, *, key, name: str) -> list[bytes]:
    """Every entry's proof verifies against the latest head, whose root is the RFC root and
    whose checkpoint `name` signed with `key`; returns the entries' data."""
    from keyless.tlog import merkle
    from keyless.tlog.checkpoint import verify_checkpoint
    from tests.tlog.test_merkle import reference_root

    head = log.head()
    entries = log.entries(0, head.size)
    assert [e.index for e in entries] == list(range(head.size))
    data = [e.data for e in entries]
    assert head.root_hash == reference_root(data)
    checkpoint = verify_checkpoint(head.signed, public_key=key.public_key(), name=name)
    assert (checkpoint.size, checkpoint.root_hash) == (head.size, head.root_hash)
    for entry in entries:
        proven = log.prove(entry.index)
        merkle.verify_inclusion(
            index=entry.index,
            size=proven.head.size,
            leaf=merkle.leaf_hash(entry.data),
            proof=proven.proof,
            root=proven.head.root_hash,
        )
    return data

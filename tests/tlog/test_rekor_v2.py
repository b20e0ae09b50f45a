"""The Rekor v2 log over HTTP: writes answered with a proof and a C2SP checkpoint, the tree read
back from tiles alone, and every malformed request refused with nothing logged."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from flask import Flask
from sigstore_models.rekor.v1 import TransparencyLogEntry

from keyless.tlog import (
    checkpoint_key_id,
    checkpoint_origin,
    leaf_hash,
    rekor_v2_api,
    verify_checkpoint,
    verify_inclusion,
)
from keyless.tlog.log import NewEntry
from keyless.tlog.rekor_v2 import RekorV2Service, canonicalize
from keyless.tlog.sqlite_storage import SQLiteStorage
from keyless.tlog.tiles import TileRef, encode_index, parse_entry_bundle, parse_tile_path
from tests.conftest import serve_wsgi
from tests.tlog.conftest import Signer, make_signer

ORIGIN = "log.keyless.test"
ENTRIES = "/api/v2/log/entries"
DATA = Path(__file__).resolve().parents[2] / "client" / "data"


@dataclass
class V2Server:
    url: str
    service: RekorV2Service
    key: ed25519.Ed25519PrivateKey

    def post(self, body: object) -> requests.Response:
        return requests.post(self.url + ENTRIES, json=body, timeout=30)

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.url}/api/v2/{path}", timeout=30)

    def size(self) -> int:
        return self.service.log.head().size


@pytest.fixture
def v2(tmp_path: Path) -> Iterator[V2Server]:
    key = ed25519.Ed25519PrivateKey.generate()
    service = RekorV2Service.open(
        storage=SQLiteStorage(tmp_path / "v2.sqlite"), private_key=key, origin=ORIGIN
    )
    app = Flask("rekor-v2-test")
    rekor_v2_api.init_app(app, service)
    with serve_wsgi(app) as url:
        yield V2Server(url, service, key)


@pytest.fixture(scope="module")
def signer() -> Signer:
    return make_signer()


def request_for(signer: Signer, artifact: bytes, **overrides: object) -> dict:
    digest = hashlib.sha256(artifact).digest()
    signature = signer.key.sign(artifact, ec.ECDSA(hashes.SHA256()))
    verifier = {
        "x509Certificate": {
            "rawBytes": base64.b64encode(
                signer.cert.public_bytes(serialization.Encoding.DER)
            ).decode()
        },
        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
    }
    spec = {
        "digest": base64.b64encode(digest).decode(),
        "signature": {"content": base64.b64encode(signature).decode(), "verifier": verifier},
    }
    for path, value in overrides.items():
        target = spec
        *parents, last = path.split(".")
        for name in parents:
            target = target[name]
        if value is None:
            del target[last]
        else:
            target[last] = value
    return {"hashedRekordRequestV002": spec}


def test_key_id_matches_the_production_rekor_v2_log() -> None:
    root = json.loads((DATA / "production_trusted_root.json").read_text())
    [log] = [t for t in root["tlogs"] if t["publicKey"]["keyDetails"] == "PKIX_ED25519"]
    key = serialization.load_der_public_key(base64.b64decode(log["publicKey"]["rawBytes"]))
    origin = checkpoint_origin(log["baseUrl"])
    assert origin == "log2025-1.rekor.sigstore.dev"
    key_id = checkpoint_key_id(key, name=origin)
    assert base64.b64encode(key_id).decode() == log["logId"]["keyId"]
    assert key_id[:4].hex() == "cf119915"


def test_key_id_of_an_ecdsa_checkpoint_key_is_the_spki_hash() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert checkpoint_key_id(key, name="ignored") == hashlib.sha256(spki).digest()


def test_entry_comes_back_with_a_proof_and_a_c2sp_checkpoint(v2, signer) -> None:
    v2.post(request_for(signer, b"first"))
    reply = v2.post(request_for(signer, b"second"))
    assert reply.status_code == 201
    document = reply.json()
    assert document["integratedTime"] == "0"
    assert document["inclusionPromise"] is None
    assert document["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.2"}
    entry = TransparencyLogEntry.from_dict(document)
    assert entry.log_index == 1
    assert entry.log_id.key_id == v2.service.key_id
    assert entry.log_id.key_id == checkpoint_key_id(v2.key.public_key(), name=ORIGIN)
    envelope = entry.inclusion_proof.checkpoint.envelope
    assert envelope.startswith(f"{ORIGIN}\n2\n")
    assert f"\n\n\u2014 {ORIGIN} " in envelope
    checkpoint = verify_checkpoint(envelope, public_key=v2.key.public_key(), name=ORIGIN)
    assert (checkpoint.size, checkpoint.root_hash) == (2, entry.inclusion_proof.root_hash)
    verify_inclusion(
        index=1,
        size=2,
        leaf=leaf_hash(entry.canonicalized_body),
        proof=entry.inclusion_proof.hashes,
        root=checkpoint.root_hash,
    )
    body = json.loads(entry.canonicalized_body)
    spec = body["spec"]["hashedRekordV002"]
    assert body["apiVersion"] == "0.0.2" and body["kind"] == "hashedrekord"
    assert spec["data"] == {
        "algorithm": "SHA2_256",
        "digest": base64.b64encode(hashlib.sha256(b"second").digest()).decode(),
    }
    assert spec["signature"]["verifier"]["keyDetails"] == "PKIX_ECDSA_P256_SHA_256"


def test_proto_field_names_are_accepted_too(v2, signer) -> None:
    request = request_for(signer, b"snake")
    spec = request.pop("hashedRekordRequestV002")
    verifier = spec["signature"]["verifier"]
    verifier["x509_certificate"] = {"raw_bytes": verifier.pop("x509Certificate")["rawBytes"]}
    verifier["key_details"] = verifier.pop("keyDetails")
    assert v2.post({"hashed_rekord_request_v002": spec}).status_code == 201


def test_a_public_key_verifier_is_accepted(v2) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    from cryptography.hazmat.primitives.asymmetric import padding

    signature = key.sign(b"rsa", padding.PKCS1v15(), hashes.SHA256())
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    request = {
        "hashedRekordRequestV002": {
            "digest": base64.b64encode(hashlib.sha256(b"rsa").digest()).decode(),
            "signature": {
                "content": base64.b64encode(signature).decode(),
                "verifier": {
                    "publicKey": {"rawBytes": base64.b64encode(spki).decode()},
                    "keyDetails": "PKIX_RSA_PKCS1V15_2048_SHA256",
                },
            },
        }
    }
    assert v2.post(request).status_code == 201


def test_duplicate_is_409_with_its_index(v2, signer) -> None:
    request = request_for(signer, b"twice")
    assert v2.post(request).status_code == 201
    again = v2.post(request)
    assert again.status_code == 409
    assert again.headers["x-log-index"] == "0"
    assert again.json()["code"] == 6
    assert v2.size() == 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda r: {"dsseRequestV002": {}},
            "DSSE requests are not accepted: log a hashedrekord over the envelope's PAE",
        ),
        (lambda r: {**r, "extra": 1}, "request has unknown field 'extra'"),
        (lambda r: {}, "request is missing 'hashedRekordRequestV002'"),
        (lambda r: [], "request must be a JSON object"),
        (
            lambda r: {"hashedRekordRequestV002": {**r["hashedRekordRequestV002"], "digest": None}},
            "hashedRekordRequestV002 is missing 'digest'",
        ),
    ],
    ids=["dsse", "unknown-field", "empty", "not-object", "no-digest"],
)
def test_malformed_requests_are_refused(v2, signer, mutate, message) -> None:
    reply = v2.post(mutate(request_for(signer, b"artifact")))
    assert reply.status_code == 400
    assert reply.json() == {
        "code": 3,
        "message": f"invalid hashedrekord request: {message}",
        "details": [],
    }
    assert v2.size() == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"signature.verifier.keyDetails": "PKIX_ED25519"},
            "key details 'PKIX_ED25519' are not accepted",
        ),
        (
            {"signature.verifier.keyDetails": "PKIX_ECDSA_P384_SHA_384"},
            "digest is 32 bytes, PKIX_ECDSA_P384_SHA_384 needs a sha384 digest",
        ),
        ({"digest": _b64(b"\0" * 31)}, "digest is 31 bytes"),
        ({"digest": _b64(hashlib.sha256(b"other").digest())}, "signature does not verify"),
        ({"digest": "not base64!"}, "digest is not valid base64"),
        ({"signature.content": _b64(b"x" * 3000)}, "signature content is larger than 2048 bytes"),
        (
            {"signature.verifier.publicKey": {"rawBytes": _b64(b"key")}},
            "verifier needs exactly one of publicKey or x509Certificate",
        ),
        (
            {"signature.verifier.x509Certificate": {"rawBytes": _b64(b"not a certificate")}},
            "cannot parse the x509Certificate",
        ),
        ({"signature.verifier.x509Certificate": None}, "verifier needs exactly one of"),
    ],
    ids=[
        "pure-ed25519",
        "details-mismatch",
        "short-digest",
        "wrong-digest",
        "bad-base64",
        "huge-signature",
        "two-verifiers",
        "bad-certificate",
        "no-verifier",
    ],
)
def test_bad_entries_are_refused_and_not_logged(v2, signer, overrides, message) -> None:
    reply = v2.post(request_for(signer, b"artifact", **overrides))
    assert reply.status_code == 400
    assert message in reply.json()["message"]
    assert v2.size() == 0


def test_key_of_another_curve_than_announced_is_refused(v2) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    request = {
        "hashedRekordRequestV002": {
            "digest": _b64(hashlib.sha256(b"x").digest()),
            "signature": {
                "content": _b64(key.sign(b"x", ec.ECDSA(hashes.SHA256()))),
                "verifier": {
                    "publicKey": {"rawBytes": _b64(spki)},
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                },
            },
        }
    }
    reply = v2.post(request)
    assert reply.status_code == 400
    assert "does not match key details PKIX_ECDSA_P256_SHA_256" in reply.json()["message"]


def test_bodies_that_are_not_json_or_too_large_are_refused(v2) -> None:
    reply = requests.post(v2.url + ENTRIES, data=b"{", timeout=30)
    assert reply.status_code == 400
    big = requests.post(v2.url + ENTRIES, data=b" " * (4 * 1024 * 1024 + 1), timeout=30)
    assert big.status_code == 413
    assert v2.size() == 0


# Tiles.


@pytest.mark.parametrize(
    ("index", "path"),
    [(0, "000"), (5, "005"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067")],
)
def test_tile_index_encoding(index, path) -> None:
    assert encode_index(index) == path
    assert parse_tile_path(f"3/{path}") == TileRef(3, index)
    assert parse_tile_path(f"entries/{path}.p/7") == TileRef(None, index, 7)


@pytest.mark.parametrize(
    "path",
    [
        "0/5",
        "0/0005",
        "0/x000/005",
        "0/x1/005",
        "64/000",
        "01/000",
        "0/000.p/0",
        "0/000.p/256",
        "0/000.p/07",
        "leaves/000",
        "0/000/",
        "-1/000",
        "0/000.p/",
    ],
)
def test_non_canonical_tile_paths_are_refused(path) -> None:
    with pytest.raises(ValueError):
        parse_tile_path(path)


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 MTH over leaf hashes, computed here independently of the log's engine."""
    if len(leaves) == 1:
        return leaves[0]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + mth(leaves[:split]) + mth(leaves[split:])).digest()


def _fill(v2: V2Server, signer: Signer, count: int) -> None:
    bodies = [canonicalize(request_for(signer, b"entry %d" % i)).body for i in range(count)]
    for start in range(0, count, 256):
        results = v2.service.log.append_batch([NewEntry(b) for b in bodies[start : start + 256]])
        assert all(not isinstance(r, Exception) for r in results)


def test_whole_tree_read_back_from_tiles_alone(v2, signer) -> None:
    size = 256 * 2 + 90
    _fill(v2, signer, size)
    note = v2.get("checkpoint")
    assert note.headers["Content-Type"] == "text/plain; charset=utf-8"
    checkpoint = verify_checkpoint(note.content, public_key=v2.key.public_key(), name=ORIGIN)
    assert checkpoint.size == size
    leaves, bodies = [], []
    for tile in range(3):
        partial = "" if tile < 2 else ".p/90"
        hashes_tile = v2.get(f"tile/0/{encode_index(tile)}{partial}")
        bundle = v2.get(f"tile/entries/{encode_index(tile)}{partial}")
        assert hashes_tile.status_code == bundle.status_code == 200
        assert hashes_tile.headers["Content-Type"] == "application/octet-stream"
        assert hashes_tile.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        tile_hashes = [
            hashes_tile.content[i : i + 32] for i in range(0, len(hashes_tile.content), 32)
        ]
        entries = parse_entry_bundle(bundle.content)
        assert [leaf_hash(entry) for entry in entries] == tile_hashes
        leaves += tile_hashes
        bodies += entries
    assert len(leaves) == size
    assert mth(leaves) == checkpoint.root_hash
    # A second read of a full tile comes from memory, and is the same bytes.
    assert v2.get("tile/0/001").content == b"".join(leaves[256:512])
    # The level-1 tile holds the roots of the two full 256-leaf subtrees.
    upper = v2.get("tile/1/000.p/2")
    assert upper.content == mth(leaves[:256]) + mth(leaves[256:512])
    assert json.loads(bodies[7])["spec"]["hashedRekordV002"]["data"]["digest"] == _b64(
        hashlib.sha256(b"entry 7").digest()
    )


def test_tiles_beyond_the_tree_are_404(v2, signer) -> None:
    _fill(v2, signer, 10)
    assert v2.get("tile/0/000.p/10").status_code == 200
    assert v2.get("tile/0/000.p/9").content == v2.get("tile/0/000.p/10").content[: 9 * 32]
    for path in (
        "tile/0/000",
        "tile/0/000.p/11",
        "tile/0/001.p/1",
        "tile/1/000.p/1",
        "tile/entries/000",
        "tile/entries/000.p/11",
        "tile/0/0",
        "tile/x/000",
    ):
        reply = v2.get(path)
        assert reply.status_code == 404, path
        assert reply.json()["code"] == 5


def test_two_instances_share_a_v2_log_on_postgres_beside_v1(postgres: str, signer) -> None:
    import uuid

    from keyless.tlog.postgres_storage import PostgresStorage
    from keyless.tlog.rekor import RekorService

    tag = uuid.uuid4().hex[:8]
    key = ed25519.Ed25519PrivateKey.generate()
    first, second = (
        RekorV2Service.open(
            storage=PostgresStorage(postgres, prefix=f"v2_{tag}_"), private_key=key, origin=ORIGIN
        )
        for _ in range(2)
    )
    v1 = RekorService.open(
        storage=PostgresStorage(postgres, prefix=f"v1_{tag}_"),
        private_key=ec.generate_private_key(ec.SECP256R1()),
        host="127.0.0.1",
    )
    indexes = [
        service.add_entry(request_for(signer, b"pg %d" % n)).log_index
        for n, service in enumerate([first, second] * 5)
    ]
    assert indexes == list(range(10))
    assert v1.log_info().tree_size == 0
    checkpoint = verify_checkpoint(first.checkpoint(), public_key=key.public_key(), name=ORIGIN)
    assert checkpoint.size == 10
    tile = second.tile(TileRef(0, 0, 10))
    bundle = parse_entry_bundle(first.entry_bundle(TileRef(None, 0, 10)))
    assert tile == b"".join(leaf_hash(entry) for entry in bundle)
    assert mth([tile[i : i + 32] for i in range(0, 320, 32)]) == checkpoint.root_hash


def test_an_ecdsa_p256_checkpoint_key_is_an_option(tmp_path: Path, signer) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    service = RekorV2Service.open(
        storage=SQLiteStorage(tmp_path / "ec.sqlite"), private_key=key, origin=ORIGIN
    )
    entry = service.add_entry(request_for(signer, b"ecdsa"))
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert service.key_id == hashlib.sha256(spki).digest()
    checkpoint = verify_checkpoint(entry.checkpoint, public_key=key.public_key(), name=ORIGIN)
    assert checkpoint.size == 1
    with pytest.raises(TypeError, match="must be P-256"):
        RekorV2Service.open(
            storage=SQLiteStorage(tmp_path / "p384.sqlite"),
            private_key=ec.generate_private_key(ec.SECP384R1()),
            origin=ORIGIN,
        )


def test_arbitrary_requests_fail_only_as_entry_errors(signer) -> None:
    """Any JSON a client sends is either a valid entry or an EntryError (HTTP 400)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from keyless.tlog.errors import EntryError

    valid = request_for(signer, b"fuzz")
    names = [
        "hashedRekordRequestV002",
        "digest",
        "signature",
        "content",
        "verifier",
        "publicKey",
        "x509Certificate",
        "keyDetails",
        "rawBytes",
        "key_details",
    ]
    leaves = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=12)
        | st.sampled_from(["PKIX_ECDSA_P256_SHA_256", "AAAA", _b64(b"\0" * 32)])
    )
    values = st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(names), inner, max_size=3)
        ),
        max_leaves=10,
    )

    def replace_somewhere(document: object, value: object, path: list[str]) -> object:
        if not path or not isinstance(document, dict):
            return value
        head, *rest = path
        copy = dict(document)
        copy[head] = replace_somewhere(copy.get(head), value, rest)
        return copy

    paths = st.lists(st.sampled_from(names), max_size=5)

    @settings(max_examples=300, deadline=None)
    @given(values, paths)
    def check(value, path) -> None:
        with contextlib.suppress(EntryError):
            canonicalize(replace_somewhere(valid, value, path))

    check()

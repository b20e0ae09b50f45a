"""cli.tile_log against a real Rekor v2 log over HTTP: it reads every entry and proves every
growth from tiles alone, and refuses a front end that alters a tile, swaps an entry, signs with
another key, shrinks the tree or sends malformed or oversized bytes."""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from flask import Flask, Response

from keyless.client.errors import ClientError, NetworkError
from keyless.client.transparency.tiles import (
    LogInconsistencyError,
    TileLog,
    TreeHead,
    is_tile_log_key,
)
from keyless.client.trust import UNBOUNDED, LogKey, load_trusted_root
from keyless.tlog import Checkpoint, checkpoint_key_id, rekor_v2_api, sign_checkpoint
from keyless.tlog.log import NewEntry
from keyless.tlog.rekor_v2 import RekorV2Service, canonicalize
from keyless.tlog.sqlite_storage import SQLiteStorage
from tests.conftest import serve_wsgi
from tests.tlog.conftest import Signer, make_signer
from tests.tlog.test_rekor_v2 import mth, request_for

ORIGIN = "log.keyless.test"
BASE_URL = f"https://{ORIGIN}"
DATA = Path(__file__).resolve().parents[2] / "client" / "data"

Tamper = Callable[[str, bytes], bytes]


@dataclass
class Log:
    """A v2 log served on loopback behind a front end that can rewrite any read."""

    url: str
    service: RekorV2Service
    key: ed25519.Ed25519PrivateKey
    tamper: dict[str, Tamper] = field(default_factory=dict)

    def reader(self, *keys: LogKey) -> TileLog:
        return TileLog(BASE_URL, keys or [log_key(self.key)], tiles_url=self.url + "/api/v2")

    def append(self, bodies: list[bytes]) -> None:
        results = self.service.log.append_batch([NewEntry(body) for body in bodies])
        assert not [r for r in results if isinstance(r, Exception)]


def log_key(key: ed25519.Ed25519PrivateKey, base_url: str = BASE_URL) -> LogKey:
    origin = base_url.split("://", 1)[1]
    key_id = checkpoint_key_id(key.public_key(), name=origin)
    return LogKey(base_url, key_id, "PKIX_ED25519", key.public_key(), UNBOUNDED)


@contextmanager
def serve(service: RekorV2Service, key: ed25519.Ed25519PrivateKey) -> Iterator[Log]:
    app = Flask("rekor-v2-front")
    rekor_v2_api.init_app(app, service)
    front = Flask("tampering-front-end")
    log = Log("", service, key)

    @front.get("/api/v2/<path:path>")
    def read(path: str) -> Response:
        upstream = app.test_client().get(f"/api/v2/{path}")
        body = upstream.get_data()
        if upstream.status_code == 200 and path in log.tamper:
            body = log.tamper[path](path, body)
        return Response(body, status=upstream.status_code)

    with serve_wsgi(front) as url:
        log.url = url
        yield log


@pytest.fixture(scope="module")
def signer() -> Signer:
    return make_signer()


@pytest.fixture(scope="module")
def bodies(signer) -> list[bytes]:
    return [canonicalize(request_for(signer, b"entry %d" % i)).body for i in range(1300)]


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Log]:
    key = ed25519.Ed25519PrivateKey.generate()
    service = RekorV2Service.open(
        storage=SQLiteStorage(tmp_path / "v2.sqlite"), private_key=key, origin=ORIGIN
    )
    with serve(service, key) as served:
        yield served


def test_every_growth_is_proven_and_every_entry_read_back(log, bodies) -> None:
    reader = log.reader()
    heads, position = [reader.checkpoint()], 0
    assert heads[0].size == 0
    for step in (1, 1, 5, 249, 1, 300, 43, 600, 100):
        log.append(bodies[position : position + step])
        position += step
        heads.append(reader.checkpoint())
    assert [h.size for h in heads] == [0, 1, 2, 7, 256, 257, 557, 600, 1200, 1300]
    assert heads[-1].root_hash == mth([hashlib.sha256(b"\x00" + b).digest() for b in bodies])
    for number, old in enumerate(heads):
        for new in heads[number:]:
            reader.prove_extends(old, new)
    assert list(reader.entries(0, 1300, heads[-1])) == list(enumerate(bodies))
    # A window inside an older tree: only its entries, proven against that tree's root.
    window = list(reader.entries(250, 556, heads[6]))
    assert window == [(i, bodies[i]) for i in range(250, 556)]
    assert list(reader.entries(7, 7, heads[-1])) == []


def test_a_tree_past_one_full_level_one_tile(log) -> None:
    """Past 65,536 entries: nodes at levels 16 and up come from level-2 tiles."""
    level_two: list[str] = []
    log.tamper["tile/2/000.p/1"] = lambda path, body: level_two.append(path) or body
    reader = log.reader()
    heads, position = [], 0
    for size in (256, 65_535, 65_536, 65_600, 65_836):
        for start in range(position, size, 8192):
            log.append([b"leaf %d" % i for i in range(start, min(size, start + 8192))])
        position = size
        heads.append(reader.checkpoint())
    assert [h.size for h in heads] == [256, 65_535, 65_536, 65_600, 65_836]
    for number, old in enumerate(heads):
        for new in heads[number + 1 :]:
            log.reader().prove_extends(old, new)
    expected = [(i, b"leaf %d" % i) for i in range(65_000, 65_836)]
    assert list(log.reader().entries(65_000, 65_836, heads[-1])) == expected
    assert list(reader.entries(65_530, 65_535, heads[1])) == expected[530:535]
    assert level_two


def test_a_fresh_reader_proves_a_stored_head(log, bodies) -> None:
    log.append(bodies[:300])
    old = log.reader().checkpoint()
    log.append(bodies[300:700])
    reader = log.reader()
    stored = reader.verify_checkpoint(old.note)
    assert stored == old
    reader.prove_extends(stored, reader.checkpoint())


def test_reads_are_bounded_and_cached(log, bodies) -> None:
    log.append(bodies[:600])
    reads: list[str] = []

    def count(path: str, body: bytes) -> bytes:
        reads.append(path)
        return body

    for path in ("tile/0/000", "tile/0/001", "tile/0/002.p/88", "tile/1/000.p/2"):
        log.tamper[path] = count
    reader = log.reader()
    head = reader.checkpoint()
    list(reader.entries(0, 600, head))
    list(reader.entries(0, 600, head))
    # Each hash tile is read once, however many bundles need it.
    assert sorted(reads) == sorted(set(reads))


def _flip(path: str, body: bytes) -> bytes:
    return body[:-1] + bytes([body[-1] ^ 1])


def test_an_altered_hash_tile_breaks_the_consistency_proof(log, bodies) -> None:
    log.append(bodies[:300])
    reader = log.reader()
    old = reader.checkpoint()
    log.append(bodies[300:600])
    new = reader.checkpoint()
    log.tamper["tile/0/001"] = _flip
    with pytest.raises(LogInconsistencyError) as caught:
        log.reader().prove_extends(old, new)
    assert caught.value.message.startswith(
        f"the log at {log.url}/api/v2 cannot prove that size 600"
    )
    assert "it signed two histories (a fork)" in caught.value.message
    # Bundle 0's entries are proven with the level-1 tile (the root of leaves 256..511).
    log.tamper["tile/1/000.p/2"] = _flip
    with pytest.raises(LogInconsistencyError, match=r"entries 0\.\.255 of the log at .* are not"):
        list(log.reader().entries(0, 10, new))


def _swap_entries(first: int, second: int) -> Tamper:
    def swap(path: str, body: bytes) -> bytes:
        entries = _parse(body)
        entries[first], entries[second] = entries[second], entries[first]
        return _bundle(entries)

    return swap


def _parse(body: bytes) -> list[bytes]:
    from keyless.tlog.tiles import parse_entry_bundle

    return parse_entry_bundle(body)


def _bundle(entries: list[bytes]) -> bytes:
    return b"".join(struct.pack(">H", len(entry)) + entry for entry in entries)


@pytest.mark.parametrize(
    ("path", "tamper"),
    [
        ("tile/entries/001", _swap_entries(3, 4)),
        ("tile/entries/002.p/10", _swap_entries(0, 9)),
        (
            "tile/entries/001",
            lambda p, b: _bundle([b"not json", *_parse(b)[1:]]),
        ),
    ],
    ids=["swapped-full", "swapped-partial", "not-json"],
)
def test_a_swapped_entry_is_refused_before_anything_is_yielded(log, bodies, path, tamper) -> None:
    log.append(bodies[:522])
    reader = log.reader()
    head = reader.checkpoint()
    log.tamper[path] = tamper
    got = []
    with pytest.raises(LogInconsistencyError, match=r"are not in the tree its checkpoint"):
        for index, _entry in reader.entries(0, 522, head):
            got.append(index)
    assert got == list(range(256 if path.startswith("tile/entries/001") else 512))


def test_another_key_another_origin_and_a_shrinking_tree(log, bodies, tmp_path) -> None:
    log.append(bodies[:20])
    reader = log.reader()
    head = reader.checkpoint()
    other = ed25519.Ed25519PrivateKey.generate()
    forged = sign_checkpoint(
        Checkpoint(ORIGIN, 30, head.root_hash), name=ORIGIN, private_key=other
    ).encode()
    log.tamper["checkpoint"] = lambda p, b: forged
    with pytest.raises(LogInconsistencyError, match="sent a checkpoint no trusted key signed"):
        reader.checkpoint()
    # The log's own key, but a checkpoint naming another origin under the expected key name.
    elsewhere = sign_checkpoint(
        Checkpoint("elsewhere.test", 20, head.root_hash), name=ORIGIN, private_key=log.key
    ).encode()
    log.tamper["checkpoint"] = lambda p, b: elsewhere
    with pytest.raises(LogInconsistencyError, match=r"for origin 'elsewhere\.test', not"):
        reader.checkpoint()
    # Signed by the log's key, but smaller than what it signed before.
    smaller = sign_checkpoint(
        Checkpoint(ORIGIN, 5, head.root_hash), name=ORIGIN, private_key=log.key
    ).encode()
    log.tamper["checkpoint"] = lambda p, b: smaller
    shrunk = reader.checkpoint()
    with pytest.raises(LogInconsistencyError, match="signed size 5 after signing size 20"):
        reader.prove_extends(head, shrunk)
    same_size = TreeHead(ORIGIN, 20, bytes(32), "")
    with pytest.raises(LogInconsistencyError, match="signed two different roots for size 20"):
        reader.prove_extends(head, same_size)


def test_a_fork_under_the_same_key_is_caught(log, bodies, tmp_path) -> None:
    log.append(bodies[:300])
    old = log.reader().checkpoint()
    twin = RekorV2Service.open(
        storage=SQLiteStorage(tmp_path / "twin.sqlite"), private_key=log.key, origin=ORIGIN
    )
    twin_log = Log("", twin, log.key)
    twin_log.append(bodies[:299] + bodies[1000:1100])
    with serve(twin, log.key) as forked:
        reader = forked.reader()
        new = reader.checkpoint()
        assert new.size == 399
        with pytest.raises(LogInconsistencyError, match="cannot prove that size 399"):
            reader.prove_extends(old, new)


@pytest.mark.parametrize(
    ("path", "tamper", "message"),
    [
        ("checkpoint", lambda p, b: b"not a checkpoint", "sent a malformed checkpoint"),
        ("checkpoint", lambda p, b: b"x" * 70_000, "sent more than 65536 bytes for checkpoint"),
        ("checkpoint", lambda p, b: b[:-10], "sent a malformed checkpoint"),
        ("tile/0/000", lambda p, b: b + b"\0" * 32, "sent more than 8192 bytes for tile/0/000"),
        ("tile/0/000", lambda p, b: b[:-1], "sent 8191 bytes for tile/0/000, which must be 8192"),
        ("tile/entries/000", lambda p, b: b[:-1], "malformed tile/entries/000: entry bundle"),
        ("tile/entries/000", lambda p, b: b + b"\0\0", "sent 257 entries in tile/entries/000"),
        ("tile/entries/000", lambda p, b: b[:100], "malformed tile/entries/000"),
    ],
    ids=[
        "checkpoint-garbage",
        "checkpoint-huge",
        "checkpoint-truncated",
        "tile-oversized",
        "tile-short",
        "bundle-truncated",
        "bundle-extra-entry",
        "bundle-cut",
    ],
)
def test_malformed_reads_are_network_errors(log, bodies, path, tamper, message) -> None:
    log.append(bodies[:300])
    reader = log.reader()
    head = reader.checkpoint()
    old = TreeHead(ORIGIN, 1, hashlib.sha256(b"\x00" + bodies[0]).digest(), "")
    log.tamper[path] = tamper
    with pytest.raises(NetworkError) as caught:
        reader.checkpoint()
        reader.prove_extends(old, head)
        list(reader.entries(0, 300, head))
    assert message in caught.value.message


def test_a_missing_tile_and_an_unreachable_log(log, bodies) -> None:
    log.append(bodies[:3])
    reader = log.reader()
    head = reader.checkpoint()
    bigger = TreeHead(ORIGIN, 4, head.root_hash, "")
    with pytest.raises(NetworkError, match=r"tile/entries/000.p/4 answered HTTP 404"):
        list(reader.entries(0, 4, bigger))
    dead = TileLog(BASE_URL, [log_key(log.key)], tiles_url="http://127.0.0.1:9/api/v2")
    with pytest.raises(NetworkError, match="cannot reach the transparency log at http://127"):
        dead.checkpoint()


def test_keys_must_be_the_logs_own(log) -> None:
    wrong_origin = log_key(log.key, base_url="https://other.test")
    with pytest.raises(ClientError, match=r"lists no tile log key for https://log\.keyless\.test"):
        TileLog(BASE_URL, [wrong_origin])
    assert is_tile_log_key(log_key(log.key))
    assert not is_tile_log_key(_renamed(wrong_origin))


def _renamed(key: LogKey) -> LogKey:
    """The key listed under a base URL its key ID was not computed for."""
    return LogKey(BASE_URL, key.key_id, key.key_details, key.public_key, key.valid_for)


def test_the_production_rekor_v2_shard_is_a_tile_log() -> None:
    root = load_trusted_root(DATA / "production_trusted_root.json")
    tile_logs = [key.base_url for key in root.tlogs.values() if is_tile_log_key(key)]
    assert tile_logs == ["https://log2025-1.rekor.sigstore.dev"]
    [shard] = [key for key in root.tlogs.values() if is_tile_log_key(key)]
    reader = TileLog(shard.base_url, [shard])
    assert reader.origin == "log2025-1.rekor.sigstore.dev"
    assert reader.tiles_url == "https://log2025-1.rekor.sigstore.dev/api/v2"
    assert base64.b64encode(shard.key_id).decode() == "zxGZFVvd0FEmjR8WrFwMdcAJ9vtaY/QXf44Y1wUeP6A="

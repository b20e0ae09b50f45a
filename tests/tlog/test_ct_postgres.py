"""The in-process CT log on PostgreSQL: two server instances behind one origin, each with a copy
of the same state-directory keys, serve one CT tree; a restored (older) copy of its tables is
refused by a running instance at append and by every instance at start."""

from __future__ import annotations

import base64
import hashlib
import itertools
import shutil
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.ca.profile import build_leaf
from keyless.ca.sct import build_precertificate
from keyless.oidc import Principal, SANType
from keyless.server.app import create_app
from keyless.server.config import dev_config
from keyless.tlog import merkle
from keyless.tlog.errors import LogStartError
from tests.ca.ctverify import verify_embedded_sct
from tests.ca.helpers import chain_of, csr_pem, p256, post_csr
from tests.conftest import DevServer, dev_server

_TABLES = ("meta", "leaves", "nodes", "heads", "search")
_SERIALS = itertools.count(1000)


def _database(conninfo: str, name: str) -> str:
    """A new, empty PostgreSQL database for one test, as a postgresql:// URI."""
    with psycopg.connect(conninfo, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    fields = dict(part.split("=", 1) for part in conninfo.split())
    return f"postgresql://{fields['user']}@/{name}?host={fields['host']}"


def _sql(uri: str, *statements: str) -> None:
    with psycopg.connect(uri, autocommit=True) as db:
        for statement in statements:
            db.execute(statement)


def _precert_chain(server) -> tuple[list[bytes], bytes]:
    """A precertificate chain from the deployment's own CA (its key in the state directory),
    and the TBS its SCT must cover: the same certificate built without the poison extension."""
    now = datetime.now(UTC)
    signer = server.config.ca.load_signer(state_dir=server.config.state_dir, now=now)
    principal = Principal(SANType.EMAIL, "ct@example.com", "ct@example.com", {1: "x", 8: "x"})
    builder = build_leaf(
        principal,
        public_key=p256().public_key(),
        issuer=signer.chain[0],
        serial=next(_SERIALS),
        now=now,
    )
    precert = build_precertificate(builder, signer)
    tbs = signer.sign(builder).tbs_certificate_bytes
    return [c.public_bytes(serialization.Encoding.DER) for c in (precert, *signer.chain)], tbs


def _add_pre_chain(server, chain: list[bytes]) -> requests.Response:
    body = {"chain": [base64.b64encode(der).decode() for der in chain]}
    return requests.post(f"{server.url}/ct/v1/add-pre-chain", json=body, timeout=30)


def _get(server, path: str, **params) -> dict:
    response = requests.get(f"{server.url}/ct/v1/{path}", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _ct_key(server) -> ec.EllipticCurvePublicKey:
    """The CT log key as the instance's trusted root publishes it."""
    root = requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=30).json()
    (ctlog,) = root["ctlogs"]
    assert ctlog["baseUrl"] == f"{server.config.public_url}/ct"
    return serialization.load_der_public_key(base64.b64decode(ctlog["publicKey"]["rawBytes"]))


def _leaf(timestamp_ms: int, issuer: x509.Certificate, tbs: bytes) -> bytes:
    """The RFC 6962 MerkleTreeLeaf of a precertificate entry, built from its parts."""
    issuer_spki = issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return (
        b"\x00\x00"
        + struct.pack(">QH", timestamp_ms, 1)
        + hashlib.sha256(issuer_spki).digest()
        + len(tbs).to_bytes(3, "big")
        + tbs
        + b"\x00\x00"
    )


def _verified_sth(server, key: ec.EllipticCurvePublicKey) -> dict:
    sth = _get(server, "get-sth")
    signed = base64.b64decode(sth["tree_head_signature"])
    assert signed[:2] == b"\x04\x03"
    (length,) = struct.unpack(">H", signed[2:4])
    data = b"\x00\x01" + struct.pack(">QQ", sth["timestamp"], sth["tree_size"])
    key.verify(
        signed[4 : 4 + length],
        data + base64.b64decode(sth["sha256_root_hash"]),
        ec.ECDSA(hashes.SHA256()),
    )
    return sth


@contextmanager
def _two_instances(tmp_path: Path, uri: str) -> Iterator[tuple[DevServer, DevServer]]:
    """Instance one's state directory (a first run) copied for instance two, as an operator
    gives every instance the same keys; both behind one origin, sharing the PostgreSQL logs."""
    one_state, two_state = tmp_path / "one", tmp_path / "two"
    with dev_server(one_state, log_database=uri) as one:
        shutil.copytree(one_state, two_state)
        with dev_server(two_state, log_database=uri, public_url=one.url) as two:
            yield one, two


def test_two_instances_share_one_ct_tree(postgres, tmp_path) -> None:
    uri = _database(postgres, "ct_shared")
    with _two_instances(tmp_path, uri) as (one, two):
        key = _ct_key(one)
        assert _ct_key(two).public_numbers() == key.public_numbers()
        issuer = one.config.ca.load_signer(state_dir=one.config.state_dir, now=datetime.now(UTC))
        issuer_cert = issuer.chain[0]
        assert _verified_sth(one, key)["tree_size"] == 0
        leaves, first_sth = [], None
        for server in (one, two, one, two, two):
            chain, tbs = _precert_chain(server)
            response = _add_pre_chain(server, chain)
            assert response.status_code == 200, response.text
            sct = response.json()
            assert (
                base64.b64decode(sct["id"])
                == hashlib.sha256(
                    key.public_bytes(
                        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                    )
                ).digest()
            )
            leaf = _leaf(sct["timestamp"], issuer_cert, tbs)
            signature = base64.b64decode(sct["signature"])
            assert signature[:2] == b"\x04\x03"
            key.verify(signature[4:], leaf, ec.ECDSA(hashes.SHA256()))
            leaves.append(leaf)
            if first_sth is None:
                first_sth = _verified_sth(two, key)
        # The CA of instance two submits to the same tree; its embedded SCT verifies too.
        issued = chain_of(post_csr(two.url, two.email_token(), csr_pem(p256())))
        verify_embedded_sct(issued[0], issuer=issued[1], log_key=key)

        sth_one, sth_two = _verified_sth(one, key), _verified_sth(two, key)
        assert sth_one == sth_two
        assert sth_one["tree_size"] == 6
        assert first_sth["tree_size"] == 1
        entries_one = _get(one, "get-entries", start=0, end=5)["entries"]
        assert entries_one == _get(two, "get-entries", start=0, end=5)["entries"]
        assert [base64.b64decode(e["leaf_input"]) for e in entries_one[:5]] == leaves
        root = base64.b64decode(sth_one["sha256_root_hash"])
        for index, leaf in enumerate(leaves):
            # Proofs from the instance that did not log the entry.
            server = two if index in (0, 2) else one
            proof = _get(
                server,
                "get-proof-by-hash",
                hash=base64.b64encode(merkle.leaf_hash(leaf)).decode(),
                tree_size=6,
            )
            assert proof["leaf_index"] == index
            merkle.verify_inclusion(
                index=index,
                size=6,
                leaf=merkle.leaf_hash(leaf),
                proof=[base64.b64decode(node) for node in proof["audit_path"]],
                root=root,
            )
        for server in (one, two):
            consistency = _get(server, "get-sth-consistency", first=1, second=6)
            merkle.verify_consistency(
                size1=1,
                size2=6,
                proof=[base64.b64decode(node) for node in consistency["consistency"]],
                root1=base64.b64decode(first_sth["sha256_root_hash"]),
                root2=root,
            )
        # Nothing of the CT log lives in SQLite; each instance keeps the heads it signed.
        from keyless.tlog.checkpoint_file import CheckpointFile

        for server in (one, two):
            assert not (server.config.state_dir / "ct.sqlite").exists()
            kept = CheckpointFile(server.config.state_dir / "ct-checkpoint").read()
            assert 1 <= kept.size <= 6


def _config(state: Path, uri: str, port: int):
    from dataclasses import replace

    return replace(dev_config(port=port, state_dir=state), log_database=uri)


def test_a_restored_ct_database_is_refused_at_append_and_at_start(postgres, tmp_path) -> None:
    uri = _database(postgres, "ct_restored")
    with _two_instances(tmp_path, uri) as (one, two):
        for server in (one, two):
            assert _add_pre_chain(server, _precert_chain(server)[0]).status_code == 200
        # A backup of the CT tables at size 2; both instances then take the tree to 4.
        _sql(uri, *(f"CREATE TABLE bk_ct_{t} AS TABLE ct_{t}" for t in _TABLES))
        for server in (two, one):
            assert _add_pre_chain(server, _precert_chain(server)[0]).status_code == 200
        _sql(
            uri,
            *(f"TRUNCATE ct_{t}" for t in _TABLES),
            *(f"INSERT INTO ct_{t} SELECT * FROM bk_ct_{t}" for t in _TABLES),
        )
        # A running instance refuses to sign over the restored tree: no entry, no SCT.
        response = _add_pre_chain(one, _precert_chain(one)[0])
        assert response.status_code == 500
        assert response.json()["message"] == (
            "the stored tree of size 2 does not extend the checkpoint of size 4 this log "
            "signed; refusing to sign"
        )
        assert "signature" not in response.json()
        assert _get(two, "get-sth")["tree_size"] == 2
    # Neither instance starts over it; each names the last head it signed itself.
    for server, kept in ((one, 4), (two, 3)):
        state = server.config.state_dir
        with pytest.raises(LogStartError) as refused:
            create_app(_config(state, uri, int(one.url.rsplit(":", 1)[1])))
        assert refused.value.message == (
            "the log database PostgreSQL (tables ct_*) is behind this log's last checkpoint "
            f"(tree size 2, but size {kept} was signed and kept in {state / 'ct-checkpoint'}): "
            "an older copy was restored?"
        )
    with psycopg.connect(uri) as db:
        assert db.execute("SELECT count(*) FROM ct_leaves").fetchone() == (2,)


def test_emptied_ct_tables_are_refused_at_start(postgres, tmp_path) -> None:
    uri = _database(postgres, "ct_emptied")
    with dev_server(tmp_path / "state", log_database=uri) as server:
        assert _add_pre_chain(server, _precert_chain(server)[0]).status_code == 200
        port = int(server.url.rsplit(":", 1)[1])
        server.app.extensions["keyless.ct"].log._storage.close()
    _sql(uri, *(f"TRUNCATE ct_{t}" for t in _TABLES))
    state = tmp_path / "state"
    with pytest.raises(LogStartError) as refused:
        create_app(_config(state, uri, port))
    assert refused.value.message == (
        "the log database PostgreSQL (tables ct_*) is empty (deleted or truncated?), but this "
        f"log has signed a tree of size 1 (kept in {state / 'ct-checkpoint'}); starting it "
        "again would sign a second history"
    )

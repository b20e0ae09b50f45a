"""The durable log over PostgreSQL: a real server in a temporary directory, on a unix socket."""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask

from keyless.tlog import merkle, rekor_api
from keyless.tlog.checkpoint import CheckpointSigner, verify_checkpoint
from keyless.tlog.errors import DuplicateEntryError, InconsistentLogError
from keyless.tlog.log import MerkleLog, NewEntry
from keyless.tlog.rekor import RekorService
from tests.conftest import serve_wsgi
from tests.tlog.conftest import check_tree, make_signer

KEY = ec.generate_private_key(ec.SECP256R1())


_COUNTER = iter(range(1_000_000))


def _prefix() -> str:
    return f"t{os.getpid()}_{next(_COUNTER)}_"


def _open(conninfo: str, prefix: str, key: ec.EllipticCurvePrivateKey = KEY) -> MerkleLog:
    from keyless.tlog.postgres_storage import PostgresStorage

    storage = PostgresStorage(conninfo, prefix=prefix)
    signer = CheckpointSigner(origin=f"pg - {storage.tree_id}", name="pg", private_key=key)
    return MerkleLog(storage, signer)


def test_append_prove_reopen_and_duplicates(postgres: str) -> None:
    prefix = _prefix()
    log = _open(postgres, prefix)
    for i in range(12):
        appended = log.append(b"pg %d" % i, keys=[f"k{i % 2}"], prove=True)
        assert appended.entry.index == i
        assert appended.proof is not None
    assert log.search("k1") == [1, 3, 5, 7, 9, 11]
    with pytest.raises(DuplicateEntryError) as excinfo:
        log.append(b"pg 4")
    assert excinfo.value.index == 4
    outcomes = log.append_batch([NewEntry(b"x"), NewEntry(b"x")])
    assert isinstance(outcomes[1], DuplicateEntryError)
    check_tree(log, key=KEY, name="pg")
    reopened = _open(postgres, prefix)
    assert reopened.tree_id == log.tree_id
    assert reopened.head() == log.head()
    for size1 in range(1, 14):
        root2, proof = reopened.consistency_proof(size1, 13)
        merkle.verify_consistency(
            size1=size1, size2=13, proof=proof, root1=reopened.root_hash(size1), root2=root2
        )


def test_concurrent_threads(postgres: str) -> None:
    log = _open(postgres, _prefix())

    def worker(n: int) -> None:
        for i in range(25):
            log.append(f"{n}-{i}".encode())

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    data = check_tree(log, key=KEY, name="pg")
    assert sorted(data) == sorted(f"{n}-{i}".encode() for n in range(8) for i in range(25))


def _process_appender(conninfo: str, prefix: str, tag: int, key_pem: bytes) -> None:
    key = serialization.load_pem_private_key(key_pem, None)
    log = _open(conninfo, prefix, key)
    for i in range(40):
        log.append(f"p{tag}-{i}".encode())


def test_processes_share_one_log(postgres: str) -> None:
    prefix = _prefix()
    _open(postgres, prefix)
    pem = KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_process_appender, args=(postgres, prefix, tag, pem))
        for tag in range(3)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    data = check_tree(_open(postgres, prefix), key=KEY, name="pg")
    assert sorted(data) == sorted(f"p{t}-{i}".encode() for t in range(3) for i in range(40))


def test_tampered_node_makes_log_refuse_to_sign(postgres: str) -> None:
    import psycopg

    prefix = _prefix()
    log = _open(postgres, prefix)
    for i in range(6):
        log.append(bytes([i]))
    with psycopg.connect(postgres) as db:
        db.execute(
            f"UPDATE {prefix}nodes SET hash = %s WHERE id = %s",
            (b"\x00" * 32, (2 << 2) | 1),
        )
    with pytest.raises(InconsistentLogError) as excinfo:
        log.append(b"next")
    assert excinfo.value.message == (
        "tree of size 7 is not consistent with the signed head at size 6; refusing to sign"
    )
    assert log.head().size == 6


def test_rekor_over_postgres(postgres: str, tmp_path: Path) -> None:
    from keyless.tlog.postgres_storage import PostgresStorage

    service = RekorService.open(
        storage=PostgresStorage(postgres, prefix=_prefix()), private_key=KEY, host="127.0.0.1"
    )
    app = Flask("tlog-pg-test")
    rekor_api.init_app(app, service)
    signer = make_signer()
    with serve_wsgi(app) as url:
        for i in range(3):
            response = requests.post(
                url + "/api/v1/log/entries", json=signer.hashedrekord(b"pg %d" % i), timeout=30
            )
            assert response.status_code == 201, response.text
        entry = next(iter(response.json().values()))
        proof = entry["verification"]["inclusionProof"]
        checkpoint = verify_checkpoint(proof["checkpoint"], public_key=KEY.public_key())
        assert (checkpoint.size, entry["logIndex"]) == (3, 2)
        info = requests.get(url + "/api/v1/log", timeout=30).json()
        assert info["treeSize"] == 3

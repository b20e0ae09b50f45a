"""`keyless audit` over its signature logs: Rekor v2 entries read, proven and matched per second
from tiles, and what proving each Rekor v1 entry the search index names costs.

Run: python bench/audit.py [--entries 20000] [--signers 500] [--v1-entries 2000] [--rounds 3]

A Rekor v2 log (the server's `RekorV2Service` over SQLite, its checkpoint signed with Ed25519)
is filled with `--entries` hashedrekord 0.0.2 entries made by `--signers` certificates, and
served by its Flask blueprint from a separate process (werkzeug, threaded). The audit's reader
then goes over HTTP, as `keyless audit` does. Prints, best of `--rounds`:
- proven: `TileLog.entries` alone (entry bundles and hash tiles read, every bundle's leaves
  rebuilt into the signed root), entries/s;
- audited: `scan_tile_log` with every signer's certificate issued (each entry proven, parsed,
  matched by serial and key, and its signature checked with the certificate's key): entries
  matched/s;
- the same with no certificate to match (parse only, no signature checks), entries/s;
- in process, without HTTP or proofs: `parse_v2_entry` alone, entries/s.

Then a Rekor v1 log (`RekorService` over SQLite, P-256) holds `--v1-entries` hashedrekord 0.0.1
entries, served the same way, and the audit's v1 reader (`RekorLog`) fetches them all by entry
ID, 10 per `entries/retrieve` call as Rekor allows: once unproven, once each proven as the audit
proves it (`prove_entry`: the checkpoint's signature, the inclusion proof, the entry ID, the
SET's signature; one consistency proof per checkpoint), and the proofs alone in process over the
fetched answers. Prints entries/s and the proof's cost per entry (µs).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import multiprocessing
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

# Run as a script from anywhere: the repository root must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._load import HOST, free_port
from keyless.client.transparency.audit import (
    CertificateIndex,
    IssuedCertificate,
    parse_v2_entry,
    scan_tile_log,
)
from keyless.client.transparency.rekor_v1 import RETRIEVE_BATCH, RekorLog
from keyless.client.transparency.tiles import TileLog
from keyless.client.trust import UNBOUNDED, LogKey
from keyless.tlog import checkpoint_key_id, checkpoint_origin, leaf_hash
from keyless.tlog.log import NewEntry
from keyless.tlog.rekor import RekorService
from keyless.tlog.rekor_kinds import canonicalize as canonicalize_v1
from keyless.tlog.rekor_v2 import RekorV2Service, canonicalize
from keyless.tlog.sqlite_storage import SQLiteStorage

BATCH = 256


def _signers(count: int) -> list[tuple[ec.EllipticCurvePrivateKey, x509.Certificate]]:
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bench")])
    made = []
    for index in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(minutes=10))
            .add_extension(
                x509.SubjectAlternativeName([x509.RFC822Name(f"signer{index}@example.com")]),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        made.append((key, cert))
    return made


def _request(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, artifact: bytes) -> dict:
    der = cert.public_bytes(serialization.Encoding.DER)
    return {
        "hashedRekordRequestV002": {
            "digest": base64.b64encode(hashlib.sha256(artifact).digest()).decode(),
            "signature": {
                "content": base64.b64encode(key.sign(artifact, ec.ECDSA(hashes.SHA256()))).decode(),
                "verifier": {
                    "x509Certificate": {"rawBytes": base64.b64encode(der).decode()},
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                },
            },
        }
    }


def _fill(path: Path, origin: str, key: ed25519.Ed25519PrivateKey, bodies: list[bytes]) -> None:
    service = RekorV2Service.open(storage=SQLiteStorage(path), private_key=key, origin=origin)
    for start in range(0, len(bodies), BATCH):
        results = service.log.append_batch([NewEntry(b) for b in bodies[start : start + BATCH]])
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise SystemExit(f"append failed: {failed[0]}")


def _serve(path: str, origin: str, key_bytes: bytes, port: int) -> None:
    from flask import Flask
    from werkzeug.serving import make_server

    from keyless.tlog import rekor_v2_api

    key = ed25519.Ed25519PrivateKey.from_private_bytes(key_bytes)
    service = RekorV2Service.open(storage=SQLiteStorage(Path(path)), private_key=key, origin=origin)
    app = Flask("bench-rekor-v2")
    rekor_v2_api.init_app(app, service)
    make_server(HOST, port, app, threaded=True).serve_forever()


def _v1_request(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, artifact: bytes) -> dict:
    pem = cert.public_bytes(serialization.Encoding.PEM)
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {
                "hash": {"algorithm": "sha256", "value": hashlib.sha256(artifact).hexdigest()}
            },
            "signature": {
                "content": base64.b64encode(key.sign(artifact, ec.ECDSA(hashes.SHA256()))).decode(),
                "publicKey": {"content": base64.b64encode(pem).decode()},
            },
        },
    }


def _fill_v1(path: Path, host: str, key: ec.EllipticCurvePrivateKey, requests: list[dict]) -> int:
    """Append the entries in batches; the tree ID, which entry IDs start with."""
    service = RekorService.open(storage=SQLiteStorage(path), private_key=key, host=host)
    for start in range(0, len(requests), BATCH):
        canonical = [canonicalize_v1(r) for r in requests[start : start + BATCH]]
        results = service.log.append_batch([NewEntry(c.body, keys=c.keys) for c in canonical])
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise SystemExit(f"append failed: {failed[0]}")
    return service.tree_id


def _serve_v1(path: str, host: str, key_pem: bytes, port: int) -> None:
    from flask import Flask
    from werkzeug.serving import make_server

    from keyless.tlog import rekor_api

    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    service = RekorService.open(storage=SQLiteStorage(Path(path)), private_key=key, host=host)
    app = Flask("bench-rekor-v1")
    rekor_api.init_app(app, service)
    make_server(HOST, port, app, threaded=True).serve_forever()


def _v1_figures(args: argparse.Namespace, signers: list) -> dict[str, float]:
    """Seconds to fetch every v1 entry by ID, unproven and proven, and to prove them alone."""
    requests = [
        _v1_request(*signers[i % len(signers)], b"v1 artifact %d" % i)
        for i in range(args.v1_entries)
    ]
    port = free_port()
    host = f"{HOST}:{port}"
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    log_key = LogKey(
        f"http://{host}",
        hashlib.sha256(spki).digest(),
        "PKIX_ECDSA_P256_SHA_256",
        key.public_key(),
        UNBOUNDED,
    )
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "v1.sqlite"
        tree = _fill_v1(path, host, key, requests)
        ids = [f"{tree:016x}" + leaf_hash(canonicalize_v1(r).body).hex() for r in requests]
        server = multiprocessing.get_context("spawn").Process(
            target=_serve_v1, args=(str(path), host, key_pem, port), daemon=True
        )
        server.start()
        try:
            _wait(port)
            fetched: list[tuple[str, dict]] = []

            def retrieve(log: RekorLog) -> list[tuple[str, dict]]:
                answers = []
                for start in range(0, len(ids), RETRIEVE_BATCH):
                    answers += log.retrieve({"entryUUIDs": ids[start : start + RETRIEVE_BATCH]})
                assert len(answers) == len(ids)
                return answers

            def unproven() -> None:
                fetched[:] = retrieve(RekorLog(f"http://{host}", [log_key]))

            def proven() -> None:
                log = RekorLog(f"http://{host}", [log_key])
                head = log.checkpoint()
                log.begin(head)
                for entry_id, entry in retrieve(log):
                    log.prove_entry(entry["logIndex"], entry_id, entry, head)

            figures = {
                "v1 fetched by ID, unproven": _best(args.rounds, unproven),
                "v1 fetched by ID, proven": _best(args.rounds, proven),
            }
            log = RekorLog(f"http://{host}", [log_key])
            head = log.checkpoint()

            def proofs_alone() -> None:
                log.begin(head)
                for entry_id, entry in fetched:
                    log.prove_entry(entry["logIndex"], entry_id, entry, head)

            figures["v1 proofs alone, in process"] = _best(args.rounds, proofs_alone)
        finally:
            server.terminate()
            server.join(timeout=10)
    return figures


def _wait(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the log did not start")


def _issued(certs: list[x509.Certificate]) -> list[IssuedCertificate]:
    return [
        IssuedCertificate(
            ct_index=index,
            logged=datetime.now(UTC),
            serial=f"{cert.serial_number:x}",
            identities=(f"signer{index}@example.com",),
            issuer=None,
            key_algorithm="ECDSA secp256r1",
            public_key_pem=cert.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
        for index, cert in enumerate(certs)
    ]


def _best(rounds: int, run) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--signers", type=int, default=500)
    parser.add_argument("--v1-entries", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    print(f"building {args.entries} entries by {args.signers} certificates ...", flush=True)
    signers = _signers(args.signers)
    bodies = [
        canonicalize(_request(*signers[i % len(signers)], b"artifact %d" % i)).body
        for i in range(args.entries)
    ]
    port = free_port()
    base_url = f"http://{HOST}:{port}"
    origin = checkpoint_origin(base_url)
    key = ed25519.Ed25519PrivateKey.generate()
    key_bytes = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    log_key = LogKey(
        base_url,
        checkpoint_key_id(key.public_key(), name=origin),
        "PKIX_ED25519",
        key.public_key(),
        UNBOUNDED,
    )
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "v2.sqlite"
        _fill(path, origin, key, bodies)
        server = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(str(path), origin, key_bytes, port), daemon=True
        )
        server.start()
        try:
            _wait(port)
            issued = CertificateIndex(_issued([cert for _, cert in signers]))
            nobody = CertificateIndex([])

            def proven() -> None:
                log = TileLog(base_url, [log_key])
                head = log.checkpoint()
                count = sum(1 for _ in log.entries(0, head.size, head))
                assert count == args.entries

            def audited() -> None:
                scan = scan_tile_log(TileLog(base_url, [log_key]), issued)
                assert len(scan.matches) == args.entries and not scan.unreadable

            def unmatched() -> None:
                scan = scan_tile_log(TileLog(base_url, [log_key]), nobody)
                assert not scan.matches and not scan.unreadable

            figures = {
                "proven": _best(args.rounds, proven),
                "audited": _best(args.rounds, audited),
                "parsed, nothing to match": _best(args.rounds, unmatched),
            }
        finally:
            server.terminate()
            server.join(timeout=10)
    parse_only = _best(args.rounds, lambda: [parse_v2_entry(body) for body in bodies])
    n = args.entries
    print(f"v2 log of {n} entries, {args.signers} certificates, best of {args.rounds}:")
    for name, seconds in figures.items():
        print(f"  {name:26s} {n / seconds:10.0f} entries/s  ({seconds:.2f} s)")
    print(f"  {'parse_v2_entry in process':26s} {n / parse_only:10.0f} entries/s")
    v1 = _v1_figures(args, signers)
    m = args.v1_entries
    print(f"v1 log of {m} entries, fetched by entry ID, best of {args.rounds}:")
    for name, seconds in v1.items():
        print(f"  {name:30s} {m / seconds:10.0f} entries/s  ({seconds:.2f} s)")
    ratio = v1["v1 fetched by ID, unproven"] / v1["v1 fetched by ID, proven"]
    alone = v1["v1 proofs alone, in process"]
    print(
        f"  proof cost per entry: {alone / m * 1e6:.0f} µs in process; over HTTP, proven "
        f"fetches run at {ratio:.0%} of unproven ones' rate"
    )


if __name__ == "__main__":
    main()

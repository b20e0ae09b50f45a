"""`keyless monitor` scan rate: Rekor v2 tiles against the Rekor v1 retrieve API, same run.

Run: python bench/monitor_v2.py [--entries 5000]

Both logs are filled in process with the same number of certificate-signed hashedrekord entries
(v1: 0.0.1 with a PEM certificate; v2: 0.0.2 with a DER certificate; one leaf issued by a bench
CA that the monitor's trusted root lists), then served over HTTP by one gunicorn server
(gthread, one worker, 4 threads) on loopback. A first-run monitor then scans each log from entry
0, as `keyless monitor --from-index 0` does. Prints entries/s for:
- the v1 monitor (`POST /api/v1/log/entries/retrieve`, 10 entries a call, each entry's
  inclusion proof and checkpoint verified), once with a watch list naming the signer (every
  entry a finding, its certificate chain-checked against the CA: one signature verification
  each) and once naming nobody (certificates parsed, no chain check);
- the v2 monitor, the same two ways (entry bundles and hash tiles; each bundle's leaves rebuild
  the signed root);
- `TileLog.entries` alone (tile reads and proofs, no certificate parsing), and a consistency
  proof from half the tree to all of it built from tiles.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

# Run as a script from anywhere: the repository root must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._load import HOST, private_pem, serve, server_process

V2_ORIGIN = "bench.keyless.test"


def _ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _signer(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A Fulcio-shaped leaf for bench@example.com issued by the bench CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(minutes=10))
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_CODE_SIGNING]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name("bench@example.com")]), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def fill(work: Path, count: int) -> tuple[x509.Certificate, x509.Certificate]:
    """Both logs with `count` entries each, signed by one certificate; returns its CA and it."""
    from keyless.tlog.log import NewEntry
    from keyless.tlog.rekor import RekorService
    from keyless.tlog.rekor_kinds import canonicalize as canonicalize_v1
    from keyless.tlog.rekor_v2 import RekorV2Service
    from keyless.tlog.rekor_v2 import canonicalize as canonicalize_v2
    from keyless.tlog.sqlite_storage import SQLiteStorage

    v1_key, v2_key = ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate()
    (work / "v1.pem").write_bytes(private_pem(v1_key))
    (work / "v2.pem").write_bytes(private_pem(v2_key))
    v1 = RekorService.open(storage=SQLiteStorage(work / "v1.db"), private_key=v1_key, host=HOST)
    v2 = RekorV2Service.open(
        storage=SQLiteStorage(work / "v2.db"), private_key=v2_key, origin=V2_ORIGIN
    )
    ca_key, ca = _ca()
    key, cert = _signer(ca_key, ca)
    pem = base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()
    der = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    v1_entries, v2_entries = [], []
    for i in range(count):
        artifact = b"artifact %d" % i
        digest = hashlib.sha256(artifact)
        signature = base64.b64encode(key.sign(artifact, ec.ECDSA(hashes.SHA256()))).decode()
        canonical = canonicalize_v1(
            {
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": digest.hexdigest()}},
                    "signature": {"content": signature, "publicKey": {"content": pem}},
                },
            }
        )
        v1_entries.append(NewEntry(canonical.body, keys=canonical.keys))
        request = {
            "hashedRekordRequestV002": {
                "digest": base64.b64encode(digest.digest()).decode(),
                "signature": {
                    "content": signature,
                    "verifier": {
                        "x509Certificate": {"rawBytes": der},
                        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    },
                },
            }
        }
        v2_entries.append(NewEntry(canonicalize_v2(request).body))
    for log, entries in ((v1.log, v1_entries), (v2.log, v2_entries)):
        for start in range(0, count, 1000):
            results = log.append_batch(entries[start : start + 1000])
            if any(isinstance(r, Exception) for r in results):
                raise RuntimeError("bench log refused an entry")
    return ca, cert


def _app(work: str) -> Any:
    """Both logs over the filled databases, in the server process."""
    from flask import Flask

    from keyless.tlog import rekor_api, rekor_v2_api
    from keyless.tlog.rekor import RekorService
    from keyless.tlog.rekor_v2 import RekorV2Service
    from keyless.tlog.sqlite_storage import SQLiteStorage

    base = Path(work)
    v1_key = serialization.load_pem_private_key((base / "v1.pem").read_bytes(), None)
    v2_key = serialization.load_pem_private_key((base / "v2.pem").read_bytes(), None)
    app = Flask("monitor-bench")
    rekor_api.init_app(
        app,
        RekorService.open(storage=SQLiteStorage(base / "v1.db"), private_key=v1_key, host=HOST),
    )
    rekor_v2_api.init_app(
        app,
        RekorV2Service.open(
            storage=SQLiteStorage(base / "v2.db"), private_key=v2_key, origin=V2_ORIGIN
        ),
    )
    return app


def _keys(work: Path) -> tuple[Any, Any]:
    from keyless.client.trust import UNBOUNDED, LogKey
    from keyless.tlog import checkpoint_key_id

    v1_public = serialization.load_pem_private_key(
        (work / "v1.pem").read_bytes(), None
    ).public_key()
    v2_public = serialization.load_pem_private_key(
        (work / "v2.pem").read_bytes(), None
    ).public_key()
    spki = v1_public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    v1 = LogKey("", hashlib.sha256(spki).digest(), "PKIX_ECDSA_P256_SHA_256", v1_public, UNBOUNDED)
    v2_id = checkpoint_key_id(v2_public, name=V2_ORIGIN)
    v2 = LogKey(f"https://{V2_ORIGIN}", v2_id, "PKIX_ED25519", v2_public, UNBOUNDED)
    return v1, v2


def bench(work: Path, count: int, url: str, ca: x509.Certificate, leaf: x509.Certificate) -> None:
    from keyless.client.transparency.monitor import (
        MATCH,
        IssuanceCheck,
        LogMonitor,
        TileLogMonitor,
        WatchList,
    )
    from keyless.client.transparency.tiles import TileLog, TreeHead
    from keyless.client.trust import Authority, TimeRange, TrustedRoot
    from keyless.tlog.merkle import root_hash
    from keyless.tlog.sqlite_storage import SQLiteStorage

    v1_key, v2_key = _keys(work)
    authority = Authority("https://ca.bench.test", (ca,), TimeRange(ca.not_valid_before_utc, None))
    issuance = IssuanceCheck(TrustedRoot({}, {}, (authority,), ()))
    watched = WatchList.build(["bench@example.com"], [], [])
    nobody = WatchList.build(["nobody@example.com"], [], [])

    def tile_log() -> TileLog:
        return TileLog(v2_key.base_url, [v2_key], tiles_url=f"{url}/api/v2")

    rates = {}
    for label, monitor in (
        ("Rekor v1 (retrieve API)", lambda: LogMonitor(url, [v1_key], issuance)),
        ("Rekor v2 (tiles)", lambda: TileLogMonitor(tile_log(), issuance)),
    ):
        for what, watch, found in (("watched", watched, count), ("unwatched", nobody, 0)):
            start = time.perf_counter()
            result = monitor().run(None, watch, from_index=0, max_entries=count)
            elapsed = time.perf_counter() - start
            kinds = {finding.kind for finding in result.findings}
            if result.scanned_to != count or len(result.findings) != found or kinds - {MATCH}:
                raise RuntimeError(f"{label}: scanned {result.scanned_to}, found {kinds}")
            rates[label, what] = count / elapsed
            name = f"monitor scan, {label}, {what}"
            print(f"{name:<52} {count / elapsed:>9,.0f} entries/s")
    v1_rate, v2_rate = (
        rates["Rekor v1 (retrieve API)", "watched"],
        rates["Rekor v2 (tiles)", "watched"],
    )
    print(f"{'v2 / v1 scan rate (watched)':<52} {v2_rate / v1_rate:>9.2f}")
    start = time.perf_counter()
    for _ in range(1000):  # 1000 checks: elapsed seconds * 1000 is microseconds each
        if issuance.untrusted(leaf) is not None:
            raise RuntimeError("the bench leaf does not chain to its CA")
    elapsed = time.perf_counter() - start
    print(f"{'chain check alone (IssuanceCheck.untrusted)':<52} {elapsed * 1000:>9.0f} us each")

    reader = tile_log()
    head = reader.checkpoint()
    start = time.perf_counter()
    read = sum(1 for _ in reader.entries(0, head.size, head))
    elapsed = time.perf_counter() - start
    print(f"{'TileLog.entries alone (read and prove)':<52} {read / elapsed:>9,.0f} entries/s")
    # An older head, its root taken from the log's own storage.
    half = head.size // 2
    storage = SQLiteStorage(work / "v2.db")
    with storage.reader() as view:
        old = TreeHead(head.origin, half, root_hash(half, view), "")
    storage.close()
    reader = tile_log()
    start = time.perf_counter()
    reader.prove_extends(old, head)
    elapsed = time.perf_counter() - start
    print(f"{f'consistency {half} -> {head.size} from tiles (cold)':<52} {elapsed * 1000:>9.1f} ms")


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(lambda: _app(sys.argv[3]), int(sys.argv[2]), threads=4)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        start = time.perf_counter()
        ca, leaf = fill(work, args.entries)
        print(
            f"filled both logs with {args.entries:,} entries in {time.perf_counter() - start:.1f} s"
        )
        with server_process(__file__, str(work)) as port:
            bench(work, args.entries, f"http://{HOST}:{port}", ca, leaf)


if __name__ == "__main__":
    main()

"""`keyless audit` against a real server: what the CA issued for an identity or issuer, read
from its CT log and checked against the signed tree head, with the signatures made under each
certificate in both signature logs: the Rekor v1 log (searched by key) and the Rekor v2 log (read
whole from its tiles, each entry proven in its signed checkpoint). Signers: keyless itself (v2 by
default, v1 asked for), sigstore-python (a signature and a DSSE attestation, both logged in v2)
and a client holding its own key that logs a bare key as well as its certificate. Front ends that
reorder CT entries or alter a v2 entry bundle are caught."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, Response, request

from keyless.cli.main import main
from tests.conftest import DevServer, dev_server, serve_wsgi

V1, V2 = "rekor-v1", "rekor-v2"
CERT, KEY = "x509Certificate", "publicKey"


@dataclass(frozen=True)
class Signed:
    """The module's server and what was signed on it."""

    server: DevServer
    bundles: dict[str, dict]  # by name: "alice-1", "bob", ...

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def issuer(self):
        return self.server.issuer


def _sigstore(tmp: Path, *args: str) -> None:
    trust_config = tmp / "client_trust_config.json"
    done = subprocess.run(
        [sys.executable, "-m", "sigstore", "--trust-config", str(trust_config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "1000"},
    )
    assert done.returncode == 0, done.stderr


def _own_key_entries(server: DevServer, tmp: Path) -> None:
    """A client with its own key: a certificate for erin, then a v2 entry naming the bare key,
    a v2 entry naming the certificate, and a v1 entry naming the bare key."""
    from keyless.client.sign.fulcio import CAClient
    from keyless.client.sign.rekor import LogClient, hashedrekord_entry

    key = ec.generate_private_key(ec.SECP256R1())
    [leaf, *_] = CAClient(server.url).signing_certificate(
        server.email_token("erin@example.com"), key
    )
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for artifact, kind, der in (
        (b"bare key", "publicKey", spki),
        (b"certificate", "x509Certificate", leaf.public_bytes(serialization.Encoding.DER)),
    ):
        request = {
            "hashedRekordRequestV002": {
                "digest": base64.b64encode(hashlib.sha256(artifact).digest()).decode(),
                "signature": {
                    "content": base64.b64encode(
                        key.sign(artifact, ec.ECDSA(hashes.SHA256()))
                    ).decode(),
                    "verifier": {
                        kind: {"rawBytes": base64.b64encode(der).decode()},
                        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    },
                },
            }
        }
        logged = requests.post(f"{server.url}/api/v2/log/entries", json=request, timeout=30)
        assert logged.status_code == 201, logged.text
    artifact = b"bare key in v1"
    LogClient(server.url).upload(
        hashedrekord_entry(
            digest=hashlib.sha256(artifact).digest(),
            signature=key.sign(artifact, ec.ECDSA(hashes.SHA256())),
            certificate_pem=key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
    )


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A fresh server and, in CT order:
    0 alice (keyless, v2 0), 1 bob (keyless --rekor-version 1, v1 0), 2 alice (keyless, v2 1),
    3 a GitHub workflow (keyless --rekor-version 1, v1 1), 4 carol (sigstore-python, v2 2),
    5 dave (sigstore-python attest, DSSE as a hashedrekord, v2 3), 6 erin's own key (v2 4 bare
    key, v2 5 certificate, v1 2 bare key)."""
    tmp = tmp_path_factory.mktemp("audit")
    with pytest.MonkeyPatch.context() as patch, dev_server(tmp / "state") as server:
        # Module scope runs before the per-test XDG directories: give signing its own, so no
        # trust kept for an earlier server on the same port is read.
        patch.setenv("XDG_DATA_HOME", str(tmp / "data"))
        patch.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
        signers = [
            ("alice-1", server.email_token("alice@example.com"), ()),
            ("bob", server.email_token("bob@example.com"), ("--rekor-version", "1")),
            ("alice-2", server.email_token("alice@example.com"), ()),
            ("github", server.github_token(), ("--rekor-version", "1")),
        ]
        bundles = {}
        for name, token, flags in signers:
            artifact = tmp / f"{name}.txt"
            artifact.write_text(f"artifact {name}\n")
            bundle = tmp / f"{name}.sigstore.json"
            command = ["sign", "--server", server.url, *flags, "--identity-token", token]
            assert main([*command, "--bundle", str(bundle), str(artifact)]) == 0
            bundles[name] = json.loads(bundle.read_text())
        (tmp / "client_trust_config.json").write_text(
            requests.get(f"{server.url}/api/v1/trust/client_trust_config.json", timeout=5).text
        )
        artifact = tmp / "carol.txt"
        artifact.write_text("artifact carol\n")
        bundle = tmp / "carol.sigstore.json"
        token = server.email_token("carol@example.com")
        _sigstore(tmp, "sign", "--identity-token", token, "--bundle", str(bundle), str(artifact))
        bundles["carol"] = json.loads(bundle.read_text())
        predicate = tmp / "predicate.json"
        predicate.write_text(
            json.dumps({"buildType": "https://example.com/build", "builder": {"id": "https://ci"}})
        )
        bundle = tmp / "dave.sigstore.json"
        _sigstore(
            tmp,
            "attest",
            "--rekor-version",
            "2",
            "--predicate",
            str(predicate),
            "--predicate-type",
            "https://slsa.dev/provenance/v0.2",
            "--identity-token",
            server.email_token("dave@example.com"),
            "--bundle",
            str(bundle),
            str(artifact),
        )
        bundles["dave"] = json.loads(bundle.read_text())
        _own_key_entries(server, tmp)
        yield Signed(server, bundles)


def _entry_of(bundle: dict) -> tuple[str, int, str]:
    """A bundle's log entry as the audit names it: log, index, entry ID."""
    [entry] = bundle["verificationMaterial"]["tlogEntries"]
    body = base64.b64decode(entry["canonicalizedBody"])
    version = entry["kindVersion"]["version"]
    log = V2 if version == "0.0.2" else V1
    return log, int(entry["logIndex"]), hashlib.sha256(b"\x00" + body).hexdigest()


def _audit(server, *args: str) -> int:
    return main(["audit", "--server", server.url, *args])


def _entries(cert: dict) -> list[tuple[str, int, str]]:
    return [(e["log"], e["logIndex"], e["verifier"]) for e in cert["signatureLogEntries"]]


def test_certificates_for_an_identity_with_their_signatures(signed, capsys) -> None:
    assert _audit(signed, "--identity", "alice@example.com", "-o", "json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ctTreeSize"] == 7 and report["rootVerified"] is True
    certificates = report["certificates"]
    assert [c["ctIndex"] for c in certificates] == [0, 2]
    for cert in certificates:
        assert cert["identities"] == ["alice@example.com"]
        assert cert["issuer"] == f"{signed.url}/oidc"
        assert cert["keyAlgorithm"] == "ECDSA secp256r1"
    # keyless signs into v2 by default; each certificate names its own signature there.
    assert [_entries(c) for c in certificates] == [[(V2, 0, CERT)], [(V2, 1, CERT)]]
    for cert, name in zip(certificates, ("alice-1", "alice-2"), strict=True):
        (entry,) = cert["signatureLogEntries"]
        assert (entry["log"], entry["logIndex"], entry["entryId"]) == _entry_of(
            signed.bundles[name]
        )
        assert entry["kind"] == "hashedrekord" and entry["integratedTime"] is None
        assert entry["signed"] == {"digest": _artifact_digest(name)}
    v1_head = requests.get(f"{signed.url}/api/v1/log", timeout=10).json()
    assert report["signatureLogs"] == [
        {
            "log": V1,
            "url": signed.url,
            "read": "search index, each entry found proven in the signed checkpoint",
            "treeSize": 3,
            "rootHash": v1_head["rootHash"],
        },
        {
            "log": V2,
            "url": signed.url,
            "read": "all entries, each proven in the signed checkpoint",
            "treeSize": 6,
            "rootHash": report["signatureLogs"][1]["rootHash"],
        },
    ]
    assert report["unreadable"] == [] and report["unreadableSignatureLogEntries"] == []
    assert report["unprovenSignatureLogEntries"] == []


def _artifact_digest(name: str) -> str:
    """The digest of the artifact the `signed` fixture signed as `name`."""
    return "sha256:" + hashlib.sha256(f"artifact {name}\n".encode()).hexdigest()


def test_both_logs_every_signer(signed, capsys) -> None:
    """v1 and v2 entries, from keyless, sigstore-python (signature and DSSE attestation) and a
    client that logged its bare key in both logs as well as its certificate."""
    assert _audit(signed, "--issuer", f"{signed.url}/oidc", "-o", "json") == 0
    report = json.loads(capsys.readouterr().out)
    found = {c["ctIndex"]: (c["identities"], _entries(c)) for c in report["certificates"]}
    assert found == {
        0: (["alice@example.com"], [(V2, 0, CERT)]),
        1: (["bob@example.com"], [(V1, 0, CERT)]),
        2: (["alice@example.com"], [(V2, 1, CERT)]),
        4: (["carol@example.com"], [(V2, 2, CERT)]),
        5: (["dave@example.com"], [(V2, 3, CERT)]),
        6: (["erin@example.com"], [(V1, 2, KEY), (V2, 4, KEY), (V2, 5, CERT)]),
    }
    by_index = {c["ctIndex"]: c["signatureLogEntries"] for c in report["certificates"]}
    for ct_index, name in ((1, "bob"), (4, "carol"), (5, "dave")):
        log, index, leaf = _entry_of(signed.bundles[name])
        assert (by_index[ct_index][0]["log"], by_index[ct_index][0]["logIndex"]) == (log, index)
        if log == V2:
            assert by_index[ct_index][0]["entryId"] == leaf
    # bob's v1 entry: its time is the one its signed entry timestamp vouches for.
    [bob_entry] = signed.bundles["bob"]["verificationMaterial"]["tlogEntries"]
    assert by_index[1][0]["integratedTime"] == int(bob_entry["integratedTime"])
    # What each signed: the artifact's digest; for dave's DSSE attestation, logged in v2 as a
    # hashedrekord, the digest of its PAE (the digest its entry body records).
    assert by_index[1][0]["signed"] == {"artifactDigest": _artifact_digest("bob")}
    assert by_index[4][0]["signed"] == {
        "digest": "sha256:" + hashlib.sha256(b"artifact carol\n").hexdigest()
    }
    [dave_entry] = signed.bundles["dave"]["verificationMaterial"]["tlogEntries"]
    dave_body = json.loads(base64.b64decode(dave_entry["canonicalizedBody"]))
    pae_digest = base64.b64decode(dave_body["spec"]["hashedRekordV002"]["data"]["digest"])
    assert by_index[5][0]["signed"] == {"digest": f"sha256:{pae_digest.hex()}"}


def test_by_issuer_and_time_in_text(signed, capsys) -> None:
    github = signed.issuer.github_issuer_url
    assert _audit(signed, "--issuer", github) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2
    assert "CT 3 serial " in lines[0]
    assert "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main" in lines[0]
    assert f"({github}), ECDSA secp256r1" in lines[0]
    assert lines[1].startswith("  rekor-v1 entry 1 (hashedrekord, certificate) ")
    assert lines[1].endswith(f": artifact {_artifact_digest('github')}")
    assert "1 certificates in CT entries 0..6 of 7 (each proven in the signed tree head)" in err
    assert (
        f"rekor-v1 log at {signed.url}: searched by each certificate's key, each entry found "
        "proven in its signed checkpoint of size 3" in err
    )
    assert (
        f"rekor-v2 log at {signed.url}: all 6 entries read, each proven in its signed checkpoint"
        in err
    )

    assert _audit(signed, "--identity", "erin@example.com") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(") ")[0] for line in lines[1:]] == [
        "  rekor-v1 entry 2 (hashedrekord, bare key",
        "  rekor-v2 entry 4 (hashedrekord, bare key",
        "  rekor-v2 entry 5 (hashedrekord, certificate",
    ]

    assert _audit(signed, "--identity-regexp", ".*@example\\.com", "--since", "2999-01-01") == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "0 certificates in CT entries 0..6 of 7" in err


def test_a_partial_read_is_proven_too(signed, tmp_path: Path, capsys) -> None:
    """CT entries from --from-index on are proven in the signed tree head (with the inclusion
    proof of the first and a consistency proof), as a read from entry 0 is; before, a partial
    read was not checked at all, and a front end could reorder it unseen."""
    assert _audit(signed, "--identity", "bob@example.com", "--from-index", "1") == 0
    out, err = capsys.readouterr()
    assert "bob@example.com" in out
    assert "1 certificates in CT entries 1..6 of 7 (each proven in the signed tree head)" in err
    with _ct_front_end(signed, lambda entries: entries.reverse()) as proxy_url:
        code = _audit_ct_at(
            signed, tmp_path, proxy_url, "--identity", "bob@example.com", "--from-index", "1"
        )
    assert code == 1
    assert capsys.readouterr().err == (
        f"error: entry 1 of the CT log at {proxy_url} is not in the tree its tree head of size "
        "7 signs: the log puts that leaf at index 6\n"
    )


def _audit_ct_at(signed, tmp_path: Path, ct_url: str, *args: str) -> int:
    """keyless audit of the CT log at `ct_url`, under the server's trusted root with its CT log
    moved there (a front end, or nothing at all)."""
    root = requests.get(f"{signed.url}/api/v1/trust/trusted_root.json", timeout=10).json()
    for ctlog in root["ctlogs"]:
        ctlog["baseUrl"] = ct_url
    trusted_root = tmp_path / "root.json"
    trusted_root.write_text(json.dumps(root))
    return main(["audit", "--ct-url", ct_url, "--trusted-root", str(trusted_root), *args])


def _root_at(signed, tmp_path: Path, log_url: str) -> Path:
    """The server's trusted root with its Rekor v1 log listed at `log_url` (a front end)."""
    root = requests.get(f"{signed.url}/api/v1/trust/trusted_root.json", timeout=10).json()
    for tlog in root["tlogs"]:
        if tlog["publicKey"]["keyDetails"] != "PKIX_ED25519":
            tlog["baseUrl"] = log_url
    trusted_root = tmp_path / "root-front-end.json"
    trusted_root.write_text(json.dumps(root))
    return trusted_root


@contextmanager
def _ct_front_end(signed, edit_entries) -> Iterator[str]:
    """A front end to the server whose get-entries answers pass through `edit_entries`."""
    proxy = Flask("tampering-ct")

    @proxy.route("/<path:path>")
    def forward(path: str) -> Response:
        upstream = requests.get(f"{signed.url}/{path}", params=request.args, timeout=10)
        body = upstream.content
        if path == "ct/v1/get-entries":
            document = json.loads(body)
            edit_entries(document["entries"])
            body = json.dumps(document).encode()
        return Response(body, status=upstream.status_code, mimetype="application/json")

    with serve_wsgi(proxy) as url:
        yield url


@contextmanager
def _rekor_front_end(signed, edit_entry) -> Iterator[str]:
    """A front end to the server's Rekor v1 log whose retrieved entries pass through
    `edit_entry` (v1 search answers carry no proof: a front end can change them)."""
    proxy = Flask("tampering-rekor")

    @proxy.route("/<path:path>", methods=["GET", "POST"])
    def forward(path: str) -> Response:
        upstream = requests.request(
            request.method,
            f"{signed.url}/{path}",
            params=request.args,
            data=request.get_data(),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        body = upstream.content
        if path == "api/v1/log/entries/retrieve":
            document = json.loads(body)
            for item in document:
                for entry in item.values():
                    edit_entry(entry)
            body = json.dumps(document).encode()
        return Response(body, status=upstream.status_code, mimetype="application/json")

    with serve_wsgi(proxy) as url:
        yield url


def _bob_key_pem(signed) -> bytes:
    """The public key (PEM) of bob's certificate, which his v1 entry is indexed under."""
    from cryptography import x509

    material = signed.bundles["bob"]["verificationMaterial"]
    der = base64.b64decode(material["certificate"]["rawBytes"])
    return (
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _root_with_v1_log(signed, tmp_path: Path, url: str, key: ec.EllipticCurvePrivateKey) -> Path:
    """The server's trusted root with another Rekor v1 log listed at `url` under `key`."""
    document = requests.get(f"{signed.url}/api/v1/trust/trusted_root.json", timeout=10).json()
    [v1] = [t for t in document["tlogs"] if t["publicKey"]["keyDetails"] != "PKIX_ED25519"]
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    listed = json.loads(json.dumps(v1))
    listed["baseUrl"] = url
    listed["publicKey"]["rawBytes"] = base64.b64encode(spki).decode()
    listed["logId"]["keyId"] = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    document["tlogs"].append(listed)
    root = tmp_path / "root-v1.json"
    root.write_text(json.dumps(document))
    return root


def test_a_v1_entry_that_cannot_be_read_is_named(signed, tmp_path: Path, capsys) -> None:
    """A Rekor v1 log (one that logged whatever it was given) whose entry under bob's key is of
    a kind keyless does not read: proven, then named with its index and why, not dropped in
    silence (as an unreadable body was until issue 19)."""
    from keyless.tlog import rekor_api
    from keyless.tlog.pki import parse_pem_key
    from keyless.tlog.rekor import RekorService
    from keyless.tlog.sqlite_storage import SQLiteStorage
    from tests.conftest import serve_factory

    key = ec.generate_private_key(ec.SECP256R1())
    search_key = (
        "pk:" + hashlib.sha256(parse_pem_key(_bob_key_pem(signed)).canonical_pem).hexdigest()
    )
    body = json.dumps({"apiVersion": "0.0.1", "kind": "rekord", "spec": {}}).encode()

    def hostile_log(base_url: str) -> Flask:
        service = RekorService.open(
            storage=SQLiteStorage(tmp_path / "v1.sqlite"),
            private_key=key,
            host=base_url.removeprefix("http://"),
        )
        service.log.append(body, keys=[search_key])
        app = Flask("hostile-v1")
        rekor_api.init_app(app, service)
        return app

    with serve_factory(hostile_log) as hostile_url:
        root = _root_with_v1_log(signed, tmp_path, hostile_url, key)
        command = ["--trusted-root", str(root), "--rekor-url", hostile_url]
        assert _audit(signed, *command, "--identity", "bob@example.com", "-o", "json") == 0
        report = json.loads(capsys.readouterr().out)
        assert _audit(signed, *command, "--identity", "bob@example.com") == 0
        err = capsys.readouterr().err
    [bob] = report["certificates"]
    assert _entries(bob) == []
    reason = "entry kind rekord 0.0.1 is not one keyless reads"
    assert report["unreadableSignatureLogEntries"] == [
        {"log": V1, "url": hostile_url, "logIndex": 0, "reason": reason}
    ]
    assert report["unprovenSignatureLogEntries"] == []
    assert f"warning: rekor-v1 entry 0 of {hostile_url} is not matched: {reason}\n" in err


def _swap_body(entry: dict) -> None:
    """Bob's entry with another body (the log's answer, its proof unchanged)."""
    document = json.loads(base64.b64decode(entry["body"]))
    document["spec"]["data"]["hash"]["value"] = "00" * 32
    entry["body"] = base64.b64encode(json.dumps(document).encode()).decode()


def _later_time(entry: dict) -> None:
    entry["integratedTime"] += 3600


def _no_proof(entry: dict) -> None:
    entry["verification"]["inclusionProof"]["hashes"] = ["00" * 32]


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (
            _swap_body,
            "entry 0 of the log at {url} is not in the tree its checkpoint signs: inclusion "
            "proof for index 0 in a tree of 3 leads to root",
        ),
        (
            _later_time,
            "entry 0 of the log at {url}: its signed entry timestamp (of integrated time "
            "{time}) does not verify with the log's key",
        ),
        (
            _no_proof,
            "entry 0 of the log at {url} is not in the tree its checkpoint signs: inclusion "
            "proof has 1 hashes, expected 2 for index 0 in a tree of 3",
        ),
    ],
    ids=["body-swapped", "time-changed", "proof-changed"],
)
def test_a_v1_entry_that_does_not_prove_is_named(
    signed, tmp_path: Path, capsys, edit, reason
) -> None:
    """A front end to the Rekor v1 log that alters bob's entry: the search index still names
    it, the entry does not prove, so it is not listed, and the audit says which and why and
    exits 1 (the rest of the report stands)."""
    with _rekor_front_end(signed, edit) as proxy_url:
        root = _root_at(signed, tmp_path, proxy_url)
        command = ["--trusted-root", str(root), "--rekor-url", proxy_url]
        assert _audit(signed, *command, "--identity", "bob@example.com", "-o", "json") == 1
        report = json.loads(capsys.readouterr().out)
        assert _audit(signed, *command, "--identity", "bob@example.com") == 1
        err = capsys.readouterr().err
    [bob] = report["certificates"]
    assert _entries(bob) == []
    [bob_entry] = signed.bundles["bob"]["verificationMaterial"]["tlogEntries"]
    _, _, leaf = _entry_of(signed.bundles["bob"])
    expected = reason.format(url=proxy_url, time=int(bob_entry["integratedTime"]) + 3600)
    [unproven] = report["unprovenSignatureLogEntries"]
    assert unproven["reason"].startswith(expected)
    assert (unproven["log"], unproven["url"], unproven["logIndex"]) == (V1, proxy_url, 0)
    assert unproven["entryId"].endswith(leaf)
    assert (
        f"error: rekor-v1 entry 0 ({unproven['entryId']}) of {proxy_url} does not prove: "
        f"{expected}" in err
    )


def test_an_entry_the_index_names_and_the_log_does_not_serve_is_named(
    signed, tmp_path: Path, capsys
) -> None:
    """A search answer naming an entry the log then does not serve (or that names another
    entry's ID): neither is listed, both are named, exit 1."""
    ghost = "0" * 16 + "ab" * 32
    proxy = Flask("lying-index")

    @proxy.route("/<path:path>", methods=["GET", "POST"])
    def forward(path: str) -> Response:
        upstream = requests.request(
            request.method,
            f"{signed.url}/{path}",
            params=request.args,
            data=request.get_data(),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        body = upstream.content
        if path == "api/v1/index/retrieve":
            body = json.dumps([*json.loads(body), ghost]).encode()
        return Response(body, status=upstream.status_code, mimetype="application/json")

    with serve_wsgi(proxy) as proxy_url:
        root = _root_at(signed, tmp_path, proxy_url)
        command = ["--trusted-root", str(root), "--rekor-url", proxy_url]
        assert _audit(signed, *command, "--identity", "bob@example.com", "-o", "json") == 1
    report = json.loads(capsys.readouterr().out)
    [bob] = report["certificates"]
    assert _entries(bob) == [(V1, 0, CERT)]
    assert report["unprovenSignatureLogEntries"] == [
        {
            "log": V1,
            "url": proxy_url,
            "logIndex": None,
            "entryId": ghost,
            "reason": "the search index names it, the log serves none",
        }
    ]


def test_an_entry_altered_in_the_database_does_not_prove(tmp_path: Path, capsys) -> None:
    """Issue 24: a Rekor v1 entry whose body was changed in the log's SQLite database (here to
    claim another artifact) was listed with exit 0. Its inclusion proof, computed from the
    stored leaf hashes, no longer holds for the body served: it is named, not listed, exit 1;
    the entry beside it is still listed."""
    import sqlite3

    from tests.e2e.log_files import REKOR_V1

    state = tmp_path / "state"
    with dev_server(state) as server:
        for name in ("one", "two"):
            artifact = tmp_path / f"{name}.txt"
            artifact.write_text(f"artifact {name}\n")
            token = server.email_token("bob@example.com")
            sign = ["sign", "--server", server.url, "--rekor-version", "1"]
            assert main([*sign, "--identity-token", token, str(artifact)]) == 0
        with sqlite3.connect(state / REKOR_V1.database) as db:
            (data,) = db.execute("SELECT data FROM leaves WHERE idx = 0").fetchone()
            altered = bytes(data).replace(
                hashlib.sha256(b"artifact one\n").hexdigest().encode(), b"ab" * 32
            )
            assert altered != bytes(data)
            db.execute("UPDATE leaves SET data = ? WHERE idx = 0", (altered,))
        capsys.readouterr()
        assert _audit(server, "--identity", "bob@example.com", "-o", "json") == 1
        report = json.loads(capsys.readouterr().out)
        assert _audit(server, "--identity", "bob@example.com") == 1
        out, err = capsys.readouterr()
    listed = [entry for cert in report["certificates"] for entry in cert["signatureLogEntries"]]
    assert [(e["log"], e["logIndex"], e["signed"]) for e in listed] == [
        (V1, 1, {"artifactDigest": "sha256:" + hashlib.sha256(b"artifact two\n").hexdigest()})
    ]
    [unproven] = report["unprovenSignatureLogEntries"]
    assert (unproven["logIndex"], unproven["url"]) == (0, server.url)
    assert unproven["reason"].startswith(
        f"entry 0 of the log at {server.url} is not in the tree its checkpoint signs: "
        "inclusion proof for index 0 in a tree of 2 leads to root"
    )
    assert f"error: rekor-v1 entry 0 ({unproven['entryId']}) of {server.url} does not prove" in err
    assert "  rekor-v1 entry 0 " not in out and "  rekor-v1 entry 1 " in out


def test_a_reordering_ct_front_end_is_caught(signed, tmp_path: Path, capsys) -> None:
    with _ct_front_end(signed, lambda entries: entries.reverse()) as proxy_url:
        code = _audit_ct_at(signed, tmp_path, proxy_url, "--identity", "alice@example.com")
    assert code == 1
    assert (
        f"error: entries 0..6 of the CT log at {proxy_url} are not the tree its tree head of "
        "size 7 signs: it shows a different history than it signed\n"
    ) == capsys.readouterr().err


def test_refusals(signed, tmp_path: Path, capsys) -> None:
    assert _audit(signed) == 2
    assert "name an --identity, --identity-regexp or --issuer to audit" in capsys.readouterr().err
    assert _audit(signed, "--identity-regexp", "(") == 2
    assert "--identity-regexp '(' is not valid" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["audit", "--ct-url", "http://127.0.0.1:9", "--identity", "a"])
    assert usage.value.code == 2
    code = _audit_ct_at(signed, tmp_path, "http://127.0.0.1:9", "--identity", "alice@example.com")
    assert code == 3
    assert "cannot reach the log at http://127.0.0.1:9/ct/v1/get-sth" in capsys.readouterr().err


def test_an_entry_that_cannot_be_read_is_reported(signed, tmp_path: Path, capsys) -> None:
    """extra_data is outside the Merkle leaf, so a front end can garble it without breaking the
    root check: the entry must then be named, not silently skipped."""

    def garble(entries: list) -> None:
        entries[1]["extra_data"] = "AAAA"

    issuer = ["--issuer", f"{signed.url}/oidc", "-o", "json"]
    with _ct_front_end(signed, garble) as proxy_url:
        code = _audit_ct_at(signed, tmp_path, proxy_url, *issuer)
    assert code == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["rootVerified"] is True
    assert report["unreadable"] == [1]
    assert [c["ctIndex"] for c in report["certificates"]] == [0, 2, 4, 5, 6]
    assert "warning: 1 CT entries hold no certificate keyless can read (indexes 1)" in captured.err


def test_a_precertificate_swapped_in_extra_data_is_caught(signed, tmp_path: Path, capsys) -> None:
    """extra_data is outside the Merkle leaf: a front end that swaps alice's and bob's
    precertificates passes the root check, but each leaf commits to its own TBS and issuer, so
    the swap is a log that lies (exit 1), not bob's certificate listed as alice's."""

    def swap(entries: list) -> None:
        entries[0]["extra_data"], entries[1]["extra_data"] = (
            entries[1]["extra_data"],
            entries[0]["extra_data"],
        )

    with _ct_front_end(signed, swap) as proxy_url:
        code = _audit_ct_at(signed, tmp_path, proxy_url, "--identity", "bob@example.com")
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err == (
        f"error: entry 0 of the CT log at {proxy_url}: its precertificate (in extra_data, which "
        "no hash covers) is not the one its leaf commits to\n"
    )


def _flip_in_first_entry(body: bytes) -> bytes:
    """An entry bundle with one base64 character of its first entry's signature changed: the
    lengths still parse, the entry is still JSON, only its hash differs."""
    marker = b'"content":"'
    at = body.index(marker) + len(marker)
    changed = b"B" if body[at : at + 1] != b"B" else b"C"
    return body[:at] + changed + body[at + 1 :]


def _garble_signature(body: bytes) -> bytes:
    text, _, signatures = body.partition(b"\n\n")
    name, _, signature = signatures.rpartition(b" ")
    raw = bytearray(base64.b64decode(signature))
    raw[-1] ^= 1
    return text + b"\n\n" + name + b" " + base64.b64encode(bytes(raw)) + b"\n"


@pytest.mark.parametrize(
    ("target", "tamper", "message"),
    [
        (
            "tile/entries/",
            _flip_in_first_entry,
            "entries 0..5 of the log at {proxy}/api/v2 are not in the tree its checkpoint of "
            "size 6 signs",
        ),
        ("checkpoint", _garble_signature, "sent a checkpoint no trusted key signed"),
    ],
    ids=["entry-bundle", "checkpoint"],
)
def test_a_tampering_v2_mirror_is_caught(signed, capsys, target, tamper, message) -> None:
    """The v2 log's tiles read through a mirror that alters what it passes on: the audit stops
    with the log's own error line and exit 1, and lists nothing."""
    proxy = Flask("tampering-v2-mirror")

    @proxy.route("/api/v2/<path:path>")
    def forward(path: str) -> Response:
        upstream = requests.get(f"{signed.url}/api/v2/{path}", timeout=10)
        body = upstream.content
        if upstream.status_code == 200 and path.startswith(target):
            body = tamper(body)
        return Response(body, status=upstream.status_code)

    with serve_wsgi(proxy) as proxy_url:
        code = _audit(
            signed, "--tiles-url", f"{proxy_url}/api/v2", "--identity", "alice@example.com"
        )
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert f"error: the Rekor v2 log at {signed.url}: " in err
    assert message.format(proxy=proxy_url) in err


def test_an_unreachable_v2_log_is_an_error(signed, capsys) -> None:
    code = _audit(signed, "--tiles-url", "http://127.0.0.1:9", "--identity", "alice@example.com")
    assert code == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert "error: cannot reach the transparency log at http://127.0.0.1:9/checkpoint" in err


def test_v2_flag_refusals(signed, tmp_path: Path, capsys) -> None:
    root = tmp_path / "root.json"
    root.write_text(requests.get(f"{signed.url}/api/v1/trust/trusted_root.json", timeout=10).text)
    ct_only = ["audit", "--ct-url", signed.url, "--trusted-root", str(root), "--identity", "a"]
    assert main([*ct_only, "--tiles-url", "http://127.0.0.1:9"]) == 2
    assert (
        "error: --tiles-url names a mirror of one Rekor v2 log, and 0 are to be read"
        in capsys.readouterr().err
    )
    assert main([*ct_only, "--rekor-v2-url", "http://127.0.0.1:9"]) == 2
    assert (
        "error: the trusted root lists no tile log key for http://127.0.0.1:9 "
        "(origin '127.0.0.1:9')" in capsys.readouterr().err
    )


def _with_verifier(body: bytes, verifier: dict) -> bytes:
    """`body` with another certificate or key (its key details kept)."""
    document = json.loads(body)
    signature = document["spec"]["hashedRekordV002"]["signature"]
    signature["verifier"] = {"keyDetails": signature["verifier"]["keyDetails"], **verifier}
    return json.dumps(document).encode()


def _with_signature(body: bytes, bundle: dict) -> bytes:
    """`body` with the signature of another bundle's entry: it parses, and does not verify."""
    document = json.loads(body)
    [other] = bundle["verificationMaterial"]["tlogEntries"]
    other_spec = json.loads(base64.b64decode(other["canonicalizedBody"]))["spec"]
    content = other_spec["hashedRekordV002"]["signature"]["content"]
    document["spec"]["hashedRekordV002"]["signature"]["content"] = content
    return json.dumps(document).encode()


def test_unreadable_v2_entries_are_named(signed, tmp_path: Path, capsys) -> None:
    """A v2 log (here one that logged whatever it was given) whose entries are not JSON, of
    another kind, name a certificate or key that does not parse, or carry alice's certificate
    with a signature it did not make: each is proven part of the log, then named with its index
    and reason (never listed as alice's), and the readable one is still matched."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from keyless.tlog import checkpoint_key_id, checkpoint_origin, rekor_v2_api
    from keyless.tlog.log import NewEntry
    from keyless.tlog.rekor_v2 import RekorV2Service
    from keyless.tlog.sqlite_storage import SQLiteStorage
    from tests.conftest import serve_factory

    [alice] = signed.bundles["alice-1"]["verificationMaterial"]["tlogEntries"]
    good = base64.b64decode(alice["canonicalizedBody"])
    both = json.loads(good)["spec"]["hashedRekordV002"]["signature"]["verifier"]
    both["publicKey"] = {"rawBytes": "AAAA"}
    bodies = [
        good,
        b"\xff not json",
        json.dumps({"apiVersion": "0.0.1", "kind": "rekord", "spec": {}}).encode(),
        _with_verifier(good, {"x509Certificate": {"rawBytes": "bm90IGEgY2VydGlmaWNhdGU="}}),
        _with_verifier(good, {"publicKey": {"rawBytes": "not base64!"}}),
        b"[" * 40 + b"]" * 40,
        b'{"kind": "hashedrekord", "kind": "dsse"}',
        _with_verifier(good, both),
        _with_signature(good, signed.bundles["alice-2"]),
    ]
    key = ed25519.Ed25519PrivateKey.generate()

    def hostile_log(base_url: str) -> Flask:
        service = RekorV2Service.open(
            storage=SQLiteStorage(tmp_path / "v2.sqlite"),
            private_key=key,
            origin=checkpoint_origin(base_url),
        )
        service.log.append_batch([NewEntry(body) for body in bodies])
        app = Flask("hostile-v2")
        rekor_v2_api.init_app(app, service)
        return app

    document = requests.get(f"{signed.url}/api/v1/trust/trusted_root.json", timeout=10).json()
    [v2] = [t for t in document["tlogs"] if t["publicKey"]["keyDetails"] == "PKIX_ED25519"]
    with serve_factory(hostile_log) as hostile_url:
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        key_id = checkpoint_key_id(key.public_key(), name=checkpoint_origin(hostile_url))
        listed = json.loads(json.dumps(v2))
        listed["baseUrl"] = hostile_url
        listed["publicKey"]["rawBytes"] = base64.b64encode(spki).decode()
        listed["logId"]["keyId"] = base64.b64encode(key_id).decode()
        document["tlogs"].append(listed)
        root = tmp_path / "root.json"
        root.write_text(json.dumps(document))
        command = ["--trusted-root", str(root), "--rekor-v2-url", hostile_url]
        assert _audit(signed, *command, "--identity", "alice@example.com", "-o", "json") == 0
        report = json.loads(capsys.readouterr().out)
        assert _audit(signed, *command, "--identity", "alice@example.com") == 0
        out, err = capsys.readouterr()
    assert [(c["ctIndex"], _entries(c)) for c in report["certificates"]] == [
        (0, [(V2, 0, CERT)]),
        (2, []),
    ]
    assert report["signatureLogs"][1]["url"] == hostile_url
    assert report["signatureLogs"][1]["treeSize"] == len(bodies)
    unreadable = [(e["logIndex"], e["reason"]) for e in report["unreadableSignatureLogEntries"]]
    assert [index for index, _ in unreadable] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert unreadable[0] == (1, "entry is not UTF-8")
    assert unreadable[1] == (2, "entry kind rekord 0.0.1 is not one keyless reads")
    assert unreadable[2][1].startswith("certificate does not parse (")
    assert unreadable[3] == (
        4,
        "entry field 'spec.hashedRekordV002.signature.verifier.publicKey.rawBytes' is not base64",
    )
    assert unreadable[4] == (5, "entry is nested deeper than 32 levels")
    assert unreadable[5] == (6, "entry has a duplicate field 'kind'")
    assert unreadable[6] == (
        7,
        "entry field 'spec.hashedRekordV002.signature.verifier' holds neither or both of "
        "x509Certificate and publicKey",
    )
    assert unreadable[7] == (
        8,
        "its signature does not verify with its certificate's key over its digest",
    )
    assert {e["log"] for e in report["unreadableSignatureLogEntries"]} == {V2}
    assert f"warning: rekor-v2 entry 1 of {hostile_url} is not matched: entry is not UTF-8\n" in err
    assert (
        f"warning: rekor-v2 entry 2 of {hostile_url} is not matched: entry kind rekord 0.0.1 "
        "is not one keyless reads\n" in err
    )
    assert err.count("is not matched: ") == 8
    assert "  rekor-v2 entry 0 (hashedrekord, certificate) " in out


def test_long_reads_report_progress(signed, capsys, monkeypatch) -> None:
    """Progress goes to stderr for the CT read and the v2 read alike (every PROGRESS_EVERY
    entries; made small here so that this log's few entries show it)."""
    import keyless.client.transparency.audit

    monkeypatch.setattr(keyless.client.transparency.audit, "PROGRESS_EVERY", 2)
    assert _audit(signed, "--identity", "bob@example.com", "-o", "json") == 0
    out, err = capsys.readouterr()
    assert [c["ctIndex"] for c in json.loads(out)["certificates"]] == [1]
    progress = [line for line in err.splitlines() if line.startswith("read ")]
    assert progress == [
        "read 2/7 CT entries",
        "read 4/7 CT entries",
        "read 6/7 CT entries",
        "read 2/6 rekor-v2 entries",
        "read 4/6 rekor-v2 entries",
    ]

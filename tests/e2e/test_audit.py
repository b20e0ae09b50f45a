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
    assert report["signatureLogs"] == [
        {"log": V1, "url": signed.url, "read": "search index"},
        {
            "log": V2,
            "url": signed.url,
            "read": "all entries, each proven in the signed checkpoint",
            "treeSize": 6,
            "rootHash": report["signatureLogs"][1]["rootHash"],
        },
    ]
    assert report["unreadable"] == [] and report["unreadableSignatureLogEntries"] == []


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
    assert isinstance(by_index[1][0]["integratedTime"], int)


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
    assert "1 certificates in CT entries 0..6 of 7 (every entry checked" in err
    assert f"rekor-v1 log at {signed.url}: searched by each certificate's key" in err
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


def test_partial_read_says_it_is_not_checked(signed, capsys) -> None:
    assert _audit(signed, "--identity", "bob@example.com", "--from-index", "1") == 0
    out, err = capsys.readouterr()
    assert "bob@example.com" in out
    assert "partial read: not checked against the signed tree head" in err


def _audit_ct_at(signed, tmp_path: Path, ct_url: str, *args: str) -> int:
    """keyless audit of the CT log at `ct_url`, under the server's trusted root with its CT log
    moved there (a front end, or nothing at all)."""
    root = requests.get(f"{signed.url}/api/v1/trust/trusted_root.json", timeout=10).json()
    for ctlog in root["ctlogs"]:
        ctlog["baseUrl"] = ct_url
    trusted_root = tmp_path / "root.json"
    trusted_root.write_text(json.dumps(root))
    return main(["audit", "--ct-url", ct_url, "--trusted-root", str(trusted_root), *args])


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


def test_a_v1_entry_that_cannot_be_read_is_named(signed, capsys) -> None:
    """Bob's v1 entry, found under his key, with a body of a kind keyless does not read: named
    with its index and why, not dropped in silence (as an unreadable body was until issue 19)."""

    def unknown_kind(entry: dict) -> None:
        body = {"apiVersion": "0.0.1", "kind": "rekord", "spec": {}}
        entry["body"] = base64.b64encode(json.dumps(body).encode()).decode()

    with _rekor_front_end(signed, unknown_kind) as proxy_url:
        command = ["--rekor-url", proxy_url, "--identity", "bob@example.com"]
        assert _audit(signed, *command, "-o", "json") == 0
        report = json.loads(capsys.readouterr().out)
        assert _audit(signed, *command) == 0
        err = capsys.readouterr().err
    [bob] = report["certificates"]
    assert _entries(bob) == []
    reason = "entry kind rekord 0.0.1 is not one keyless reads"
    assert report["unreadableSignatureLogEntries"] == [
        {"log": V1, "url": proxy_url, "logIndex": 0, "reason": reason}
    ]
    assert f"warning: rekor-v1 entry 0 of {proxy_url} is not matched: {reason}\n" in err


def test_a_reordering_ct_front_end_is_caught(signed, tmp_path: Path, capsys) -> None:
    with _ct_front_end(signed, lambda entries: entries.reverse()) as proxy_url:
        code = _audit_ct_at(signed, tmp_path, proxy_url, "--identity", "alice@example.com")
    assert code == 1
    assert "returned 7 entries whose Merkle root is not the root of its signed tree head" in (
        capsys.readouterr().err
    )


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

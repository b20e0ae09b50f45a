"""`keyless monitor` against real servers: it follows each of a server's logs as they grow
(keyless sign logs to Rekor v2 by default, `--rekor-version 1` to v1; every certificate its CA
issues goes to its CT log), reports watched identities, and catches logs that fork (a state
directory restored from an older copy and served again under the same origin with the same
keys)."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from keyless.cli.main import main
from tests.conftest import dev_server


def _sign(server, tmp_path: Path, email: str, name: str, *, v1: bool = False) -> None:
    """Sign into the Rekor v2 log (keyless sign's default), or the v1 log."""
    artifact = tmp_path / name
    artifact.write_bytes(f"{name} by {email}\n".encode())
    token = server.email_token(email)
    sign = ["sign", "--server", server.url, *(["--rekor-version", "1"] if v1 else [])]
    assert main([*sign, "--identity-token", token, str(artifact)]) == 0


def _monitor(server, state: Path, *extra: str) -> int:
    return main(["monitor", "--server", server.url, "--state", str(state), *extra])


def _v2(state: Path) -> Path:
    """Where --state FILE keeps the v2 log's state."""
    return state.with_name(f"{state.stem}.v2{state.suffix}")


def _ct(state: Path) -> Path:
    """Where --state FILE keeps the CT log's state."""
    return state.with_name(f"{state.stem}.ct{state.suffix}")


def _tree_size(state: Path) -> int:
    return json.loads(state.read_text())["treeSize"]


def _heads(
    server, state: Path, was: tuple[int | None, int | None, int | None] = (None, None, None)
) -> list[str]:
    """The three header lines a text report starts each log with (Rekor v1, v2, CT)."""
    lines = []
    for log, url, path, previous in (
        ("Rekor v1", server.url, state, was[0]),
        ("Rekor v2", server.url + "/api/v2", _v2(state), was[1]),
        ("CT", server.url + "/ct/v1", _ct(state), was[2]),
    ):
        grown = "" if previous is None else f" (was {previous})"
        lines.append(
            f"{log} log {url} consistent at size {_tree_size(path)}{grown}, root {_root(path)}"
        )
    return lines


@pytest.fixture
def log(tmp_path: Path):
    with dev_server(tmp_path / "state") as running:
        yield running


def test_first_run_trusts_the_checkpoint_then_reports_new_entries(log, tmp_path, capsys) -> None:
    _sign(log, tmp_path, "alice@example.com", "before.txt")
    state = tmp_path / "monitor.json"
    assert _monitor(log, state, "--identity", "alice@example.com") == 0
    out, err = capsys.readouterr()
    assert f"first run of {log.url}: trusting the log's current checkpoint" in err
    assert f"first run of {log.url}/api/v2: trusting the log's current checkpoint" in err
    assert f"state kept in {_v2(state)}" in err
    assert f"first run of {log.url}/ct/v1: trusting the log's current checkpoint" in err
    assert f"state kept in {_ct(state)}" in err
    assert out.splitlines() == _heads(log, state)
    assert (_tree_size(state), _tree_size(_v2(state)), _tree_size(_ct(state))) == (0, 1, 1)

    _sign(log, tmp_path, "alice@example.com", "a.txt")
    _sign(log, tmp_path, "bob@example.com", "b.txt")
    _sign(log, tmp_path, "alice@example.com", "c.txt", v1=True)
    assert _monitor(log, state, "--identity", "alice@example.com") == 0
    lines = capsys.readouterr().out.splitlines()
    v1_head, v2_head, ct_head = _heads(log, state, was=(0, 1, 1))
    # The CT log has one certificate per signing: alice's two are reported as issued to her.
    assert lines == [
        v1_head,
        f"entry 0: signed by alice@example.com ({log.url}/oidc)",
        v2_head,
        f"entry 1: signed by alice@example.com ({log.url}/oidc)",
        ct_head,
        f"entry 1: certificate issued to alice@example.com ({log.url}/oidc)",
        f"entry 3: certificate issued to alice@example.com ({log.url}/oidc)",
    ]
    assert json.loads(state.read_text())["nextIndex"] == 1
    assert json.loads(_v2(state).read_text())["nextIndex"] == 3
    assert json.loads(_v2(state).read_text())["logUrl"] == f"{log.url}/api/v2"
    assert json.loads(_ct(state).read_text())["nextIndex"] == 4
    assert json.loads(_ct(state).read_text())["logUrl"] == f"{log.url}/ct/v1"

    # Nothing new: nothing reported, the state stays.
    assert _monitor(log, state, "--identity", "alice@example.com") == 0
    assert capsys.readouterr().out.splitlines() == _heads(log, state, was=(1, 3, 4))


def test_the_default_state_files_one_per_log(log, tmp_path, capsys, monkeypatch) -> None:
    """Without --state, each log has its own file (the CT log's under its endpoints URL); the
    v1 log keeps the name it always had."""
    import hashlib

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    _sign(log, tmp_path, "alice@example.com", "a.txt")
    assert main(["monitor", "--server", log.url]) == 0
    folder = tmp_path / "xdg" / "keyless" / "monitor"
    names = {
        hashlib.sha256(url.encode()).hexdigest()[:16] + ".json"
        for url in (log.url, f"{log.url}/api/v2", f"{log.url}/ct/v1")
    }
    assert {path.name for path in folder.iterdir()} == names
    capsys.readouterr()


def test_history_scan_regexp_and_unexpected_issuer(log, tmp_path, capsys) -> None:
    for index, email in enumerate(["alice@example.com", "bob@example.com", "eve@example.org"]):
        _sign(log, tmp_path, email, f"{index}.txt")
    _sign(log, tmp_path, "carol@example.com", "v1.txt", v1=True)
    state = tmp_path / "monitor.json"
    code = _monitor(
        log,
        state,
        "--from-index",
        "0",
        "--identity-regexp",
        r".*@example\.com",
        "--issuer",
        "https://accounts.example.com",
        "-o",
        "json",
    )
    assert code == 4
    v1, v2, ct = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert (v1["logUrl"], v1["rekorVersion"], v2["logUrl"], v2["rekorVersion"]) == (
        log.url,
        1,
        f"{log.url}/api/v2",
        2,
    )
    assert (v1["log"], v2["log"], ct["log"]) == ("rekor-v1", "rekor-v2", "ct")
    assert (ct["logUrl"], ct["rekorVersion"]) == (f"{log.url}/ct/v1", None)
    # The CT log: the four certificates, in order of issuance; eve's is not watched.
    assert ct["treeSize"] == 4 and ct["scanned"] == {"from": 0, "to": 4}
    assert [(f["logIndex"], f["identity"], f["kind"]) for f in ct["findings"]] == [
        (0, "alice@example.com", "unexpected-issuer"),
        (1, "bob@example.com", "unexpected-issuer"),
        (3, "carol@example.com", "unexpected-issuer"),
    ]
    assert all(isinstance(f["integratedTime"], int) for f in ct["findings"])
    assert all(len(f["entryId"]) == 64 for f in ct["findings"]) and ct["unjudged"] == []
    assert v2["treeSize"] == 3 and v2["scanned"] == {"from": 0, "to": 3}
    assert [(f["logIndex"], f["identity"], f["kind"]) for f in v2["findings"]] == [
        (0, "alice@example.com", "unexpected-issuer"),
        (1, "bob@example.com", "unexpected-issuer"),
    ]
    assert v1["treeSize"] == 1 and v1["scanned"] == {"from": 0, "to": 1}
    assert [(f["logIndex"], f["identity"]) for f in v1["findings"]] == [(0, "carol@example.com")]
    assert all(f["issuer"] == f"{log.url}/oidc" for f in v1["findings"] + v2["findings"])
    # Rekor v2 has no integrated time; its entry ID is the leaf hash.
    assert {f["integratedTime"] for f in v2["findings"]} == {None}
    assert isinstance(v1["findings"][0]["integratedTime"], int)
    assert all(len(f["entryId"]) == 64 for f in v2["findings"])
    assert v1["unjudged"] == v2["unjudged"] == []


def test_max_entries_resumes_where_it_stopped(log, tmp_path, capsys) -> None:
    for index in range(3):
        _sign(log, tmp_path, "alice@example.com", f"{index}.txt")
    state = tmp_path / "monitor.json"
    watch = ["--identity", "alice@example.com", "--max-entries", "2"]
    assert _monitor(log, state, "--from-index", "0", *watch) == 0
    first = capsys.readouterr()
    assert f"read entries 0..1 of 3 of {log.url}/api/v2; the next run continues" in first.err
    assert f"read entries 0..1 of 3 of {log.url}/ct/v1; the next run continues" in first.err
    assert _monitor(log, state, *watch) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [lines[2], *lines[4:]] == [
        f"entry 2: signed by alice@example.com ({log.url}/oidc)",
        f"entry 2: certificate issued to alice@example.com ({log.url}/oidc)",
    ]


def test_a_forked_log_is_caught(tmp_path, capsys) -> None:
    """The operator (or an attacker holding the keys) restores an older state directory and
    serves it again at the same origin: the new history of each log contradicts what the
    monitor saw."""
    state_dir, snapshot = tmp_path / "state", tmp_path / "snapshot"
    monitor_state = tmp_path / "monitor.json"

    def sign_both(server, email: str, name: str) -> None:
        _sign(server, tmp_path, email, name)
        _sign(server, tmp_path, email, f"v1-{name}", v1=True)

    with dev_server(state_dir) as first:
        port = int(first.url.rsplit(":", 1)[1])
        sign_both(first, "alice@example.com", "0.txt")
        shutil.copytree(state_dir, snapshot)
        sign_both(first, "alice@example.com", "1.txt")
        sign_both(first, "alice@example.com", "2.txt")
        assert _monitor(first, monitor_state) == 0
    capsys.readouterr()
    assert _tree_size(monitor_state) == _tree_size(_v2(monitor_state)) == 3
    assert _tree_size(_ct(monitor_state)) == 6  # a certificate per signing
    states = (monitor_state, _v2(monitor_state), _ct(monitor_state))
    evidence = [path.read_bytes() for path in states]

    with dev_server(snapshot, port=port) as forked:
        assert forked.url == first.url
        # Behind what the monitor saw: a rollback, in each log.
        assert _monitor(forked, monitor_state) == 1
        err = capsys.readouterr().err
        assert f"the log at {forked.url} signed size 1 after signing size 3" in err
        assert f"the log at {forked.url}/api/v2 signed size 1 after signing size 3" in err
        assert f"the last verified checkpoint is kept in {monitor_state}" in err
        assert f"the last verified checkpoint is kept in {_v2(monitor_state)}" in err
        assert f"the CT log at {forked.url} signed size 2 after signing size 6" in err
        assert f"the last verified checkpoint is kept in {_ct(monitor_state)}" in err
        # Grown past it with other entries: a fork, which no consistency proof can hide.
        for index in range(3):
            sign_both(forked, "mallory@example.com", f"m{index}.txt")
        assert _monitor(forked, monitor_state) == 1
        err = capsys.readouterr().err
        assert f"cannot prove that size 4 (root {_root_hex(forked)}) extends size 3" in err
        v2_root = base64.b64decode(_get(f"{forked.url}/api/v2/checkpoint").split("\n")[2])
        assert f"cannot prove that size 4 (root {v2_root.hex()}) extends size 3" in err
        sth = json.loads(_get(f"{forked.url}/ct/v1/get-sth"))
        ct_root = base64.b64decode(sth["sha256_root_hash"]).hex()
        assert (
            f"the CT log at {forked.url} cannot prove that its tree head of size 8 (root "
            f"{ct_root}) extends its earlier tree (size 6, root {_root(_ct(monitor_state))})"
        ) in err
        assert err.count("it signed two histories (a fork)") == 3
    assert [path.read_bytes() for path in states] == evidence


def test_unreachable_log_and_bad_state(log, tmp_path, capsys) -> None:
    state = tmp_path / "monitor.json"
    assert main(["monitor", "--rekor-url", "http://127.0.0.1:9", "--state", str(state)]) == 2
    assert "the trusted root lists no transparency log at http://127.0.0.1:9" in (
        capsys.readouterr().err
    )
    trusted_root = tmp_path / "root.json"
    root_document = json.loads(_get(log.url + "/api/v1/trust/trusted_root.json"))
    for tlog in root_document["tlogs"]:
        tlog["baseUrl"] = "http://127.0.0.1:9"
    trusted_root.write_text(json.dumps(root_document))
    code = main(
        [
            "monitor",
            "--rekor-url",
            "http://127.0.0.1:9",
            "--trusted-root",
            str(trusted_root),
            "--state",
            str(state),
        ]
    )
    assert code == 3
    assert "cannot reach the transparency log at http://127.0.0.1:9/api/v1/log" in (
        capsys.readouterr().err
    )

    state.write_text('{"logUrl": "https://elsewhere.example"}')
    assert _monitor(log, state) == 2
    assert f"monitor state {state} is malformed" in capsys.readouterr().err
    state.write_text("[" * 5000)
    assert _monitor(log, state) == 2
    assert f"monitor state {state} is malformed" in capsys.readouterr().err


def _get(url: str) -> str:
    import requests

    return requests.get(url, timeout=10).text


def _root(state: Path) -> str:
    return json.loads(state.read_text())["rootHash"]


def _root_hex(server) -> str:
    return json.loads(_get(server.url + "/api/v1/log"))["rootHash"]


def test_an_entry_the_log_never_committed_is_caught(log, tmp_path, capsys) -> None:
    """A Rekor v1 front end that swaps an entry's body for another one: the inclusion proof no
    longer holds, so the monitor refuses to report anything from that log."""
    import requests
    from flask import Flask, Response, request

    from tests.conftest import serve_wsgi

    _sign(log, tmp_path, "alice@example.com", "0.txt", v1=True)
    _sign(log, tmp_path, "mallory@example.com", "1.txt", v1=True)
    proxy = Flask("lying-log")

    @proxy.route("/<path:path>", methods=["GET", "POST"])
    def forward(path: str) -> Response:
        upstream = requests.request(
            request.method,
            f"{log.url}/{path}",
            params=request.args,
            data=request.get_data(),
            headers={"Content-Type": request.content_type or "application/json"},
            timeout=10,
        )
        body = upstream.content
        if path == "api/v1/log/entries/retrieve":
            entries = json.loads(body)
            bodies = [next(iter(e.values()))["body"] for e in entries]
            # Entry 1 now claims to be entry 0's signer: alice "signed" mallory's artifact.
            next(iter(entries[1].values()))["body"] = bodies[0]
            body = json.dumps(entries).encode()
        return Response(body, status=upstream.status_code, mimetype="application/json")

    with serve_wsgi(proxy) as proxy_url:
        root = json.loads(_get(log.url + "/api/v1/trust/trusted_root.json"))
        for tlog in root["tlogs"]:
            tlog["baseUrl"] = proxy_url
        trusted_root = tmp_path / "root.json"
        trusted_root.write_text(json.dumps(root))
        state = tmp_path / "monitor.json"
        code = main(
            [
                "monitor",
                "--rekor-url",
                proxy_url,
                "--trusted-root",
                str(trusted_root),
                "--state",
                str(state),
                "--from-index",
                "0",
                "--identity",
                "alice@example.com",
            ]
        )
    assert code == 1
    err = capsys.readouterr().err
    assert f"entry 1 of the log at {proxy_url} is not in the tree its checkpoint signs" in err
    assert not state.exists()


def test_follow_reports_each_growth_until_stopped(log, tmp_path: Path) -> None:
    """`--follow` runs again every --interval: what is signed between two runs is reported by
    the next one, and the state file advances with it."""
    import os
    import subprocess
    import sys
    import time

    state = tmp_path / "follow.json"
    command = "import sys; from keyless.cli.main import main; sys.exit(main(sys.argv[1:]))"
    argv = ["monitor", "--server", log.url, "--state", str(state), "--follow"]
    argv += ["--interval", "0.2", "--identity", "alice@example.com", "-o", "json"]
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    process = subprocess.Popen(
        [sys.executable, "-c", command, *argv], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        first = [json.loads(process.stdout.readline()) for _ in range(2)]
        assert [(r["rekorVersion"], r["treeSize"]) for r in first] == [(1, 0), (2, 0)]
        _sign(log, tmp_path, "alice@example.com", "followed.txt")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            report = json.loads(process.stdout.readline())
            if report["rekorVersion"] == 2 and report["findings"]:
                break
        assert report["previousTreeSize"] == 0 and report["treeSize"] == 1
        assert [(f["logIndex"], f["identity"]) for f in report["findings"]] == [
            (0, "alice@example.com")
        ]
        assert _tree_size(_v2(state)) == 1
        assert process.poll() is None  # still following
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stdout.close()


def _log_both(server, cert, artifact: bytes, signature: bytes) -> None:
    """Log `artifact`'s ECDSA `signature` with `cert` in the server's Rekor v1 and v2 logs,
    through their public APIs, as anyone may."""
    import hashlib

    import requests
    from cryptography.hazmat.primitives import serialization

    digest = hashlib.sha256(artifact).digest()
    signature = base64.b64encode(signature).decode()
    pem = cert.public_bytes(serialization.Encoding.PEM)
    der = cert.public_bytes(serialization.Encoding.DER)
    v1 = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
            "signature": {
                "content": signature,
                "publicKey": {"content": base64.b64encode(pem).decode()},
            },
        },
    }
    v2 = {
        "hashedRekordRequestV002": {
            "digest": base64.b64encode(digest).decode(),
            "signature": {
                "content": signature,
                "verifier": {
                    "x509Certificate": {"rawBytes": base64.b64encode(der).decode()},
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                },
            },
        }
    }
    answer = requests.post(f"{server.url}/api/v1/log/entries", json=v1, timeout=30)
    assert answer.status_code == 201, answer.text
    answer = requests.post(f"{server.url}/api/v2/log/entries", json=v2, timeout=30)
    assert answer.status_code == 201, answer.text


def _forged_leaf(key, *, signer, issuer_name, authority_key, issuer: str):
    """A Fulcio-shaped leaf for alice@example.com naming `issuer`, signed by `signer`."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from keyless.oidc import oids

    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(minutes=10))
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_CODE_SIGNING]), False)
        .add_extension(authority_key, False)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name("alice@example.com")]), True)
        .add_extension(
            x509.UnrecognizedExtension(
                oids.fulcio_oid(oids.ISSUER_V2), oids.encode_extension_value(oids.ISSUER_V2, issuer)
            ),
            False,
        )
        .sign(signer, hashes.SHA256())
    )


def test_certificates_no_trusted_ca_issued_are_untrusted(log, tmp_path, capsys) -> None:
    """Anyone can log a certificate naming alice@example.com and the server's issuer: one they
    signed themselves, one from another keyless deployment's CA, one in the CA's name with their
    own signature. Each is `untrusted-certificate` (exit 4) in both logs, through --server,
    --rekor-url and --tiles-url; keyless-issued entries stay `watched-identity`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    def signed(key, data: bytes) -> bytes:
        return key.sign(data, ec.ECDSA(hashes.SHA256()))

    issuer = f"{log.url}/oidc"
    _sign(log, tmp_path, "alice@example.com", "genuine.txt")
    _sign(log, tmp_path, "alice@example.com", "genuine-v1.txt", v1=True)

    key = ec.generate_private_key(ec.SECP256R1())
    self_signed = _forged_leaf(
        key,
        signer=key,
        issuer_name=x509.Name([]),
        authority_key=x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
        issuer=issuer,
    )
    _log_both(log, self_signed, b"self-signed", signed(key, b"self-signed"))

    root_document = json.loads(_get(log.url + "/api/v1/trust/trusted_root.json"))
    [authority] = root_document["certificateAuthorities"]
    ca = x509.load_der_x509_certificate(
        base64.b64decode(authority["certChain"]["certificates"][0]["rawBytes"])
    )
    ca_key_id = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    key = ec.generate_private_key(ec.SECP256R1())
    bad_signature = _forged_leaf(
        key,
        signer=ec.generate_private_key(ec.SECP256R1()),
        issuer_name=ca.subject,
        authority_key=x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id),
        issuer=issuer,
    )
    _log_both(log, bad_signature, b"bad signature", signed(key, b"bad signature"))

    # Another deployment's certificate for alice, really issued by its CA through keyless sign.
    with dev_server(tmp_path / "other-state") as other:
        artifact = tmp_path / "other.txt"
        artifact.write_bytes(b"signed elsewhere\n")
        bundle_path = tmp_path / "other.sigstore.json"
        token = other.email_token("alice@example.com")
        sign = ["sign", "--server", other.url, "--identity-token", token]
        assert main([*sign, "--bundle", str(bundle_path), str(artifact)]) == 0
    bundle = json.loads(bundle_path.read_text())
    other_leaf = x509.load_der_x509_certificate(
        base64.b64decode(bundle["verificationMaterial"]["certificate"]["rawBytes"])
    )
    signature = base64.b64decode(bundle["messageSignature"]["signature"])
    _log_both(log, other_leaf, artifact.read_bytes(), signature)

    state = tmp_path / "monitor.json"
    watch = ["--from-index", "0", "--identity", "alice@example.com", "--issuer", issuer]
    # Without --issuer, as today's watch lists often are: only the chain tells them apart.
    assert _monitor(log, state, *watch[:4], "-o", "json") == 4
    v1, v2, ct = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    # The CT log holds only what this CA issued: alice's two precertificates, which its CA
    # signed (checked directly: path validation refuses their poison extension).
    assert [(f["logIndex"], f["kind"], f["reason"]) for f in ct["findings"]] == [
        (0, "watched-identity", None),
        (1, "watched-identity", None),
    ]
    # Each log: 0 keyless-signed, 1 self-signed, 2 our CA's name, 3 the other deployment's.
    for report in (v1, v2):
        findings = report["findings"]
        assert [(f["logIndex"], f["kind"]) for f in findings] == [
            (0, "watched-identity"),
            (1, "untrusted-certificate"),
            (2, "untrusted-certificate"),
            (3, "untrusted-certificate"),
        ]
        assert {f["identity"] for f in findings} == {"alice@example.com"}
        assert [f["issuer"] for f in findings] == [issuer, issuer, issuer, f"{other.url}/oidc"]
        assert findings[0]["reason"] is None
        for finding in findings[1:]:
            assert finding["reason"].startswith("the certificate does not chain to a trusted CA")
        assert "signature does not match" in findings[2]["reason"]

    # Text, and the same judgement through --rekor-url and --tiles-url with the root as a file.
    trusted_root = tmp_path / "root.json"
    trusted_root.write_text(json.dumps(root_document))
    for where, url in (("--rekor-url", log.url), ("--tiles-url", f"{log.url}/api/v2")):
        argv = ["monitor", where, url, "--trusted-root", str(trusted_root)]
        argv += ["--state", str(tmp_path / f"{where}.json"), *watch]
        assert main(argv) == 4
        lines = capsys.readouterr().out.splitlines()[1:]
        assert lines[0] == f"entry 0: signed by alice@example.com ({issuer})"
        assert len(lines) == 4
        issuers = [issuer, issuer, f"{other.url}/oidc"]
        for index, (line, named) in enumerate(zip(lines[1:], issuers, strict=True), start=1):
            assert line.startswith(
                f"entry {index}: signed by alice@example.com ({named}): certificate not "
                "issued by any CA the trusted root lists, a forgery or another deployment's "
                "(the certificate does not chain to a trusted CA at "
            )

    # The keyless-signed entries alone: exit 0.
    assert _monitor(log, tmp_path / "genuine.json", *watch, "--max-entries", "1") == 0
    assert capsys.readouterr().out.splitlines()[1::2] == [
        f"entry 0: signed by alice@example.com ({issuer})",
        f"entry 0: signed by alice@example.com ({issuer})",
        f"entry 0: certificate issued to alice@example.com ({issuer})",
    ]


def test_dsse_and_intoto_entries_are_chain_checked(log, tmp_path, capsys) -> None:
    """Rekor v1's envelope kinds: a keyless attestation (dsse) is a watched identity; a dsse
    and an intoto 0.0.2 entry with a self-signed certificate for the same identity, posted
    through the log's API, are untrusted."""
    import hashlib

    import requests
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from keyless.core.dsse import pae

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    issuer = f"{log.url}/oidc"
    predicate, artifact = tmp_path / "predicate.json", tmp_path / "built.txt"
    predicate.write_text("{}")
    artifact.write_text("built\n")
    token = log.email_token("alice@example.com")
    attest = ["attest", "--server", log.url, "--identity-token", token, "--rekor-version", "1"]
    assert main([*attest, "--predicate", str(predicate), str(artifact)]) == 0

    key = ec.generate_private_key(ec.SECP256R1())
    cert = _forged_leaf(
        key,
        signer=key,
        issuer_name=x509.Name([]),
        authority_key=x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
        issuer=issuer,
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    payload_type, payload = "application/vnd.in-toto+json", b'{"_type": "forged"}'
    signature = key.sign(pae(payload_type, payload), ec.ECDSA(hashes.SHA256()))
    envelope = {
        "payloadType": payload_type,
        "payload": b64(payload),
        "signatures": [{"sig": b64(signature)}],
    }
    dsse = {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {"proposedContent": {"envelope": json.dumps(envelope), "verifiers": [b64(pem)]}},
    }
    intoto = {
        "apiVersion": "0.0.2",
        "kind": "intoto",
        "spec": {
            "content": {
                "envelope": {
                    "payloadType": payload_type,
                    "payload": b64(b64(payload).encode()),
                    "signatures": [{"sig": b64(b64(signature).encode()), "publicKey": b64(pem)}],
                },
                "hash": {"algorithm": "sha256", "value": hashlib.sha256(b"envelope").hexdigest()},
            }
        },
    }
    for entry in (dsse, intoto):
        answer = requests.post(f"{log.url}/api/v1/log/entries", json=entry, timeout=30)
        assert answer.status_code == 201, answer.text

    watch = ["--from-index", "0", "--identity", "alice@example.com", "-o", "json"]
    assert _monitor(log, tmp_path / "monitor.json", *watch) == 4
    v1, v2, _ = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert [(f["logIndex"], f["kind"], f["issuer"]) for f in v1["findings"]] == [
        (0, "watched-identity", issuer),
        (1, "untrusted-certificate", issuer),
        (2, "untrusted-certificate", issuer),
    ]
    assert v1["unjudged"] == [] and v2["findings"] == []

"""`keyless monitor --tiles-url` through a front end that lies about a keyless server's Rekor v2
log: altered hash tiles, swapped or non-JSON entries, a checkpoint signed by another key or
replayed from the past are refused with exit 1; malformed, oversized or failing reads with
exit 3; never a traceback, and the state file stays as it was. Entries the log did commit but
that name no identity or cannot be read are reported, not skipped."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from flask import Flask, Response

from keyless.cli.main import main
from keyless.tlog import parse_checkpoint_text, parse_note, sign_checkpoint
from keyless.tlog.tiles import parse_entry_bundle
from tests.conftest import dev_server, serve_wsgi

Tamper = Callable[[str, bytes], "bytes | Response"]


@dataclass
class Front:
    """A front end for the server's v2 reads; `tamper` rewrites the reads whose path starts
    with a key."""

    url: str
    tamper: dict[str, Tamper] = field(default_factory=dict)
    served: list[str] = field(default_factory=list)


@contextmanager
def front_end(upstream: str) -> Iterator[Front]:
    app = Flask("lying-tile-front-end")
    front = Front("")

    @app.get("/api/v2/<path:path>")
    def read(path: str) -> Response:
        answer = requests.get(f"{upstream}/api/v2/{path}", timeout=10)
        body = answer.content
        front.served.append(path)
        for prefix, tamper in front.tamper.items():
            if answer.status_code == 200 and path.startswith(prefix):
                changed = tamper(path, body)
                if isinstance(changed, Response):
                    return changed
                body = changed
        return Response(body, status=answer.status_code)

    with serve_wsgi(app) as url:
        front.url = url
        yield front


@pytest.fixture
def log(tmp_path: Path):
    with dev_server(tmp_path / "state") as running:
        yield running


def _sign(server, tmp_path: Path, email: str, name: str) -> None:
    artifact = tmp_path / name
    artifact.write_bytes(f"{name} by {email}\n".encode())
    token = server.email_token(email)
    assert main(["sign", "--server", server.url, "--identity-token", token, str(artifact)]) == 0


def _trusted_root(server, tmp_path: Path) -> Path:
    path = tmp_path / "root.json"
    path.write_text(requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=10).text)
    return path


def _monitor(front: Front, root: Path, state: Path, *extra: str) -> int:
    where = ["--tiles-url", f"{front.url}/api/v2", "--trusted-root", str(root)]
    return main(["monitor", *where, "--state", str(state), *extra])


def _flip_last(path: str, body: bytes) -> bytes:
    return body[:-1] + bytes([body[-1] ^ 1])


def _rewrite_entries(change: Callable[[list[bytes]], list[bytes]]) -> Tamper:
    def rewrite(path: str, body: bytes) -> bytes:
        entries = change(parse_entry_bundle(body))
        return b"".join(struct.pack(">H", len(e)) + e for e in entries)

    return rewrite


def _swap(entries: list[bytes]) -> list[bytes]:
    return [*entries[:3], entries[4], entries[3]]


def _other_key(path: str, body: bytes) -> bytes:
    checkpoint = parse_checkpoint_text(parse_note(body).text)
    other = ed25519.Ed25519PrivateKey.generate()
    return sign_checkpoint(checkpoint, name=checkpoint.origin, private_key=other).encode()


def _status(code: int) -> Tamper:
    return lambda path, body: Response(b"{}", status=code)


@pytest.mark.parametrize(
    ("prefix", "tamper", "code", "message"),
    [
        ("tile/0/", _flip_last, 1, "cannot prove that size 5"),
        ("tile/entries/", _rewrite_entries(_swap), 1, "entries 0..4 of the log at"),
        (
            "tile/entries/",
            _rewrite_entries(lambda e: [*e[:3], b"not json", e[4]]),
            1,
            "are not in the tree its checkpoint of size 5 signs",
        ),
        ("checkpoint", _other_key, 1, "sent a checkpoint no trusted key signed"),
        ("checkpoint", lambda p, b: b"garbage\n", 3, "sent a malformed checkpoint"),
        ("tile/0/", lambda p, b: b + b"\0" * 9000, 3, "sent more than 160 bytes for tile/0/"),
        ("tile/entries/", lambda p, b: b[:-3], 3, "sent a malformed tile/entries/000.p/5"),
        ("tile/entries/", _status(500), 3, "tile/entries/000.p/5 answered HTTP 500"),
    ],
    ids=[
        "altered-hash-tile",
        "swapped-entries",
        "non-json-entry",
        "checkpoint-of-another-key",
        "malformed-checkpoint",
        "oversized-tile",
        "truncated-entry-bundle",
        "failing-tile",
    ],
)
def test_a_lying_front_end_is_refused(log, tmp_path, capsys, prefix, tamper, code, message) -> None:
    for index in range(3):
        _sign(log, tmp_path, "alice@example.com", f"{index}.txt")
    root, state = _trusted_root(log, tmp_path), tmp_path / "monitor.json"
    with front_end(log.url) as front:
        assert _monitor(front, root, state) == 0
        evidence = state.read_bytes()
        _sign(log, tmp_path, "alice@example.com", "3.txt")
        _sign(log, tmp_path, "mallory@example.com", "4.txt")
        capsys.readouterr()
        front.tamper[prefix] = tamper
        assert _monitor(front, root, state, "--identity", "alice@example.com") == code
    out, err = capsys.readouterr()
    assert message in err
    assert "Traceback" not in err
    assert err.startswith("error: ")
    assert out == ""
    assert state.read_bytes() == evidence
    if code == 1:
        assert f"hint: the last verified checkpoint is kept in {state}" in err


def test_a_replayed_older_checkpoint_is_a_rollback(log, tmp_path, capsys) -> None:
    """A mirror that serves a checkpoint the log really signed, but an older one."""
    _sign(log, tmp_path, "alice@example.com", "0.txt")
    root, state = _trusted_root(log, tmp_path), tmp_path / "monitor.json"
    old = requests.get(f"{log.url}/api/v2/checkpoint", timeout=10).content
    _sign(log, tmp_path, "alice@example.com", "1.txt")
    with front_end(log.url) as front:
        assert _monitor(front, root, state) == 0
        front.tamper["checkpoint"] = lambda path, body: old
        assert _monitor(front, root, state) == 1
    err = capsys.readouterr().err
    assert f"the log at {front.url}/api/v2 signed size 1 after signing size 2" in err
    assert json.loads(state.read_text())["treeSize"] == 2


def test_a_mirror_is_checked_against_the_logs_own_key(log, tmp_path, capsys) -> None:
    """--tiles-url reads anywhere; the trusted root decides which key signs for that origin."""
    for index in range(2):
        _sign(log, tmp_path, "alice@example.com", f"{index}.txt")
    root, state = _trusted_root(log, tmp_path), tmp_path / "monitor.json"
    with front_end(log.url) as front:
        assert _monitor(front, root, state, "--from-index", "0", "--identity-regexp", ".*") == 0
        assert {"checkpoint", "tile/entries/000.p/2"} <= set(front.served)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"Rekor v2 log {front.url}/api/v2 consistent at size 2, root ")
    assert lines[1:] == [
        f"entry {i}: signed by alice@example.com ({log.url}/oidc)" for i in range(2)
    ]
    # A trusted root without the log: refused before anything is read past the checkpoint.
    document = json.loads(root.read_text())
    document["tlogs"] = [
        t for t in document["tlogs"] if t["publicKey"]["keyDetails"] != "PKIX_ED25519"
    ]
    root.write_text(json.dumps(document))
    origin = log.url.split("://", 1)[1]
    with front_end(log.url) as front:
        assert _monitor(front, root, tmp_path / "other.json") == 2
    err = capsys.readouterr().err
    assert f"the trusted root lists no tile log of origin '{origin}'" in err
    assert not (tmp_path / "other.json").exists()


def test_entries_without_an_identity_are_reported_not_skipped(log, tmp_path, capsys) -> None:
    """A bare-key entry, and entries the logs committed but the monitor cannot read or does
    not know, are counted by reason and listed by index."""
    from keyless.tlog import rekor_api, rekor_v2_api

    _sign(log, tmp_path, "alice@example.com", "0.txt")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    request = {
        "hashedRekordRequestV002": {
            "digest": base64.b64encode(hashlib.sha256(b"bare").digest()).decode(),
            "signature": {
                "content": base64.b64encode(
                    key.sign(b"bare", padding.PKCS1v15(), hashes.SHA256())
                ).decode(),
                "verifier": {
                    "publicKey": {"rawBytes": base64.b64encode(spki).decode()},
                    "keyDetails": "PKIX_RSA_PKCS1V15_2048_SHA256",
                },
            },
        }
    }
    posted = requests.post(f"{log.url}/api/v2/log/entries", json=request, timeout=30)
    assert posted.status_code == 201
    # Committed by the logs themselves (bypassing their request checks): still entries of the
    # signed trees, which a monitor must not pass over in silence.
    log.app.extensions[rekor_v2_api.EXTENSION].log.append(b"not json")
    rekord = {"apiVersion": "0.0.1", "kind": "rekord", "spec": {}}
    log.app.extensions[rekor_api.EXTENSION].log.append(json.dumps(rekord).encode())
    scan = ["monitor", "--server", log.url, "--from-index", "0"]
    assert (
        main([*scan, "--state", str(tmp_path / "m.json"), "--identity", "alice@example.com"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "warning: 1 entry of kind rekord 0.0.1, which the monitor cannot judge: 0"
    assert lines[3:6] == [
        f"entry 0: signed by alice@example.com ({log.url}/oidc)",
        "not judged: 1 entry signed with a bare public key, no identity (hashedrekord 0.0.2): 1",
        "warning: 1 entry the monitor cannot read (entry is not valid JSON: Expecting value: "
        "line 1 column 1 (char 0)): 2",
    ]
    # The CT log: alice's certificate, issued for the signing.
    assert lines[6].startswith(f"CT log {log.url}/ct/v1 consistent at size 1, root ")
    assert lines[7:] == [f"entry 0: certificate issued to alice@example.com ({log.url}/oidc)"]
    assert main([*scan, "--state", str(tmp_path / "j.json"), "-o", "json"]) == 0
    v1, v2, ct = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert ct["unjudged"] == []
    assert v1["unjudged"] == [{"logIndex": 0, "reason": "unknown-kind", "detail": "rekord 0.0.1"}]
    assert v2["unjudged"] == [
        {"logIndex": 1, "reason": "public-key", "detail": "hashedrekord 0.0.2"},
        {
            "logIndex": 2,
            "reason": "unreadable",
            "detail": "entry is not valid JSON: Expecting value: line 1 column 1 (char 0)",
        },
    ]

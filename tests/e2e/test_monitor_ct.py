"""`keyless monitor` on a CA's CT log (issue 24 item 10): every certificate the CA issues is
logged there before anything is signed with it, so a certificate issued to a watched identity
is reported as the signature logs report a signer; the log is held to every tree head it
signed (a consistency proof between runs, the state kept in a file of its own), and a front
end that lies about the tree or its entries stops the run with exit 1 and the state kept."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from flask import Flask, Response, request

from keyless.cli.main import main
from tests.conftest import dev_server, serve_wsgi


@pytest.fixture
def log(tmp_path: Path):
    with dev_server(tmp_path / "state") as running:
        yield running


def _sign(server, tmp_path: Path, email: str, name: str) -> None:
    artifact = tmp_path / name
    artifact.write_text(f"{name} by {email}\n")
    token = server.email_token(email)
    assert main(["sign", "--server", server.url, "--identity-token", token, str(artifact)]) == 0


def _root_at(server, tmp_path: Path, ct_url: str) -> Path:
    """The server's trusted root with its CT log listed at `ct_url` (a front end)."""
    document = requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=10).json()
    for ctlog in document["ctlogs"]:
        ctlog["baseUrl"] = ct_url
    root = tmp_path / "root.json"
    root.write_text(json.dumps(document))
    return root


def _monitor(ct_url: str, root: Path, state: Path, *extra: str) -> int:
    argv = ["monitor", "--ct-url", ct_url, "--trusted-root", str(root), "--state", str(state)]
    return main([*argv, *extra])


@contextmanager
def _front_end(server, edit: dict[str, Callable[[dict], dict]]) -> Iterator[str]:
    """A front end to the server's CT log; `edit[endpoint]`, when set, rewrites its answers."""
    proxy = Flask("lying-ct")

    @proxy.route("/ct/v1/<endpoint>")
    def forward(endpoint: str) -> Response:
        upstream = requests.get(f"{server.url}/ct/v1/{endpoint}", params=request.args, timeout=10)
        body = upstream.content
        if upstream.status_code == 200 and endpoint in edit:
            body = json.dumps(edit[endpoint](json.loads(body))).encode()
        return Response(body, status=upstream.status_code, mimetype="application/json")

    with serve_wsgi(proxy) as url:
        yield url


def test_a_certificate_issued_to_a_watched_identity_is_reported(log, tmp_path, capsys) -> None:
    _sign(log, tmp_path, "alice@example.com", "0.txt")
    root, state = _root_at(log, tmp_path, log.url), tmp_path / "ct.json"
    watch = ["--identity", "alice@example.com"]
    assert _monitor(log.url, root, state, *watch) == 0
    captured = capsys.readouterr()
    assert f"first run of {log.url}/ct/v1: trusting the log's current checkpoint" in captured.err
    assert json.loads(state.read_text())["treeSize"] == 1

    _sign(log, tmp_path, "bob@example.com", "1.txt")
    _sign(log, tmp_path, "alice@example.com", "2.txt")
    assert _monitor(log.url, root, state, *watch, "--issuer", "https://other.example") == 4
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"CT log {log.url}/ct/v1 consistent at size 3 (was 1), root ")
    assert lines[1:] == [
        f"entry 2: certificate issued to alice@example.com ({log.url}/oidc): issuer not "
        "expected for this identity"
    ]
    kept = json.loads(state.read_text())
    assert (kept["logUrl"], kept["treeSize"], kept["nextIndex"]) == (f"{log.url}/ct/v1", 3, 3)
    # The state holds the signed tree head it verified, as evidence.
    sth = json.loads(kept["checkpoint"])
    assert sth["tree_size"] == 3 and sth["sha256_root_hash"] and sth["tree_head_signature"]

    assert _monitor(log.url, root, state, *watch, "--from-index", "0", "-o", "json") == 0
    [report] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert report["log"] == "ct" and report["previousTreeSize"] == 3
    assert [(f["logIndex"], f["identity"], f["kind"]) for f in report["findings"]] == [
        (0, "alice@example.com", "watched-identity"),
        (2, "alice@example.com", "watched-identity"),
    ]


def _stale(old: dict) -> Callable[[dict], dict]:
    return lambda _: old


def _garbled_proof(answer: dict) -> dict:
    answer["consistency"] = ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="] * len(
        answer["consistency"]
    )
    return answer


def _reordered(answer: dict) -> dict:
    answer["entries"].reverse()
    return answer


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("get-sth", "the CT log at {url} signed size 1 after signing size 2"),
        (
            "get-sth-consistency",
            "the CT log at {url} cannot prove that its tree head of size 4 (root {root}) "
            "extends its earlier tree (size 2, root {old_root})",
        ),
        ("get-entries", "entry 2 of the CT log at {url} is not in the tree its tree head"),
    ],
    ids=["stale-tree-head", "garbled-consistency-proof", "reordered-entries"],
)
def test_a_lying_front_end_is_caught_and_the_state_kept(
    log, tmp_path, capsys, endpoint, message
) -> None:
    import base64

    _sign(log, tmp_path, "alice@example.com", "0.txt")
    first_sth = requests.get(f"{log.url}/ct/v1/get-sth", timeout=10).json()
    _sign(log, tmp_path, "alice@example.com", "1.txt")
    state = tmp_path / "ct.json"
    edit: dict[str, Callable[[dict], dict]] = {}
    with _front_end(log, edit) as url:
        root = _root_at(log, tmp_path, url)
        assert _monitor(url, root, state) == 0
        evidence = state.read_bytes()
        for name in ("2.txt", "3.txt"):
            _sign(log, tmp_path, "mallory@example.com", name)
        edit[endpoint] = {
            "get-sth": _stale(first_sth),
            "get-sth-consistency": _garbled_proof,
            "get-entries": _reordered,
        }[endpoint]
        capsys.readouterr()
        assert _monitor(url, root, state, "--identity", "alice@example.com") == 1
    err = capsys.readouterr().err
    sth = requests.get(f"{log.url}/ct/v1/get-sth", timeout=10).json()
    expected = message.format(
        url=url,
        root=base64.b64decode(sth["sha256_root_hash"]).hex(),
        old_root=json.loads(evidence)["rootHash"],
    )
    assert f"error: log inconsistency: {expected}" in err
    assert f"hint: the last verified checkpoint is kept in {state}" in err
    assert state.read_bytes() == evidence


def test_a_precertificate_swapped_by_a_front_end_is_caught(log, tmp_path, capsys) -> None:
    """extra_data is outside the leaf: swapping alice's and bob's precertificates passes the
    tree's proofs, and would report bob's certificate as alice's; each leaf commits to its own
    precertificate, so the run stops (exit 1) and reports nothing."""

    def swap(answer: dict) -> dict:
        entries = answer["entries"]
        entries[0]["extra_data"], entries[1]["extra_data"] = (
            entries[1]["extra_data"],
            entries[0]["extra_data"],
        )
        return answer

    _sign(log, tmp_path, "alice@example.com", "0.txt")
    _sign(log, tmp_path, "bob@example.com", "1.txt")
    with _front_end(log, {"get-entries": swap}) as url:
        root = _root_at(log, tmp_path, url)
        code = _monitor(url, root, tmp_path / "ct.json", "--from-index", "0", "--identity", "x")
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert (
        f"error: log inconsistency: entry 0 of the CT log at {url}: its precertificate (in "
        "extra_data, which no hash covers) is not the one its leaf commits to" in captured.err
    )
    assert not (tmp_path / "ct.json").exists()


def test_ct_refusals(log, tmp_path, capsys) -> None:
    state = tmp_path / "ct.json"
    document = requests.get(f"{log.url}/api/v1/trust/trusted_root.json", timeout=10).json()
    document["ctlogs"] = []
    root = tmp_path / "no-ct.json"
    root.write_text(json.dumps(document))
    assert _monitor(log.url, root, state) == 2
    assert f"error: the trusted root lists no CT log at {log.url}" in capsys.readouterr().err
    assert _monitor("http://127.0.0.1:9", _root_at(log, tmp_path, "http://127.0.0.1:9"), state) == 3
    assert "cannot reach the log at http://127.0.0.1:9/ct/v1/get-sth" in capsys.readouterr().err
    assert not state.exists()

"""`keyless monitor` against real servers: it follows a growing log, reports watched identities,
and catches a log that forks (a state directory restored from an older copy and served again
under the same origin with the same key)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli.main import main
from tests.conftest import dev_server


def _sign(server, tmp_path: Path, email: str, name: str) -> None:
    artifact = tmp_path / name
    artifact.write_bytes(f"{name} by {email}\n".encode())
    token = server.email_token(email)
    # The monitor and the audit join read the Rekor v1 log; keyless sign defaults to v2.
    sign = ["sign", "--server", server.url, "--rekor-version", "1"]
    assert main([*sign, "--identity-token", token, str(artifact)]) == 0


def _monitor(server, state: Path, *extra: str) -> int:
    return main(["monitor", "--server", server.url, "--state", str(state), *extra])


def _tree_size(state: Path) -> int:
    return json.loads(state.read_text())["treeSize"]


@pytest.fixture
def log(tmp_path: Path):
    with dev_server(tmp_path / "state") as running:
        yield running


def test_first_run_trusts_the_checkpoint_then_reports_new_entries(log, tmp_path, capsys) -> None:
    _sign(log, tmp_path, "alice@example.com", "before.txt")
    state = tmp_path / "monitor.json"
    assert _monitor(log, state, "--identity", "alice@example.com") == 0
    out, err = capsys.readouterr()
    assert "first run: trusting the log's current checkpoint" in err
    assert out.splitlines() == [f"log consistent at size 1, root {_root(state)}"]

    _sign(log, tmp_path, "alice@example.com", "a.txt")
    _sign(log, tmp_path, "bob@example.com", "b.txt")
    assert _monitor(log, state, "--identity", "alice@example.com") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"log consistent at size 3 (was 1), root {_root(state)}",
        f"entry 1: signed by alice@example.com ({log.url}/oidc)",
    ]
    assert json.loads(state.read_text())["nextIndex"] == 3

    # Nothing new: nothing reported, the state stays.
    assert _monitor(log, state, "--identity", "alice@example.com") == 0
    assert capsys.readouterr().out.splitlines() == [
        f"log consistent at size 3 (was 3), root {_root(state)}"
    ]


def test_history_scan_regexp_and_unexpected_issuer(log, tmp_path, capsys) -> None:
    for index, email in enumerate(["alice@example.com", "bob@example.com", "eve@example.org"]):
        _sign(log, tmp_path, email, f"{index}.txt")
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
    report = json.loads(capsys.readouterr().out)
    assert report["treeSize"] == 3 and report["scanned"] == {"from": 0, "to": 3}
    assert [(f["logIndex"], f["identity"], f["kind"]) for f in report["findings"]] == [
        (0, "alice@example.com", "unexpected-issuer"),
        (1, "bob@example.com", "unexpected-issuer"),
    ]
    assert all(f["issuer"] == f"{log.url}/oidc" for f in report["findings"])


def test_max_entries_resumes_where_it_stopped(log, tmp_path, capsys) -> None:
    for index in range(3):
        _sign(log, tmp_path, "alice@example.com", f"{index}.txt")
    state = tmp_path / "monitor.json"
    watch = ["--identity", "alice@example.com", "--max-entries", "2"]
    assert _monitor(log, state, "--from-index", "0", *watch) == 0
    first = capsys.readouterr()
    assert "read entries 0..1 of 3; the next run continues" in first.err
    assert _monitor(log, state, *watch) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        f"entry 2: signed by alice@example.com ({log.url}/oidc)"
    ]


def test_a_forked_log_is_caught(tmp_path, capsys) -> None:
    """The operator (or an attacker holding the key) restores an older state directory and
    serves it again at the same origin: the new history contradicts what the monitor saw."""
    state_dir, snapshot = tmp_path / "state", tmp_path / "snapshot"
    monitor_state = tmp_path / "monitor.json"
    with dev_server(state_dir) as first:
        port = int(first.url.rsplit(":", 1)[1])
        _sign(first, tmp_path, "alice@example.com", "0.txt")
        shutil.copytree(state_dir, snapshot)
        _sign(first, tmp_path, "alice@example.com", "1.txt")
        _sign(first, tmp_path, "alice@example.com", "2.txt")
        assert _monitor(first, monitor_state) == 0
    capsys.readouterr()
    assert _tree_size(monitor_state) == 3
    evidence = monitor_state.read_bytes()

    with dev_server(snapshot, port=port) as forked:
        assert forked.url == first.url
        # Behind what the monitor saw: a rollback.
        assert _monitor(forked, monitor_state) == 1
        err = capsys.readouterr().err
        assert f"the log at {forked.url} signed size 1 after signing size 3" in err
        assert f"the last verified checkpoint is kept in {monitor_state}" in err
        # Grown past it with other entries: a fork, which no consistency proof can hide.
        for index in range(3):
            _sign(forked, tmp_path, "mallory@example.com", f"m{index}.txt")
        assert _monitor(forked, monitor_state) == 1
        err = capsys.readouterr().err
        assert f"cannot prove that size 4 (root {_root_hex(forked)}) extends size 3" in err
        assert "it signed two histories (a fork)" in err
    assert monitor_state.read_bytes() == evidence


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
    """A log front end that swaps an entry's body for another one: the inclusion proof no
    longer holds, so the monitor refuses to report anything from that log."""
    import requests
    from flask import Flask, Response, request

    from tests.conftest import serve_wsgi

    _sign(log, tmp_path, "alice@example.com", "0.txt")
    _sign(log, tmp_path, "mallory@example.com", "1.txt")
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

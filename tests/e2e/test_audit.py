"""`keyless audit` against a real server: what the CA issued for an identity or issuer, read
from its CT log and checked against the signed tree head, with the signatures made under each
certificate; and a CT front end that reorders entries is caught."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from flask import Flask, Response, request

from cli.main import main
from tests.conftest import dev_server, serve_wsgi


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A fresh server where alice signed twice, bob once and a GitHub workflow once."""
    tmp = tmp_path_factory.mktemp("audit")
    with pytest.MonkeyPatch.context() as patch, dev_server(tmp / "state") as server:
        # Module scope runs before the per-test XDG directories: give signing its own, so no
        # trust kept for an earlier server on the same port is read.
        patch.setenv("XDG_DATA_HOME", str(tmp / "data"))
        patch.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
        tokens = [
            server.email_token("alice@example.com"),
            server.email_token("bob@example.com"),
            server.email_token("alice@example.com"),
            server.github_token(),
        ]
        for index, token in enumerate(tokens):
            artifact = tmp / f"{index}.txt"
            artifact.write_text(f"artifact {index}\n")
            assert (
                main(
                    [
                        "sign",
                        "--server",
                        server.url,
                        "--rekor-version",
                        "1",
                        "--identity-token",
                        token,
                        str(artifact),
                    ]
                )
                == 0
            )
        yield server


def _audit(server, *args: str) -> int:
    return main(["audit", "--server", server.url, *args])


def test_certificates_for_an_identity_with_their_signatures(signed, capsys) -> None:
    assert _audit(signed, "--identity", "alice@example.com", "-o", "json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ctTreeSize"] == 4 and report["rootVerified"] is True
    certificates = report["certificates"]
    assert [c["ctIndex"] for c in certificates] == [0, 2]
    for cert in certificates:
        assert cert["identities"] == ["alice@example.com"]
        assert cert["issuer"] == f"{signed.url}/oidc"
        assert cert["keyAlgorithm"] == "ECDSA secp256r1"
        (entry,) = cert["signatureLogEntries"]
        assert entry["kind"] == "hashedrekord"
    # Each certificate names its own signature: the ephemeral key ties one to the other.
    assert [c["signatureLogEntries"][0]["logIndex"] for c in certificates] == [0, 2]


def test_by_issuer_and_time_in_text(signed, capsys) -> None:
    github = signed.issuer.github_issuer_url
    assert _audit(signed, "--issuer", github) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2
    assert "CT 3 serial " in lines[0]
    assert "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main" in lines[0]
    assert f"({github}), ECDSA secp256r1" in lines[0]
    assert lines[1].startswith("  signature log entry 3 (hashedrekord) ")
    assert "1 certificates in CT entries 0..3 of 4 (every entry checked" in err

    assert _audit(signed, "--identity-regexp", ".*@example\\.com", "--since", "2999-01-01") == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "0 certificates in CT entries 0..3 of 4" in err


def test_partial_read_says_it_is_not_checked(signed, capsys) -> None:
    assert _audit(signed, "--identity", "bob@example.com", "--from-index", "1") == 0
    out, err = capsys.readouterr()
    assert "bob@example.com" in out
    assert "partial read: not checked against the signed tree head" in err


def test_a_reordering_ct_front_end_is_caught(signed, tmp_path: Path, capsys) -> None:
    proxy = Flask("reordering-ct")

    @proxy.route("/<path:path>")
    def forward(path: str) -> Response:
        upstream = requests.get(f"{signed.url}/{path}", params=request.args, timeout=10)
        body = upstream.content
        if path == "ct/v1/get-entries":
            document = json.loads(body)
            document["entries"].reverse()
            body = json.dumps(document).encode()
        return Response(body, status=upstream.status_code, mimetype="application/json")

    root = requests.get(f"{signed.url}/api/v1/trust/trusted_root.json", timeout=10).json()
    with serve_wsgi(proxy) as proxy_url:
        for ctlog in root["ctlogs"]:
            ctlog["baseUrl"] = proxy_url
        trusted_root = tmp_path / "root.json"
        trusted_root.write_text(json.dumps(root))
        code = main(
            [
                "audit",
                "--ct-url",
                proxy_url,
                "--trusted-root",
                str(trusted_root),
                "--identity",
                "alice@example.com",
            ]
        )
    assert code == 1
    assert "returned 4 entries whose Merkle root is not the root of its signed tree head" in (
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
    root = requests.get(f"{signed.url}/api/v1/trust/trusted_root.json", timeout=10).json()
    for ctlog in root["ctlogs"]:
        ctlog["baseUrl"] = "http://127.0.0.1:9"
    trusted_root = tmp_path / "root.json"
    trusted_root.write_text(json.dumps(root))
    code = main(
        [
            "audit",
            "--ct-url",
            "http://127.0.0.1:9",
            "--trusted-root",
            str(trusted_root),
            "--identity",
            "alice@example.com",
        ]
    )
    assert code == 3
    assert "cannot reach the log at http://127.0.0.1:9/ct/v1/get-sth" in capsys.readouterr().err


def test_an_entry_that_cannot_be_read_is_reported(signed, tmp_path: Path, capsys) -> None:
    """extra_data is outside the Merkle leaf, so a front end can garble it without breaking the
    root check: the entry must then be named, not silently skipped."""
    proxy = Flask("garbling-ct")

    @proxy.route("/<path:path>")
    def forward(path: str) -> Response:
        upstream = requests.get(f"{signed.url}/{path}", params=request.args, timeout=10)
        body = upstream.content
        if path == "ct/v1/get-entries":
            document = json.loads(body)
            document["entries"][1]["extra_data"] = "AAAA"
            body = json.dumps(document).encode()
        return Response(body, status=upstream.status_code, mimetype="application/json")

    root = requests.get(f"{signed.url}/api/v1/trust/trusted_root.json", timeout=10).json()
    with serve_wsgi(proxy) as proxy_url:
        for ctlog in root["ctlogs"]:
            ctlog["baseUrl"] = proxy_url
        trusted_root = tmp_path / "root.json"
        trusted_root.write_text(json.dumps(root))
        code = main(
            [
                "audit",
                "--ct-url",
                proxy_url,
                "--trusted-root",
                str(trusted_root),
                "--issuer",
                f"{signed.url}/oidc",
                "-o",
                "json",
            ]
        )
    assert code == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["rootVerified"] is True
    assert report["unreadable"] == [1]
    assert [c["ctIndex"] for c in report["certificates"]] == [0, 2]
    assert "warning: 1 CT entries hold no certificate keyless can read (indexes 1)" in captured.err

"""`--server` trust follows the server: a rotation inside one deployment is picked up through the
server's TUF repository, a new deployment on the same URL is refused before anything is signed,
and a bundle that fails its post-signing check is kept on disk, never lost."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from werkzeug.serving import make_server

from keyless.ca import CAConfig
from keyless.cli.main import main
from tests.conftest import DevServer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _server_on(port: int, state: Path, **overrides: Any) -> Iterator[DevServer]:
    """A dev-mode server on a fixed port, so a restart keeps its URL."""
    from keyless.server.app import create_app
    from keyless.server.config import dev_config

    config = replace(dev_config(port=port, state_dir=state), **overrides)
    app = create_app(config)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield DevServer(f"http://127.0.0.1:{port}", app, config)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _sign(server: DevServer, artifact: Path, *extra: str) -> int:
    token = server.email_token("alice@example.com")
    return main(["sign", "--server", server.url, "--identity-token", token, *extra, str(artifact)])


def _verify(server: DevServer, artifact: Path) -> int:
    return main(
        [
            "verify",
            "--server",
            server.url,
            "--certificate-identity",
            "alice@example.com",
            "--certificate-oidc-issuer",
            f"{server.url}/oidc",
            str(artifact),
        ]
    )


def _tree_size(server: DevServer) -> int:
    """Entries in the server's v1 and v2 logs together (keyless sign defaults to v2)."""
    v1 = requests.get(f"{server.url}/api/v1/log", timeout=10).json()["treeSize"]
    v2 = requests.get(f"{server.url}/api/v2/checkpoint", timeout=10).text.splitlines()[1]
    return int(v1) + int(v2)


def _trust_dir(url: str) -> Path:
    import os

    return Path(os.environ["XDG_DATA_HOME"]) / "keyless" / "servers" / quote(url, safe="")


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "release.tar.gz"
    path.write_bytes(b"release contents\n")
    return path


def test_a_new_ca_in_the_same_deployment_is_picked_up(tmp_path, artifact, capsys) -> None:
    port, state = _free_port(), tmp_path / "state"
    with _server_on(port, state) as before:
        assert _sign(before, artifact) == 0
        old_root = requests.get(f"{before.url}/api/v1/trust/trusted_root.json", timeout=10)
    # The operator moves the CA to new key material, listing the old chain under
    # retired-trust as a rotation does (a CA swapped without it is refused at start-up,
    # tests/e2e/test_ca_anchor.py); the TUF keys stay, so clients follow.
    from datetime import UTC, datetime, timedelta

    from cryptography import x509

    from keyless.server.config import RetiredTrust

    old = tuple(x509.load_pem_x509_certificates((state / "ca" / "ca-chain.pem").read_bytes()))
    retired = RetiredTrust(
        kind="ca-chain",
        url=f"http://127.0.0.1:{port}",
        start=old[0].not_valid_before_utc,
        end=datetime.now(UTC) + timedelta(days=1),
        certificates=old,
    )
    new_ca = CAConfig(directory=tmp_path / "new-ca")
    with _server_on(port, state, ca=new_ca, retired=(retired,)) as after:
        new_root = requests.get(f"{after.url}/api/v1/trust/trusted_root.json", timeout=10)
        assert (
            new_root.json()["certificateAuthorities"] != old_root.json()["certificateAuthorities"]
        )
        capsys.readouterr()
        assert _sign(after, artifact) == 0, capsys.readouterr().err
        assert _verify(after, artifact) == 0, capsys.readouterr().err
    target = next((_trust_dir(after.url) / "targets").glob("*trusted_root.json"))
    assert target.read_bytes() == new_root.content


def test_a_new_deployment_on_the_same_url_is_refused_before_signing(
    tmp_path, artifact, capsys
) -> None:
    port = _free_port()
    with _server_on(port, tmp_path / "first") as first:
        assert _sign(first, artifact) == 0
    bundle = Path(f"{artifact}.sigstore.json")
    bundle.unlink()
    with _server_on(port, tmp_path / "second") as second:
        capsys.readouterr()
        assert _sign(second, artifact) == 1
        err = capsys.readouterr().err.splitlines()
        trust = _trust_dir(second.url)
        assert err == [
            f"error: the TUF repository of {second.url} is not signed by the keys trusted "
            f"since first use (in {trust}): the server was redeployed with new keys, or "
            "something else answers at its URL",
            f"hint: if its operator confirms a new deployment, run again with --refresh-trust "
            f"to trust it from now on (or delete {trust})",
        ]
        assert _tree_size(second) == 0
        assert not bundle.exists()

        assert _sign(second, artifact, "--refresh-trust") == 0
        assert _tree_size(second) == 1
        assert _verify(second, artifact) == 0


def test_verify_refuses_a_new_deployment_and_takes_the_same_way_out(
    tmp_path, artifact, capsys
) -> None:
    port = _free_port()
    with _server_on(port, tmp_path / "second") as second:
        assert _sign(second, artifact, "--refresh-trust") == 0
    with _server_on(port, tmp_path / "first") as first:
        capsys.readouterr()
        assert _verify(first, artifact) == 1
        assert "is not signed by the keys trusted since first use" in capsys.readouterr().err
        verified = main(
            [
                "verify",
                "--server",
                first.url,
                "--refresh-trust",
                "--certificate-identity",
                "alice@example.com",
                "--certificate-oidc-issuer",
                f"{first.url}/oidc",
                str(artifact),
            ]
        )
        # Trusting the first deployment again: the bundle from the second no longer verifies.
        assert verified == 1
        assert "verification failed" in capsys.readouterr().err


def test_refresh_trust_needs_a_server(tmp_path, artifact, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(
            ["sign", "--signing-config", str(tmp_path / "c.json"), "--refresh-trust", str(artifact)]
        )
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "keyless sign: error: --refresh-trust applies to --server"
    )


def test_a_server_without_tuf_is_named(tmp_path, artifact, capsys) -> None:
    from flask import Flask

    from tests.conftest import serve_wsgi

    with serve_wsgi(Flask("no-tuf")) as url:
        code = main(["sign", "--server", url, "--identity-token", "x.y.z", str(artifact)])
    assert code == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        f"error: cannot get the trusted root of {url}: it serves no TUF repository "
        f"({url}/tuf/1.root.json answered HTTP 404)"
    )


def test_a_bundle_that_fails_its_post_signing_check_is_kept(tmp_path, artifact, capsys) -> None:
    """Signed against one deployment while trusting another: the certificate and the log entry
    exist, so the bundle must be saved where the user can find it, not thrown away."""
    with (
        _server_on(_free_port(), tmp_path / "a") as a,
        _server_on(_free_port(), tmp_path / "b") as b,
    ):
        root_a = tmp_path / "root-a.json"
        config_b = tmp_path / "signing-config-b.json"
        assert main(["trust", "trusted-root", "--server", a.url, "-o", str(root_a)]) == 0
        assert main(["trust", "signing-config", "--server", b.url, "-o", str(config_b)]) == 0
        bundle = tmp_path / "out.sigstore.json"
        capsys.readouterr()
        sign = [
            "sign",
            "--signing-config",
            str(config_b),
            "--trusted-root",
            str(root_a),
            "--identity-token",
            b.email_token("alice@example.com"),
            "--bundle",
            str(bundle),
            str(artifact),
        ]
        code = main(sign)
        assert code == 1
        err = capsys.readouterr().err.splitlines()
        kept = tmp_path / "out.sigstore.json.unverified"
        assert err[0].startswith(
            "error: signed and logged (log index 0), but the new bundle does not verify "
            "against the trusted root: verification failed (log-entry): log ID "
        )
        assert err[0].endswith(f"; the bundle is saved in {kept}")
        assert err[1] == (
            "hint: check that the trusted root belongs to the deployment that signed; "
            "the saved bundle verifies once the right root is trusted"
        )
        assert not bundle.exists()
        assert _tree_size(b) == 1
        saved = json.loads(kept.read_text())
        assert saved["verificationMaterial"]["tlogEntries"][0]["logIndex"] == "0"
        # Recoverable: with the right root, the saved bundle verifies as it is.
        root_b = tmp_path / "root-b.json"
        assert main(["trust", "trusted-root", "--server", b.url, "-o", str(root_b)]) == 0
        verified = main(
            [
                "verify",
                "--trusted-root",
                str(root_b),
                "--bundle",
                str(kept),
                "--certificate-identity",
                "alice@example.com",
                "--certificate-oidc-issuer",
                f"{b.url}/oidc",
                str(artifact),
            ]
        )
        assert verified == 0, capsys.readouterr().err
        # A second failure keeps the first bundle and saves the new one beside it.
        capsys.readouterr()
        assert main(sign) == 1
        assert (
            capsys.readouterr().err.splitlines()[0].endswith(f"; the bundle is saved in {kept}.1")
        )
        assert json.loads(kept.read_text()) == saved
        second = json.loads(Path(f"{kept}.1").read_text())
        assert second["verificationMaterial"]["tlogEntries"][0]["logIndex"] == "1"


def test_verify_works_offline_until_the_tuf_timestamp_expires(
    tmp_path, artifact, capsys, caplog
) -> None:
    with _server_on(_free_port(), tmp_path / "state") as running:
        assert _sign(running, artifact) == 0
        assert _verify(running, artifact) == 0
    # The server is gone: the trusted root of the last refresh still verifies ...
    caplog.clear()
    caplog.set_level(logging.INFO, logger="keyless.client.trust")
    assert _verify(running, artifact) == 0
    assert f"cannot reach {running.url} (" in caplog.text
    assert "using the trusted root of its last refresh" in caplog.text
    capsys.readouterr()
    # ... but only while that refresh's timestamp metadata is valid.
    timestamp = _trust_dir(running.url) / "timestamp.json"
    document = json.loads(timestamp.read_text())
    document["signed"]["expires"] = "2020-01-01T00:00:00Z"
    timestamp.write_text(json.dumps(document))
    assert _verify(running, artifact) == 3  # could not decide: the server is unreachable
    assert capsys.readouterr().err.startswith(
        f"error: cannot refresh the trusted root of {running.url} from its TUF repository: "
    )


@contextmanager
def _tuf_only_server(tmp_path: Path, targets: dict[str, bytes]) -> Iterator[str]:
    """A server with a valid TUF repository holding `targets`, and nothing else."""
    from datetime import UTC, datetime

    from cryptography.hazmat.primitives.asymmetric import ec
    from flask import Flask
    from securesystemslib.signer import CryptoSigner

    from keyless.server import tuf_api
    from keyless.server.tuf_repository import RoleKeys, TUFRepository
    from tests.conftest import serve_wsgi

    def signer() -> CryptoSigner:
        return CryptoSigner(ec.generate_private_key(ec.SECP256R1()))

    repository = TUFRepository(tmp_path / "tuf", RoleKeys(signer(), signer(), signer(), signer()))
    repository.publish(targets, now=datetime.now(UTC))
    app = Flask("tuf-only")
    tuf_api.init_app(app, repository)
    with serve_wsgi(app) as url:
        yield url


def test_a_malformed_trusted_root_in_a_valid_repository_is_refused(
    tmp_path, artifact, capsys
) -> None:
    targets = {"trusted_root.json": b'{"mediaType": "nope"}', "signing_config.v0.2.json": b"{}"}
    with _tuf_only_server(tmp_path, targets) as url:
        code = main(["sign", "--server", url, "--identity-token", "x.y.z", str(artifact)])
    assert code == 1
    assert capsys.readouterr().err.startswith(
        "error: verification failed (trust-root): malformed trusted root: "
    )


def test_a_repository_without_a_signing_config_is_refused_by_sign(
    server, tmp_path, artifact, capsys
) -> None:
    root = requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=10).content
    with _tuf_only_server(tmp_path, {"trusted_root.json": root}) as url:
        code = main(["sign", "--server", url, "--identity-token", "x.y.z", str(artifact)])
        assert capsys.readouterr().err.splitlines() == [
            f"error: the TUF repository of {url} has no signing_config.v0.2.json"
        ]
    assert code == 1


def test_an_image_bundle_that_fails_its_post_signing_check_is_kept(
    tmp_path, registry, pusher, capsys
) -> None:
    """The image case: nothing reaches the registry, and with no --bundle the logged bundle is
    saved in the data directory."""
    import os

    image = pusher.push_image("refresh/unverified", "1.0", seed="unverified image")
    with (
        _server_on(_free_port(), tmp_path / "a") as a,
        _server_on(_free_port(), tmp_path / "b") as b,
    ):
        root_a = tmp_path / "root-a.json"
        config_b = tmp_path / "signing-config-b.json"
        assert main(["trust", "trusted-root", "--server", a.url, "-o", str(root_a)]) == 0
        assert main(["trust", "signing-config", "--server", b.url, "-o", str(config_b)]) == 0
        capsys.readouterr()
        code = main(
            [
                "sign",
                "--signing-config",
                str(config_b),
                "--trusted-root",
                str(root_a),
                "--identity-token",
                b.email_token("alice@example.com"),
                "--allow-insecure-registry",
                f"{registry.host}/refresh/unverified@{image.digest}",
            ]
        )
        assert code == 1
        err = capsys.readouterr().err.splitlines()
        kept_dir = Path(os.environ["XDG_DATA_HOME"]) / "keyless" / "unverified-bundles"
        (kept,) = kept_dir.iterdir()
        assert kept.name.endswith("-log-0.sigstore.json")
        assert err[0].startswith("error: signed and logged (log index 0), but the new bundle")
        assert err[0].endswith(f"; the bundle is saved in {kept}")
        saved = json.loads(kept.read_text())
        assert "dsseEnvelope" in saved
        assert _tree_size(b) == 1
    # Nothing was stored in the registry: no fallback index, no legacy tag.
    tags = requests.get(f"{registry.url}/v2/refresh/unverified/tags/list", timeout=10).json()
    assert tags["tags"] == ["1.0"]


@dataclass
class _Front:
    """A front end before a keyless server that can rewrite the answers of chosen paths."""

    url: str
    tamper: dict[str, Any]  # path prefix -> function(body bytes) -> body bytes
    served: list[str]


@contextmanager
def _front_end(upstream: str) -> Iterator[_Front]:
    from flask import Flask, Response, request

    from tests.conftest import serve_wsgi

    app = Flask("tampering-front-end")
    front = _Front("", {}, [])

    @app.get("/<path:path>")
    def forward(path: str) -> Response:
        answer = requests.get(f"{upstream}/{path}", params=request.args, timeout=10)
        front.served.append(path)
        body = answer.content
        for prefix, tamper in front.tamper.items():
            if answer.status_code == 200 and path.startswith(prefix):
                body = tamper(body)
        return Response(
            body, status=answer.status_code, content_type=answer.headers.get("Content-Type")
        )

    with serve_wsgi(app) as url:
        front.url = url
        yield front


def _certificates_issued() -> float:
    """Certificates the CA (in this process) has issued so far."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("fulcio_new_certs_total") or 0.0


def _logs(server) -> tuple[int, int]:
    v1 = requests.get(f"{server.url}/api/v1/log", timeout=10).json()["treeSize"]
    v2 = requests.get(f"{server.url}/api/v2/checkpoint", timeout=10).text.splitlines()[1]
    return int(v1), int(v2)


def _elsewhere(body: bytes) -> bytes:
    """The signing config with the CA, every log and the TSA moved to a dead port."""
    config = json.loads(body)
    for field in ("caUrls", "rekorTlogUrls"):
        for service in config[field]:
            service["url"] = "http://127.0.0.1:9"
    for service in config["tsaUrls"]:
        service["url"] = "http://127.0.0.1:9/api/v1/timestamp"
    return json.dumps(config).encode()


def _attacker_tsa(body: bytes) -> bytes:
    """The same length, one TSA URL changed: only the hash can tell."""
    config = json.loads(body)
    url = config["tsaUrls"][0]["url"]
    changed = body.replace(url.encode(), url.replace("127.0.0.1", "127.0.0.2").encode())
    assert len(changed) == len(body) and changed != body
    return changed


def _command(kind: str, url: str, token: str, artifact: Path, tmp_path: Path) -> list[str]:
    if kind == "sign":
        return ["sign", "--server", url, "--identity-token", token, str(artifact)]
    predicate = tmp_path / "predicate.json"
    predicate.write_text('{"purpose": "test"}')
    argv = ["attest", "--server", url, "--identity-token", token]
    return [*argv, "--predicate", str(predicate), str(artifact)]


@pytest.mark.parametrize("kind", ["sign", "attest"])
def test_an_altered_plain_signing_config_makes_no_difference(
    server, tmp_path, artifact, capsys, kind
) -> None:
    """The plain endpoint is not read: the signing config comes from the TUF repository."""
    with _front_end(server.url) as front:
        front.tamper["api/v1/trust/signing_config.json"] = _elsewhere
        before = _logs(server)
        token = server.email_token("alice@example.com")
        code = main(_command(kind, front.url, token, artifact, tmp_path))
        assert code == 0, capsys.readouterr().err
    assert _logs(server) == (before[0], before[1] + 1)
    assert "api/v1/trust/signing_config.json" not in front.served
    # One TUF refresh for the whole command: one timestamp, one trusted root, one config.
    assert front.served.count("tuf/timestamp.json") == 1
    assert [p for p in front.served if p.endswith(".signing_config.v0.2.json")] != []
    assert len([p for p in front.served if p.endswith(".trusted_root.json")]) == 1


@pytest.mark.parametrize("kind", ["sign", "attest"])
@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        (_attacker_tsa, "Observed hash "),
        (_elsewhere, "Observed length "),
        (lambda body: body + b" " * 4096, "Downloaded "),  # longer than signed: cut off
    ],
)
def test_an_altered_tuf_signing_config_is_refused_before_anything_happens(
    server, tmp_path, artifact, capsys, kind, tamper, why
) -> None:
    with _front_end(server.url) as front:
        front.tamper["tuf/targets/"] = lambda body: (
            tamper(body) if b"rekorTlogUrls" in body else body
        )
        before, issued = _logs(server), _certificates_issued()
        token = server.email_token("alice@example.com")
        assert main(_command(kind, front.url, token, artifact, tmp_path)) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(
        f"error: the signing_config.v0.2.json served by the TUF repository of {front.url} does "
        f"not match its signed metadata ({why}"
    )
    assert err[0].endswith("): refused")
    assert _certificates_issued() == issued
    assert _logs(server) == before
    assert not list(tmp_path.glob("*.sigstore.json")) and not list(tmp_path.glob("*.jsonl"))


@pytest.mark.parametrize("document", ["signing-config", "client-trust-config"])
def test_keyless_trust_saves_the_tuf_targets_not_the_plain_endpoints(
    server, tmp_path, capsys, document
) -> None:
    """What `keyless trust` saves for other clients is what `--server` commands use: the TUF
    targets. An altered plain endpoint changes nothing; an altered target is refused."""
    with _front_end(server.url) as front:
        front.tamper["api/v1/trust/"] = _elsewhere
        saved = tmp_path / f"{document}.json"
        assert main(["trust", document, "--server", front.url, "-o", str(saved)]) == 0
        assert not [p for p in front.served if p.startswith("api/v1/trust/")]
        config = json.loads(saved.read_text())
        config = config.get("signingConfig", config)
        assert config["caUrls"][0]["url"] == server.url
        front.tamper["tuf/targets/"] = lambda body: (
            _attacker_tsa(body) if b"rekorTlogUrls" in body else body
        )
        saved.unlink()
        capsys.readouterr()
        # The kept metadata is fresh: a refresh that must download the target again.
        assert (
            main(["trust", document, "--server", front.url, "-o", str(saved), "--refresh-trust"])
            == 1
        )
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(
        f"error: the signing_config.v0.2.json served by the TUF repository of {front.url} does "
        "not match its signed metadata (Observed hash "
    )
    assert not saved.exists()

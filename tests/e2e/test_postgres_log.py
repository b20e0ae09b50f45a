"""Two keyless server instances sharing one state (keys) and one PostgreSQL log, as a deployment
with several instances behind a load balancer runs them."""

from __future__ import annotations

import json
from pathlib import Path

import requests

from keyless.cli.main import main
from keyless.server.config import load_server_config
from tests.conftest import dev_server


def _uri(conninfo: str) -> str:
    """The postgresql:// form of the fixture's libpq conninfo (a unix-socket directory)."""
    fields = dict(part.split("=", 1) for part in conninfo.split())
    return f"postgresql://{fields['user']}@/{fields['dbname']}?host={fields['host']}"


def test_two_instances_share_one_postgres_log(postgres, tmp_path: Path, capsys) -> None:
    config = tmp_path / "server.yaml"
    config.write_text(f"dev-issuer: {{enabled: true}}\nlog:\n  database: '{_uri(postgres)}'\n")
    database = load_server_config(config).log_database
    assert database == _uri(postgres)
    state = tmp_path / "shared-state"
    first_artifact, second_artifact = tmp_path / "one.txt", tmp_path / "two.txt"
    first_artifact.write_text("first\n")
    second_artifact.write_text("second\n")
    # Instances behind one load balancer share its origin: it names the log's checkpoints and the
    # development issuer, so both instances are configured with it.
    with (
        dev_server(state, log_database=database) as one,
        dev_server(state, log_database=database, public_url=one.url) as two,
    ):
        for server, artifact in ((one, first_artifact), (two, second_artifact)):
            token = server.email_token("alice@example.com")
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
        first = json.loads(Path(f"{first_artifact}.sigstore.json").read_text())
        second = json.loads(Path(f"{second_artifact}.sigstore.json").read_text())
        indexes = [
            int(b["verificationMaterial"]["tlogEntries"][0]["logIndex"]) for b in (first, second)
        ]
        assert indexes == [indexes[0], indexes[0] + 1]  # one tree, whichever instance appended
        # Each instance serves the other's entry, with a proof against the shared tree.
        entry = requests.get(
            f"{two.url}/api/v1/log/entries", params={"logIndex": indexes[0]}, timeout=5
        )
        assert entry.status_code == 200
        size = requests.get(f"{one.url}/api/v1/log", timeout=5).json()["treeSize"]
        assert size == indexes[1] + 1
        for server, artifact in ((two, first_artifact), (one, second_artifact)):
            assert (
                main(
                    [
                        "verify",
                        "--server",
                        server.url,
                        "--bundle",
                        f"{artifact}.sigstore.json",
                        "--certificate-identity",
                        "alice@example.com",
                        "--certificate-oidc-issuer",
                        f"{one.url}/oidc",
                        str(artifact),
                    ]
                )
                == 0
            )


def test_a_plain_database_path_is_sqlite_relative_to_the_config(tmp_path: Path) -> None:
    config = tmp_path / "server.yaml"
    config.write_text("dev-issuer: {enabled: true}\nlog:\n  database: 'sqlite.db'\n")
    assert load_server_config(config).log_database == tmp_path / "sqlite.db"

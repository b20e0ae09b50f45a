"""The CA is anchored as the logs are: a start whose CA is not the one in the trusted root the
server last published, and that does not list that one under retired-trust (what `keyless ca
rotate` prints), is refused with one line; it would issue under another CA and drop the old one
from the trust clients fetch."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from keyless.ca import CAConfig
from keyless.cli.main import main
from keyless.server.config import RetiredTrust
from keyless.server.state import StateDirError
from keyless.server.tuf_repository import published_target
from tests.e2e.log_files import PORT, start

URL = f"http://127.0.0.1:{PORT}"


def _published_chains(state: Path) -> list[tuple[str, bool]]:
    """(first certificate, retired?) of each CA in the trusted root the state last published."""
    root = json.loads(published_target(state / "tuf", "trusted_root.json"))
    return [
        (ca["certChain"]["certificates"][0]["rawBytes"], "end" in ca["validFor"])
        for ca in root["certificateAuthorities"]
    ]


@pytest.fixture
def state(tmp_path) -> Path:
    state = tmp_path / "state"
    start(state)
    return state


def _refusal(source: Path) -> str:
    return (
        f"the CA ({source}) is not the CA in the trusted root this server last published "
        f"(keyless-dev/keyless-dev-root at {URL}), and that one is not under retired-trust: "
        "another CA was put in place"
    )


def test_another_deployments_ca_put_in_place_refuses(state, tmp_path) -> None:
    other = tmp_path / "other"
    start(other)
    published = _published_chains(state)
    for name in ("ca-key.pem", "ca-chain.pem"):
        (state / "ca" / name).write_bytes((other / "ca" / name).read_bytes())
    with pytest.raises(StateDirError) as refused:
        start(state)
    assert refused.value.message == _refusal(state / "ca" / "ca-chain.pem")
    assert refused.value.hint == (
        "restore the CA this server published; to change CA, run keyless ca rotate and list "
        "the old chain under retired-trust as it prints"
    )
    assert _published_chains(state) == published


def _ceremony_ca(tmp_path: Path, monkeypatch, capsys) -> CAConfig:
    """A CA made by `keyless ca init` (encrypted key file), as its printed `ca:` section."""
    monkeypatch.setenv("KEYLESS_CA_PASSWORD", "correct horse battery staple")
    out = tmp_path / "ceremony"
    assert main(["ca", "init", "--out", str(out), "--password-env", "KEYLESS_CA_PASSWORD"]) == 0
    section = yaml.safe_load(capsys.readouterr().out)["ca"]
    return CAConfig.from_mapping(section, base_dir=tmp_path)


def test_a_new_ca_without_the_old_one_under_retired_trust_refuses(
    state, tmp_path, monkeypatch, capsys
) -> None:
    ca = _ceremony_ca(tmp_path, monkeypatch, capsys)
    with pytest.raises(StateDirError) as refused:
        start(state, ca=ca)
    assert refused.value.message == _refusal(ca.chain_path)


def test_a_new_ca_with_the_old_one_under_retired_trust_starts(
    state, tmp_path, monkeypatch, capsys
) -> None:
    old = tuple(x509.load_pem_x509_certificates((state / "ca" / "ca-chain.pem").read_bytes()))
    ca = _ceremony_ca(tmp_path, monkeypatch, capsys)
    now = datetime.now(UTC)
    retired = RetiredTrust(
        kind="ca-chain",
        url=URL,
        start=old[0].not_valid_before_utc,
        end=now + timedelta(days=1),
        certificates=old,
    )
    start(state, ca=ca, retired=(retired,))
    assert [retired for _, retired in _published_chains(state)] == [True, False]
    # Once published with an end date, the old chain is the operator's to drop.
    start(state, ca=ca)
    assert [retired for _, retired in _published_chains(state)] == [False]

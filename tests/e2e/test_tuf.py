"""The TUF repository under /tuf/: python-tuf's own client refreshes it, sigstore-python uses it
through `--instance`, short-lived metadata is re-signed when due, and root rotations (and online
key changes) are followed by clients holding an older root."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Root, Timestamp
from tuf.api.serialization.json import JSONSerializer
from tuf.ngclient import Updater

from keyless.cli.main import main
from keyless.server import tuf_api
from keyless.server.state import StateDir
from keyless.server.tuf_repository import (
    RoleKeys,
    TUFNotFoundError,
    TUFRepository,
    TUFRepositoryError,
    rotate_root_key,
)
from tests.conftest import dev_server, serve_wsgi

SIGSTORE = [sys.executable, "-m", "sigstore"]
TARGETS = {"trusted_root.json": b'{"a": 1}\n', "signing_config.v0.2.json": b'{"b": 2}\n'}


def _signer() -> CryptoSigner:
    return CryptoSigner(ec.generate_private_key(ec.SECP256R1()))


def _keys() -> RoleKeys:
    return RoleKeys(root=_signer(), targets=_signer(), snapshot=_signer(), timestamp=_signer())


@dataclass
class Clock:
    """The time the served repository decides re-signing by; tests move it."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class Served:
    url: str
    repository: TUFRepository
    keys: RoleKeys
    clock: Clock


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A repository published now, behind the /tuf/ blueprint on loopback."""
    clock = Clock(datetime.now(UTC))
    keys = _keys()
    repository = TUFRepository(tmp_path / "repository", keys)
    repository.publish(TARGETS, now=clock.now)
    app = Flask("tuf-test")
    tuf_api.init_app(app, repository, clock=clock)
    with serve_wsgi(app) as url:
        yield Served(url, repository, keys, clock)


@pytest.fixture(autouse=True)
def _private_sigstore_data(tmp_path: Path, monkeypatch) -> None:
    """sigstore-python keeps trusted TUF roots in the user data directory: one per test."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def _updater(url: str, root: bytes, directory: Path) -> Updater:
    (directory / "metadata").mkdir(parents=True, exist_ok=True)
    (directory / "targets").mkdir(exist_ok=True)
    return Updater(
        metadata_dir=str(directory / "metadata"),
        metadata_base_url=f"{url}/tuf",
        target_base_url=f"{url}/tuf/targets/",
        target_dir=str(directory / "targets"),
        bootstrap=root,
    )


def _target(updater: Updater, name: str) -> bytes:
    info = updater.get_targetinfo(name)
    assert info is not None, name
    return Path(updater.download_target(info)).read_bytes()


def _trusted_root_version(directory: Path) -> int:
    """The root version a python-tuf client trusts (it persists it as root.json)."""
    return Metadata.from_bytes((directory / "metadata" / "root.json").read_bytes()).signed.version


def _metadata(url: str, name: str) -> Metadata:
    response = requests.get(f"{url}/tuf/{name}", timeout=10)
    assert response.status_code == 200, name
    return Metadata.from_bytes(response.content)


def _sigstore(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "1000"}  # keep rich from wrapping its messages
    return subprocess.run([*SIGSTORE, *args], capture_output=True, text=True, timeout=120, env=env)


def test_keyless_trust_tuf_root_saves_the_servers_root(server, tmp_path, capsys) -> None:
    path = tmp_path / "root.json"
    assert main(["trust", "tuf-root", "--server", server.url, "-o", str(path)]) == 0
    assert capsys.readouterr().err.strip() == f"saved the tuf-root of {server.url} to {path}"
    served = requests.get(f"{server.url}/tuf/1.root.json", timeout=10).content
    assert path.read_bytes() == served
    root = Metadata[Root].from_bytes(served)
    assert root.signed.consistent_snapshot is True
    root.signed.verify_delegate(Root.type, root.signed_bytes, root.signatures)


def test_tuf_targets_are_the_documents_the_trust_endpoints_serve(server, tmp_path) -> None:
    root = requests.get(f"{server.url}/tuf/1.root.json", timeout=10).content
    updater = _updater(server.url, root, tmp_path / "client")
    updater.refresh()
    for target, document in [
        ("trusted_root.json", "trusted_root"),
        ("signing_config.v0.2.json", "signing_config"),
    ]:
        expected = requests.get(f"{server.url}/api/v1/trust/{document}.json", timeout=10).content
        assert _target(updater, target) == expected


def test_sigstore_python_signs_and_verifies_through_tuf(server, tmp_path) -> None:
    root = tmp_path / "root.json"
    assert main(["trust", "tuf-root", "--server", server.url, "-o", str(root)]) == 0
    instance = f"{server.url}/tuf"
    trusted = _sigstore("--instance", instance, "trust-instance", str(root))
    assert trusted.returncode == 0, trusted.stderr
    artifact = tmp_path / "artifact.txt"
    artifact.write_text("signed through TUF\n")
    bundle = tmp_path / "artifact.sigstore.json"
    token = server.email_token("frank@example.com")
    signed = _sigstore(
        "--instance", instance, "sign", "--identity-token", token, "--bundle", str(bundle),
        str(artifact),
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    issuer = f"{server.url}/oidc"
    verified = _sigstore(
        "--instance", instance, "verify", "identity", "--bundle", str(bundle),
        "--cert-identity", "frank@example.com", "--cert-oidc-issuer", issuer, str(artifact),
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    refused = _sigstore(
        "--instance", instance, "verify", "identity", "--bundle", str(bundle),
        "--cert-identity", "mallory@example.com", "--cert-oidc-issuer", issuer, str(artifact),
    )  # fmt: skip
    assert refused.returncode != 0
    assert (
        "Certificate's SANs do not match mallory@example.com; "
        "actual SANs: {'frank@example.com'}" in refused.stderr
    )


def test_sigstore_python_follows_a_root_rotation(tmp_path) -> None:
    """A client that trusted root version 1 keeps verifying after the server rotates its root."""
    state = tmp_path / "state"
    with dev_server(state) as running:
        root = tmp_path / "root-v1.json"
        assert main(["trust", "tuf-root", "--server", running.url, "-o", str(root)]) == 0
        instance = f"{running.url}/tuf"
        assert _sigstore("--instance", instance, "trust-instance", str(root)).returncode == 0
        python_client = tmp_path / "python-tuf"
        _updater(running.url, root.read_bytes(), python_client).refresh()

        repository = tuf_api.repository_of(running.app)
        assert rotate_root_key(StateDir(state), repository, now=datetime.now(UTC)) == 2
        assert (state / "tuf-root-key.v2.pem").stat().st_mode & 0o777 == 0o600

        rotated = _metadata(running.url, "2.root.json")
        old = Metadata[Root].from_bytes(root.read_bytes())
        old.signed.verify_delegate(Root.type, rotated.signed_bytes, rotated.signatures)
        rotated.signed.verify_delegate(Root.type, rotated.signed_bytes, rotated.signatures)
        assert old.signed.roles[Root.type].keyids != rotated.signed.roles[Root.type].keyids

        updater = _updater(running.url, root.read_bytes(), python_client)
        updater.refresh()
        assert _trusted_root_version(python_client) == 2

        artifact = tmp_path / "artifact.txt"
        artifact.write_text("signed after the rotation\n")
        bundle = tmp_path / "artifact.sigstore.json"
        token = running.email_token("grace@example.com")
        signed = _sigstore(
            "--instance", instance, "sign", "--identity-token", token, "--bundle", str(bundle),
            str(artifact),
        )  # fmt: skip
        assert signed.returncode == 0, signed.stderr
        verified = _sigstore(
            "--instance", instance, "verify", "identity", "--bundle", str(bundle),
            "--cert-identity", "grace@example.com", "--cert-oidc-issuer", f"{running.url}/oidc",
            str(artifact),
        )  # fmt: skip
        assert verified.returncode == 0, verified.stderr

        # New clients start from the newest root, reached through the signed chain.
        newest = tmp_path / "root-newest.json"
        assert main(["trust", "tuf-root", "--server", running.url, "-o", str(newest)]) == 0
        assert Metadata.from_bytes(newest.read_bytes()).signed.version == 2

    # A restart finds the new root key among the state directory's key files.
    # On the same port: the signature log's checkpoints name the public URL.
    with dev_server(state, port=int(running.url.rsplit(":", 1)[1])) as restarted:
        fresh = tmp_path / "python-tuf-after-restart"
        updater = _updater(restarted.url, root.read_bytes(), fresh)
        updater.refresh()
        assert _trusted_root_version(fresh) == 2
        expected = requests.get(f"{restarted.url}/api/v1/trust/trusted_root.json", timeout=10)
        assert _target(updater, "trusted_root.json") == expected.content


def test_a_server_without_its_root_key_refuses_to_start(tmp_path) -> None:
    state = tmp_path / "state"
    with dev_server(state) as first:
        port = int(first.url.rsplit(":", 1)[1])
    (state / "tuf-root-key.pem").unlink()
    published = sorted(path.name for path in (state / "tuf").iterdir())
    with pytest.raises(TUFRepositoryError) as refused, dev_server(state, port=port):
        pass
    assert refused.value.message == (
        f"no TUF root key in {state} is the root key of published root version 1"
    )
    assert refused.value.hint == (
        "restore the tuf-root-key*.pem files of the state directory from a backup"
    )
    assert sorted(path.name for path in (state / "tuf").iterdir()) == published
    assert not (state / "tuf-root-key.pem").exists()


def test_expired_timestamp_is_resigned_on_request(served, tmp_path) -> None:
    root = served.repository.read("1.root.json", now=served.clock.now)
    # Published two days ago: the one-day timestamp has expired, the snapshot has not.
    stale = TUFRepository(tmp_path / "stale", _keys())
    stale.publish(TARGETS, now=served.clock.now - timedelta(days=2))
    on_disk = Metadata[Timestamp].from_bytes((stale.directory / "timestamp.json").read_bytes())
    assert on_disk.signed.is_expired(served.clock.now)
    app = Flask("stale")
    tuf_api.init_app(app, stale, clock=served.clock)
    with serve_wsgi(app) as url:
        root = requests.get(f"{url}/tuf/1.root.json", timeout=10).content
        updater = _updater(url, root, tmp_path / "client")
        updater.refresh()
        assert _target(updater, "trusted_root.json") == TARGETS["trusted_root.json"]
        timestamp = _metadata(url, "timestamp.json")
        assert timestamp.signed.version == 2
        assert timestamp.signed.expires > served.clock.now
        assert _metadata(url, "1.snapshot.json").signed.version == 1
        assert requests.get(f"{url}/tuf/2.snapshot.json", timeout=10).status_code == 404


def test_metadata_is_resigned_at_half_life_not_before(served) -> None:
    assert _metadata(served.url, "timestamp.json").signed.version == 1
    served.clock.now += timedelta(hours=11)
    assert _metadata(served.url, "timestamp.json").signed.version == 1
    served.clock.now += timedelta(hours=2)
    assert _metadata(served.url, "timestamp.json").signed.version == 2
    # A week on, the snapshot (14 days) is due too, and the timestamp names the new one.
    served.clock.now += timedelta(days=7)
    timestamp = _metadata(served.url, "timestamp.json")
    assert timestamp.signed.version == 3
    assert timestamp.signed.snapshot_meta.version == 2
    assert _metadata(served.url, "2.snapshot.json").signed.meta["targets.json"].version == 1


def test_changed_targets_reach_a_client_that_already_refreshed(served, tmp_path) -> None:
    root = requests.get(f"{served.url}/tuf/1.root.json", timeout=10).content
    updater = _updater(served.url, root, tmp_path / "client")
    updater.refresh()
    assert _target(updater, "trusted_root.json") == TARGETS["trusted_root.json"]
    changed = {**TARGETS, "trusted_root.json": b'{"a": 2}\n'}
    served.repository.publish(changed, now=served.clock.now)
    updater = _updater(served.url, root, tmp_path / "client")
    updater.refresh()
    assert _target(updater, "trusted_root.json") == changed["trusted_root.json"]
    assert _metadata(served.url, "timestamp.json").signed.version == 2
    assert _metadata(served.url, "2.targets.json").signed.version == 2


def test_a_new_online_key_is_announced_in_a_new_root(tmp_path) -> None:
    keys = _keys()
    directory = tmp_path / "repository"
    now = datetime.now(UTC)
    TUFRepository(directory, keys).publish(TARGETS, now=now)
    root = (directory / "1.root.json").read_bytes()
    client = tmp_path / "client"
    app = Flask("rekeyed")
    rekeyed = TUFRepository(directory, RoleKeys(keys.root, keys.targets, keys.snapshot, _signer()))
    tuf_api.init_app(app, rekeyed, clock=Clock(now))
    with serve_wsgi(app) as url:
        rekeyed.publish(TARGETS, now=now)
        updater = _updater(url, root, client)
        updater.refresh()
        assert _trusted_root_version(client) == 2
        assert _metadata(url, "timestamp.json").signed.version == 2
        assert _target(updater, "trusted_root.json") == TARGETS["trusted_root.json"]


def test_a_foreign_root_key_is_refused_and_nothing_is_written(served) -> None:
    before = sorted(path.name for path in served.repository.directory.rglob("*"))
    keys = _keys()
    foreign = TUFRepository(served.repository.directory, keys)
    with pytest.raises(TUFRepositoryError) as refused:
        foreign.publish(TARGETS, now=served.clock.now)
    assert refused.value.message == (
        "the TUF root key is not the root key of published root version 1"
    )
    assert refused.value.reason == "root-key-mismatch"
    assert sorted(path.name for path in served.repository.directory.rglob("*")) == before


def test_a_rotation_without_the_current_root_key_is_refused(served) -> None:
    foreign = TUFRepository(served.repository.directory, _keys())
    with pytest.raises(TUFRepositoryError) as refused:
        foreign.rotate_root(_signer(), now=served.clock.now)
    assert refused.value.message == (
        "the TUF root key is not the root key of published root version 1"
    )
    assert served.repository.root_version() == 1


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("root.json", id="unversioned-root"),
        pytest.param("0.root.json", id="version-zero"),
        pytest.param("01.root.json", id="leading-zero"),
        pytest.param("2.root.json", id="future-root"),
        pytest.param(".lock", id="lock-file"),
        pytest.param("snapshot.json", id="unversioned-snapshot"),
        pytest.param("targets/trusted_root.json", id="target-without-hash"),
        pytest.param(f"targets/{'0' * 64}.trusted_root.json", id="unknown-target-hash"),
        pytest.param(f"targets/{'A' * 64}.trusted_root.json", id="upper-case-hash"),
        pytest.param("targets/../1.root.json", id="dot-dot"),
        pytest.param("..%2ftuf-root-key.pem", id="encoded-dot-dot"),
        pytest.param("1.root.json/", id="trailing-slash"),
    ],
)
def test_only_repository_files_are_served(served, name) -> None:
    with pytest.raises(TUFNotFoundError) as refused:
        served.repository.read(name, now=served.clock.now)
    assert refused.value.message == f"no TUF file named {name!r}"
    # http.client sends the path as written (requests would resolve the dot segments).
    connection = http.client.HTTPConnection(served.url.removeprefix("http://"), timeout=10)
    try:
        connection.request("GET", f"/tuf/{name}")
        assert connection.getresponse().status == 404
    finally:
        connection.close()


def test_the_servers_tuf_404_is_json(server) -> None:
    response = requests.get(f"{server.url}/tuf/root.json", timeout=10)
    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "no TUF file named 'root.json'"}


def test_tuf_root_from_a_server_without_tuf(tmp_path, capsys) -> None:
    app = Flask("no-tuf")
    with serve_wsgi(app) as url:
        assert main(["trust", "tuf-root", "--server", url, "-o", str(tmp_path / "r.json")]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: {url} serves no TUF repository ({url}/tuf/1.root.json answered HTTP 404)"
    )
    assert not (tmp_path / "r.json").exists()


def _forge_root(directory: Path, *, claims: int, names: CryptoSigner, signers: list) -> None:
    """Write 2.root.json claiming version `claims`, naming `names` as root key."""
    root = Root(version=claims, expires=datetime.now(UTC) + timedelta(days=1))
    root.add_key(names.public_key, Root.type)
    metadata = Metadata(root)
    for signer in signers:
        metadata.sign(signer, append=True)
    (directory / "2.root.json").write_bytes(metadata.to_bytes(JSONSerializer()))


@pytest.mark.parametrize(
    ("defect", "expected"),
    [
        ("signed-by-a-stranger", "is not a validly signed TUF root: root was signed by 0/1 keys"),
        (
            "not-signed-by-its-own-key",
            "is not a validly signed TUF root: root was signed by 0/1 keys",
        ),
        ("version-mismatch", "is version 5 of the TUF root"),
    ],
)
def test_tuf_root_refuses_a_broken_chain(served, tmp_path, capsys, defect, expected) -> None:
    old, new = served.keys.root, _signer()
    _forge_root(
        served.repository.directory,
        claims=5 if defect == "version-mismatch" else 2,
        names=new,
        signers={
            "signed-by-a-stranger": [new],
            "not-signed-by-its-own-key": [old],
            "version-mismatch": [old, new],
        }[defect],
    )
    output = tmp_path / "r.json"
    assert main(["trust", "tuf-root", "--server", served.url, "-o", str(output)]) == 1
    assert capsys.readouterr().err.strip() == f"error: {served.url}/tuf/2.root.json {expected}"
    assert not output.exists()


def test_tuf_root_refuses_an_expired_newest_root(tmp_path, capsys) -> None:
    old = datetime.now(UTC) - timedelta(days=400)
    expired = TUFRepository(tmp_path / "expired", _keys())
    expired.publish(TARGETS, now=old)
    app = Flask("expired")
    tuf_api.init_app(app, expired, clock=Clock(old))
    with serve_wsgi(app) as url:
        output = tmp_path / "r.json"
        assert main(["trust", "tuf-root", "--server", url, "-o", str(output)]) == 1
    root = json.loads((expired.directory / "1.root.json").read_text())
    assert capsys.readouterr().err.strip() == (
        f"error: the newest TUF root of {url} (version 1) expired at {root['signed']['expires']}"
    )
    assert not output.exists()


def test_processes_sharing_a_directory_sign_each_version_once(served) -> None:
    """Two repositories over one directory (as two server workers): the second sees what the
    first re-signed and writes nothing more."""
    other = TUFRepository(served.repository.directory, served.keys)
    other.publish(TARGETS, now=served.clock.now)
    later = served.clock.now + timedelta(hours=13)
    served.repository.refresh(now=later)
    other.refresh(now=later)
    timestamp = Metadata.from_bytes(other.read("timestamp.json", now=later))
    assert timestamp.signed.version == 2
    assert sorted(p.name for p in served.repository.directory.glob("*.json")) == [
        "1.root.json",
        "1.snapshot.json",
        "1.targets.json",
        "timestamp.json",
    ]


def test_the_repository_logic_imports_no_flask() -> None:
    probe = "import sys, keyless.server.tuf_repository; print('flask' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_only_the_timestamp_must_be_revalidated_by_caches(served) -> None:
    timestamp = requests.get(f"{served.url}/tuf/timestamp.json", timeout=10)
    assert timestamp.headers["Cache-Control"] == "no-cache"
    assert timestamp.headers["Content-Type"] == "application/json"
    root = requests.get(f"{served.url}/tuf/1.root.json", timeout=10)
    assert "Cache-Control" not in root.headers


def test_keyless_trust_tuf_root_to_stdout(served, capsysbinary) -> None:
    assert main(["trust", "tuf-root", "--server", served.url, "-o", "-"]) == 0
    assert (
        capsysbinary.readouterr().out == (served.repository.directory / "1.root.json").read_bytes()
    )

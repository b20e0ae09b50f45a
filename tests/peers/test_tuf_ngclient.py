"""python-tuf's ngclient, in the release sigstore-python 3.x runs on, against keyless's TUF
repository under /tuf/: it refreshes, downloads the two targets Sigstore clients ask for and
finds them unchanged in its cache, follows a root rotation, and refuses a repository its root
did not sign. (tests/e2e/test_tuf.py drives the suite's own python-tuf in-process.)"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from keyless.server import tuf_api
from keyless.server.state import StateDir
from keyless.server.tuf_repository import rotate_root_key
from tests.conftest import dev_server
from tests.peers.conftest import Served
from tests.peers.venvs import PeerVenv, peer_venv

pytestmark = pytest.mark.timeout(1200)  # the first run builds the venv
# ECDSA keys (keyless's, and public Sigstore's) verify only with securesystemslib's crypto extra:
# without it every signature fails ("root was signed by 0/1 keys").
REQUIREMENTS = ("tuf==6.0.0", "securesystemslib[crypto]==1.6.0")
DRIVER = Path(__file__).with_name("tuf_client_driver.py")
# Target name -> the trust endpoint serving the same bytes.
TARGETS = {"trusted_root.json": "trusted_root", "signing_config.v0.2.json": "signing_config"}


@pytest.fixture(scope="module")
def ngclient() -> PeerVenv:
    venv = peer_venv("python-tuf", REQUIREMENTS)
    assert venv.installed()["tuf"] == "6.0.0"
    return venv


def _root(url: str, path: Path) -> Path:
    path.write_bytes(requests.get(f"{url}/tuf/1.root.json", timeout=10).content)
    return path


def _update(ngclient: PeerVenv, url: str, root: Path, cache: Path):
    return ngclient.run(str(DRIVER), f"{url}/tuf", str(root), str(cache), *TARGETS)


def _served_digest(url: str, document: str) -> str:
    body = requests.get(f"{url}/api/v1/trust/{document}.json", timeout=10).content
    return hashlib.sha256(body).hexdigest()


def test_ngclient_refreshes_and_downloads_both_targets(ngclient, served: Served, tmp_path):
    root = _root(served.url, tmp_path / "root.json")
    first = _update(ngclient, served.url, root, tmp_path / "cache")
    assert first.returncode == 0, first.stderr
    expected = {
        target: {"sha256": _served_digest(served.url, document), "cached": False}
        for target, document in TARGETS.items()
    }
    assert json.loads(first.stdout) == {"root_version": 1, "targets": expected}

    again = _update(ngclient, served.url, root, tmp_path / "cache")
    assert again.returncode == 0, again.stderr
    cached = {target: {**found, "cached": True} for target, found in expected.items()}
    assert json.loads(again.stdout) == {"root_version": 1, "targets": cached}


def test_ngclient_follows_a_root_rotation(ngclient, tmp_path) -> None:
    with dev_server(tmp_path / "state") as running:
        root = _root(running.url, tmp_path / "root.json")
        first = _update(ngclient, running.url, root, tmp_path / "cache")
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["root_version"] == 1

        repository = tuf_api.repository_of(running.app)
        assert rotate_root_key(StateDir(tmp_path / "state"), repository, now=datetime.now(UTC)) == 2
        again = _update(ngclient, running.url, root, tmp_path / "cache")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["root_version"] == 2


def test_ngclient_refuses_a_repository_its_root_did_not_sign(ngclient, served, tmp_path):
    with dev_server(tmp_path / "other-state") as other:
        foreign = _root(other.url, tmp_path / "foreign-root.json")
    refused = _update(ngclient, served.url, foreign, tmp_path / "cache")
    assert refused.returncode == 1
    assert refused.stderr.startswith("UnsignedMetadataError: ")

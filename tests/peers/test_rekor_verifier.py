"""rekor-verifier (PyPI), a Rekor v1 proof checker of its own (RFC 6962 hashing, its own
Merkle code), against keyless's v1 log: a keyless-signed entry's signature and inclusion proof,
and the consistency proof between an earlier checkpoint and the latest, check out.

rekor-monitor, the other such client on PyPI, needs Python 3.13 (the suite runs on 3.11); the
two share the same proof checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.peers.conftest import Served
from tests.peers.venvs import PeerVenv, peer_venv

pytestmark = pytest.mark.timeout(1200)  # the first run builds the venv
REQUIREMENTS = ("rekor-verifier==4.0.0",)
DRIVER = Path(__file__).with_name("rekor_verifier_driver.py")


@pytest.fixture(scope="module")
def rekor_verifier() -> PeerVenv:
    return peer_venv("rekor-verifier", REQUIREMENTS)


def _check(venv: PeerVenv, served: Served, *args: str):
    return venv.run(str(DRIVER), served.url, *args)


def _signed(served: Served, directory: Path, name: str) -> tuple[Path, int]:
    """A file keyless signed into the v1 log, and its log index."""
    artifact = directory / name
    artifact.write_text(f"{name}, logged for rekor-verifier\n")
    token = served.token("sam@example.com")
    assert (
        served.keyless("sign", "--identity-token", token, "--rekor-version", "1", str(artifact))
        == 0
    )
    bundle = json.loads(artifact.with_name(name + ".sigstore.json").read_text())
    return artifact, int(bundle["verificationMaterial"]["tlogEntries"][0]["logIndex"])


def _checkpoint(served: Served) -> dict:
    return requests.get(f"{served.url}/api/v1/log", timeout=10).json()


def test_rekor_verifier_checks_a_keyless_entrys_signature_and_inclusion(
    rekor_verifier, served, tmp_path
) -> None:
    artifact, index = _signed(served, tmp_path, "first.txt")
    _signed(served, tmp_path, "second.txt")  # the first entry's proof is then not empty
    checked = _check(rekor_verifier, served, "inclusion", str(index), str(artifact))
    assert checked.returncode == 0, checked.stdout
    assert checked.stdout.splitlines() == [
        "Signature is valid.",
        "Offline root hash calculation for inclusion verified.",
    ]


def test_rekor_verifier_refuses_an_entry_for_other_bytes(rekor_verifier, served, tmp_path):
    _, index = _signed(served, tmp_path, "signed.txt")
    other = tmp_path / "other.txt"
    other.write_text("not what was signed\n")
    checked = _check(rekor_verifier, served, "inclusion", str(index), str(other))
    assert checked.returncode == 1
    assert checked.stdout.splitlines()[-1] == "Validation error: Signature is invalid"


def test_rekor_verifier_checks_consistency_with_an_earlier_checkpoint(
    rekor_verifier, served, tmp_path
) -> None:
    _signed(served, tmp_path, "before.txt")
    earlier = _checkpoint(served)
    for name in ("after-1.txt", "after-2.txt", "after-3.txt"):
        _signed(served, tmp_path, name)
    assert _checkpoint(served)["treeSize"] == earlier["treeSize"] + 3
    args = [earlier["treeID"], str(earlier["treeSize"]), earlier["rootHash"]]
    checked = _check(rekor_verifier, served, "consistency", *args)
    assert checked.returncode == 0, checked.stdout
    assert checked.stdout.strip() == "Consistency verification successful"


def test_rekor_verifier_refuses_a_checkpoint_the_log_never_had(
    rekor_verifier, served, tmp_path
) -> None:
    _signed(served, tmp_path, "before.txt")
    earlier = _checkpoint(served)
    _signed(served, tmp_path, "after.txt")
    forged = f"{int(earlier['rootHash'][0], 16) ^ 1:x}" + earlier["rootHash"][1:]
    checked = _check(
        rekor_verifier, served, "consistency", earlier["treeID"], str(earlier["treeSize"]), forged
    )
    assert checked.returncode == 1
    assert checked.stdout.startswith("Failed consistency check: ")

"""sigstore-python, the reference client, judges the forged bundles as keyless does.

This keeps the test forge honest: a bundle keyless accepts is a real Sigstore bundle, and the
defects keyless refuses are refused by the reference client too.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keyless.client.bundle import Bundle
from keyless.client.trust import TrustedRoot
from keyless.client.verify import AllOf, Identity, Issuer, VerificationError, Verifier
from tests.cli.conftest import START
from tests.cli.forge import Instance, dumps

ARTIFACT = b"interop\n"
ALICE = "alice@example.com"
ISSUER = "https://issuer.keyless.test"


def _both(instance: Instance, bundle: dict, tmp_path: Path) -> tuple[bool, bool]:
    """(keyless accepts, sigstore-python accepts) for `bundle` under `instance`'s root."""
    from sigstore.errors import VerificationError as SigstoreError
    from sigstore.models import Bundle as SigstoreBundle
    from sigstore.models import TrustedRoot as SigstoreRoot
    from sigstore.verify import Verifier as SigstoreVerifier
    from sigstore.verify import policy

    root_path = tmp_path / "trusted_root.json"
    root_path.write_text(dumps(instance.trusted_root()))
    try:
        Verifier(TrustedRoot.from_json(root_path.read_text())).verify(
            Bundle.from_json(dumps(bundle)),
            sha256=hashlib.sha256(ARTIFACT).digest(),
            policy=AllOf([Identity(ALICE), Issuer(ISSUER)]),
            now=datetime.now(UTC),
        )
        ours = True
    except VerificationError:
        ours = False
    try:
        SigstoreVerifier(trusted_root=SigstoreRoot.from_file(str(root_path))).verify_artifact(
            ARTIFACT,
            SigstoreBundle.from_json(dumps(bundle)),
            policy.Identity(identity=ALICE, issuer=ISSUER),
        )
        theirs = True
    except SigstoreError:
        theirs = False
    return ours, theirs


def test_valid_forged_bundle(instance: Instance, tmp_path: Path) -> None:
    assert _both(instance, instance.sign(ARTIFACT), tmp_path) == (True, True)


def _swapped_entry(instance: Instance) -> dict:
    bundle = instance.sign(ARTIFACT)
    other = instance.sign(ARTIFACT)
    bundle["verificationMaterial"]["tlogEntries"] = other["verificationMaterial"]["tlogEntries"]
    return bundle


def _rogue_ca(instance: Instance) -> dict:
    rogue = Instance(start=START, ct_key=instance.ct_key, log_key=instance.log_key)
    return rogue.sign(ARTIFACT)


def _wrong_identity(instance: Instance) -> dict:
    return instance.sign(ARTIFACT, identity="mallory@example.com")


@pytest.mark.parametrize(
    "make",
    [_swapped_entry, _rogue_ca, _wrong_identity],
    ids=["swapped-entry", "rogue-ca", "wrong-identity"],
)
def test_defects_refused_by_both(instance: Instance, tmp_path: Path, make) -> None:
    assert _both(instance, make(instance), tmp_path) == (False, False)

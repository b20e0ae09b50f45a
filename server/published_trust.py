"""The trust this state directory last published: the trusted root in its TUF repository.

Clients given that root verify bundles with every CA, log key and timestamp authority it lists.
A start that would silently leave one out (a lost Rekor v2 log or TSA made anew, another
deployment's CA put in place) would make everything it signed stop verifying through
`--server`, so those starts are refused; what the operator retires on purpose stays listed under
`retired-trust`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from keyless.server.state import StateDir, StateDirError
from keyless.server.tuf_repository import DIRECTORY, published_target

TRUSTED_ROOT_TARGET = "trusted_root.json"


def last_trusted_root(state: StateDir) -> dict[str, Any] | None:
    """The trusted root the state directory's TUF repository last published (None: none yet).

    Raises:
        StateDirError: the published root cannot be read.
    """
    directory = state.file(DIRECTORY)
    try:
        data = published_target(directory, TRUSTED_ROOT_TARGET)
        if data is None:
            return None
        document = json.loads(data)
    except (OSError, ValueError) as exc:
        raise StateDirError(
            f"the trusted root last published in {directory} cannot be read: {exc}",
            hint="restore the tuf directory from a backup of the state directory",
        ) from exc
    if not isinstance(document, dict):
        raise StateDirError(f"the trusted root last published in {directory} is not an object")
    return document


def lists_rekor_v2_log(root: dict[str, Any] | None) -> bool:
    """Whether `root` lists an Ed25519 transparency log: a Rekor v2 log (checkpoint key)."""
    return any(
        _get(log, "publicKey", "keyDetails") == "PKIX_ED25519" for log in _list(root, "tlogs")
    )


def lists_timestamp_authority(root: dict[str, Any] | None, url: str) -> bool:
    """Whether `root` lists a timestamp authority at `url` (this server's TSA)."""
    return any(_get(tsa, "uri") == url for tsa in _list(root, "timestampAuthorities"))


def check_ca_kept(
    root: dict[str, Any] | None,
    chains: Iterable[Sequence[x509.Certificate]],
    *,
    source: str,
) -> None:
    """The CA chain `root` lists as current (no end date) must be among `chains` (the CA the
    server runs, and those under retired-trust): a chain left out would stop every certificate
    it issued from verifying, and a CA nobody rotated to is another deployment's. Chains
    already retired there (with an end date) are the operator's to drop.

    Raises:
        StateDirError: the published CA is not among `chains`.
    """
    kept = {_ders(chain) for chain in chains}
    for ca in _list(root, "certificateAuthorities"):
        if _get(ca, "validFor", "end") is not None:
            continue
        published = _published_chain(ca)
        if published is not None and published not in kept:
            raise StateDirError(
                f"the CA ({source}) is not the CA in the trusted root this server last "
                f"published ({_subject(ca)}), and that one is not under retired-trust: "
                "another CA was put in place",
                hint="restore the CA this server published; to change CA, run keyless ca "
                "rotate and list the old chain under retired-trust as it prints",
            )


def _published_chain(ca: Any) -> tuple[bytes, ...] | None:
    certificates = _get(ca, "certChain", "certificates")
    if not isinstance(certificates, list):
        return None
    try:
        return tuple(base64.b64decode(cert["rawBytes"], validate=True) for cert in certificates)
    except (KeyError, TypeError, binascii.Error):
        return None


def _ders(chain: Sequence[x509.Certificate]) -> tuple[bytes, ...]:
    return tuple(cert.public_bytes(serialization.Encoding.DER) for cert in chain)


def _subject(ca: Any) -> str:
    subject = _get(ca, "subject") or {}
    return f"{subject.get('organization')}/{subject.get('commonName')} at {_get(ca, 'uri')}"


def _list(root: dict[str, Any] | None, key: str) -> list[Any]:
    value = root.get(key) if root else None
    return value if isinstance(value, list) else []


def _get(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value

"""The TSA key ceremony: a timestamp authority's signing key and chain for `tsa:` in
server.yaml, and their rotation.

The chain is a timeStamping leaf under a root made for it alone, whose key is discarded once
the leaf is signed: nothing else can ever be issued under that root, and a rotation makes a new
one. The signing key is written unencrypted (0600), as the server reads it at start, like the
log keys, or is made in a PKCS#11 token by the caller and never leaves it. A rotation moves the
old key and chain under `retired/` and returns the old chain for `retired-trust:` (kind
tsa-chain), so timestamps made before it keep verifying.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.core.errors import Reason
from keyless.tsa.certs import dev_tsa_chain, load_pem_chain, pem_chain
from keyless.tsa.errors import TSAError

KEY_FILE = "tsa-key.pem"
CHAIN_FILE = "tsa-chain.pem"
RETIRED_DIR = "retired"
CURVES = {"secp256r1": ec.SECP256R1, "secp384r1": ec.SECP384R1}
MakeKey = Callable[[str], ec.EllipticCurvePublicKey]


class TSACeremonyError(TSAError):
    """The ceremony cannot go ahead; the message says why."""

    reason = Reason.TSA_CEREMONY_REFUSED


@dataclass(frozen=True)
class TSACeremonyResult:
    """What a ceremony made, and the chain it retired (rotation only)."""

    key_path: Path | None  # None: the key is in a token
    chain_path: Path
    chain: tuple[x509.Certificate, ...]
    retired_chain_path: Path | None = None
    retired_key_path: Path | None = None
    retired_start: datetime | None = None


def init_tsa(
    out: Path,
    *,
    name: str,
    now: datetime,
    curve: str = "secp256r1",
    make_key: MakeKey | None = None,
) -> TSACeremonyResult:
    """Make a TSA key and chain in `out`, which must not hold one yet. `make_key(curve)` makes
    the key elsewhere (in a token) and returns its public half: then only the chain is written.

    Raises:
        TSACeremonyError: `out` already holds a TSA, or the curve is not one a TSA signs with.
    """
    _check_curve(curve)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    for existing in (KEY_FILE, CHAIN_FILE):
        if (out / existing).exists():
            raise TSACeremonyError(
                f"{out / existing} already exists: a TSA was made here (rotate it instead)"
            )
    if make_key is not None:
        chain = tuple(dev_tsa_chain(make_key(curve), now=now, name=name))
        _write(out / CHAIN_FILE, pem_chain(chain), mode=0o644)
        return TSACeremonyResult(key_path=None, chain_path=out / CHAIN_FILE, chain=chain)
    key = ec.generate_private_key(CURVES[curve]())
    chain = tuple(dev_tsa_chain(key, now=now, name=name))
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(out / KEY_FILE, pem, mode=0o600)
    _write(out / CHAIN_FILE, pem_chain(chain), mode=0o644)
    return TSACeremonyResult(key_path=out / KEY_FILE, chain_path=out / CHAIN_FILE, chain=chain)


def rotate_tsa(
    out: Path,
    *,
    name: str,
    now: datetime,
    curve: str = "secp256r1",
    make_key: MakeKey | None = None,
) -> TSACeremonyResult:
    """Move the TSA in `out` under `retired/` and make a new one in its place (`make_key`: as
    for `init_tsa`; a key in a token stays there, its chain is retired).

    Raises:
        TSACeremonyError: `out` holds no TSA (or an unreadable chain), or the curve is refused.
    """
    _check_curve(curve)
    try:
        old_chain = load_pem_chain((out / CHAIN_FILE).read_bytes())
    except FileNotFoundError as exc:
        raise TSACeremonyError(
            f"{out / CHAIN_FILE} does not exist: run `keyless ca tsa-init` first"
        ) from exc
    except OSError as exc:
        raise TSACeremonyError(f"cannot read {out / CHAIN_FILE}: {exc.strerror}") from exc
    retired = out / RETIRED_DIR
    retired.mkdir(mode=0o700, exist_ok=True)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    retired_chain = retired / f"tsa-chain-{stamp}.pem"
    retired_key = retired / f"tsa-key-{stamp}.pem"
    for path in (retired_chain, retired_key):
        if path.exists():
            raise TSACeremonyError(f"{path} already exists: one rotation per second at most")
    os.replace(out / CHAIN_FILE, retired_chain)
    if (out / KEY_FILE).exists():
        os.replace(out / KEY_FILE, retired_key)
    made = init_tsa(out, name=name, now=now, curve=curve, make_key=make_key)
    return TSACeremonyResult(
        key_path=made.key_path,
        chain_path=made.chain_path,
        chain=made.chain,
        retired_chain_path=retired_chain,
        retired_key_path=retired_key if retired_key.exists() else None,
        retired_start=old_chain[0].not_valid_before_utc,
    )


def _check_curve(curve: str) -> None:
    if curve not in CURVES:
        raise TSACeremonyError(f"the TSA curve must be one of {', '.join(CURVES)}, not {curve!r}")


def _write(path: Path, data: bytes, *, mode: int) -> None:
    """Write a new file durably with `mode` from the start; never over an existing one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())

"""The CA key ceremony: make a root and an issuing intermediate, and later rotate the
intermediate, with the keys in encrypted files or in a PKCS#11 token.

A ceremony writes the public chain (`ca-chain.pem`: intermediate first, root last) to an output
folder and says what to put in the server's `ca:` section. Private keys are written only as
encrypted PKCS#8 (0600), or never leave the token. Rotation signs a new intermediate with the
same root into new files beside the old ones (`ca-chain-<time>.pem`, `ca-key-<time>.enc.pem`)
and never writes the chain and key a running server uses: a restart before its config is
edited still finds them. The old chain, left where it is, goes under `retired-trust:`, so
bundles signed before the rotation keep verifying.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.ca.errors import CAConfigError
from keyless.ca.pkcs11 import CURVES, TokenKey, TokenSigner, generate_token_key
from keyless.ca.signers import CA_CURVE_HASHES, intermediate_builder, root_builder, write_atomic

CHAIN_FILE = "ca-chain.pem"
KEY_FILE = "ca-key.enc.pem"
ROOT_FILE = "root.pem"
ROOT_KEY_FILE = "root-key.enc.pem"
_ROTATED_CHAIN = re.compile(r"ca-chain-([0-9]{8}T[0-9]{6}Z)\.pem", re.ASCII)
ROOT_LIFETIME = timedelta(days=3650)
INTERMEDIATE_LIFETIME = timedelta(days=365 * 3)


@dataclass(frozen=True)
class KeyStore:
    """Where ceremony keys go: encrypted files (`password`), or a token (`token`)."""

    password: bytes | None = None
    token: TokenKey | None = None

    def __post_init__(self) -> None:
        if (self.password is None) == (self.token is None):
            raise ValueError("a key store is either files with a password or a token")


@dataclass(frozen=True)
class CeremonyResult:
    """What a ceremony made: the chain file, the issuing key's place, any retired chain."""

    chain_path: Path
    chain: tuple[x509.Certificate, ...]
    key_path: Path | None = None  # files
    key_label: str | None = None  # token
    retired_chain_path: Path | None = None
    retired_start: datetime | None = None


def init_ca(
    out: Path,
    store: KeyStore,
    *,
    name: str,
    now: datetime,
    root_curve: str = "secp384r1",
    curve: str = "secp256r1",
    root_label: str = "keyless-root",
    key_label: str = "keyless-intermediate",
) -> CeremonyResult:
    """Create a root and an intermediate under `out` (which must not hold a CA yet).

    Raises:
        CAConfigError: `out` already holds a CA, a curve is not allowed, or the token refuses.
    """
    _check_curve(root_curve)
    _check_curve(curve)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    for existing in (CHAIN_FILE, ROOT_FILE, ROOT_KEY_FILE):
        if (out / existing).exists():
            raise CAConfigError(str(out / existing), ["already exists: a CA was made here"])
    start = now.replace(microsecond=0) - timedelta(minutes=5)
    if store.token is not None:
        root_location = _at(store.token, root_label)
        root_public = generate_token_key(root_location, root_curve)
        root_signer = TokenSigner(root_location)
        try:
            root = root_signer.sign(
                root_builder(root_public, name=name, start=start, lifetime=ROOT_LIFETIME)
            )
        finally:
            root_signer.close()
    else:
        root_key = ec.generate_private_key(CURVES[root_curve])
        root = root_builder(
            root_key.public_key(), name=name, start=start, lifetime=ROOT_LIFETIME
        ).sign(root_key, CA_CURVE_HASHES[root_curve]())
        _write_key(out / ROOT_KEY_FILE, root_key, store)
    write_atomic(out / ROOT_FILE, _pem([root]), mode=0o644)
    return _issue_intermediate(
        out,
        store,
        root,
        name=name,
        start=start,
        curve=curve,
        key_label=key_label,
        root_label=root_label,
    )


def rotate_intermediate(
    out: Path,
    store: KeyStore,
    *,
    name: str,
    now: datetime,
    curve: str = "secp256r1",
    root_label: str = "keyless-root",
) -> CeremonyResult:
    """Sign a new intermediate with the root kept in `out` (or the token), into new files;
    the newest chain in `out` before it is the one to retire, and stays as it is.

    Raises:
        CAConfigError: no CA in `out`, the root key cannot be used, the token refuses, or a
            rotation already made files with this second's names.
    """
    _check_curve(curve)
    old_path = _newest_chain(out)
    old_chain = _read_chain(old_path)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    result = _issue_intermediate(
        out,
        store,
        old_chain[-1],
        name=name,
        start=now.replace(microsecond=0) - timedelta(minutes=5),
        curve=curve,
        key_label=f"keyless-intermediate-{stamp}",
        root_label=root_label,
        key_file=f"ca-key-{stamp}.enc.pem",
        chain_file=f"ca-chain-{stamp}.pem",
    )
    return CeremonyResult(
        chain_path=result.chain_path,
        chain=result.chain,
        key_path=result.key_path,
        key_label=result.key_label,
        retired_chain_path=old_path,
        retired_start=old_chain[0].not_valid_before_utc,
    )


def _newest_chain(out: Path) -> Path:
    """The chain of the last ceremony in `out`: the latest rotation's, else `init`'s."""
    rotated = sorted(
        (match.group(1), path)
        for path in out.glob("ca-chain-*.pem")
        if (match := _ROTATED_CHAIN.fullmatch(path.name))
    )
    return rotated[-1][1] if rotated else out / CHAIN_FILE


def _issue_intermediate(
    out: Path,
    store: KeyStore,
    root: x509.Certificate,
    *,
    name: str,
    start: datetime,
    curve: str,
    key_label: str,
    root_label: str,
    key_file: str = KEY_FILE,
    chain_file: str = CHAIN_FILE,
) -> CeremonyResult:
    """A new intermediate under `root`, its key and chain in new files (never replaced: a
    running server may use them)."""
    key_path: Path | None = None
    if store.token is not None:
        _check_new(out / chain_file)
        public = generate_token_key(_at(store.token, key_label), curve)
    else:
        key = ec.generate_private_key(CURVES[curve])
        public = key.public_key()
        key_path = out / key_file
    builder = intermediate_builder(
        public, name=name, root=root, start=start, lifetime=INTERMEDIATE_LIFETIME
    )
    if store.token is not None:
        root_signer = TokenSigner(_at(store.token, root_label))
        try:
            intermediate = root_signer.sign(builder)
        finally:
            root_signer.close()
    else:
        root_key = _read_root_key(out / ROOT_KEY_FILE, store)
        if root_key.public_key() != root.public_key():
            raise CAConfigError(str(out / ROOT_KEY_FILE), ["this key did not make the root"])
        root_hash = CA_CURVE_HASHES[root_key.curve.name]()
        intermediate = builder.sign(root_key, root_hash)
        assert key_path is not None
        _check_new(key_path, out / chain_file)
        _write_key(key_path, key, store)
    chain = (intermediate, root)
    write_atomic(out / chain_file, _pem(chain), mode=0o644)
    return CeremonyResult(
        chain_path=out / chain_file,
        chain=chain,
        key_path=key_path,
        key_label=key_label if store.token is not None else None,
    )


def _check_new(*paths: Path) -> None:
    for path in paths:
        if path.exists():
            raise CAConfigError(str(path), ["already exists: one ceremony a second at most"])


def _at(token: TokenKey, label: str) -> TokenKey:
    return TokenKey(
        module=token.module,
        key_label=label,
        token_label=token.token_label,
        slot=token.slot,
        pin_env=token.pin_env,
        pin_file=token.pin_file,
    )


def _check_curve(curve: str) -> None:
    if curve not in CURVES:
        raise CAConfigError("the ceremony", [f"curve must be one of {', '.join(CURVES)}"])


def _read_chain(path: Path) -> list[x509.Certificate]:
    try:
        chain = x509.load_pem_x509_certificates(path.read_bytes())
    except FileNotFoundError as exc:
        raise CAConfigError(str(path), ["no CA here: run `keyless ca init` first"]) from exc
    except (OSError, ValueError) as exc:
        raise CAConfigError(str(path), [f"not a readable PEM chain: {exc}"]) from exc
    if len(chain) < 2:
        raise CAConfigError(str(path), ["the chain must hold the intermediate and the root"])
    return chain


def _read_root_key(path: Path, store: KeyStore) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=store.password)
    except FileNotFoundError as exc:
        raise CAConfigError(str(path), ["the root key is missing"]) from exc
    except (OSError, ValueError, TypeError) as exc:
        raise CAConfigError(str(path), ["cannot decrypt the root key: wrong password?"]) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CAConfigError(str(path), ["the root key must be ECDSA"])
    return key


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, store: KeyStore) -> None:
    assert store.password is not None
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(store.password),
    )
    write_atomic(path, pem, mode=0o600)


def _pem(chain: tuple[x509.Certificate, ...] | list[x509.Certificate]) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in chain)

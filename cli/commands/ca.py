"""`keyless ca`: the operator's key ceremonies.

`init` makes a root and an issuing intermediate (keys in encrypted files or a PKCS#11 token)
and prints the server's `ca:` section; `rotate` signs a new intermediate with the same root into
new files (never the chain a running server uses) and prints the `ca:` section for it and the
`retired-trust:` entry that keeps the old chain verifiable; `tsa-init` and
`tsa-rotate` do the same for the timestamp authority (`tsa:`, retired kind tsa-chain);
`rotate-tuf-root` rotates the root key of the TUF repository a server publishes, so clients
follow the new root.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyless.core.encoding import format_rfc3339

if TYPE_CHECKING:
    from keyless.ca.ceremony import CeremonyResult, KeyStore
    from keyless.ca.pkcs11 import TokenKey


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ca",
        help="key ceremonies: make and rotate the CA and the TSA, rotate the TUF root",
        description=(
            "Key ceremonies for operators. Keys go to encrypted PKCS#8 files (--password-env) "
            "or stay in a PKCS#11 token (--pkcs11-module with --token-label or --slot, and "
            "--pin-env or --pin-file): non-extractable, never written anywhere."
        ),
    )
    commands = parser.add_subparsers(dest="ca_command", metavar="COMMAND", required=True)
    init = commands.add_parser("init", help="make a root and an intermediate; print ca: config")
    rotate = commands.add_parser(
        "rotate", help="sign a new intermediate with the root; print retired-trust: config"
    )
    for sub in (init, rotate):
        sub.add_argument("--out", type=Path, required=True, metavar="DIR", help="ceremony folder")
        sub.add_argument("--name", default="keyless", help="organisation name in the CA subjects")
        sub.add_argument("--curve", default="secp256r1", help="intermediate key curve")
        keys = sub.add_mutually_exclusive_group(required=True)
        keys.add_argument("--password-env", metavar="VAR", help="encrypt key files with $VAR")
        keys.add_argument("--pkcs11-module", type=Path, metavar="PATH", help="PKCS#11 library")
        token = sub.add_mutually_exclusive_group()
        token.add_argument("--token-label", metavar="LABEL")
        token.add_argument("--slot", type=int, metavar="ID")
        pin = sub.add_mutually_exclusive_group()
        pin.add_argument("--pin-env", metavar="VAR", help="the token's user PIN is in $VAR")
        pin.add_argument("--pin-file", type=Path, metavar="FILE")
        sub.add_argument(
            "--root-label", default="keyless-root", help="the root key pair's token label"
        )
        sub.set_defaults(run=run, parser=sub)
    init.add_argument("--root-curve", default="secp384r1", help="root key curve")
    rotate.add_argument(
        "--public-url",
        required=True,
        metavar="URL",
        help="the public-url, for retired-trust",
    )
    init.add_argument(
        "--key-label", default="keyless-intermediate", help="the intermediate's token label"
    )
    tsa_init = commands.add_parser(
        "tsa-init", help="make a timestamp authority's key and chain; print tsa: config"
    )
    tsa_rotate = commands.add_parser(
        "tsa-rotate", help="replace the TSA key and chain; print tsa: and retired-trust: config"
    )
    for sub in (tsa_init, tsa_rotate):
        sub.add_argument("--out", type=Path, required=True, metavar="DIR", help="TSA folder")
        sub.add_argument("--name", default="keyless", help="organisation name in the subjects")
        sub.add_argument(
            "--curve", default="secp256r1", help="TSA key curve (secp256r1 or secp384r1)"
        )
        sub.add_argument(
            "--pkcs11-module",
            type=Path,
            metavar="PATH",
            help="make the key in a PKCS#11 token (default: a key file, 0600)",
        )
        token = sub.add_mutually_exclusive_group()
        token.add_argument("--token-label", metavar="LABEL")
        token.add_argument("--slot", type=int, metavar="ID")
        pin = sub.add_mutually_exclusive_group()
        pin.add_argument("--pin-env", metavar="VAR", help="the token's user PIN is in $VAR")
        pin.add_argument("--pin-file", type=Path, metavar="FILE")
        sub.add_argument(
            "--key-label",
            metavar="LABEL",
            help="the token key's label (default keyless-tsa, or keyless-tsa-<time> on rotate)",
        )
        sub.set_defaults(run=run_tsa, parser=sub)
    tsa_rotate.add_argument(
        "--public-url", required=True, metavar="URL", help="the public-url, for retired-trust"
    )
    tuf = commands.add_parser(
        "rotate-tuf-root", help="rotate the root key of a server's TUF repository"
    )
    tuf.add_argument("--state-dir", type=Path, required=True, metavar="DIR")
    tuf.set_defaults(run=run_tuf, parser=tuf)


def run(args: argparse.Namespace) -> int:
    from keyless.ca.ceremony import init_ca, rotate_intermediate

    store = _store(args)
    now = datetime.now(UTC)
    if args.ca_command == "init":
        result = init_ca(
            args.out,
            store,
            name=args.name,
            now=now,
            root_curve=args.root_curve,
            curve=args.curve,
            root_label=args.root_label,
            key_label=args.key_label,
        )
        print(f"made a root and an intermediate; chain in {result.chain_path}", file=sys.stderr)
    else:
        result = rotate_intermediate(
            args.out, store, name=args.name, now=now, curve=args.curve, root_label=args.root_label
        )
        print(
            f"made a new intermediate beside the old one; its chain is {result.chain_path}. "
            f"The chain the server uses now, {result.retired_chain_path}, and its key are "
            "untouched: paste the lines below into server.yaml (the ca: section replaces "
            "yours, the retired-trust: entry joins yours), then restart the server",
            file=sys.stderr,
        )
    print("# server.yaml")
    print(_config(args, result, now))
    return 0


def run_tuf(args: argparse.Namespace) -> int:
    from keyless.server.state import StateDir
    from keyless.server.tuf_repository import open_repository, rotate_root_key

    state = StateDir(args.state_dir)
    if not (args.state_dir / "tuf").is_dir():
        args.parser.error(f"{args.state_dir} holds no TUF repository (start the server once)")
    repository = open_repository(state)
    version = rotate_root_key(state, repository, now=datetime.now(UTC))
    print(
        f"published TUF root version {version}, signed by the old and the new root key; the new "
        f"key is {args.state_dir / f'tuf-root-key.v{version}.pem'}: back it up offline",
        file=sys.stderr,
    )
    return 0


def run_tsa(args: argparse.Namespace) -> int:
    import yaml

    from keyless.tsa.ceremony import init_tsa, rotate_tsa

    now = datetime.now(UTC)
    location = _tsa_token(args, now)
    make_key = None
    if location is not None:
        from keyless.ca.pkcs11 import generate_token_key

        def make_key(curve: str) -> Any:
            return generate_token_key(location, curve)

    if args.ca_command == "tsa-init":
        result = init_tsa(args.out, name=args.name, now=now, curve=args.curve, make_key=make_key)
        print(f"made a TSA key and chain; chain in {result.chain_path}", file=sys.stderr)
    else:
        result = rotate_tsa(args.out, name=args.name, now=now, curve=args.curve, make_key=make_key)
        old_key = result.retired_key_path or "the old key in the token (its label is in tsa:)"
        print(
            f"made a new TSA key and chain; the old chain is in {args.out / 'retired'}: destroy "
            f"{old_key} once the new TSA serves (it could still sign times inside the old "
            "chain's window)",
            file=sys.stderr,
        )
    section: dict[str, Any] = {"chain": str(result.chain_path.resolve())}
    if result.key_path is not None:
        section["key"] = str(result.key_path.resolve())
    else:
        section |= _token_section(args, location.key_label)
    document: dict[str, Any] = {"tsa": section}
    if result.retired_chain_path is not None and result.retired_start is not None:
        # Timestamps the old TSA makes until the new one serves must keep verifying: a day
        # covers a careful rollout; shorten it if yours is.
        end = now.replace(microsecond=0) + timedelta(days=1)
        document["retired-trust"] = [
            {
                "tsa-chain": str(result.retired_chain_path.resolve()),
                "url": f"{args.public_url.rstrip('/')}/api/v1/timestamp",
                "start": format_rfc3339(result.retired_start, whole_seconds=True),
                "end": format_rfc3339(end, whole_seconds=True),
            }
        ]
    print("# server.yaml")
    print(yaml.safe_dump(document, sort_keys=False).rstrip())
    return 0


def _tsa_token(args: argparse.Namespace, now: datetime) -> TokenKey | None:
    """Where `tsa-init --pkcs11-module` makes the TSA key, or None for a key file."""
    from keyless.ca.pkcs11 import TokenKey

    token_flags = (args.token_label, args.slot, args.pin_env, args.pin_file, args.key_label)
    if args.pkcs11_module is None:
        if any(flag is not None for flag in token_flags):
            args.parser.error("--token-label, --slot, PIN and --key-label go with --pkcs11-module")
        return None
    if (args.token_label is None) == (args.slot is None):
        args.parser.error("--pkcs11-module needs --token-label or --slot")
    if not (args.pin_env or args.pin_file):
        args.parser.error("--pkcs11-module needs --pin-env or --pin-file")
    default = (
        "keyless-tsa" if args.ca_command == "tsa-init" else f"keyless-tsa-{now:%Y%m%dT%H%M%SZ}"
    )
    return TokenKey(
        module=args.pkcs11_module,
        key_label=args.key_label or default,
        token_label=args.token_label,
        slot=args.slot,
        pin_env=args.pin_env,
        pin_file=args.pin_file,
    )


def _token_section(args: argparse.Namespace, key_label: str) -> dict[str, Any]:
    """The `pkcs11-*` lines of a config section (`ca:`, `tsa:`) for a key made in a token."""
    section: dict[str, Any] = {"pkcs11-module": str(args.pkcs11_module)}
    if args.token_label is not None:
        section["pkcs11-token-label"] = args.token_label
    else:
        section["pkcs11-slot"] = args.slot
    section["pkcs11-key-label"] = key_label
    if args.pin_env:
        section["pkcs11-pin-env"] = args.pin_env
    else:
        section["pkcs11-pin-file"] = str(args.pin_file.resolve())
    return section


def _store(args: argparse.Namespace) -> KeyStore:
    import os

    from keyless.ca.ceremony import KeyStore
    from keyless.ca.pkcs11 import TokenKey

    if args.password_env:
        if args.token_label or args.slot is not None or args.pin_env or args.pin_file:
            args.parser.error("--token-label, --slot and PIN flags go with --pkcs11-module")
        password = os.environ.get(args.password_env)
        if not password:
            args.parser.error(f"environment variable {args.password_env} is not set")
        return KeyStore(password=password.encode())
    if (args.token_label is None) == (args.slot is None):
        args.parser.error("--pkcs11-module needs --token-label or --slot")
    if not (args.pin_env or args.pin_file):
        args.parser.error("--pkcs11-module needs --pin-env or --pin-file")
    return KeyStore(
        token=TokenKey(
            module=args.pkcs11_module,
            key_label=args.root_label,
            token_label=args.token_label,
            slot=args.slot,
            pin_env=args.pin_env,
            pin_file=args.pin_file,
        )
    )


def _config(args: argparse.Namespace, result: CeremonyResult, now: datetime) -> str:
    import yaml

    section: dict[str, Any] = {"chain": str(result.chain_path.resolve())}
    if result.key_path is not None:
        section |= {
            "backend": "file",
            "key": str(result.key_path.resolve()),
            "key-password-env": args.password_env,
        }
    else:
        assert result.key_label is not None
        section = {"backend": "pkcs11", **section, **_token_section(args, result.key_label)}
    document: dict[str, Any] = {"ca": section}
    if result.retired_chain_path is not None and result.retired_start is not None:
        # The old intermediate may issue until the new chain is deployed; certificates it issued
        # then live 15 minutes at most. A day covers a careful rollout; shorten it if yours is.
        end = now.replace(microsecond=0) + timedelta(days=1)
        document["retired-trust"] = [
            {
                "ca-chain": str(result.retired_chain_path.resolve()),
                "url": args.public_url,
                "start": format_rfc3339(result.retired_start, whole_seconds=True),
                "end": format_rfc3339(end, whole_seconds=True),
            }
        ]
    return yaml.safe_dump(document, sort_keys=False).rstrip()

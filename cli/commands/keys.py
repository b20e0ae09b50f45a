"""`keyless generate-key-pair`, `import-key-pair` and `public-key`: cosign's key files.

The files are cosign's, byte for byte in format: `<prefix>.key` is an `ENCRYPTED SIGSTORE
PRIVATE KEY` (scrypt + NaCl secretbox over PKCS#8, `client.keys.encrypted`), mode 0600, and
`<prefix>.pub` the PKIX `PUBLIC KEY` PEM. So `cosign sign --key` takes keyless's key files and
`keyless sign --key` takes cosign's. With `--kms awskms://...` the key is made in AWS KMS
instead (`client.keys.awskms.create_awskms_key`) and only `<prefix>.pub` is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from keyless.cli.commands import _keys
from keyless.cli.main import CLIError

PASSWORD_NOTE = (
    "The password comes from $COSIGN_PASSWORD when it is set (even empty), else a prompt on "
    "the terminal, else all of standard input."
)


def add_parser(subparsers: Any) -> None:
    generate = subparsers.add_parser(
        "generate-key-pair",
        help="make an ECDSA P-256 key pair in cosign's format (cosign.key, cosign.pub)",
        description="Generate an ECDSA P-256 key pair: <prefix>.key, encrypted with a "
        "password in cosign's format (mode 0600), and <prefix>.pub, the PEM public key. "
        + PASSWORD_NOTE,
    )
    generate.add_argument(
        "--output-key-prefix",
        default="cosign",
        metavar="PREFIX",
        help="write PREFIX.key and PREFIX.pub (default cosign)",
    )
    generate.add_argument(
        "--kms",
        metavar="URI",
        help="create the key in AWS KMS instead, under an alias (awskms://[ENDPOINT]/alias/NAME; "
        "an alias that already names a key keeps it), and write only PREFIX.pub",
    )
    _add_yes(generate)
    generate.set_defaults(run=run_generate, usage_error=generate.error)

    imported = subparsers.add_parser(
        "import-key-pair",
        help="encrypt an existing PEM private key into cosign's format",
        description="Read an unencrypted PEM private key (RSA PRIVATE KEY, EC PRIVATE KEY or "
        "PRIVATE KEY) and write it as <prefix>.key in cosign's encrypted format, with "
        "<prefix>.pub. " + PASSWORD_NOTE,
    )
    imported.add_argument("--key", required=True, metavar="PEM", help="the PEM private key")
    imported.add_argument(
        "-o",
        "--output-key-prefix",
        default="import-cosign",
        metavar="PREFIX",
        help="write PREFIX.key and PREFIX.pub (default import-cosign)",
    )
    _add_yes(imported)
    imported.set_defaults(run=run_import, usage_error=imported.error)

    public = subparsers.add_parser(
        "public-key",
        help="print the public key of a private key reference",
        description="Print the PEM public key of a private key: a cosign key file or "
        "env://VAR. " + PASSWORD_NOTE,
    )
    public.add_argument("--key", required=True, metavar="REF", help="the private key reference")
    public.add_argument("--outfile", type=Path, metavar="FILE", help="write it here, not stdout")
    public.set_defaults(run=run_public_key, usage_error=public.error)


def _add_yes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-y", "--yes", action="store_true", help="overwrite existing key files without asking"
    )


def run_generate(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric import ec

    from keyless.client.keys.algorithms import public_pem
    from keyless.client.keys.encrypted import encrypt_private_key

    if args.kms is not None:
        return _generate_in_kms(args)
    _keys.check_overwrite(_keys.key_pair_paths(args.output_key_prefix), yes=args.yes)
    password = _keys.key_password(confirm=True)
    key = ec.generate_private_key(ec.SECP256R1())
    _keys.write_key_pair(
        args.output_key_prefix, encrypt_private_key(key, password), public_pem(key.public_key())
    )
    return 0


def _generate_in_kms(args: argparse.Namespace) -> int:
    """`generate-key-pair --kms`: the key is made in KMS; its public key is written."""
    from keyless.client.keys import KeyReferenceError
    from keyless.client.keys.algorithms import public_pem
    from keyless.client.keys.awskms import create_awskms_key

    if not args.kms.startswith("awskms://"):
        args.usage_error(
            "--kms takes an awskms:// key reference (keys in other KMS are not supported yet)"
        )
    public_path = _keys.key_pair_paths(args.output_key_prefix)[1]
    _keys.check_overwrite([public_path], yes=args.yes)
    try:
        public_key, created = create_awskms_key(args.kms)
    except KeyReferenceError as exc:
        args.usage_error(exc.message)
    if not created:
        print(f"{args.kms} already names a key in KMS; its public key is kept", file=sys.stderr)
    _keys.write_public_key(public_path, public_pem(public_key))
    return 0


def run_import(args: argparse.Namespace) -> int:
    from keyless.client.keys.algorithms import public_pem
    from keyless.client.keys.encrypted import encrypt_private_key
    from keyless.client.keys.imports import load_importable_key
    from keyless.client.keys.pem import MAX_KEY_FILE_BYTES

    try:
        with Path(args.key).open("rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        args.usage_error(f"cannot read {args.key}: {exc.strerror}")
    key = load_importable_key(data, source=args.key)
    _keys.check_overwrite(_keys.key_pair_paths(args.output_key_prefix), yes=args.yes)
    password = _keys.key_password(confirm=True)
    _keys.write_key_pair(
        args.output_key_prefix, encrypt_private_key(key, password), public_pem(key.public_key())
    )
    return 0


def run_public_key(args: argparse.Namespace) -> int:
    from keyless.client.keys.algorithms import public_pem

    pem = public_pem(_keys.signer(args, args.key).public_key)
    if args.outfile is None:
        sys.stdout.write(pem.decode())
        return 0
    try:
        args.outfile.write_bytes(pem)
    except OSError as exc:
        raise CLIError(f"cannot write {args.outfile}: {exc.strerror}") from exc
    print(f"Public key written to {args.outfile}", file=sys.stderr)
    return 0

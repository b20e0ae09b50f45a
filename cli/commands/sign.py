"""`keyless sign`: sign a file, a `sha256:` digest or an image with an OIDC identity, no key to
manage; or, with `--key`, with a long-lived key (a cosign key file or `env://VAR`), logged in the
transparency log unless `--no-tlog-upload`."""

from __future__ import annotations

import argparse
import errno
import hashlib
import os
import re
import sys
from pathlib import Path
from typing import Any

from keyless.cli.commands import _images
from keyless.cli.main import CLIError

_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_CHUNK = 1024 * 1024


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sign",
        help="sign a file or a digest as your OIDC identity",
        description=(
            "Get a short-lived certificate for an ephemeral key from the CA, sign, log the "
            "signature in the transparency log, and write a Sigstore bundle."
        ),
    )
    parser.add_argument(
        "target",
        help="a file, sha256:<hex> to sign a digest, or an image (registry/repo:tag or @digest)",
    )
    parser.add_argument(
        "--bundle",
        type=Path,
        help="where to write the bundle (default <file>.sigstore.json; for an image, the "
        "bundle of the manifest it names, written only when this is given)",
    )
    # Required, except for a key signature that is not logged (checked in `run`).
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--server", help="the keyless server (CA and log on one origin)")
    where.add_argument("--signing-config", type=Path, help="a Sigstore SigningConfig file")
    where.add_argument("--trust-config", type=Path, help="a Sigstore ClientTrustConfig file")
    parser.add_argument(
        "--trusted-root",
        type=Path,
        help="with --signing-config: verify the new bundle against this root",
    )
    add_rekor_version_argument(
        parser,
        default="the highest the signing config offers; for an image, 1",
        note="an image then gets no cosign v2 legacy .sig tag (it needs v1's signed entry "
        "timestamp)",
    )
    parser.add_argument(
        "--refresh-trust",
        action="store_true",
        help="with --server: forget the trust kept for this server (its TUF root, trusted on "
        "first use and followed through signed updates since) and trust its current one; only "
        "after its operator confirms a new deployment",
    )
    add_key_arguments(parser)
    token = parser.add_argument_group("identity token (tried in this order)")
    token.add_argument(
        "--identity-token",
        metavar="TOKEN",
        help="an OIDC token, or @FILE to read one; default: $SIGSTORE_ID_TOKEN, then ambient CI "
        "credentials (GitHub Actions, GitLab, Buildkite, CircleCI, GCP), then a browser login",
    )
    token.add_argument(
        "--oidc-issuer", help="issuer for the interactive login (default: the server's)"
    )
    token.add_argument(
        "--oidc-client-id", default="sigstore", help="client ID / audience (default sigstore)"
    )
    token.add_argument(
        "--oauth-force-oob",
        action="store_true",
        help="log in with the device flow (no browser redirect)",
    )
    _images.add_sign_arguments(parser)
    parser.set_defaults(run=run, parser=parser)


def add_key_arguments(parser: argparse.ArgumentParser) -> None:
    """`--key REF` and `--tlog-upload/--no-tlog-upload`, for every signing command."""
    keys = parser.add_argument_group("long-lived keys (instead of an identity)")
    keys.add_argument(
        "--key",
        metavar="REF",
        help="sign with this key: a cosign key file (ENCRYPTED SIGSTORE PRIVATE KEY) or "
        "env://VAR; the password from $COSIGN_PASSWORD, a prompt, or standard input",
    )
    keys.add_argument(
        "--tlog-upload",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --key: log the signature in the transparency log (default: on, as cosign); "
        "--no-tlog-upload writes a bundle with no log entry, which verifies only with "
        "--insecure-ignore-tlog or a policy that ignores the log",
    )


def check_key_arguments(args: argparse.Namespace) -> None:
    """Usage errors shared by the signing commands: which flags `--key` needs and excludes."""
    if args.key is None and not args.tlog_upload:
        args.parser.error(
            "--no-tlog-upload applies to --key (keyless signatures are always logged)"
        )
    if not (args.server or args.signing_config or args.trust_config) and (
        args.key is None or args.tlog_upload
    ):
        args.parser.error(
            "one of the arguments --server --signing-config --trust-config is required"
        )
    if args.key is not None and (args.identity_token or args.oidc_issuer or args.oauth_force_oob):
        args.parser.error("--key signs with a long-lived key; identity token flags do not apply")


def add_rekor_version_argument(
    parser: argparse.ArgumentParser, *, default: str, note: str = ""
) -> None:
    """`--rekor-version 1|2`, as sigstore-python spells it, for every signing command."""
    parser.add_argument(
        "--rekor-version",
        type=int,
        choices=(1, 2),
        help=f"the Rekor log API to sign into (default: {default}). With 2 the signature is "
        "first timestamped at the signing config's TSA" + (f"; {note}" if note else ""),
    )


def command_signer(args: argparse.Namespace, *, rekor_version: int | None) -> Any:
    """The `EphemeralSigner` of one signing command: the services its signing config offers
    (the log chosen by `rekor_version`, None for the highest), its token and trusted root."""
    from keyless.client.sign.signer import new_signer

    endpoints, token, trusted_root = _inputs(args, rekor_version=rekor_version)
    return new_signer(endpoints, token=token, trusted_root=trusted_root)


def run(args: argparse.Namespace) -> int:
    from keyless.client.sign.signer import UnverifiedBundleError

    if args.refresh_trust and not args.server:
        args.parser.error("--refresh-trust applies to --server")
    check_key_arguments(args)
    image = _images.image_reference(args.target)
    if args.key is not None:
        from keyless.cli.commands import _sign_key

        return _sign_key.run(args, image)
    if image is not None:
        try:
            # Images stay on v1 unless asked: cosign v2's legacy tag needs a v1 entry.
            version = args.rekor_version or 1
            make_signer = _images.keyless_signer(lambda: _inputs(args, rekor_version=version))
            bundle_json = _images.sign(args, image, make_signer=make_signer)
        except UnverifiedBundleError as exc:
            raise _keep(exc, beside=args.bundle) from exc
        if args.bundle is not None:
            _write(args.bundle, bundle_json)
        return 0
    sha256, bundle_path = _target(args)
    signer = command_signer(args, rekor_version=args.rekor_version)
    try:
        result = signer.sign_digest(sha256)
    except UnverifiedBundleError as exc:
        raise _keep(exc, beside=bundle_path) from exc
    _write(bundle_path, result.to_json())
    print(
        f"signed {args.target} as {result.identity} (issuer {result.issuer}), "
        f"log index {result.log_index}; bundle written to {bundle_path}",
        file=sys.stderr,
    )
    return 0


def _inputs(args: argparse.Namespace, *, rekor_version: int | None) -> tuple[Any, str, Any]:
    """The services, token and trusted root of one signing (images call this after resolving).

    `rekor_version` None takes the highest log version the signing config offers. A keyless
    server's trusted root and signing config are both TUF targets of its repository, verified
    in one refresh before any login, certificate or log entry: a server that is no longer the
    one trusted, or a signing config altered on the way, is refused while nothing has happened.
    A token given or ambient is taken first (it needs no server); an interactive login comes
    last, at the issuer the verified signing config names.
    """
    from keyless.client import services
    from keyless.client.trust.tuf import fetch_server_trust

    if args.server:
        given = _given_token(args)
        kept = fetch_server_trust(args.server, refresh_trust=args.refresh_trust)
        endpoints = services.from_server_trust(kept, args.server, rekor_version=rekor_version)
        return endpoints, given or _login(args, endpoints), kept.trusted_root
    if args.trust_config:
        endpoints = services.from_trust_config(args.trust_config, rekor_version=rekor_version)
    else:
        endpoints = services.from_signing_config(args.signing_config, rekor_version=rekor_version)
    return endpoints, _given_token(args) or _login(args, endpoints), _trusted_root(args)


def _target(args: argparse.Namespace) -> tuple[bytes, Path]:
    match = _DIGEST.fullmatch(args.target)
    if match:
        if args.bundle is None:
            args.parser.error("signing a digest needs --bundle FILE")
        return bytes.fromhex(match.group(1)), args.bundle
    if args.target.startswith("sha256:"):
        args.parser.error("a digest must be sha256: followed by 64 lowercase hex characters")
    path = Path(args.target)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror}") from exc
    return digest.digest(), args.bundle or path.with_name(path.name + ".sigstore.json")


def _given_token(args: argparse.Namespace) -> str | None:
    """The token given (option, file or environment) or ambient in CI; None to log in."""
    from keyless.oidc import acquire

    return acquire.explicit_token(args.identity_token) or acquire.ambient_token(args.oidc_client_id)


def _login(args: argparse.Namespace, endpoints: Any) -> str:
    """An interactive login at --oidc-issuer, else at the issuer the signing config names."""
    from keyless.oidc import acquire

    issuer = args.oidc_issuer or endpoints.oidc_url
    if issuer is None:
        raise CLIError(
            "no identity token: none given, none in the environment, and no issuer to log in at",
            hint="pass --identity-token, set SIGSTORE_ID_TOKEN, or give --oidc-issuer",
        )
    return acquire.interactive_token(
        issuer=issuer, client_id=args.oidc_client_id, force_oob=args.oauth_force_oob
    )


def _trusted_root(args: argparse.Namespace) -> Any:
    """The root a --trust-config or --trusted-root gives (a --server's comes through TUF)."""
    from keyless.client import trust

    if args.trust_config:
        return trust.load_trust_config(args.trust_config)
    if args.trusted_root:
        return trust.load_trusted_root(args.trusted_root)
    return None


def _keep(exc: Any, *, beside: Path | None) -> CLIError:
    """Save a logged bundle that failed its post-signing check where the user can find it.

    Never at the bundle's own path, where a pipeline would take it for a good one: beside it
    with `.unverified` appended, or (an image signed without --bundle) in the XDG data
    directory; never over an earlier one (a numbered name instead). If even that fails, the
    bundle goes to stdout: a logged signature is not lost.
    """
    from datetime import UTC, datetime

    if beside is not None:
        wanted = beside.with_name(beside.name + ".unverified")
    else:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-log-{exc.result.log_index}.sigstore.json"
        wanted = Path(base) / "keyless" / "unverified-bundles" / name
    text = exc.result.to_json()
    try:
        wanted.parent.mkdir(parents=True, exist_ok=True)
        kept = _write_new(wanted, text)
    except OSError as failure:
        print(text)
        return CLIError(
            f"{exc.message}; the bundle could not be saved in {wanted} ({failure.strerror}), "
            "so it is printed on stdout",
            hint=exc.hint,
        )
    return CLIError(f"{exc.message}; the bundle is saved in {kept}", hint=exc.hint)


def _write_new(path: Path, text: str) -> Path:
    """Write `text` whole to `path`, or to `path.1`, `path.2`... if taken; returns where."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    try:
        for number in range(1000):
            candidate = path if number == 0 else path.with_name(f"{path.name}.{number}")
            try:
                os.link(temporary, candidate)  # fails if the name is taken, never overwrites
            except FileExistsError:
                continue
            return candidate
        raise FileExistsError(errno.EEXIST, "too many unverified bundles", str(path))
    finally:
        temporary.unlink()


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(text)
        temporary.replace(path)
    except OSError as exc:
        raise CLIError(f"cannot write the bundle to {path}: {exc.strerror}") from exc

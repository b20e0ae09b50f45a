"""`keyless audit`: list the certificates a CA issued for an identity or issuer, from its CT log,
with the signature-log entries made under each, in its Rekor v1 log (searched by key) and its
Rekor v2 logs (read whole from their tiles).

Exit codes: 0 listed (possibly nothing), 1 a log's answers contradict what it signed, 2 usage,
3 a log or its trust could not be reached.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from keyless.cli.main import UndecidedError, UsageError
from keyless.core.encoding import format_rfc3339

if TYPE_CHECKING:
    from keyless.client.transparency.audit import AuditResult
    from keyless.client.transparency.tiles import TileLog
    from keyless.client.trust import LogKey, TrustedRoot

MAX_WARNED_ENTRIES = 20


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="list what the CA issued for an identity or issuer, and what was signed with it",
        description=(
            "Read the CA's certificate-transparency log (every certificate it issued is logged "
            "there before it is issued), list the certificates for the given identities or "
            "issuers, and for each the signature-log entries made with it: searched by key in "
            "the Rekor v1 log, and matched while reading every entry of each Rekor v2 log from "
            "its tiles (each entry proven in the log's signed checkpoint). A CT read from entry "
            "0 also checks that the entries hash up to the CT log's signed tree head."
        ),
    )
    parser.add_argument(
        "--server",
        metavar="URL",
        help="a keyless server: its CT log at URL/ct, its signature logs, its published trust",
    )
    parser.add_argument(
        "--ct-url",
        metavar="URL",
        help="an RFC 6962 CT log's prefix (its endpoints are URL/ct/v1/...), instead of --server",
    )
    parser.add_argument("--rekor-url", metavar="URL", help="the Rekor v1 log to search")
    parser.add_argument(
        "--rekor-v2-url",
        action="append",
        default=[],
        metavar="URL",
        help=(
            "a Rekor v2 log to read, by its base URL in the trusted root (repeatable); "
            "default with --server: the v2 logs its trusted root lists for it"
        ),
    )
    parser.add_argument(
        "--tiles-url",
        metavar="URL",
        help="read the one Rekor v2 log's tiles from this mirror (URL/checkpoint, URL/tile/...)",
    )
    parser.add_argument(
        "--trusted-root",
        metavar="FILE",
        help="the trusted root that lists the logs' keys (instead of the server's)",
    )
    parser.add_argument("--identity", action="append", default=[], metavar="ID")
    parser.add_argument(
        "--identity-regexp",
        action="append",
        default=[],
        metavar="RE",
        help="anchored (re.fullmatch); repeatable, as --identity and --issuer are",
    )
    parser.add_argument("--issuer", action="append", default=[], metavar="URL")
    parser.add_argument("--since", type=_moment, metavar="TIME", help="ISO 8601, e.g. 2026-11-01")
    parser.add_argument("--until", type=_moment, metavar="TIME", help="ISO 8601")
    parser.add_argument("--from-index", type=int, default=0, metavar="N")
    parser.add_argument("--max-entries", type=int, default=100_000, metavar="N")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    parser.set_defaults(run=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    from keyless.client.errors import ClientError, NetworkError
    from keyless.client.transparency.audit import Auditor, LogIntegrityError, Selector

    if not (args.server or args.ct_url):
        args.parser.error("give --server, or --ct-url with --trusted-root")
    if args.ct_url and not args.trusted_root:
        args.parser.error("--ct-url needs --trusted-root (the file that lists its key)")
    if args.from_index < 0 or args.max_entries < 1:
        args.parser.error("--from-index must be >= 0 and --max-entries > 0")
    # An RFC 6962 log prefix: its endpoints are PREFIX/ct/v1/...; keyless serves its CT log
    # at the origin's /ct/v1/ and lists it in its trusted root as ORIGIN/ct.
    ct_url = (args.ct_url or args.server).rstrip("/")
    log_url = args.rekor_url or args.server
    try:
        selector = Selector.build(
            args.identity,
            args.identity_regexp,
            args.issuer,
            since=args.since,
            until=args.until,
        )
        root, server_tile_urls = _trusted_root(args)
        auditor = Auditor(
            ct_url=ct_url,
            ct_keys=_ct_keys(root, args, ct_url),
            log_url=log_url,
            tile_logs=_tile_logs(root, args, server_tile_urls),
        )
        result = auditor.run(
            selector,
            from_index=args.from_index,
            max_entries=args.max_entries,
            progress=lambda what, done, total: print(
                f"read {done}/{total} {what} entries", file=sys.stderr
            ),
        )
    except LogIntegrityError:
        raise  # exit 1: the log lied
    except NetworkError as exc:
        raise UndecidedError(exc.message, reason=exc.reason, hint=exc.hint) from exc
    except ClientError as exc:
        raise UsageError(exc.message, reason=exc.reason, hint=exc.hint) from exc
    _report(result, args.output)
    return 0


def _report(result: AuditResult, output: str) -> None:
    import json

    if result.unreadable:
        shown = ", ".join(str(index) for index in result.unreadable[:10])
        print(
            f"warning: {len(result.unreadable)} CT entries hold no certificate keyless can read "
            f"(indexes {shown}): they were not matched",
            file=sys.stderr,
        )
    for entry in result.unreadable_entries[:MAX_WARNED_ENTRIES]:
        print(
            f"warning: {entry.log} entry {entry.log_index} of {entry.log_url} is not matched: "
            f"{entry.reason}",
            file=sys.stderr,
        )
    if len(result.unreadable_entries) > MAX_WARNED_ENTRIES:
        print(
            f"warning: {len(result.unreadable_entries) - MAX_WARNED_ENTRIES} more signature-log "
            "entries are not matched (all are listed with -o json)",
            file=sys.stderr,
        )
    if output == "json":
        print(json.dumps(result.to_json()))
        return
    for cert in result.certificates:
        names = ", ".join(cert.identities) or "no identity"
        print(
            f"{format_rfc3339(cert.logged)} CT {cert.ct_index} "
            f"serial {cert.serial}: {names} ({cert.issuer or 'no issuer extension'}), "
            f"{cert.key_algorithm}"
        )
        for entry in cert.entries:
            signer = "certificate" if entry.verifier == "x509Certificate" else "bare key"
            print(
                f"  {entry.log} entry {entry.log_index} ({entry.kind}, {signer}) {entry.entry_id}"
            )
    checked = (
        "every entry checked against the signed tree head"
        if result.root_verified
        else "partial read: not checked against the signed tree head"
    )
    print(
        f"{len(result.certificates)} certificates in CT entries {result.scanned_from}.."
        f"{result.scanned_to - 1} of {result.tree_size} ({checked})",
        file=sys.stderr,
    )
    for log in result.signature_logs:
        how = (
            "searched by each certificate's key"
            if log.tree_size is None
            else f"all {log.tree_size} entries read, each proven in its signed checkpoint"
        )
        print(f"{log.log} log at {log.url}: {how}", file=sys.stderr)


def _trusted_root(args: argparse.Namespace) -> tuple[TrustedRoot, set[str]]:
    """The trusted root, and with --server the tile logs that server runs."""
    from keyless.client.transparency.tiles import server_tile_log_urls
    from keyless.client.trust import load_trusted_root
    from keyless.client.trust.tuf import fetch_server_trust

    if args.trusted_root:
        return load_trusted_root(args.trusted_root), set()
    trust = fetch_server_trust(args.server)
    return trust.trusted_root, server_tile_log_urls(args.server, trust)


def _ct_keys(root: TrustedRoot, args: argparse.Namespace, ct_url: str) -> list[LogKey]:
    names = {ct_url} if args.ct_url else {ct_url, f"{ct_url}/ct"}
    return [key for key in root.ctlogs.values() if key.base_url.rstrip("/") in names]


def _tile_logs(
    root: TrustedRoot, args: argparse.Namespace, server_tile_urls: set[str]
) -> list[TileLog]:
    """The Rekor v2 logs to read: those named, else those the server runs (--server), else
    those the trusted root lists for the server with an Ed25519 key.

    Raises:
        ClientError: --tiles-url without exactly one log, or a named log the trusted root
            lists no v2 key for.
    """
    from keyless.client.errors import ClientError
    from keyless.client.transparency.tiles import TileLog, is_tile_log_key

    if args.rekor_v2_url:
        urls = [url.rstrip("/") for url in args.rekor_v2_url]
    elif server_tile_urls:
        urls = sorted(server_tile_urls)
    elif args.server:
        server = args.server.rstrip("/")
        urls = sorted(
            {
                key.base_url.rstrip("/")
                for key in root.tlogs.values()
                if key.base_url.rstrip("/") == server and is_tile_log_key(key)
            }
        )
    else:
        urls = []
    urls = list(dict.fromkeys(urls))
    if args.tiles_url and len(urls) != 1:
        raise ClientError(
            f"--tiles-url names a mirror of one Rekor v2 log, and {len(urls)} are to be read"
        )
    return [
        TileLog(
            url,
            [key for key in root.tlogs.values() if key.base_url.rstrip("/") == url],
            tiles_url=args.tiles_url,
        )
        for url in urls
    ]


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

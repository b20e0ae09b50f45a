"""`keyless audit`: list the certificates a CA issued for an identity or issuer, from its CT log,
with the signature-log entries made under each and what each signed, in its Rekor v1 log
(searched by key, each entry found proven) and its Rekor v2 logs (read whole from their tiles).

Exit codes: 0 listed (possibly nothing), 1 a log's answers contradict what it signed (or a
Rekor v1 entry its index names does not prove: the rest is still listed), 2 usage, 3 a log or
its trust could not be reached.
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
    from keyless.client.transparency.rekor_v1 import RekorLog
    from keyless.client.transparency.tiles import TileLog
    from keyless.client.trust import TrustedRoot

MAX_WARNED_ENTRIES = 20


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="list what the CA issued for an identity or issuer, and what was signed with it",
        description=(
            "Read the CA's certificate-transparency log (every certificate it issued is logged "
            "there before it is issued), each entry proven in its signed tree head, list the "
            "certificates for the given identities or issuers, and for each the signature-log "
            "entries made with it and what each signed: searched by key in the Rekor v1 log "
            "(each entry found proven in the log's signed checkpoint; one that does not prove "
            "is named and the exit code is 1), and matched while reading every entry of each "
            "Rekor v2 log from its tiles (each entry proven in the log's signed checkpoint)."
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
    parser.add_argument(
        "--rekor-url",
        metavar="URL",
        help="the Rekor v1 log to search, by its base URL in the trusted root",
    )
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
    from keyless.client.transparency.ct import CTLog, ct_log_keys

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
        tile_logs = _tile_logs(root, args, server_tile_urls)
        auditor = Auditor(
            ct=CTLog(ct_url, ct_log_keys(root, ct_url)),
            rekor=_rekor_log(root, log_url),
            tile_logs=tile_logs,
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
    for entry in result.unproven_entries[:MAX_WARNED_ENTRIES]:
        index = "" if entry.log_index is None else f" {entry.log_index}"
        print(
            f"error: rekor-v1 entry{index} ({entry.entry_id}) of {entry.log_url} does not "
            f"prove: {entry.reason}",
            file=sys.stderr,
        )
    if len(result.unproven_entries) > MAX_WARNED_ENTRIES:
        print(
            f"error: {len(result.unproven_entries) - MAX_WARNED_ENTRIES} more entries do not "
            "prove (all are listed with -o json)",
            file=sys.stderr,
        )
    return 1 if result.unproven_entries else 0


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
                f"  {entry.log} entry {entry.log_index} ({entry.kind}, {signer}) "
                f"{entry.entry_id}: {entry.signed.describe()}"
            )
    print(
        f"{len(result.certificates)} certificates in CT entries {result.scanned_from}.."
        f"{result.scanned_to - 1} of {result.tree_size} (each proven in the signed tree head)",
        file=sys.stderr,
    )
    for log in result.signature_logs:
        how = (
            "searched by each certificate's key, each entry found proven in its signed "
            f"checkpoint of size {log.tree_size}"
            if log.log == "rekor-v1"
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


def _rekor_log(root: TrustedRoot, log_url: str | None) -> RekorLog | None:
    """The Rekor v1 log to search, with the trusted root's (non-tile) keys for its URL.

    Raises:
        ClientError: the trusted root lists no Rekor v1 log at `log_url`.
    """
    from keyless.client.transparency.rekor_v1 import RekorLog
    from keyless.client.transparency.tiles import is_tile_log_key

    if log_url is None:
        return None
    url = log_url.rstrip("/")
    keys = [
        key
        for key in root.tlogs.values()
        if key.base_url.rstrip("/") == url and not is_tile_log_key(key)
    ]
    return RekorLog(url, keys)


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

"""`keyless monitor`: check that a log only grows, and report who signed as a watched identity.

Exit codes: 0 the log is consistent (findings, if any, were all expected), 1 the log
contradicted itself or the stored checkpoint (a fork or rollback: the state file is kept as
evidence), 2 usage, 3 the log or its trust could not be reached, 4 a watched identity was
certified by an issuer the watch list does not expect.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cli.monitor import RunResult
    from cli.trust import LogKey

PUBLIC_REKOR = "https://rekor.sigstore.dev"
EXIT_INCONSISTENT = 1
EXIT_UNREACHABLE = 3
EXIT_SUSPICIOUS = 4


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "monitor",
        help="verify a transparency log stays append-only and report watched identities",
        description=(
            "Fetch the log's signed checkpoint, prove it extends the one stored by the last "
            "run (a consistency proof), then read every entry added since and report those "
            "signed by a watched identity. Exit 1 if the log contradicts itself or an earlier "
            "checkpoint (a fork or rollback), 3 if it cannot be reached, 4 if a watched "
            "identity was certified by an issuer not given with --issuer. The first run trusts "
            "the current checkpoint and watches from there (--from-index scans history)."
        ),
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--server", metavar="URL", help="a keyless server: its log, with its published trust"
    )
    where.add_argument(
        "--rekor-url",
        metavar="URL",
        help=f"a Rekor v1 log (default {PUBLIC_REKOR}, with the shipped production root)",
    )
    parser.add_argument(
        "--trusted-root", metavar="FILE", help="the trusted root that lists the log's key"
    )
    parser.add_argument(
        "--state",
        metavar="FILE",
        type=Path,
        help="where the last verified checkpoint is kept (default: one file per log under "
        "$XDG_STATE_HOME/keyless/monitor)",
    )
    parser.add_argument(
        "--identity",
        action="append",
        default=[],
        metavar="ID",
        help="report entries signed by this exact identity (email or URI); repeatable",
    )
    parser.add_argument(
        "--identity-regexp",
        action="append",
        default=[],
        metavar="RE",
        help="report identities matching this regexp, anchored (re.fullmatch); repeatable",
    )
    parser.add_argument(
        "--issuer",
        action="append",
        default=[],
        metavar="URL",
        help="an issuer expected for watched identities; any other is suspicious; repeatable",
    )
    parser.add_argument(
        "--from-index", type=int, metavar="N", help="scan from this entry index instead"
    )
    parser.add_argument(
        "--max-entries",
        type=int,
        default=10_000,
        metavar="N",
        help="entries to read per run (default 10000); the next run continues",
    )
    parser.add_argument(
        "--follow", action="store_true", help="keep watching, one run every --interval"
    )
    parser.add_argument(
        "--interval", type=float, default=60.0, metavar="SECONDS", help="with --follow"
    )
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    parser.set_defaults(run=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    from cli.errors import ClientError, NetworkError
    from cli.monitor import LogInconsistencyError, LogMonitor, WatchList

    if args.max_entries < 1 or args.interval <= 0:
        args.parser.error("--max-entries and --interval must be positive")
    if args.from_index is not None and args.from_index < 0:
        args.parser.error("--from-index must not be negative")
    watch = WatchList.build(args.identity, args.identity_regexp, args.issuer)
    log_url = (args.server or args.rekor_url or PUBLIC_REKOR).rstrip("/")
    state_path = args.state or _default_state(log_url)
    try:
        monitor = LogMonitor(log_url, _log_keys(args, log_url))
        while True:
            result = _run_once(monitor, state_path, watch, args)
            _report(result, args.output)
            if not args.follow:
                break
            args.from_index = None
            time.sleep(args.interval)
    except LogInconsistencyError as exc:
        print(f"error: log inconsistency: {exc.message}", file=sys.stderr)
        print(f"hint: the last verified checkpoint is kept in {state_path}", file=sys.stderr)
        return EXIT_INCONSISTENT
    except NetworkError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except ClientError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 2
    suspicious = any(finding.kind != "watched-identity" for finding in result.findings)
    return EXIT_SUSPICIOUS if suspicious else 0


def _run_once(monitor: Any, state_path: Path, watch: Any, args: argparse.Namespace) -> RunResult:
    from cli.monitor import MonitorState, load_state, save_state

    state = load_state(state_path, log_url=monitor.log_url)
    if state is None and args.from_index is None:
        print(
            f"first run: trusting the log's current checkpoint; state kept in {state_path}",
            file=sys.stderr,
        )
    result = monitor.run(
        state,
        watch,
        from_index=args.from_index,
        max_entries=args.max_entries,
        progress=lambda done, total: print(f"read {done}/{total} entries", file=sys.stderr),
        checkpoint=lambda partial: save_state(state_path, partial),
    )
    save_state(state_path, MonitorState(monitor.log_url, result.head, result.scanned_to))
    if result.scanned_to < result.head.size:
        print(
            f"read entries {result.scanned_from}..{result.scanned_to - 1} of "
            f"{result.head.size}; the next run continues",
            file=sys.stderr,
        )
    return result


def _report(result: RunResult, output: str) -> None:
    import json

    if output == "json":
        print(json.dumps(result.to_json()))
        return
    grown = "" if result.previous is None else f" (was {result.previous.size})"
    print(f"log consistent at size {result.head.size}{grown}, root {result.head.root_hash.hex()}")
    for finding in result.findings:
        print(finding.describe())


def _log_keys(args: argparse.Namespace, log_url: str) -> list[LogKey]:
    from cli.trust import (
        fetch_server_trusted_root,
        load_trusted_root,
        production_trusted_root,
    )

    if args.trusted_root:
        root = load_trusted_root(args.trusted_root)
    elif args.server:
        root = fetch_server_trusted_root(args.server)
    else:
        root = production_trusted_root()
    return [key for key in root.tlogs.values() if key.base_url.rstrip("/") == log_url]


def _default_state(log_url: str) -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    name = hashlib.sha256(log_url.encode()).hexdigest()[:16]
    return Path(base) / "keyless" / "monitor" / f"{name}.json"

"""`keyless monitor`: check that logs only grow, and report who signed as a watched identity
(and, in a CA's CT log, who was issued a certificate as one).

`--server` watches every log the server's trusted root lists for it (its Rekor v1 log, its
Rekor v2 tile log and its CT log), each with its own state file. Exit codes, the worst over the
logs: 1 a log contradicted itself or the stored checkpoint (a fork or rollback: the state file
is kept as evidence), 4 a watched identity was certified by an issuer the watch list does not
expect or in a certificate no CA of the trusted root issued, 3 a log or its trust could not be
reached, 2 usage, 0 consistent.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyless.cli.main import CLIError, report

if TYPE_CHECKING:
    from keyless.client.errors import ClientError
    from keyless.client.transparency.monitor import RunResult

PUBLIC_REKOR = "https://rekor.sigstore.dev"
EXIT_INCONSISTENT = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_SUSPICIOUS = 4
# Which exit code wins when logs disagree.
_SEVERITY = (EXIT_INCONSISTENT, EXIT_SUSPICIOUS, EXIT_UNREACHABLE, EXIT_USAGE)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "monitor",
        help="verify transparency logs stay append-only and report watched identities",
        description=(
            "Fetch each log's signed checkpoint, prove it extends the one stored by the last "
            "run (a consistency proof), then read every entry added since and report those "
            "signed by a watched identity (in a CT log: each certificate issued to one). Rekor "
            "v1 and CT logs answer proofs; Rekor v2 logs serve tiles, from which the proofs "
            "are built and checked against the signed roots. "
            "Exit 1 if a log contradicts itself or an earlier checkpoint (a fork or rollback), "
            "4 if a watched identity was certified by an issuer not given with --issuer or "
            "in a certificate that does not chain to a CA of the trusted root (checked at "
            "its notBefore), 3 if a log cannot be reached (the worst over all logs). The "
            "first run trusts the current checkpoint and watches from there (--from-index "
            "scans history)."
        ),
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--server",
        metavar="URL",
        help="a keyless server: every log its trusted root lists for it (Rekor v1 and v2, CT)",
    )
    where.add_argument(
        "--rekor-url",
        metavar="URL",
        help=f"a Rekor v1 log (default {PUBLIC_REKOR}, with the shipped production root)",
    )
    where.add_argument(
        "--tiles-url",
        metavar="URL",
        help="a Rekor v2 (C2SP tlog-tiles) log read at URL, where its checkpoint and tile/ "
        "are (e.g. https://log.example/api/v2, or a mirror): the trusted root's tile log "
        "whose origin the checkpoint names",
    )
    where.add_argument(
        "--ct-url",
        metavar="URL",
        help="an RFC 6962 CT log's prefix (its endpoints are URL/ct/v1/...), listed in the "
        "trusted root as URL or URL/ct",
    )
    parser.add_argument(
        "--trusted-root", metavar="FILE", help="the trusted root that lists the logs' keys"
    )
    parser.add_argument(
        "--state",
        metavar="FILE",
        type=Path,
        help="where the last verified checkpoint is kept (default: one file per log under "
        "$XDG_STATE_HOME/keyless/monitor); with --server, FILE is the v1 log's, and the v2 "
        "and CT logs' are FILE with .v2 and .ct before its suffix",
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
        "--from-index",
        type=int,
        metavar="N",
        help="scan from this entry index instead (in each log)",
    )
    parser.add_argument(
        "--max-entries",
        type=int,
        default=10_000,
        metavar="N",
        help="entries to read per log and run (default 10000); the next run continues",
    )
    parser.add_argument(
        "--follow", action="store_true", help="keep watching, one run every --interval"
    )
    parser.add_argument(
        "--interval", type=float, default=60.0, metavar="SECONDS", help="with --follow"
    )
    parser.add_argument(
        "--witness",
        action="append",
        nargs=2,
        default=[],
        metavar=("KEY", "URL"),
        help="a witness to hold each log against: its cosignature/v1 verifier key (or a file "
        "holding it) and its URL; a checkpoint it cosigned that is not one history with the "
        "log's is reported with both checkpoints (exit 1); repeatable",
    )
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    parser.set_defaults(run=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    from keyless.client.errors import ClientError
    from keyless.client.verify import VerificationError

    if args.max_entries < 1 or args.interval <= 0:
        args.parser.error("--max-entries and --interval must be positive")
    if args.from_index is not None and args.from_index < 0:
        args.parser.error("--from-index must not be negative")
    try:
        from keyless.client.transparency.monitor import WatchList
        from keyless.client.transparency.witness_views import Witness
        from keyless.client.verify.witnesses import load_witness_key

        watch = WatchList.build(args.identity, args.identity_regexp, args.issuer)
        args.witnesses = [Witness(url, load_witness_key(key)) for key, url in args.witness]
        targets = _targets(args)
    except ClientError as exc:
        return _failed(exc)
    except VerificationError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    while True:
        codes = [_watch(monitor, state_path, watch, args) for monitor, state_path in targets]
        if not args.follow or any(code not in (0, EXIT_SUSPICIOUS) for code in codes):
            break
        args.from_index = None
        time.sleep(args.interval)
    return next((code for code in _SEVERITY if code in codes), 0)


def _watch(monitor: Any, state_path: Path, watch: Any, args: argparse.Namespace) -> int:
    """One run over one log: its report on stdout, its errors on stderr; the exit code."""
    from keyless.client.errors import ClientError
    from keyless.client.transparency.monitor import MATCH

    try:
        result = _run_once(monitor, state_path, watch, args)
    except ClientError as exc:
        return _failed(exc, state_path)
    _report(result, args.output)
    disagreement = _check_witnesses(monitor, result, args.witnesses)
    if disagreement is not None:
        return disagreement
    suspicious = any(finding.kind != MATCH for finding in result.findings)
    return EXIT_SUSPICIOUS if suspicious else 0


def _check_witnesses(monitor: Any, result: RunResult, witnesses: list[Any]) -> int | None:
    """Hold the log's checkpoint against each witness's; the exit code of the worst finding
    (None: every witness agrees or has nothing). A disagreement prints both checkpoints."""
    from keyless.client.errors import NetworkError
    from keyless.client.transparency.witness_views import WitnessDisagreementError, check_witness

    worst = None
    for witness in witnesses:
        try:
            view = check_witness(monitor, result.head, witness)
        except WitnessDisagreementError as exc:
            print(f"error: log inconsistency: {exc.message}", file=sys.stderr)
            print(f"the witness's checkpoint:\n{exc.theirs}", file=sys.stderr)
            print(f"the log's checkpoint:\n{exc.ours}", file=sys.stderr)
            return EXIT_INCONSISTENT
        except NetworkError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            worst = worst or EXIT_UNREACHABLE
            continue
        if view.head is None:
            print(
                f"witness {witness.url} has cosigned nothing of {monitor.log_url}",
                file=sys.stderr,
            )
        else:
            print(
                f"witness {witness.url} agrees: it cosigned {monitor.log_url} at size "
                f"{view.head.size}",
                file=sys.stderr,
            )
    return worst


def _failed(exc: ClientError, state_path: Path | None = None) -> int:
    """Say why a run failed, on stderr (the runs over other logs go on); its exit code."""
    from keyless.client.errors import NetworkError
    from keyless.client.transparency.monitor import LogInconsistencyError

    if isinstance(exc, LogInconsistencyError):
        hint = f"the last verified checkpoint is kept in {state_path}"
        report(CLIError(f"log inconsistency: {exc.message}", reason=exc.reason, hint=hint))
        return EXIT_INCONSISTENT
    report(exc)
    return EXIT_UNREACHABLE if isinstance(exc, NetworkError) else EXIT_USAGE


def _run_once(monitor: Any, state_path: Path, watch: Any, args: argparse.Namespace) -> RunResult:
    from keyless.client.transparency.monitor import MonitorState, load_state, save_state

    state = load_state(state_path, log_url=monitor.log_url)
    if state is None and args.from_index is None:
        print(
            f"first run of {monitor.log_url}: trusting the log's current checkpoint; state "
            f"kept in {state_path}",
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
            f"{result.head.size} of {monitor.log_url}; the next run continues",
            file=sys.stderr,
        )
    return result


def _report(result: RunResult, output: str) -> None:
    import json

    if output == "json":
        print(json.dumps(result.to_json()))
        return
    grown = "" if result.previous is None else f" (was {result.previous.size})"
    log = "CT" if result.rekor_version is None else f"Rekor v{result.rekor_version}"
    print(
        f"{log} log {result.log_url} consistent at size {result.head.size}{grown}, root "
        f"{result.head.root_hash.hex()}"
    )
    for finding in result.findings:
        print(finding.describe())
    groups: dict[tuple[str, str], list[int]] = {}
    for entry in result.unjudged:
        groups.setdefault((entry.reason, entry.detail), []).append(entry.log_index)
    for (reason, detail), indexes in groups.items():
        print(_describe_unjudged(reason, detail, indexes))


def _describe_unjudged(reason: str, detail: str, indexes: list[int]) -> str:
    from keyless.client.transparency.monitor import PUBLIC_KEY, UNKNOWN_KIND

    shown = ", ".join(str(index) for index in indexes[:20])
    if len(indexes) > 20:
        shown += f", … ({len(indexes) - 20} more)"
    count = f"{len(indexes)} {'entry' if len(indexes) == 1 else 'entries'}"
    if reason == PUBLIC_KEY:
        return f"not judged: {count} signed with a bare public key, no identity ({detail}): {shown}"
    if reason == UNKNOWN_KIND:
        return f"warning: {count} of kind {detail}, which the monitor cannot judge: {shown}"
    return f"warning: {count} the monitor cannot read ({detail}): {shown}"


def _targets(args: argparse.Namespace) -> list[tuple[Any, Path]]:
    """The logs to watch, each with its state file.

    Raises:
        ClientError: the trusted root lists no such log (NetworkError: unreachable).
    """
    from keyless.client.errors import ClientError
    from keyless.client.transparency.ct import CTLog, ct_log_keys
    from keyless.client.transparency.monitor import (
        CTLogMonitor,
        IssuanceCheck,
        LogMonitor,
        TileLogMonitor,
    )
    from keyless.client.transparency.tiles import (
        TileLog,
        is_tile_log_key,
        server_tile_log_urls,
        tile_log_at,
    )
    from keyless.client.trust import load_trusted_root, production_trusted_root
    from keyless.client.trust.tuf import fetch_server_trust

    tile_urls: set[str] = set()
    if args.trusted_root:
        root = load_trusted_root(args.trusted_root)
    elif args.server:
        trust = fetch_server_trust(args.server)
        root, tile_urls = trust.trusted_root, server_tile_log_urls(args.server, trust)
    else:
        root = production_trusted_root()
    keys = list(root.tlogs.values())
    issuance = IssuanceCheck(root)
    if args.tiles_url:
        monitor = TileLogMonitor(tile_log_at(args.tiles_url, keys), issuance)
        return [(monitor, args.state or _default_state(monitor.log_url))]
    if args.ct_url:
        ct = CTLogMonitor(CTLog(args.ct_url, ct_log_keys(root, args.ct_url)), issuance)
        return [(ct, args.state or _default_state(ct.log_url))]
    log_url = (args.server or args.rekor_url or PUBLIC_REKOR).rstrip("/")
    mine = [key for key in keys if key.base_url.rstrip("/") == log_url]
    v1_keys = [key for key in mine if not is_tile_log_key(key)]
    v2_keys = [key for key in mine if is_tile_log_key(key)]
    if not args.server and v2_keys and not v1_keys:
        raise ClientError(
            f"the trusted root lists a Rekor v2 log at {log_url}, not a v1 log",
            hint=f"watch it with --tiles-url {log_url}/api/v2",
        )
    targets: list[tuple[Any, Path]] = []
    if v1_keys or not v2_keys or not args.server:
        monitor = LogMonitor(log_url, v1_keys, issuance)
        targets.append((monitor, args.state or _default_state(log_url)))
    if args.server and (v2_keys or log_url in tile_urls):
        monitor = TileLogMonitor(TileLog(log_url, v2_keys or mine), issuance)
        state = args.state and args.state.with_name(f"{args.state.stem}.v2{args.state.suffix}")
        targets.append((monitor, state or _default_state(monitor.log_url)))
    ct_keys = ct_log_keys(root, log_url) if args.server else []
    if ct_keys:
        ct = CTLogMonitor(CTLog(log_url, ct_keys), issuance)
        state = args.state and args.state.with_name(f"{args.state.stem}.ct{args.state.suffix}")
        targets.append((ct, state or _default_state(ct.log_url)))
    return targets


def _default_state(log_url: str) -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    name = hashlib.sha256(log_url.encode()).hexdigest()[:16]
    return Path(base) / "keyless" / "monitor" / f"{name}.json"

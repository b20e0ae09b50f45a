"""The logs' witnesses as `server.yaml` (or `keyless serve --witness URL`) name them, turned into
the `tlog.witnessing.WitnessPolicy` every log of this server follows.

A witness given by URL only (dev mode) has its verifier key taken on first use from its
`GET /vkey` and kept in the state directory (`witness-keys.json`): later starts use the kept
key, so a witness that comes back under another key is not believed.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import requests

from keyless.server.config import ServerConfig
from keyless.server.state import StateDir, StateDirError
from keyless.tlog.cosignature import COSIGNATURE_V1, parse_vkey
from keyless.tlog.errors import CheckpointError
from keyless.tlog.witnessing import WitnessEndpoint, WitnessPolicy

KEYS_FILE = "witness-keys.json"
MAX_KEYS_FILE_BYTES = 256 * 1024
_logger = logging.getLogger(__name__)


def witness_policy(config: ServerConfig, state: StateDir) -> WitnessPolicy | None:
    """The logs' witness policy, or None without witnesses (or none whose key is known).

    Raises:
        StateDirError: the kept keys file is unreadable or names a key that is not one.
    """
    if not config.witnesses:
        return None
    kept = _read_kept(state.file(KEYS_FILE))
    endpoints = []
    learned = False
    for setting in config.witnesses:
        text = setting.key or kept.get(setting.url)
        if text is None:
            text = _first_use(setting.url)
            if text is None:
                continue
            kept[setting.url] = text
            learned = True
        try:
            key = parse_vkey(text)
        except CheckpointError as exc:
            raise StateDirError(
                f"the witness key for {setting.url} in {state.file(KEYS_FILE)} is not a "
                f"verifier key: {exc.message}"
            ) from exc
        endpoints.append(WitnessEndpoint(setting.url, key))
    if learned:
        _write_kept(state.file(KEYS_FILE), kept)
    if not endpoints:
        _logger.warning(
            "WARNING: no witness key known (none of %s answered GET /vkey): the logs run "
            "unwitnessed",
            ", ".join(s.url for s in config.witnesses),
        )
        return None
    threshold = min(config.witness_threshold, len(endpoints))
    return WitnessPolicy(
        tuple(endpoints), threshold=threshold, wait_seconds=config.witness_wait_seconds
    )


def _first_use(url: str) -> str | None:
    """The witness's verifier key from its `GET /vkey`, or None (and a warning)."""
    try:
        response = requests.get(f"{url}/vkey", timeout=5)
        text = response.content[:4096].decode("utf-8", "replace").strip()
        if response.status_code != 200:
            raise ValueError(f"HTTP {response.status_code}")
        key = parse_vkey(text)
        if key.kind != COSIGNATURE_V1:
            raise ValueError("not a cosignature/v1 key")
    except (requests.RequestException, ValueError, CheckpointError) as exc:
        _logger.warning("WARNING: cannot take the key of witness %s on first use: %s", url, exc)
        return None
    _logger.warning("witness %s: its key %s taken on first use (kept)", url, text)
    return text


def _read_kept(path: Path) -> dict[str, str]:
    try:
        data = path.read_bytes()[: MAX_KEYS_FILE_BYTES + 1]
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise StateDirError(f"cannot read the witness keys {path}: {exc.strerror}") from exc
    try:
        document = json.loads(data)
        if not isinstance(document, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in document.items()
        ):
            raise ValueError("not a mapping of URL to key")
    except ValueError as exc:
        raise StateDirError(
            f"the witness keys {path} are not a JSON mapping of URL to verifier key",
            hint="restore it from a backup of the state directory",
        ) from exc
    return document


def _write_kept(path: Path, kept: dict[str, str]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps(kept, indent=2, sort_keys=True).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)

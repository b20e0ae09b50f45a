"""`/healthz`: serving only when every service can do its job.

Not serving (503, with the reasons) when the state directory cannot be written (disk full,
read-only), a log's last group commit failed, a log's checkpoint file does not verify, or a
file the next restart or re-signing needs is gone: a key file (logs, TSA, CA, TUF roles,
development issuer) missing or no longer holding the key the server publishes, a certificate
chain file (CA, TSA) no longer holding the chain it publishes, or a log database, CA key or
password file missing. It is polled every few seconds, so each worker computes the answer at
most once per `TTL_SECONDS`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from flask import Flask, Response, jsonify

from keyless.server.state import StateDirError, read_private_key

TTL_SECONDS = 2.0
MAX_CHAIN_FILE_BYTES = 1024 * 1024
Probe = Callable[[], str | None]


@dataclass(frozen=True)
class KeyFile:
    """A private key file and the public key clients were given for it."""

    label: str
    path: Path
    public_key: Any


class Health:
    """The probes' problems, cached for `ttl` seconds (one computation at a time)."""

    def __init__(self, probes: Sequence[Probe], *, ttl: float = TTL_SECONDS) -> None:
        self._probes = tuple(probes)
        self._ttl = ttl
        self._lock = threading.Lock()
        self._checked = -float("inf")
        self._problems: list[str] = []

    def problems(self) -> list[str]:
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= self._ttl:
                self._problems = [p for p in (probe() for probe in self._probes) if p]
                self._checked = now
            return list(self._problems)


def init_app(app: Flask, health: Health) -> None:
    """Serve `health` at `/healthz`."""

    def healthz() -> tuple[Response, int]:
        problems = health.problems()
        if problems:
            return jsonify(status="NOT_SERVING", reasons=problems), 503
        return jsonify(status="SERVING"), 200

    app.add_url_rule("/healthz", "healthz", healthz, methods=["GET"])


def writable(directory: Path) -> Probe:
    """A probe that writes, syncs and removes a small file in `directory`."""

    def probe() -> str | None:
        path = directory / f".healthz-probe-{os.getpid()}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"probe\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            path.unlink()
        except OSError as exc:
            return f"the state directory {directory} cannot be written: {exc.strerror or exc}"
        return None

    return probe


def log_committing(name: str, log: Any) -> Probe:
    """A probe that fails while `log`'s (a `tlog.log.MerkleLog`) last group commit failed."""

    def probe() -> str | None:
        error = log.last_commit_error
        return f"the {name} cannot commit: {error}" if error else None

    return probe


def checkpoint_verifies(name: str, log: Any) -> Probe:
    """A probe that fails when `log`'s checkpoint file is missing or does not verify."""

    def probe() -> str | None:
        problem = log.check_kept()
        return f"{name}: {problem}" if problem else None

    return probe


def key_matches(key: KeyFile) -> Probe:
    """A probe that fails when `key.path` is missing, unreadable or holds another key."""
    published = _spki(key.public_key)

    def probe() -> str | None:
        if not key.path.exists():
            return f"the {key.label} key file {key.path} is missing"
        try:
            on_disk = read_private_key(key.path)
        except StateDirError as exc:
            return f"the {key.label} key: {exc.message}"
        if _spki(on_disk.public_key()) != published:
            return (
                f"the {key.label} key file {key.path} does not hold the key this server "
                "publishes (it was replaced)"
            )
        return None

    return probe


def _spki(public_key: Any) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def chain_matches(label: str, path: Path, chain: Sequence[x509.Certificate]) -> Probe:
    """A probe that fails when `path` is missing, unreadable or holds another chain than
    `chain` (the one the server publishes and a restart reads from there)."""
    published = [cert.public_bytes(serialization.Encoding.DER) for cert in chain]

    def probe() -> str | None:
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_CHAIN_FILE_BYTES + 1)
        except FileNotFoundError:
            return f"the {label} chain file {path} is missing"
        except OSError as exc:
            return f"the {label} chain file {path} cannot be read: {exc.strerror}"
        try:
            on_disk = x509.load_pem_x509_certificates(data)
        except ValueError:
            return f"the {label} chain file {path} is not a PEM certificate chain"
        if [cert.public_bytes(serialization.Encoding.DER) for cert in on_disk] != published:
            return (
                f"the {label} chain file {path} does not hold the chain this server publishes "
                "(it was replaced)"
            )
        return None

    return probe


def readable(label: str, path: Path) -> Probe:
    """A probe that fails when `path` (a file a restart reads) is missing or unreadable."""

    def probe() -> str | None:
        try:
            with open(path, "rb") as handle:
                handle.read(1)
        except FileNotFoundError:
            return f"the {label} {path} is missing"
        except OSError as exc:
            return f"the {label} {path} cannot be read: {exc.strerror}"
        return None

    return probe

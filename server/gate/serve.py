"""Serving the gate over HTTPS under gunicorn: one worker process, many threads.

One process, because the verification cache and its single-flight live in memory: several
workers would each verify every digest and wait for nothing the others do. gthread threads
answer admissions concurrently; verifications run in the gate's own pool, bounded by the
answer's deadline.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from keyless.core.errors import Error, Reason

LISTEN_BACKLOG = 2048


class GateBindError(Error):
    """The gate's address cannot be listened on."""

    reason = Reason.BIND_FAILED


def bind(host: str, port: int) -> socket.socket:
    """Bind and listen on exactly `host:port`, before anything is announced.

    Raises:
        GateBindError: the address is in use or not this machine's.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(LISTEN_BACKLOG)
    except OSError as exc:
        listener.close()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise GateBindError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    return listener


def _tmpfs() -> str | None:
    shm = "/dev/shm"  # noqa: S108 (gunicorn's documented choice for its heartbeat file)
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


class _GateGunicorn(BaseApplication):
    def __init__(
        self,
        build: Callable[[], Any],
        listener: socket.socket,
        *,
        cert: Path | None,
        key: Path | None,
        threads: int,
        client_ca: Path | None,
        name: str,
    ) -> None:
        self._build = build
        self._fd = listener.detach()  # gunicorn owns the descriptor from here
        self._cert, self._key, self._threads = cert, key, threads
        self._client_ca = client_ca
        self._name = name
        super().__init__()

    def load_config(self) -> None:
        settings = {
            "bind": [f"fd://{self._fd}"],
            "workers": 1,
            "worker_class": "gthread",
            "threads": self._threads,
            "timeout": 60,
            "graceful_timeout": 10,
            "keepalive": 30,
            "proc_name": self._name,
            # The heartbeat file: tmpfs when there is one, as the manifests' Deployment runs
            # with a read-only root filesystem.
            "worker_tmp_dir": _tmpfs(),
            "control_socket_disable": True,
        }
        if self._cert is not None and self._key is not None:
            settings["certfile"] = str(self._cert)
            settings["keyfile"] = str(self._key)
        if self._client_ca is not None:
            # Optional at the TLS layer (the API server's webhook calls present none); a
            # certificate that is presented must chain to the CA, and the external-data paths
            # require one (server.gate.app.ExternalDataTransport).
            settings["ca_certs"] = str(self._client_ca)
            settings["cert_reqs"] = ssl.CERT_OPTIONAL
        for name, value in settings.items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        return self._build()


def run(
    build: Callable[[], Any],
    listener: socket.socket,
    *,
    cert: Path | None,
    key: Path | None,
    threads: int,
    client_ca: Path | None = None,
    name: str = "keyless-gate",
) -> None:
    """Serve the WSGI app `build()` makes (in the worker, after the fork) until interrupted;
    over HTTPS with `cert` and `key`, else plain HTTP (the witness, behind a TLS proxy)."""
    _GateGunicorn(
        build, listener, cert=cert, key=key, threads=threads, client_ca=client_ca, name=name
    ).run()

"""Running the app under gunicorn, programmatically, so `keyless serve` is one command.

`keyless serve` binds the listening socket itself and hands it to gunicorn (`fd://`), so a
busy port is one clear error before anything is announced, and the banner names the address
really bound.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from keyless.core.errors import Error, Reason
from keyless.server.config import ServerConfig

LISTEN_BACKLOG = 2048  # gunicorn's default


class BindError(Error):
    """The configured address cannot be listened on."""

    reason = Reason.BIND_FAILED


def bind(config: ServerConfig) -> socket.socket:
    """Bind the configured host and port, exactly, without accepting connections yet: a port
    another server listens on is refused here, and clients are refused (not left waiting)
    until `listen`.

    Raises:
        BindError: the address is in use, not local, or not allowed.
    """
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As gunicorn does: a restart may reuse the port while old connections linger.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((config.host, config.port))
    except OSError as exc:
        listener.close()
        raise BindError(f"cannot listen on {_where(config)}: {_why(exc)}") from exc
    return listener


def listen(listener: socket.socket, config: ServerConfig) -> None:
    """Start accepting connections on a socket from `bind`.

    Raises:
        BindError: another process bound the same port meanwhile and listened first.
    """
    try:
        listener.listen(LISTEN_BACKLOG)
    except OSError as exc:
        listener.close()
        raise BindError(f"cannot listen on {_where(config)}: {_why(exc)}") from exc


def _where(config: ServerConfig) -> str:
    host = f"[{config.host}]" if ":" in config.host else config.host
    return f"{host}:{config.port}"


def _why(exc: OSError) -> str:
    import errno

    if exc.errno == errno.EADDRINUSE:
        return "the address is in use (stop what is using it, or choose another --port)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "the address is not one of this machine's"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges)"
    return exc.strerror or str(exc)


class StartupWarnings:
    """Each worker builds its own app, and would repeat every start-up warning the master's
    preflight build already printed; this lets each warning through once per process tree."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()

    @contextmanager
    def once(self) -> Iterator[None]:
        """While active, a warning already logged (here or before the fork) is dropped."""
        handlers = list(logging.getLogger().handlers)
        for handler in handlers:
            handler.addFilter(self._filter)
        try:
            yield
        finally:
            for handler in handlers:
                handler.removeFilter(self._filter)

    def _filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.getMessage())
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def prepare_metrics_dir() -> Path:
    """Turn on prometheus-client's multiprocess mode for this run, before any metric exists,
    so `/metrics` in any worker sums every worker's counts.

    An operator's `PROMETHEUS_MULTIPROC_DIR` is used, emptied of the last run's files; else a
    private directory is made and removed when the master exits.

    Raises:
        RuntimeError: prometheus-client was imported before: its metrics would be per-worker.
    """
    configured = os.environ.get(METRICS_DIR_VARIABLE)
    if configured:
        path = Path(configured)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return path
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before its multiprocess directory")
    path = Path(tempfile.mkdtemp(prefix="keyless-metrics-"))
    os.environ[METRICS_DIR_VARIABLE] = str(path)
    master = os.getpid()

    def remove() -> None:
        # Workers inherit this exit handler; only the master removes the directory.
        if os.getpid() == master:
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(remove)
    return path


def _child_exit(_server: Any, worker: Any) -> None:
    """gunicorn's hook when a worker ends: its live gauges leave /metrics (counts stay)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


class _KeylessGunicorn(BaseApplication):
    def __init__(
        self, config: ServerConfig, listener: socket.socket, warnings: StartupWarnings
    ) -> None:
        self._config = config
        # From here gunicorn owns the descriptor (it closes it in each process it ends).
        self._fd = listener.detach()
        self._warnings = warnings
        super().__init__()

    def load_config(self) -> None:
        config = self._config
        settings: dict[str, Any] = {
            "bind": [f"fd://{self._fd}"],
            "workers": config.workers,
            "worker_class": "gthread",
            "threads": config.threads,
            "timeout": 60,
            "graceful_timeout": 10,
            "proc_name": "keyless",
            # The control socket sits at one fixed path per user, so two instances side by
            # side would fight over it; keyless does not use gunicornc.
            "control_socket_disable": True,
            # One access line per request on stdout, with its time; never a body or header, so
            # never a token (they travel in Authorization headers and POST bodies).
            "accesslog": "-",
            "access_log_format": '%(h)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"',
            "child_exit": _child_exit,
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        import gc

        from keyless.server.app import create_app

        with self._warnings.once():
            app = create_app(self._config)
        # Everything built so far (keys, chains, parsed config) lives as long as the worker;
        # freezing it keeps the garbage collector from rescanning it on every request.
        gc.freeze()
        return app


def run_gunicorn(
    config: ServerConfig, *, listener: socket.socket, warnings: StartupWarnings
) -> None:
    """Serve on `listener` (from `bind`, handed over to gunicorn) until interrupted; each worker
    builds its own app from `config`, repeating none of the start-up warnings in `warnings`."""
    _KeylessGunicorn(config, listener, warnings).run()

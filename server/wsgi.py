"""Running the app under gunicorn, programmatically, so `keyless serve` is one command."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from server.config import ServerConfig


class _KeylessGunicorn(BaseApplication):
    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        super().__init__()

    def load_config(self) -> None:
        config = self._config
        host = f"[{config.host}]" if ":" in config.host else config.host
        settings: dict[str, Any] = {
            "bind": f"{host}:{config.port}",
            "workers": config.workers,
            "worker_class": "gthread",
            "threads": config.threads,
            "timeout": 60,
            "graceful_timeout": 10,
            "proc_name": "keyless",
            # The control socket sits at one fixed path per user, so two instances side by
            # side would fight over it; keyless does not use gunicornc.
            "control_socket_disable": True,
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        import gc

        from server.app import create_app

        app = create_app(self._config)
        # Everything built so far (keys, chains, parsed config) lives as long as the worker;
        # freezing it keeps the garbage collector from rescanning it on every request.
        gc.freeze()
        return app


def run_gunicorn(config: ServerConfig) -> None:
    """Serve until interrupted; each worker builds its own app from `config`."""
    _KeylessGunicorn(config).run()

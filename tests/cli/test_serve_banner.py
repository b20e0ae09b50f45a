"""`keyless serve` binds before it announces: a busy port is one error line, and the banner
names the address really bound, the public URL, and warns about the development issuer once."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

from tests.conftest import KEYLESS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_busy_port_is_one_error_line_and_no_banner(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [*KEYLESS, "serve", "--port", str(port), "--state-dir", str(tmp_path / "state")],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: the address is in use "
        "(stop what is using it, or choose another --port)"
    ]
    assert result.stdout == ""
    # Nothing was created either: the state directory is made only once the port is ours.
    assert not (tmp_path / "state").exists()


def test_the_banner_follows_the_bind_and_warns_once(tmp_path: Path) -> None:
    port = _free_port()
    state = tmp_path / "state"
    process = subprocess.Popen(
        [*KEYLESS, "serve", "--port", str(port), "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        # A second request after the workers are up: a worker's own start-up must not repeat
        # the warning either.
        assert requests.get(f"{url}/oidc/jwks", timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        stderr = process.communicate(timeout=30)[1]
    lines = stderr.splitlines()
    assert sum("mints tokens for anyone" in line for line in lines) == 1, stderr
    assert sum("Not for production" in line for line in lines) == 1, stderr
    banner = lines.index(f"keyless listening on 127.0.0.1:{port} (state in {state})")
    assert lines[banner + 1] == f"  public URL:   {url}"
    assert lines[banner + 2] == f"  trust config: {url}/api/v1/trust/client_trust_config.json"
    # The banner comes before gunicorn's own start-up lines, and only once.
    assert sum(line.startswith("keyless listening on") for line in lines) == 1


def test_of_two_servers_binding_at_once_the_second_to_listen_is_refused(tmp_path: Path) -> None:
    """Both may bind (address reuse, nobody listening yet); only one can listen, and the other
    gets the same one-line refusal as a busy port."""
    import pytest

    from keyless.server.config import dev_config
    from keyless.server.wsgi import BindError, bind, listen

    config = dev_config(port=_free_port(), state_dir=tmp_path)
    first, second = bind(config), bind(config)
    try:
        # Bound but not listening: a client is refused at once, not left waiting.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", config.port), timeout=5)
        listen(first, config)
        with pytest.raises(BindError) as refused:
            listen(second, config)
        assert refused.value.message == (
            f"cannot listen on 127.0.0.1:{config.port}: the address is in use "
            "(stop what is using it, or choose another --port)"
        )
        socket.create_connection(("127.0.0.1", config.port), timeout=5).close()
    finally:
        first.close()
        second.close()

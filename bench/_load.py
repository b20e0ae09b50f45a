"""The load harness the HTTP benchmarks share: the benchmark's own app under gunicorn in a
server process, and keep-alive clients (threads in two client processes) that send requests
encoded beforehand, all between two agreed instants, so a rate counts only the steady state.

The client is a deliberately small HTTP/1.1 reader (status line and Content-Length, nothing
else), so the load generator takes little of the CPU the server shares with it on this machine.
Benchmarks run as scripts (`python bench/x.py`); a benchmark serves itself when started as
`python bench/x.py --serve PORT ARGS...` (see `server_process`).
"""

from __future__ import annotations

import multiprocessing
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization

HOST = "127.0.0.1"
CLIENT_PROCESSES = 2
START_TIMEOUT_SECONDS = 30

# requests(process, thread): the requests one client thread sends, in order; built in the client
# process before the clock starts (signing them is client work).
RequestsFor = Callable[[int, int], Iterable[bytes]]


def private_pem(key: Any) -> bytes:
    """An unencrypted PKCS#8 PEM of `key`, for handing a key to the server process."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# The server.


def serve(load_app: Callable[[], Any], port: int, *, workers: int = 1, threads: int = 16) -> None:
    """Run gunicorn (gthread) on HOST:port in this process until it is terminated; each worker
    builds its app with `load_app`."""
    from gunicorn.app.base import BaseApplication

    class _Bench(BaseApplication):
        def load_config(self) -> None:
            for name, value in {
                "bind": f"{HOST}:{port}",
                "workers": workers,
                "worker_class": "gthread",
                "threads": threads,
                "backlog": 256,
                "loglevel": "warning",
                "control_socket_disable": True,
            }.items():
                self.cfg.set(name, value)

        def load(self) -> Any:
            return load_app()

    _Bench().run()


@contextmanager
def server_process(script: str, *arguments: str) -> Iterator[int]:
    """`python SCRIPT --serve PORT ARGUMENTS` on a free loopback port; yields the port once it
    accepts connections, and stops the server at the end."""
    port = free_port()
    process = subprocess.Popen([sys.executable, script, "--serve", str(port), *arguments])
    try:
        deadline = time.time() + START_TIMEOUT_SECONDS
        while True:
            try:
                with socket.create_connection((HOST, port), timeout=1):
                    break
            except OSError:
                if time.time() > deadline or process.poll() is not None:
                    raise RuntimeError("bench server did not start") from None
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# Requests and the client.


def post(path: str, port: int, body: bytes, content_type: str = "application/json") -> bytes:
    """A whole HTTP/1.1 POST, ready to send on a keep-alive connection."""
    return (
        b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
        % (
            path.encode(),
            HOST.encode(),
            port,
            content_type.encode(),
            len(body),
            body,
        )
    )


def get(path: str, port: int) -> bytes:
    """A whole HTTP/1.1 GET, ready to send on a keep-alive connection."""
    return b"GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (path.encode(), HOST.encode(), port)


def exchange(sock: socket.socket, request: bytes, buffer: bytearray) -> int:
    """Send one request on a keep-alive socket and read its whole response; its status."""
    sock.sendall(request)
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buffer += chunk
    end = buffer.index(b"\r\n\r\n") + 4
    head = bytes(buffer[:end]).lower()
    status = int(head[9:12])
    start = head.index(b"content-length:") + 15
    length = int(head[start : head.index(b"\r\n", start)])
    while len(buffer) < end + length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buffer += chunk
    del buffer[: end + length]
    return status


@dataclass
class Load:
    """What the clients saw: answers with the expected status per second, the other answers
    and broken connections, and each request's latency in seconds (sorted)."""

    rate: float
    errors: int
    latencies: list[float]

    def percentile_ms(self, fraction: float) -> float:
        return percentile(self.latencies, fraction) * 1000


def run_load(
    port: int, clients: int, seconds: float, requests: RequestsFor, *, ok: int, warmup: float
) -> Load:
    """`clients` keep-alive connections send their `requests` from `warmup` seconds from now
    (time to build them) for `seconds`; a response with status `ok` counts as done."""
    processes_n = min(CLIENT_PROCESSES, clients)
    threads = clients // processes_n
    start_at = time.time() + warmup
    until = start_at + seconds
    out: Any = multiprocessing.Queue()
    processes = [
        multiprocessing.Process(
            target=_client_process,
            args=(requests, p, threads, port, ok, start_at, until, out),
        )
        for p in range(processes_n)
    ]
    for process in processes:
        process.start()
    results = [out.get() for _ in range(processes_n * threads)]
    for process in processes:
        process.join()
    done = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    return Load(done / seconds, errors, sorted(x for r in results for x in r[2]))


def _client_process(
    requests: RequestsFor,
    process: int,
    threads: int,
    port: int,
    ok: int,
    start_at: float,
    until: float,
    out: Any,
) -> None:
    per_thread = [requests(process, t) for t in range(threads)]
    workers = [
        threading.Thread(target=_client, args=(port, sent, ok, start_at, until, out))
        for sent in per_thread
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def _client(
    port: int, requests: Iterable[bytes], ok: int, start_at: float, until: float, out: Any
) -> None:
    done = errors = 0
    latencies: list[float] = []
    while time.time() < start_at:
        time.sleep(0.001)
    # Connect only now: an idle keep-alive connection would be closed by the server.
    sock = socket.create_connection((HOST, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray()
    try:
        for request in requests:
            if time.time() >= until:
                break
            sent = time.perf_counter()
            status = exchange(sock, request, buffer)
            latencies.append(time.perf_counter() - sent)
            if status == ok:
                done += 1
            else:
                errors += 1
    except OSError:
        errors += 1
    finally:
        sock.close()
        out.put((done, errors, latencies))


# Figures.


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def threads_rate(call: Callable[[Any], Any], items: list[list[Any]]) -> float:
    """Calls/s of `call` over every item, each list of `items` on its own thread, all at once."""
    threads = [threading.Thread(target=lambda xs=xs: [call(x) for x in xs]) for xs in items]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(len(xs) for xs in items) / (time.perf_counter() - start)

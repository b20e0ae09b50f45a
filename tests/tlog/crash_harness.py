"""What the crash tests of every log share: a log server in its own process, appenders that
post concurrently, and a SIGKILL while they are still posting.

A test says how one append is made and what its acknowledgement proves (`Append`); the harness
records each acknowledged entry and each checkpoint seen, so the test can check after a
restart that nothing acknowledged was lost and the log never forked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives import serialization

from tests.conftest import REPO

APPENDERS = 8
ACKNOWLEDGED_BEFORE_KILL = 300

# (session, server URL, worker, n) -> (log index, what the test keeps, checkpoint size, root),
# or None when the server did not acknowledge the append.
Append = Callable[[requests.Session, str, int, int], tuple[int, Any, int, bytes] | None]


@dataclass
class CrashRecord:
    acknowledged: dict[int, Any] = field(default_factory=dict)
    checkpoints: dict[int, bytes] = field(default_factory=dict)


def write_key(path: Path, key: Any) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@contextmanager
def log_server(module: str, db: Path, key_file: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """`python -m module DB KEY` on a free loopback port; yields the process and its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, str(db), str(key_file)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("PORT "), f"log server did not start: {line!r}"
        yield process, f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        process.stdout.close()


def kill_mid_stream(
    module: str, db: Path, key_file: Path, url_suffix: str, append: Append
) -> CrashRecord:
    """Append from APPENDERS threads until enough are acknowledged, SIGKILL the server while
    they are still posting, and return what was acknowledged."""
    record = CrashRecord()
    lock = threading.Lock()
    stop = threading.Event()

    def appender(url: str, worker: int) -> None:
        session = requests.Session()
        n = 0
        while not stop.is_set():
            n += 1
            try:
                acked = append(session, url, worker, n)
            except requests.RequestException:
                continue  # Not acknowledged: the server died under this request.
            if acked is None:
                continue
            index, kept, size, root = acked
            with lock:
                record.acknowledged[index] = kept
                record.checkpoints[size] = root

    with log_server(module, db, key_file) as (process, base):
        url = base + url_suffix
        threads = [threading.Thread(target=appender, args=(url, w)) for w in range(APPENDERS)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(record.acknowledged) < ACKNOWLEDGED_BEFORE_KILL and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert len(record.acknowledged) >= ACKNOWLEDGED_BEFORE_KILL
    assert len(record.checkpoints) > 1
    assert process.returncode == -signal.SIGKILL
    return record

"""State directories on real volumes: a first run is "no keyless file here" (a new ext4 volume's
`lost+found`, dotfiles and other files are ignored, and named), it is all or nothing (made in a
scratch directory, then moved into place), and a start after a crash either finishes what the
crash left or refuses with a hint; never a half-made state that refuses every later start."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keyless.server.state import StateDirError
from keyless.tlog.errors import StorageError
from tests.e2e.log_files import LOGS, PORT, REKOR_V1, start

UNREACHABLE_POSTGRES = "postgresql://nobody@/keyless?host=/nonexistent-socket-directory"
SCRATCH = ".keyless-first-run"
MADE = ".keyless-first-run.done"


def _keyless_files(state: Path) -> list[str]:
    from keyless.server.state import is_keyless_file

    return sorted(name for name in os.listdir(state) if is_keyless_file(name))


def _volume(tmp_path: Path) -> Path:
    """A fresh volume's root, as ext4 or a Kubernetes PersistentVolume hands it over."""
    state = tmp_path / "volume"
    (state / "lost+found").mkdir(parents=True)
    state.chmod(0o700)
    return state


def test_a_volume_with_lost_and_found_and_other_files_starts(tmp_path, caplog) -> None:
    state = _volume(tmp_path)
    (state / ".snapshot").mkdir()
    (state / "README.txt").write_text("the keyless volume\n")
    with caplog.at_level(logging.WARNING, logger="keyless.server.state"):
        app = start(state)
    assert f"first run in {state}: ignoring .snapshot, README.txt, lost+found (not keyless " in (
        caplog.text
    )
    for log in LOGS:
        assert log.append(app, 1) == 1
        log.close(app)
    # A start after the first is not a first run, and keeps what the first made.
    again = start(state)
    assert REKOR_V1.append(again, 1) == 2
    assert (state / "lost+found").is_dir() and (state / "README.txt").exists()


def test_a_first_run_makes_only_files_keyless_owns(tmp_path) -> None:
    """Every top-level name a first run writes is one a later start counts as keyless's, so a
    state directory with any of them is never taken for a first run."""
    state = tmp_path / "state"
    start(state)
    made = [name for name in os.listdir(state) if not name.startswith(".")]
    assert made, "a first run makes files"
    assert sorted(made) == _keyless_files(state)
    assert not (state / SCRATCH).exists() and not (state / MADE).exists()


def test_a_first_run_that_fails_half_way_leaves_nothing_in_place(tmp_path) -> None:
    """The log database is unreachable on the first start (PostgreSQL not up yet): by then the
    TSA, development issuer and log keys were made. None of them is in place, so the next
    start, with the database there, is a first run again."""
    state = _volume(tmp_path)
    with pytest.raises(StorageError) as failed:
        start(state, log_database=UNREACHABLE_POSTGRES)
    assert failed.value.message.startswith("cannot connect to the log database: ")
    assert _keyless_files(state) == []
    assert sorted(os.listdir(state)) == [".keyless-start.lock", "lost+found"]
    app = start(state)
    assert REKOR_V1.append(app, 1) == 1


def test_a_first_run_killed_half_way_starts_cleanly(tmp_path) -> None:
    """kill -9 while the first run is making its state: whatever the moment, the next start
    either finishes it or starts afresh, and the state it serves is whole."""
    state = _volume(tmp_path)
    code = (
        "from pathlib import Path\n"
        "from tests.e2e.log_files import start\n"
        f"start(Path({str(state)!r}))\n"
    )
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen([sys.executable, "-c", code], cwd=root)
    try:
        # Wait for the first key in the making, then kill the process there.
        while process.poll() is None and not (state / SCRATCH / "tsa-key.pem").exists():
            time.sleep(0.001)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    app = start(state)
    assert not (state / SCRATCH).exists() and not (state / MADE).exists()
    for log in LOGS:
        assert log.append(app, 1) == 1


def test_a_first_run_stopped_between_two_moves_is_finished(tmp_path, caplog) -> None:
    """The state a crash leaves after the scratch directory was complete (renamed) and some of
    its files were moved in: the next start moves the rest and serves that state."""
    made = tmp_path / "made"
    app = start(made)
    assert REKOR_V1.append(app, 2) == 2
    REKOR_V1.close(app)
    state = _volume(tmp_path)
    (state / MADE).mkdir()
    for index, name in enumerate(sorted(os.listdir(made))):
        shutil.move(made / name, (state if index % 2 else state / MADE) / name)
    with caplog.at_level(logging.WARNING, logger="keyless.server.state"):
        app = start(state)
    assert f"{state}: finishing an interrupted first run ({MADE})" in caplog.text
    assert not (state / MADE).exists()
    assert REKOR_V1.append(app, 1) == 3


def test_an_interrupted_scratch_directory_is_discarded(tmp_path, caplog) -> None:
    state = _volume(tmp_path)
    (state / SCRATCH).mkdir()
    (state / SCRATCH / "tsa-key.pem").write_bytes(b"half made")
    with caplog.at_level(logging.WARNING, logger="keyless.server.state"):
        app = start(state)
    assert (
        f"{state}: discarding {SCRATCH}, an interrupted first run (nothing of it was in place)"
    ) in caplog.text
    assert REKOR_V1.append(app, 1) == 1


def test_a_half_made_state_from_before_refuses_with_a_hint(tmp_path) -> None:
    """What a first start on a volume with lost+found left before first runs were all or
    nothing: the TSA's key and chain, and nothing else."""
    state = _volume(tmp_path)
    start(tmp_path / "donor")
    for name in ("tsa-key.pem", "tsa-chain.pem"):
        shutil.copy2(tmp_path / "donor" / name, state / name)
    with pytest.raises(StateDirError) as refused:
        start(state, port=PORT)
    assert refused.value.message == (
        f"the state directory {state} holds keyless files (tsa-chain.pem, tsa-key.pem) but no "
        "published trust (tuf/timestamp.json): a first start that stopped half-way, or a "
        "damaged state directory"
    )
    assert refused.value.hint == (
        "if no server ever served from it, move those files out and start again (a first "
        "run); otherwise restore the state directory from a backup"
    )
    assert _keyless_files(state) == ["tsa-chain.pem", "tsa-key.pem"]

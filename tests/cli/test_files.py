"""Bounded reads of user-named files (signing configs, in-toto statements)."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyless.client.errors import ClientError
from keyless.client.files import read_bounded
from keyless.client.services import from_signing_config


def test_within_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read_bounded(path, limit=10) == b"x" * 10


@pytest.mark.parametrize("case", ["oversized", "missing"])
def test_refusals(tmp_path: Path, case: str) -> None:
    path = tmp_path / "f"
    if case == "oversized":
        path.write_bytes(b"x" * 11)
    with pytest.raises(ClientError) as info:
        read_bounded(path, limit=10)
    expected = (
        f"{path} is larger than 10 bytes"
        if case == "oversized"
        else (f"cannot read {path}: No such file or directory")
    )
    assert info.value.message == expected


def test_oversized_signing_config_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "signing_config.json"
    path.write_bytes(b" " * (2 * 1024 * 1024))
    with pytest.raises(ClientError) as info:
        from_signing_config(path)
    assert info.value.message == f"{path} is larger than 1048576 bytes"

"""Fixtures for the client tests: a forged private instance and helpers to verify its bundles."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.cli.forge import Instance

START = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="session")
def instance() -> Instance:
    """A private Sigstore instance valid from 2025-01-01 (keys generated once per session)."""
    return Instance(start=START)


@pytest.fixture(scope="session")
def other_instance() -> Instance:
    """A second, unrelated instance: its CA, CT and log keys are not in `instance`'s root."""
    return Instance(start=START)

"""Fixtures for the TSA tests: a key with a development chain, and the TSA app on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask

from keyless.tsa import TimestampAuthority, dev_tsa_chain
from keyless.tsa import api as tsa_api
from tests.conftest import serve_wsgi


@pytest.fixture(scope="module")
def tsa_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def authority(tsa_key) -> TimestampAuthority:
    return TimestampAuthority(key=tsa_key, chain=dev_tsa_chain(tsa_key, now=datetime.now(UTC)))


@pytest.fixture(scope="module")
def tsa_url(authority) -> Iterator[str]:
    app = Flask("tsa-test")
    tsa_api.init_app(app, authority)
    with serve_wsgi(app) as url:
        yield url

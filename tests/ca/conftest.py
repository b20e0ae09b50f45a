"""A real CA on loopback: development issuer, CA and CT log blueprints in one Flask app."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask

from keyless.ca import CertificateAuthority, HTTPCTSubmitter, KeySigner, load_generated_signer
from keyless.ca import api as ca_api
from keyless.oidc import Authenticator, JWKSCache, StaticKeys, devissuer_api
from keyless.oidc.devissuer import DevIssuer
from keyless.server.state import StateDir
from keyless.tlog import ct_api
from keyless.tlog.ct_log import CTLog, open_ct_log
from tests.conftest import serve_factory


@dataclass
class CAServer:
    """A running CA: its URL, development issuer, signer and CT log."""

    url: str
    state: Path
    issuer: DevIssuer
    signer: KeySigner
    ct_log: CTLog
    authority: CertificateAuthority

    def ct_size(self) -> int:
        return self.ct_log.get_sth()["tree_size"]

    def email_token(self, email: str = "alice@example.com", **options: Any) -> str:
        claims = self.issuer.email_claims(email, subject=options.pop("subject", None))
        claims.update(options.pop("claims", {}))
        return self.issuer.mint(
            claims, issuer_url=self.issuer.issuer_url, now=datetime.now(UTC), **options
        )

    def github_token(self, **claims: Any) -> str:
        options = {"repository": "acme/app", "workflow": "release.yml", "ref": "refs/heads/main"}
        return self.issuer.mint(
            self.issuer.github_claims(**{**options, **claims}),
            issuer_url=self.issuer.github_issuer_url,
            now=datetime.now(UTC),
        )


def build_app(
    base_url: str,
    state: Path,
    *,
    detached: bool = False,
    ca_dir: Path | None = None,
    ct_url: str | None = None,
    ct_log_key: Any = None,
) -> tuple[Flask, dict[str, Any]]:
    """The test app: what `keyless serve` mounts, built from the public pieces."""
    now = datetime.now(UTC)
    issuer = DevIssuer(
        base_url=base_url,
        key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        user_email="dev@keyless.test",
    )
    authenticator = Authenticator(
        issuer.trusted_issuers(),
        keys=StaticKeys(
            {issuer.issuer_url: issuer.jwks(), issuer.github_issuer_url: issuer.jwks()},
            fallback=JWKSCache(),
        ),
    )
    signer = load_generated_signer(ca_dir or state / "ca", now=now)
    ct_log = open_ct_log(
        database=state / "ct.db",
        private_key=StateDir(state).private_key(
            "ct-key.pem", lambda: ec.generate_private_key(ec.SECP256R1())
        ),
        roots=[signer.chain[-1]],
    )
    authority = CertificateAuthority(
        authenticator=authenticator,
        signer=signer,
        ct=HTTPCTSubmitter(ct_url, timeout=10) if ct_url else ct_log,
        detached=detached,
        ct_log_key=ct_log_key,
    )
    app = Flask("keyless-ca-test")
    devissuer_api.init_app(app, issuer)
    ca_api.init_app(app, authority)
    ct_api.init_app(app, ct_log)
    parts = {"issuer": issuer, "signer": signer, "ct_log": ct_log, "authority": authority}
    return app, parts


@contextmanager
def ca_server(state: Path, **options: Any) -> Iterator[CAServer]:
    """Serve the test app on a free loopback port."""
    built: dict[str, Any] = {}
    state.mkdir(parents=True, exist_ok=True)

    def factory(base_url: str) -> Flask:
        app, parts = build_app(base_url, state, **options)
        built.update(parts)
        return app

    with serve_factory(factory) as url:
        yield CAServer(url=url, state=state, **built)


@pytest.fixture(scope="session")
def server_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CAServer]:
    """The embedded-SCT CA, shared by the session."""
    with ca_server(tmp_path_factory.mktemp("ca-state")) as running:
        yield running


@pytest.fixture(scope="session")
def detached_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CAServer]:
    """A CA in detached mode (detached SCT from add-chain), shared by the session."""
    with ca_server(tmp_path_factory.mktemp("ca-detached"), detached=True) as running:
        yield running

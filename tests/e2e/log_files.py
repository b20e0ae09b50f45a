"""The files of each log a keyless server keeps in its state directory, and how a test appends
to it, so the tests that tamper with those files run once per log (Rekor v1, Rekor v2, CT)."""

from __future__ import annotations

import itertools
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from keyless.server.app import create_app
from keyless.server.config import dev_config
from keyless.tlog.checkpoint_file import CheckpointFile

PORT = 18_731  # never bound: these tests build the app, they do not serve it
_SERIALS = itertools.count(1)


@dataclass(frozen=True)
class LogFiles:
    """One log: its file names in the state directory and how to reach it in a built app."""

    name: str
    database: str
    checkpoint: str
    key: str
    extension: str
    append_one: Callable[[Any], None]  # (app) -> None
    size: Callable[[Any], int]  # (app) -> signed tree size
    new_key: Callable[[], Any]

    def append(self, app: Any, count: int) -> int:
        """Append `count` entries; the log's tree size after."""
        for _ in range(count):
            self.append_one(app)
        return self.size(app)

    def close(self, app: Any) -> None:
        """Close the log's database connections, as a stopped server would."""
        app.extensions[self.extension].log._storage.close()

    def stored_size(self, state: Path) -> int:
        with sqlite3.connect(state / self.database) as db:
            return db.execute("SELECT COUNT(*) FROM leaves").fetchone()[0]

    def remove_database(self, state: Path) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{state / self.database}{suffix}").unlink(missing_ok=True)

    def kept_size(self, state: Path) -> int:
        return CheckpointFile(state / self.checkpoint).read().size

    def new_key_pem(self) -> bytes:
        return self.new_key().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def start(state: Path, port: int = PORT, **options: Any) -> Any:
    """The server app on `state` (dev mode), built but not served."""
    return create_app(replace(dev_config(port=port, state_dir=state), **options))


def _rekor_append(extension: str) -> Callable[[Any], None]:
    return lambda app: app.extensions[extension].log.append(os.urandom(32))


def _ct_append(app: Any) -> None:
    """Log a precertificate from the deployment's own CA."""
    from keyless.ca.profile import build_leaf
    from keyless.ca.sct import build_precertificate
    from keyless.oidc import Principal, SANType
    from keyless.tlog.ct_api import EXTENSION_KEY

    config = app.extensions["keyless.config"]
    now = datetime.now(UTC)
    signer = config.ca.load_signer(state_dir=config.state_dir, now=now)
    principal = Principal(SANType.EMAIL, "ct@example.com", "ct@example.com", {1: "x"})
    builder = build_leaf(
        principal,
        public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
        issuer=signer.chain[0],
        serial=next(_SERIALS),
        now=now,
    )
    precert = build_precertificate(builder, signer)
    app.extensions[EXTENSION_KEY].add_pre_chain(
        [c.public_bytes(serialization.Encoding.DER) for c in (precert, *signer.chain)]
    )


def _p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


REKOR_V1 = LogFiles(
    name="rekor-v1",
    database="rekor.sqlite",
    checkpoint="rekor-checkpoint",
    key="rekor-key.pem",
    extension="keyless.rekor",
    append_one=_rekor_append("keyless.rekor"),
    size=lambda app: app.extensions["keyless.rekor"].log.head().size,
    new_key=_p256,
)
REKOR_V2 = LogFiles(
    name="rekor-v2",
    database="rekor-v2.sqlite",
    checkpoint="rekor-v2-checkpoint",
    key="rekor-v2-key.pem",
    extension="keyless.rekor_v2",
    append_one=_rekor_append("keyless.rekor_v2"),
    size=lambda app: app.extensions["keyless.rekor_v2"].log.head().size,
    new_key=ed25519.Ed25519PrivateKey.generate,
)
CT = LogFiles(
    name="ct",
    database="ct.sqlite",
    checkpoint="ct-checkpoint",
    key="ct-key.pem",
    extension="keyless.ct",
    append_one=_ct_append,
    size=lambda app: app.extensions["keyless.ct"].get_sth()["tree_size"],
    new_key=_p256,
)
LOGS = (REKOR_V1, REKOR_V2, CT)

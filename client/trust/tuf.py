"""A keyless server's trust, through its TUF repository: the network, the kept copy, the lock.

The first use of a server trusts its repository's first root (trust on first use) and keeps
it under the XDG data directory; every later use refreshes the TUF metadata through the signed
chain, so new keys the server publishes are followed and a redeployment with other keys is
refused. This is the only trust module with I/O beyond reading one file (python-tuf, HTTP, a
file lock); `keyless verify` of a bundle file never imports it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from keyless.client.errors import ClientError, NetworkError
from keyless.client.trust.model import (
    MAX_TRUSTED_ROOT_BYTES,
    ServerTrust,
    TrustedRoot,
    read_trust_file,
)
from keyless.client.verify.errors import TrustRootError, iso
from keyless.core.errors import Reason

_TUF_PATH = "/tuf/"
TRUSTED_ROOT_TARGET = "trusted_root.json"
SIGNING_CONFIG_TARGET = "signing_config.v0.2.json"
_SERVER_RE = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~\-/]*)?")
log = logging.getLogger(__name__)


def fetch_server_trusted_root(server: str, *, refresh_trust: bool = False) -> TrustedRoot:
    """The current trusted root of a keyless server, through the server's TUF repository.

    The first use trusts the repository's first root (trust on first use) and keeps it in
    `server_trust_dir(server)`. Every later call refreshes the TUF metadata, so a new CA or log
    key the server publishes is followed, but only when signed by the keys trusted so far: a
    server redeployed with new keys is refused until the user says otherwise (`refresh_trust`,
    which forgets the old trust and trusts the server's current root on first use again).

    Raises:
        NetworkError: the server cannot be reached (and no unexpired refresh is at hand).
        ServerTrustError: the server serves no TUF repository, or its repository does not
            verify against the trust kept for it.
        TrustRootError: the trusted root it serves is malformed.
    """
    [data] = server_targets(server, (TRUSTED_ROOT_TARGET,), refresh_trust=refresh_trust)
    return TrustedRoot.from_json(data)


def fetch_server_trust(server: str, *, refresh_trust: bool = False) -> ServerTrust:
    """The trusted root and the signing config of a keyless server, both TUF targets verified
    in one refresh (see `fetch_server_trusted_root`): the CA, logs and TSA a client signs with
    are then as trustworthy as the keys it checks them against, and a front end that alters
    the plain trust endpoints changes nothing.

    Raises: as `fetch_server_trusted_root`; ServerTrustError also when the repository has no
    signing config or one that does not match its signed metadata.
    """
    root, config = server_targets(
        server, (TRUSTED_ROOT_TARGET, SIGNING_CONFIG_TARGET), refresh_trust=refresh_trust
    )
    return ServerTrust(trusted_root=TrustedRoot.from_json(root), signing_config=config)


def server_targets(
    server: str, names: tuple[str, ...], *, refresh_trust: bool = False
) -> list[bytes]:
    """The verified bytes of TUF targets `names` of `server`, after one metadata refresh (trust
    on first use, kept as `fetch_server_trusted_root` says)."""
    if not _SERVER_RE.fullmatch(server):
        raise TrustRootError(detail=f"server URL {server!r} is not an http(s) origin")
    server = server.rstrip("/")
    directory = server_trust_dir(server)
    with _trust_lock(directory):
        if refresh_trust and directory.exists():
            shutil.rmtree(directory)
            log.info("forgot the trust kept for %s in %s", server, directory)
        return _tuf_targets(server, directory, names)


def server_trust_dir(server: str) -> Path:
    """Where the trust in one keyless server is kept: its TUF metadata and targets.

    Under the XDG data directory, not the cache: it holds the root trusted on first use, and
    losing it would silently trust whatever answers at the URL next time.
    """
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "keyless" / "servers" / quote(server.rstrip("/"), safe="")


class ServerTrustError(ClientError):
    """The trust material of a keyless server cannot be obtained or does not verify."""


@contextmanager
def _trust_lock(directory: Path) -> Iterator[None]:
    """One process at a time updates the trust kept for a server."""
    directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(directory.parent / f"{directory.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _tuf_targets(server: str, directory: Path, names: tuple[str, ...]) -> list[bytes]:
    """Refresh the server's TUF metadata once and return the verified bytes of each target."""
    from tuf.api import exceptions
    from tuf.ngclient import Updater

    bootstrap = None
    if not (directory / "root.json").exists():
        bootstrap = _first_tuf_root(server)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        log.info("trusting %s on first use; its TUF root is kept in %s", server, directory)
    targets = directory / "targets"
    try:
        updater = Updater(
            str(directory),
            f"{server}{_TUF_PATH}",
            str(targets),
            f"{server}{_TUF_PATH}targets/",
            fetcher=_tuf_fetcher(),
            bootstrap=bootstrap,
        )
        updater.refresh()
        found = []
        for name in names:
            info = updater.get_targetinfo(name)
            if info is None:
                raise ServerTrustError(f"the TUF repository of {server} has no {name}")
            try:
                path = updater.find_cached_target(info) or updater.download_target(info)
            except (
                exceptions.LengthOrHashMismatchError,
                exceptions.DownloadLengthMismatchError,
            ) as exc:
                # Bytes other than those the signed metadata names: altered on the way or at
                # the server. Never replaced by a kept copy silently: the user must hear of it.
                raise ServerTrustError(
                    f"the {name} served by the TUF repository of {server} does not match its "
                    f"signed metadata ({exc}): refused",
                    reason=Reason.SERVER_TRUST_INVALID,
                ) from exc
            found.append(read_trust_file(Path(path), name))
        return found
    except exceptions.UnsignedMetadataError as exc:
        raise ServerTrustError(
            f"the TUF repository of {server} is not signed by the keys trusted since first use "
            f"(in {directory}): the server was redeployed with new keys, or something else "
            "answers at its URL",
            reason=Reason.SERVER_TRUST_CHANGED,
            hint="if its operator confirms a new deployment, run again with --refresh-trust "
            f"to trust it from now on (or delete {directory})",
        ) from exc
    except exceptions.DownloadError as exc:
        why = getattr(exc.__cause__, "message", None) or str(exc)
        kept = [_last_verified_target(directory, wanted) for wanted in names]
        if any(copy is None for copy in kept):
            raise NetworkError(
                f"cannot refresh the trusted root of {server} from its TUF repository: {why}",
                reason=Reason.SERVER_UNREACHABLE,
            ) from exc
        log.info(
            "cannot reach %s (%s); using the trusted root of its last refresh, whose TUF "
            "timestamp is valid until %s",
            server,
            why,
            iso(min(copy[1] for copy in kept if copy is not None)),
        )
        return [copy[0] for copy in kept if copy is not None]
    except (exceptions.RepositoryError, OSError) as exc:
        raise ServerTrustError(
            f"the TUF repository of {server} does not verify (trust kept in {directory}): {exc}",
            reason=Reason.SERVER_TRUST_INVALID,
        ) from exc


def _tuf_fetcher() -> Any:
    """python-tuf's download seam over the client's HTTP session: one attempt, the client's
    timeouts and bounds, and failures as one line (python-tuf's default retries and warns).
    Defined here so that python-tuf is imported only when a server's trust is refreshed."""
    from tuf.api.exceptions import DownloadHTTPError
    from tuf.ngclient import FetcherInterface

    from keyless.client.http import new_session, request

    class Fetcher(FetcherInterface):
        def __init__(self) -> None:
            self._session = new_session()

        def _fetch(self, url: str) -> Iterator[bytes]:
            response, body = request(self._session, "GET", url, what="the TUF repository")
            if response.status_code != 200:
                raise DownloadHTTPError(
                    f"{url} answered HTTP {response.status_code}", response.status_code
                )
            return iter([body])

    return Fetcher()


def _last_verified_target(directory: Path, name: str) -> tuple[bytes, datetime] | None:
    """Target `name` as the last successful refresh verified it, while that refresh's
    timestamp metadata is unexpired: verification works offline, but not forever (the
    timestamp's lifetime bounds how long a client can be kept from an update)."""
    from datetime import UTC

    from tuf.api.exceptions import LengthOrHashMismatchError
    from tuf.api.metadata import Metadata, Targets, Timestamp
    from tuf.api.serialization import DeserializationError

    try:
        timestamp = Metadata[Timestamp].from_bytes((directory / "timestamp.json").read_bytes())
        targets = Metadata[Targets].from_bytes((directory / "targets.json").read_bytes())
        info = targets.signed.targets.get(name)
        if info is None or timestamp.signed.is_expired(datetime.now(UTC)):
            return None
        data = read_trust_file(directory / "targets" / quote(name, safe=""), name)
        info.verify_length_and_hashes(data)
    except (OSError, DeserializationError, LengthOrHashMismatchError, TrustRootError):
        return None
    return data, timestamp.signed.expires


def _first_tuf_root(server: str) -> bytes:
    """Version 1 of the server's TUF root, trusted on first use (Updater checks that it is
    signed by its own keys, then walks every later version through the signed chain)."""
    from keyless.client.http import new_session, request

    url = f"{server}{_TUF_PATH}1.root.json"
    response, body = request(new_session(), "GET", url, what="the keyless server")
    if response.status_code != 200:
        raise ServerTrustError(
            f"cannot get the trusted root of {server}: it serves no TUF repository "
            f"({url} answered HTTP {response.status_code})",
            reason=Reason.NO_TUF_REPOSITORY,
        )
    if len(body) > MAX_TRUSTED_ROOT_BYTES:
        raise ServerTrustError(f"{url} is larger than {MAX_TRUSTED_ROOT_BYTES} bytes")
    return body

"""Trusted roots: load a Sigstore `TrustedRoot` once, with every key and certificate parsed.

The wire shape comes from sigstore-models; this module adds the invariants verification relies
on (a log key's `validFor`, when given, has a start; every authority a non-empty chain) and
turns raw bytes into cryptography objects once, so a `Verifier` can be reused across many
bundles. Where sigstore-models is stricter than the protobuf schema (proto3 JSON leaves out
empty strings), the defaults are restored before a second parse (`_with_proto3_defaults`).
"""

from __future__ import annotations

import fcntl
import functools
import itertools
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from keyless.client.errors import ClientError, NetworkError
from keyless.client.verify.errors import TrustRootError, describe_validation_error, iso
from keyless.core.errors import Reason

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
    from sigstore_models.common.v1 import TimeRange as WireTimeRange
    from sigstore_models.trustroot.v1 import CertificateAuthority, TransparencyLogInstance

# Trusted roots are a few KB; refuse anything absurd before parsing it.
MAX_TRUSTED_ROOT_BYTES = 1024 * 1024
MAX_LOGS = 64
MAX_AUTHORITIES = 64
MAX_CHAIN_LENGTH = 8
log = logging.getLogger(__name__)

PRODUCTION_ROOT_RESOURCE = "production_trusted_root.json"
STAGING_ROOT_RESOURCE = "staging_trusted_root.json"
_TUF_PATH = "/tuf/"
TRUSTED_ROOT_TARGET = "trusted_root.json"
SIGNING_CONFIG_TARGET = "signing_config.v0.2.json"
_SERVER_RE = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~\-/]*)?")


@dataclass(frozen=True)
class TimeRange:
    """A closed interval [start, end]; `end` None means still open.

    `start` None is only for a log key whose trusted root gives no `validFor` at all: the
    schema makes it optional there, and the reference clients read it as unbounded.
    """

    start: datetime | None
    end: datetime | None

    def contains(self, moment: datetime) -> bool:
        """True when `moment` lies inside the interval, both ends included."""
        return (self.start is None or self.start <= moment) and (
            self.end is None or moment <= self.end
        )

    def describe(self) -> str:
        start = iso(self.start) if self.start is not None else "unbounded"
        end = iso(self.end) if self.end is not None else "open"
        return f"{start}..{end}"


UNBOUNDED = TimeRange(start=None, end=None)


@dataclass(frozen=True)
class LogKey:
    """A transparency-log or CT-log key from the trusted root, parsed once."""

    base_url: str
    key_id: bytes
    key_details: str
    public_key: PublicKeyTypes
    valid_for: TimeRange

    def verify(self, signature: bytes, data: bytes) -> None:
        """Check `signature` over `data` with this key; raises InvalidSignature."""
        self._verify(signature, data)

    @functools.cached_property
    def _verify(self) -> Callable[[bytes, bytes], None]:
        # Chosen once per key: the type checks against cryptography's ABCs cost a visible
        # share of each bundle's verification, which checks two or three log signatures.
        return _verifier_for(self.public_key, self.key_details)


@dataclass(frozen=True)
class Authority:
    """A certificate or timestamp authority: its chain (leaf side first) and validity."""

    uri: str
    certificates: tuple[x509.Certificate, ...]
    valid_for: TimeRange


@dataclass(frozen=True)
class TrustedRoot:
    """The parsed trust material: logs by key ID, CAs, CT logs and TSAs."""

    tlogs: dict[bytes, LogKey]
    ctlogs: dict[bytes, LogKey]
    certificate_authorities: tuple[Authority, ...]
    timestamp_authorities: tuple[Authority, ...]

    @classmethod
    def from_json(cls, data: bytes | str) -> TrustedRoot:
        """Parse and check a TrustedRoot JSON document.

        Raises:
            TrustRootError: the document is malformed, too large, or a key or certificate in
                it cannot be used.
        """
        if len(data) > MAX_TRUSTED_ROOT_BYTES:
            raise TrustRootError(
                detail=f"trusted root is larger than {MAX_TRUSTED_ROOT_BYTES} bytes"
            )
        from pydantic import ValidationError
        from sigstore_models.trustroot.v1 import TrustedRoot as WireTrustedRoot

        try:
            wire = WireTrustedRoot.from_json(data)
        except ValidationError as exc:
            wire = _parse_with_proto3_defaults(WireTrustedRoot, data, _restore_trusted_root)
            if wire is None:
                raise TrustRootError(
                    detail=f"malformed trusted root: {describe_validation_error(exc)}"
                ) from exc
        return cls.from_model(wire)

    @classmethod
    def from_model(cls, wire: object) -> TrustedRoot:
        """Build from a sigstore-models `TrustedRoot` (also used for ClientTrustConfig)."""
        tlogs_in = wire.tlogs  # type: ignore[attr-defined]
        ctlogs_in = wire.ctlogs  # type: ignore[attr-defined]
        cas_in = wire.certificate_authorities  # type: ignore[attr-defined]
        tsas_in = wire.timestamp_authorities  # type: ignore[attr-defined]
        if len(tlogs_in) > MAX_LOGS or len(ctlogs_in) > MAX_LOGS:
            raise TrustRootError(detail=f"trusted root lists more than {MAX_LOGS} logs")
        if len(cas_in) > MAX_AUTHORITIES or len(tsas_in) > MAX_AUTHORITIES:
            raise TrustRootError(
                detail=f"trusted root lists more than {MAX_AUTHORITIES} authorities"
            )
        return cls(
            tlogs=_index_logs(tlogs_in, "tlogs"),
            ctlogs=_index_logs(ctlogs_in, "ctlogs"),
            certificate_authorities=tuple(
                _authority(ca, "certificateAuthorities") for ca in cas_in
            ),
            timestamp_authorities=tuple(_authority(ca, "timestampAuthorities") for ca in tsas_in),
        )


def load_trusted_root(path: str | os.PathLike[str]) -> TrustedRoot:
    """Read a TrustedRoot JSON file (raises TrustRootError)."""
    return TrustedRoot.from_json(_read_bounded(Path(path), "trusted root"))


def load_trust_config(path: str | os.PathLike[str]) -> TrustedRoot:
    """Read the trusted root out of a Sigstore ClientTrustConfig JSON file."""
    from pydantic import ValidationError
    from sigstore_models.trustroot.v1 import ClientTrustConfig

    data = _read_bounded(Path(path), "trust config")
    try:
        config = ClientTrustConfig.from_json(data)
    except ValidationError as exc:
        config = _parse_with_proto3_defaults(ClientTrustConfig, data, _restore_trust_config)
        if config is None:
            raise TrustRootError(
                detail=f"malformed trust config {path}: {describe_validation_error(exc)}"
            ) from exc
    return TrustedRoot.from_model(config.trusted_root)


def _parse_with_proto3_defaults(model: Any, data: bytes | str, restore: Any) -> Any:
    """`model` parsed from the document with the proto3 defaults its writer left out restored;
    None when nothing was missing or the restored document is still invalid.

    Proto3 JSON omits a string field holding "" (and a message whose fields are all empty), so
    a CA `subject` without `commonName` is a valid TrustedRoot: Sigstore's scaffolding publishes
    such roots and sigstore-go and cosign load them. sigstore-models requires those strings.
    Only fields whose default is harmless are restored (names shown to people, never a key,
    a time or a URL verification relies on); everything else stays required.
    """
    import json

    from pydantic import ValidationError

    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or not restore(document):
        return None
    try:
        return model.from_json(json.dumps(document))
    except ValidationError:
        return None


def _restore_trusted_root(root: object) -> bool:
    """Restore the empty strings of every authority's `subject` in a TrustedRoot, in place."""
    if not isinstance(root, dict):
        return False
    changed = False
    for field in ("certificateAuthorities", "timestampAuthorities"):
        authorities = root.get(field)
        for authority in authorities if isinstance(authorities, list) else []:
            if not isinstance(authority, dict):
                continue
            if "subject" not in authority:
                authority["subject"] = {}
            subject = authority["subject"]
            for key in ("organization", "commonName"):
                if isinstance(subject, dict) and key not in subject:
                    subject[key] = ""
                    changed = True
    return changed


def _restore_trust_config(config: dict[str, Any]) -> bool:
    """The same for a ClientTrustConfig: its root, and its services' empty `operator`."""
    changed = _restore_trusted_root(config.get("trustedRoot"))
    signing = config.get("signingConfig")
    for field in ("caUrls", "oidcUrls", "rekorTlogUrls", "tsaUrls"):
        services = signing.get(field) if isinstance(signing, dict) else None
        for service in services if isinstance(services, list) else []:
            if isinstance(service, dict) and "operator" not in service:
                service["operator"] = ""
                changed = True
    return changed


def production_trusted_root() -> TrustedRoot:
    """The Sigstore public-good production root shipped in `client/data` (see its PROVENANCE)."""
    data = resources.files("keyless.client").joinpath("data", PRODUCTION_ROOT_RESOURCE).read_bytes()
    return TrustedRoot.from_json(data)


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


@dataclass(frozen=True)
class ServerTrust:
    """What a signing command takes from a keyless server's TUF repository, in one refresh."""

    trusted_root: TrustedRoot
    signing_config: bytes  # the verified bytes of the SigningConfig target


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
            found.append(_read_bounded(Path(path), name))
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
        data = _read_bounded(directory / "targets" / quote(name, safe=""), name)
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


def verify_with_key(
    public_key: PublicKeyTypes, details: str, signature: bytes, data: bytes
) -> None:
    """Check a signature with the algorithm `details` names; raises InvalidSignature."""
    _verifier_for(public_key, details)(signature, data)


def _verifier_for(public_key: PublicKeyTypes, details: str) -> Callable[[bytes, bytes], None]:
    """`verify(signature, data)` for this key with the algorithm `details` names; the
    function raises InvalidSignature. Raises TypeError for a key type no log uses."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    if isinstance(public_key, ec.EllipticCurvePublicKey):
        ec_key, ecdsa = public_key, ec.ECDSA(_hash_for(details))
        return lambda signature, data: ec_key.verify(signature, data, ecdsa)
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return public_key.verify
    if isinstance(public_key, rsa.RSAPublicKey):
        rsa_key, digest = public_key, _hash_for(details)
        pad = (
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
            if "PSS" in details
            else padding.PKCS1v15()
        )
        return lambda signature, data: rsa_key.verify(signature, data, pad, digest)
    raise TypeError(f"unsupported key type {type(public_key).__name__}")


def _hash_for(details: str) -> hashes.HashAlgorithm:
    from cryptography.hazmat.primitives import hashes

    if details.endswith("SHA_384"):
        return hashes.SHA384()
    if details.endswith("SHA_512"):
        return hashes.SHA512()
    return hashes.SHA256()


def _index_logs(logs: list[TransparencyLogInstance], field: str) -> dict[bytes, LogKey]:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    usable = (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, rsa.RSAPublicKey)
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    index: dict[bytes, LogKey] = {}
    for log in logs:
        key = log.public_key
        if key.raw_bytes is None:
            raise TrustRootError(detail=f"{field} entry {log.base_url} has no public key bytes")
        try:
            public_key = load_der_public_key(key.raw_bytes)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise TrustRootError(
                detail=f"{field} entry {log.base_url} has an unusable key"
            ) from exc
        if not isinstance(public_key, usable):
            raise TrustRootError(
                detail=f"{field} entry {log.base_url} has an unsupported "
                f"{type(public_key).__name__}"
            )
        entry = LogKey(
            base_url=log.base_url,
            key_id=log.log_id.key_id,
            key_details=key.key_details.value,
            public_key=public_key,
            # The schema makes a key's `validFor` optional; without one the key is trusted at
            # any time, as sigstore-python and sigstore-js read it. A `validFor` that is given
            # must have its start (the parse refuses one without).
            valid_for=UNBOUNDED if key.valid_for is None else _time_range(key.valid_for),
        )
        if entry.key_id in index:
            raise TrustRootError(detail=f"{field} lists log ID {entry.key_id.hex()} twice")
        index[entry.key_id] = entry
    return index


def _authority(ca: CertificateAuthority, field: str) -> Authority:
    from cryptography import x509

    raw = ca.cert_chain.certificates
    if not raw:
        raise TrustRootError(detail=f"{field} entry {ca.uri} has an empty certificate chain")
    if len(raw) > MAX_CHAIN_LENGTH:
        raise TrustRootError(
            detail=f"{field} entry {ca.uri} has a chain longer than {MAX_CHAIN_LENGTH}"
        )
    try:
        certificates = tuple(x509.load_der_x509_certificate(c.raw_bytes) for c in raw)
    except ValueError as exc:
        raise TrustRootError(detail=f"{field} entry {ca.uri} has a malformed certificate") from exc
    # Each link of the chain is checked once here, so verification can treat every
    # certificate of a trusted chain as an anchor without re-verifying the links per bundle.
    unissued = _first_unissued(certificates)
    # A CA chain listed root first is turned round: sigstore-python accepts it (every
    # certificate of a CA chain is an anchor there). A TSA chain is not: its first certificate
    # is the TSA's, for the reference clients as for keyless.
    if (
        unissued is not None
        and field == "certificateAuthorities"
        and _first_unissued(certificates[::-1]) is None
    ):
        certificates, unissued = certificates[::-1], None
    if unissued is not None:
        child, cause = unissued
        raise TrustRootError(
            detail=f"{field} entry {ca.uri}: {child.subject.rfc4514_string()} is not issued by "
            "the next certificate of its chain"
        ) from cause
    return Authority(
        uri=ca.uri or "", certificates=certificates, valid_for=_time_range(ca.valid_for)
    )


def _first_unissued(
    certificates: tuple[x509.Certificate, ...],
) -> tuple[x509.Certificate, Exception] | None:
    """The first certificate of the chain that the next one did not issue, and why; None
    when every link holds."""
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

    for child, parent in itertools.pairwise(certificates):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
            return child, exc
    return None


def _time_range(wire: WireTimeRange) -> TimeRange:
    start, end = wire.start, wire.end
    if start.tzinfo is None or (end is not None and end.tzinfo is None):
        raise TrustRootError(detail="trusted root validFor times must carry a UTC offset")
    return TimeRange(start=start, end=end)


def _read_bounded(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_TRUSTED_ROOT_BYTES + 1)
    except OSError as exc:
        raise TrustRootError(detail=f"cannot read {what} {path}: {exc.strerror}") from exc
    if len(data) > MAX_TRUSTED_ROOT_BYTES:
        raise TrustRootError(detail=f"{what} {path} is larger than {MAX_TRUSTED_ROOT_BYTES} bytes")
    return data


def staging_trusted_root() -> TrustedRoot:
    """The Sigstore public-good staging root shipped in `client/data` (see its PROVENANCE)."""
    data = resources.files("keyless.client").joinpath("data", STAGING_ROOT_RESOURCE).read_bytes()
    return TrustedRoot.from_json(data)

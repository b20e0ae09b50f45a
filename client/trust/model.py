"""Trusted roots: load a Sigstore `TrustedRoot` once, with every key and certificate parsed.

The pure trust model: no network, no disk but the file it is asked to read, no POSIX-only
module, so `keyless verify` imports nothing else of trust. The wire shape is read by
`keyless.client.wire` (sigstore-models' schema without pydantic, and the proto3 defaults: JSON
leaves out empty strings, so a CA `subject` without `commonName` is a valid TrustedRoot;
Sigstore's scaffolding publishes such roots and sigstore-go and cosign load them). This module
adds the invariants verification relies on (every authority a non-empty chain, times with an
offset) and turns raw bytes into cryptography objects once, so a `Verifier` can be reused
across many bundles.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from keyless.client.trust.keys import verifier_for
from keyless.client.verify.errors import TrustRootError, iso

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

    from keyless.client.wire.common import TimeRange as WireTimeRange
    from keyless.client.wire.trustroot import CertificateAuthority, TransparencyLogInstance
    from keyless.client.wire.trustroot import TrustedRoot as WireTrustedRoot

# Trusted roots are a few KB; refuse anything absurd before parsing it.
MAX_TRUSTED_ROOT_BYTES = 1024 * 1024
MAX_LOGS = 64
MAX_AUTHORITIES = 64
MAX_CHAIN_LENGTH = 8

PRODUCTION_ROOT_RESOURCE = "production_trusted_root.json"
STAGING_ROOT_RESOURCE = "staging_trusted_root.json"


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
        return verifier_for(self.public_key, self.key_details)


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
        from keyless.client.wire import WireError, read_trusted_root
        from keyless.strictjson import JSONError

        try:
            wire = read_trusted_root(data)
        except JSONError as exc:
            raise TrustRootError(detail=str(exc)) from exc
        except WireError as exc:
            raise TrustRootError(detail=f"malformed trusted root: {exc}") from exc
        return cls.from_wire(wire)

    @classmethod
    def from_wire(cls, wire: WireTrustedRoot) -> TrustedRoot:
        """Build from a trusted root as the wire reader read it (alone or in a trust config)."""
        if len(wire.tlogs) > MAX_LOGS or len(wire.ctlogs) > MAX_LOGS:
            raise TrustRootError(detail=f"trusted root lists more than {MAX_LOGS} logs")
        authorities = (wire.certificate_authorities, wire.timestamp_authorities)
        if any(len(listed) > MAX_AUTHORITIES for listed in authorities):
            raise TrustRootError(
                detail=f"trusted root lists more than {MAX_AUTHORITIES} authorities"
            )
        return cls(
            tlogs=_index_logs(wire.tlogs, "tlogs"),
            ctlogs=_index_logs(wire.ctlogs, "ctlogs"),
            certificate_authorities=tuple(
                _authority(ca, "certificateAuthorities") for ca in wire.certificate_authorities
            ),
            timestamp_authorities=tuple(
                _authority(ca, "timestampAuthorities") for ca in wire.timestamp_authorities
            ),
        )


@dataclass(frozen=True)
class ServerTrust:
    """What a signing command takes from a keyless server's TUF repository, in one refresh."""

    trusted_root: TrustedRoot
    signing_config: bytes  # the verified bytes of the SigningConfig target


def load_trusted_root(path: str | os.PathLike[str]) -> TrustedRoot:
    """Read a TrustedRoot JSON file (raises TrustRootError)."""
    return TrustedRoot.from_json(read_trust_file(Path(path), "trusted root"))


def load_trust_config(path: str | os.PathLike[str]) -> TrustedRoot:
    """Read the trusted root out of a Sigstore ClientTrustConfig JSON file (its signing config
    must be well-formed too, though verification does not use it)."""
    from keyless.client.wire import WireError, read_client_trust_config
    from keyless.strictjson import JSONError

    data = read_trust_file(Path(path), "trust config")
    try:
        config = read_client_trust_config(data, what=f"trust config {path}")
    except JSONError as exc:
        raise TrustRootError(detail=str(exc)) from exc
    except WireError as exc:
        raise TrustRootError(detail=f"malformed trust config {path}: {exc}") from exc
    return TrustedRoot.from_wire(config.trusted_root)


def production_trusted_root() -> TrustedRoot:
    """The Sigstore public-good production root shipped in `client/data` (see its PROVENANCE)."""
    return TrustedRoot.from_json(_shipped(PRODUCTION_ROOT_RESOURCE))


def staging_trusted_root() -> TrustedRoot:
    """The Sigstore public-good staging root shipped in `client/data` (see its PROVENANCE)."""
    return TrustedRoot.from_json(_shipped(STAGING_ROOT_RESOURCE))


def _shipped(name: str) -> bytes:
    from importlib import resources

    return resources.files("keyless.client").joinpath("data", name).read_bytes()


def _index_logs(logs: tuple[TransparencyLogInstance, ...], field: str) -> dict[bytes, LogKey]:
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
            kind = type(public_key).__name__
            raise TrustRootError(detail=f"{field} entry {log.base_url} has an unsupported {kind}")
        entry = LogKey(
            base_url=log.base_url,
            key_id=log.log_id.key_id,
            key_details=key.key_details,
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


def read_trust_file(path: Path, what: str) -> bytes:
    """The bytes of a trust document (raises TrustRootError: unreadable, or too large)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_TRUSTED_ROOT_BYTES + 1)
    except OSError as exc:
        raise TrustRootError(detail=f"cannot read {what} {path}: {exc.strerror}") from exc
    if len(data) > MAX_TRUSTED_ROOT_BYTES:
        raise TrustRootError(detail=f"{what} {path} is larger than {MAX_TRUSTED_ROOT_BYTES} bytes")
    return data

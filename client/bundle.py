"""Sigstore bundles: read with the lean wire reader and enforce each media type's rules at load.

A `Bundle` is immutable and already shaped for verification: the leaf certificate parsed, the
single log entry picked, the signature and (for DSSE) the envelope at hand. The JSON is read by
`keyless.client.wire` (strict JSON, sigstore-models' schema, without pydantic: the verify
path's start-up), which also restores the proto3 defaults sigstore-js leaves out; the rules
below are keyless's own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from keyless.client.verify.errors import BundleError

if TYPE_CHECKING:
    from cryptography import x509

    from keyless.client.wire.bundle import Bundle as WireBundle
    from keyless.client.wire.bundle import (
        Envelope,
        TransparencyLogEntry,
        VerificationMaterial,
    )
    from keyless.client.wire.common import HashOutput

# Bundles are a few KB; DSSE payloads (SBOMs, provenance) can be larger, so allow some room.
MAX_BUNDLE_BYTES = 32 * 1024 * 1024
MAX_TIMESTAMPS = 32
MAX_CHAIN_CERTIFICATES = 8
MAX_PROOF_HASHES = 64
MAX_CHECKPOINT_BYTES = 64 * 1024

# The media type versions the schema accepts, mapped to the rules version they follow.
MEDIA_TYPE_VERSIONS: dict[str, str] = {
    "application/vnd.dev.sigstore.bundle+json;version=0.1": "0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2": "0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3": "0.3",
    "application/vnd.dev.sigstore.bundle.v0.3+json": "0.3",
}


@dataclass(frozen=True)
class Bundle:
    """A parsed bundle with its invariants checked."""

    version: str
    leaf: x509.Certificate | None
    leaf_der: bytes | None
    # None only for a v0.2+ bundle that carries RFC 3161 timestamps and no log entry, as a
    # log-less instance (GitHub's private-repository one) makes; see Verifier for the rule.
    entry: TransparencyLogEntry | None
    timestamps: tuple[bytes, ...]
    signature: bytes
    message_digest: HashOutput | None
    envelope: Envelope | None
    # The certificates after the leaf in a v0.1/v0.2 chain: never trusted for being there (only
    # the trusted root's are); the verifier refuses a root among them that is not the root's.
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def has_checkpoint(self) -> bool:
        if self.entry is None:
            return False
        proof = self.entry.inclusion_proof
        return proof is not None and proof.checkpoint is not None

    @classmethod
    def from_json(cls, data: bytes | str) -> Bundle:
        """Parse a bundle and check the rules of its media type.

        Raises:
            BundleError: malformed JSON, unknown media type, wrong key material for the
                version, not exactly one log entry, missing proof or promise, and so on.
        """
        if len(data) > MAX_BUNDLE_BYTES:
            raise BundleError(detail=f"bundle is larger than {MAX_BUNDLE_BYTES} bytes")
        from keyless.client.wire import WireError, read_bundle
        from keyless.strictjson import JSONError

        try:
            wire = read_bundle(data)
        except JSONError as exc:
            raise BundleError(detail=str(exc)) from exc
        except WireError as exc:
            raise BundleError(detail=f"malformed bundle: {exc}") from exc
        return cls.from_wire(wire)

    @classmethod
    def from_wire(cls, wire: WireBundle) -> Bundle:
        """Check a bundle as the wire reader read it, and wrap it."""
        version = MEDIA_TYPE_VERSIONS.get(wire.media_type)
        if version is None:
            raise BundleError(detail=f"unsupported bundle media type {wire.media_type!r}")
        material = wire.verification_material
        leaf, leaf_der, chain = _leaf_certificate(material, version)
        timestamps = _timestamps(material)

        if not material.tlog_entries and version != "0.1" and timestamps:
            entry = None
        elif len(material.tlog_entries) != 1:
            count = len(material.tlog_entries)
            raise BundleError(
                detail=f"expected exactly one transparency log entry, got {count}"
                + ("" if material.tlog_entries or timestamps else " (and no RFC 3161 timestamp)")
            )
        else:
            entry = material.tlog_entries[0]
            _check_entry(entry, version, has_timestamps=bool(timestamps))

        if wire.message_signature is not None:
            signature = wire.message_signature.signature
            digest = wire.message_signature.message_digest
            envelope = None
        else:
            envelope = wire.dsse_envelope
            if envelope is None or len(envelope.signatures) != 1:
                raise BundleError(detail="a DSSE envelope must carry exactly one signature")
            signature = envelope.signatures[0].sig
            digest = None
        if not signature:
            raise BundleError(detail="bundle signature is empty")
        return cls(
            version=version,
            leaf=leaf,
            leaf_der=leaf_der,
            entry=entry,
            timestamps=timestamps,
            signature=signature,
            message_digest=digest,
            envelope=envelope,
            chain=chain,
        )


def _timestamps(material: VerificationMaterial) -> tuple[bytes, ...]:
    """The bundle's RFC 3161 timestamps, bounded in number and distinct."""
    data = material.timestamp_verification_data
    timestamps: tuple[bytes, ...] = ()
    if data is not None:
        timestamps = tuple(t.signed_timestamp for t in data.rfc3161_timestamps)
    if len(timestamps) > MAX_TIMESTAMPS:
        raise BundleError(detail=f"bundle carries more than {MAX_TIMESTAMPS} RFC 3161 timestamps")
    if len(set(timestamps)) != len(timestamps):
        raise BundleError(detail="bundle carries the same RFC 3161 timestamp twice")
    return timestamps


def _check_entry(entry: TransparencyLogEntry, version: str, *, has_timestamps: bool) -> None:
    """The log entry's proof and promise are what the bundle version requires, and bounded."""
    proof = entry.inclusion_proof
    if proof is None:
        # Allowed in v0.1 only: its SET (required below) then proves the entry was logged.
        if version != "0.1":
            raise BundleError(
                detail="malformed bundle: verificationMaterial.tlogEntries.0.inclusionProof: "
                f"Field required (only v0.1 bundles may omit it, this is v{version})"
            )
    elif len(proof.hashes) > MAX_PROOF_HASHES:
        raise BundleError(detail=f"inclusion proof has more than {MAX_PROOF_HASHES} hashes")
    elif proof.checkpoint is not None and len(proof.checkpoint.envelope) > MAX_CHECKPOINT_BYTES:
        raise BundleError(detail=f"checkpoint is larger than {MAX_CHECKPOINT_BYTES} bytes")
    if version == "0.1":
        if entry.inclusion_promise is None:
            raise BundleError(detail="a v0.1 bundle must carry an inclusion promise (SET)")
    else:
        if proof is None or proof.checkpoint is None:
            raise BundleError(detail=f"a v{version} bundle must carry a checkpoint in its proof")
        if entry.inclusion_promise is None and not has_timestamps:
            raise BundleError(
                detail="bundle has neither an inclusion promise nor an RFC 3161 timestamp"
            )


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Read and parse a bundle file (raises BundleError)."""
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise BundleError(detail=f"cannot read bundle {path}: {exc.strerror}") from exc
    return Bundle.from_json(data)


def _leaf_certificate(
    material: VerificationMaterial, version: str
) -> tuple[x509.Certificate | None, bytes | None, tuple[x509.Certificate, ...]]:
    """The signing certificate, its DER and the rest of its chain, or (None, None, ()) for a
    managed-key bundle."""
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm

    certificate = material.certificate
    chain = material.x509_certificate_chain
    if material.public_key is not None:
        return None, None, ()
    if version == "0.3":
        if certificate is None:
            raise BundleError(detail="a v0.3 bundle must carry a single `certificate`, not a chain")
        raw = [certificate.raw_bytes]
    else:
        if chain is None:
            raise BundleError(detail=f"a v{version} bundle must carry an x509CertificateChain")
        raw = [c.raw_bytes for c in chain.certificates]
        if not raw:
            raise BundleError(detail="the bundle's certificate chain is empty")
        if len(raw) > MAX_CHAIN_CERTIFICATES:
            raise BundleError(
                detail=f"certificate chain has more than {MAX_CHAIN_CERTIFICATES} entries"
            )
    try:
        certificates = [x509.load_der_x509_certificate(r) for r in raw]
    except ValueError as exc:
        raise BundleError(detail=f"bundle certificate is not valid DER: {exc}") from exc
    leaf, rest = certificates[0], certificates[1:]
    # cryptography parses extensions and keys lazily; parse them now so a malformed leaf is
    # a bundle error here rather than an exception deep inside a later check.
    try:
        leaf.extensions  # noqa: B018 - forces (and caches) extension parsing
        leaf.public_key()
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise BundleError(detail=f"the signing certificate is malformed: {exc}") from exc
    except UnsupportedAlgorithm as exc:
        raise BundleError(detail=f"the signing certificate has an unsupported key: {exc}") from exc
    if _is_ca(leaf):
        raise BundleError(detail="the first certificate of the bundle is a CA, not a signing leaf")
    return leaf, raw[0], tuple(rest)


def _is_ca(cert: x509.Certificate) -> bool:
    from cryptography.x509.oid import ExtensionOID

    from keyless.client.verify.certs import extension_value

    constraints = extension_value(cert, ExtensionOID.BASIC_CONSTRAINTS)
    return constraints is not None and constraints.ca

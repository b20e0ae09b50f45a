"""Sigstore bundles: parse with sigstore-models and enforce each media type's rules at load.

A `Bundle` is immutable and already shaped for verification: the leaf certificate parsed, the
single log entry picked, the signature and (for DSSE) the envelope at hand.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from keyless.client.verify.errors import BundleError, describe_validation_error

if TYPE_CHECKING:
    from cryptography import x509
    from sigstore_models.bundle.v1 import Bundle as WireBundle
    from sigstore_models.common.v1 import HashOutput
    from sigstore_models.intoto import Envelope
    from sigstore_models.rekor.v1 import TransparencyLogEntry

# Bundles are a few KB; DSSE payloads (SBOMs, provenance) can be larger, so allow some room.
MAX_BUNDLE_BYTES = 32 * 1024 * 1024
MAX_TIMESTAMPS = 32
MAX_CHAIN_CERTIFICATES = 8
MAX_PROOF_HASHES = 64
MAX_CHECKPOINT_BYTES = 64 * 1024

# The media type versions sigstore-models accepts, mapped to the rules version they follow.
MEDIA_TYPE_VERSIONS: dict[str, str] = {
    "application/vnd.dev.sigstore.bundle+json;version=0.1": "0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2": "0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3": "0.3",
    "application/vnd.dev.sigstore.bundle.v0.3+json": "0.3",
}


@dataclass(frozen=True)
class Bundle:
    """A parsed bundle with its invariants checked."""

    wire: WireBundle
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
        from pydantic import ValidationError

        model = _wire_bundle_model()
        try:
            wire = model.from_json(data)
        except ValidationError as exc:
            restored = _with_proto3_defaults(data)
            if restored is None:
                raise BundleError(
                    detail=f"malformed bundle: {describe_validation_error(exc)}"
                ) from exc
            try:
                wire = model.from_json(restored)
            except ValidationError:
                raise BundleError(
                    detail=f"malformed bundle: {describe_validation_error(exc)}"
                ) from exc
        return cls.from_model(wire)

    @classmethod
    def from_model(cls, wire: WireBundle) -> Bundle:
        """Check a sigstore-models bundle and wrap it."""
        version = MEDIA_TYPE_VERSIONS.get(wire.media_type)
        if version is None:
            raise BundleError(detail=f"unsupported bundle media type {wire.media_type!r}")
        material = wire.verification_material
        leaf, leaf_der, chain = _leaf_certificate(material, version)
        timestamps = _timestamps(material)

        if not material.tlog_entries and version != "0.1" and timestamps:
            entry = None
        elif len(material.tlog_entries) != 1:
            raise BundleError(
                detail="expected exactly one transparency log entry, got "
                f"{len(material.tlog_entries)}"
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
            wire=wire,
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


def _timestamps(material: object) -> tuple[bytes, ...]:
    """The bundle's RFC 3161 timestamps, bounded in number and distinct."""
    data = material.timestamp_verification_data  # type: ignore[attr-defined]
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


@functools.cache
def _wire_bundle_model() -> type[WireBundle]:
    """sigstore-models' Bundle, except that a log entry's `inclusionProof` may be absent,
    and so may `tlogEntries`.

    The bundle schema requires the proof only from v0.2 on; a v0.1 bundle may carry just the
    inclusion promise (SET), and sigstore-js, sigstore-go and cosign verify such bundles by it.
    `Bundle.from_model` refuses a missing proof for every later version.
    """
    from typing import Optional

    from sigstore_models.bundle.v1 import Bundle as StrictBundle
    from sigstore_models.bundle.v1 import VerificationMaterial
    from sigstore_models.rekor.v1 import InclusionProof, TransparencyLogEntry

    class Entry(TransparencyLogEntry):
        inclusion_proof: Optional[InclusionProof] = None  # noqa: UP045 - pydantic resolves it

    class Material(VerificationMaterial):
        # Absent (proto3 omits an empty list) in a log-less instance's bundles, which carry
        # only RFC 3161 timestamps; `Bundle.from_model` allows that from v0.2 on, with one.
        tlog_entries: list[Entry] = []  # type: ignore[assignment]  # noqa: RUF012

    class Bundle(StrictBundle):
        verification_material: Material  # type: ignore[assignment]

    return Bundle


def _with_proto3_defaults(data: bytes | str) -> str | None:
    """The bundle with the proto3 defaults its writer left out restored, or None if none were.

    Proto3 JSON omits fields holding their default value, and sigstore-js writes it that way:
    the first entry of a log has `logIndex` 0 and a one-leaf tree's proof has no `hashes`, so
    both vanish. sigstore-models requires them (sigstore-go fixed the same, its PR #452). Only
    fields whose default is a legitimate value are restored; everything else stays required.
    """
    import json

    try:
        document = json.loads(data)
        entries = document["verificationMaterial"]["tlogEntries"]
    except (ValueError, KeyError, TypeError):
        return None
    changed = False
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        proof = entry.get("inclusionProof")
        targets = [(entry, "logIndex", "0")]
        if isinstance(proof, dict):
            targets += [(proof, "logIndex", "0"), (proof, "hashes", [])]
        for holder, key, default in targets:
            if key not in holder:
                holder[key] = default
                changed = True
    return json.dumps(document) if changed else None


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Read and parse a bundle file (raises BundleError)."""
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise BundleError(detail=f"cannot read bundle {path}: {exc.strerror}") from exc
    return Bundle.from_json(data)


def _leaf_certificate(
    material: object, version: str
) -> tuple[x509.Certificate | None, bytes | None, tuple[x509.Certificate, ...]]:
    """The signing certificate, its DER and the rest of its chain, or (None, None, ()) for a
    managed-key bundle."""
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm

    certificate = material.certificate  # type: ignore[attr-defined]
    chain = material.x509_certificate_chain  # type: ignore[attr-defined]
    if material.public_key is not None:  # type: ignore[attr-defined]
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

"""The Sigstore bundle's shape (protobuf-specs `dev.sigstore.bundle.v1`, with the Rekor log
entry and the DSSE envelope it holds), as sigstore-models reads it, except:
- a log entry's `inclusionProof` may be absent: the schema requires it only from v0.2 on, a
  v0.1 bundle may carry just its SET, and sigstore-js, sigstore-go and cosign verify such
  bundles by it. `tlogEntries` may be absent too (proto3 JSON omits an empty list), as in a
  log-less instance's bundles, which carry only RFC 3161 timestamps. `keyless.client.bundle`
  then applies each media type version's rule;
- proto3 JSON omits a field holding its default, and sigstore-js writes it that way: the first
  entry of a log has `logIndex` 0 and a one-leaf tree's proof has no `hashes`, so both vanish.
  They read as 0 and empty (sigstore-go fixed the same, its PR #452); every other field stays
  required.
"""

from __future__ import annotations

from keyless.client.wire.common import (
    LogId,
    MessageSignature,
    PublicKeyIdentifier,
    RFC3161SignedTimestamp,
    X509Certificate,
    X509CertificateChain,
)
from keyless.client.wire.schema import (
    Field,
    Message,
    data,
    list_of,
    message,
    one_of,
    optional,
    read_document,
    text,
    uint64,
)

MEDIA_TYPES = (
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
)


class KindVersion(Message):
    """The log entry's type, as Rekor names it (`hashedrekord`, `0.0.1`)."""

    kind: str
    version: str
    FIELDS = (Field("kind", text), Field("version", text))


class Checkpoint(Message):
    """A signed note: the log's checkpoint text and its signature lines."""

    envelope: str
    FIELDS = (Field("envelope", text),)


class InclusionProof(Message):
    """The entry's Merkle inclusion proof in a tree of `tree_size` with `root_hash`."""

    log_index: int
    root_hash: bytes
    tree_size: int
    hashes: tuple[bytes, ...]
    checkpoint: Checkpoint | None
    FIELDS = (
        Field("log_index", uint64, absent=0),
        Field("root_hash", data),
        Field("tree_size", uint64),
        Field("hashes", list_of(data), absent=()),
        optional("checkpoint", message(Checkpoint)),
    )

    def check(self) -> None:
        if self.tree_size <= self.log_index:
            raise ValueError(
                f"logIndex {self.log_index} must be less than treeSize {self.tree_size}"
            )


class InclusionPromise(Message):
    """The signed entry timestamp (SET) of a Rekor v1 log."""

    signed_entry_timestamp: bytes
    FIELDS = (Field("signed_entry_timestamp", data),)


class TransparencyLogEntry(Message):
    """One log entry with its evidence (integrated time, SET, inclusion proof) and body."""

    log_index: int
    log_id: LogId
    kind_version: KindVersion
    integrated_time: int | None
    inclusion_promise: InclusionPromise | None
    inclusion_proof: InclusionProof | None
    canonicalized_body: bytes
    FIELDS = (
        Field("log_index", uint64, absent=0),
        Field("log_id", message(LogId)),
        Field("kind_version", message(KindVersion)),
        optional("integrated_time", uint64),
        optional("inclusion_promise", message(InclusionPromise)),
        optional("inclusion_proof", message(InclusionProof)),
        Field("canonicalized_body", data),
    )


class TimestampVerificationData(Message):
    """RFC 3161 timestamps over the bundle's signature."""

    rfc3161_timestamps: tuple[RFC3161SignedTimestamp, ...]
    FIELDS = (Field("rfc3161_timestamps", list_of(message(RFC3161SignedTimestamp)), absent=()),)


class VerificationMaterial(Message):
    """The key material (exactly one of a key hint, a chain, a certificate) and the evidence."""

    public_key: PublicKeyIdentifier | None
    x509_certificate_chain: X509CertificateChain | None
    certificate: X509Certificate | None
    tlog_entries: tuple[TransparencyLogEntry, ...]
    timestamp_verification_data: TimestampVerificationData | None
    FIELDS = (
        optional("public_key", message(PublicKeyIdentifier)),
        optional("x509_certificate_chain", message(X509CertificateChain)),
        optional("certificate", message(X509Certificate)),
        Field("tlog_entries", list_of(message(TransparencyLogEntry)), absent=()),
        optional("timestamp_verification_data", message(TimestampVerificationData)),
    )

    def check(self) -> None:
        given = (self.public_key, self.x509_certificate_chain, self.certificate)
        if sum(part is not None for part in given) != 1:
            raise ValueError(
                "Exactly one of publicKey, x509CertificateChain, or certificate must be set"
            )


class Signature(Message):
    """A DSSE signature and its optional, unauthenticated key ID."""

    sig: bytes
    keyid: str | None
    FIELDS = (Field("sig", data), optional("keyid", text))


class Envelope(Message):
    """A DSSE envelope: the payload, its type, and the signatures over their PAE."""

    payload: bytes
    payload_type: str
    signatures: tuple[Signature, ...]
    FIELDS = (
        Field("payload", data),
        Field("payload_type", text),
        Field("signatures", list_of(message(Signature))),
    )


class Bundle(Message):
    """A Sigstore bundle: media type, verification material, and exactly one of a message
    signature and a DSSE envelope."""

    media_type: str
    verification_material: VerificationMaterial
    message_signature: MessageSignature | None
    dsse_envelope: Envelope | None
    FIELDS = (
        Field("media_type", one_of(*MEDIA_TYPES)),
        Field("verification_material", message(VerificationMaterial)),
        optional("message_signature", message(MessageSignature)),
        optional("dsse_envelope", message(Envelope)),
    )

    def check(self) -> None:
        if (self.message_signature is None) == (self.dsse_envelope is None):
            raise ValueError("Exactly one of messageSignature or dsseEnvelope must be set")


def read_bundle(document: bytes | str) -> Bundle:
    """Read a bundle's JSON.

    Raises:
        JSONError: not strict JSON.
        WireError: not a bundle.
    """
    return read_document(Bundle, document, what="bundle")

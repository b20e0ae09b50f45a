"""Log body consistency: the logged entry is about this signature, this key and this artifact.

Without this check a valid entry for *another* signing could be attached to a bundle (the
CVE-2022-36056 family). The body is read by `client.entry_body`; here it is held to the bundle.

Which kinds may back which bundle (client-spec §4.4, rekor-v2-spec §6.1.4):

- a message signature: `hashedrekord` (0.0.1 in Rekor v1, 0.0.2 in Rekor v2) over the artifact;
- a DSSE envelope: in Rekor v1 `dsse` 0.0.1 or `intoto` 0.0.2; in Rekor v2 `hashedrekord`
  0.0.2 over the envelope's PAE, the one kind a Rekor v2 log takes. A `dsse` 0.0.2 entry is
  refused: rekor-tiles dropped that kind before Rekor v2 was deployed, and sigstore-python and
  sigstore-go refuse it too.

Any other pairing, a message signature behind a DSSE kind or an envelope behind hashedrekord
0.0.1, fails.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from keyless.client.entry_body import (
    DSSE,
    KINDS,
    EntryBodyError,
    HashedRekord,
    InToto,
    Signature,
    Signer,
    SignerForm,
    parse_entry_body,
)
from keyless.client.verify.errors import VerificationError

CHECK = "log-body"

MESSAGE_KINDS = frozenset({("hashedrekord", "0.0.1"), ("hashedrekord", "0.0.2")})
ENVELOPE_KINDS = frozenset({("dsse", "0.0.1"), ("intoto", "0.0.2"), ("hashedrekord", "0.0.2")})


@dataclass(frozen=True)
class Signed:
    """What the bundle claims was logged: the verification key, the signature and its subject."""

    key_der: bytes  # DER SPKI of the signing key (leaf's key, or the managed key)
    leaf_der: bytes | None  # DER of the leaf certificate, None for managed keys
    key_details: str  # e.g. PKIX_ECDSA_P256_SHA_256, for Rekor v2 verifiers
    signature: bytes
    digest: bytes  # digest of the artifact (message signature) or SHA-256 of the PAE (DSSE)
    payload: bytes | None  # DSSE payload, None for message signatures
    digest_algorithm: str = "sha256"  # the algorithm of `digest`
    payload_type: str | None = None  # DSSE payload type, None for message signatures


def check_entry_body(body: bytes, *, kind: str, version: str, signed: Signed) -> None:
    """Check that the canonicalized log body records exactly the bundle's signing.

    `kind` and `version` are the bundle's `kindVersion`; the body must be that entry.

    Raises:
        VerificationError("log-body"): unsupported kind, a kind that cannot back this
            bundle's content, malformed body, or any mismatch.
    """
    allowed = MESSAGE_KINDS if signed.payload is None else ENVELOPE_KINDS
    if (kind, version) not in allowed:
        if (kind, version) not in KINDS:
            raise VerificationError(
                reason=CHECK, detail=f"unsupported log entry kind {kind}/{version}"
            )
        content = "message-signature" if signed.payload is None else "DSSE"
        why = ""
        if (kind, version) == ("dsse", "0.0.2") and signed.payload is not None:
            why = " (Rekor v2 logs a DSSE envelope as hashedrekord/0.0.2 over its PAE)"
        raise VerificationError(
            reason=CHECK,
            detail=f"a {content} bundle cannot be backed by a {kind}/{version} entry{why}",
        )
    try:
        entry = parse_entry_body(body, what="log body", announced=(kind, version))
    except EntryBodyError as exc:
        raise VerificationError(reason=CHECK, detail=str(exc)) from exc
    # The allowed kinds above give a DSSE or intoto entry only to a bundle with a payload.
    if isinstance(entry, HashedRekord):
        _check_hashedrekord(entry, signed)
    elif isinstance(entry, InToto) and signed.payload is not None:
        _check_intoto(entry, signed, signed.payload)
    elif isinstance(entry, DSSE) and signed.payload is not None:
        _check_dsse(entry, signed, signed.payload)


def _check_hashedrekord(entry: HashedRekord, signed: Signed) -> None:
    """The entry's digest is the one the bundle's signature signs: the artifact's, or for a
    DSSE envelope (Rekor v2) its PAE's; its signature and signer are the bundle's."""
    algorithm, logged = entry.digest.algorithm, entry.digest.value
    if algorithm != signed.digest_algorithm:
        raise VerificationError(
            reason=CHECK,
            detail=f"log entry hash algorithm {algorithm} is not {signed.digest_algorithm}",
        )
    if logged != signed.digest:
        if signed.payload is not None:
            raise VerificationError(
                reason=CHECK,
                detail=f"log entry digest {logged.hex()} does not match the PAE of the DSSE "
                "envelope",
            )
        raise VerificationError(
            reason=CHECK,
            detail=f"log entry is for artifact {algorithm}:{logged.hex()}, not "
            f"{signed.digest_algorithm}:{signed.digest.hex()}",
        )
    if entry.signature.content != signed.signature:
        raise VerificationError(
            reason=CHECK, detail="log entry signature does not match the bundle signature"
        )
    _check_signer(entry.signature.signer, signed)


def _check_dsse(entry: DSSE, signed: Signed, payload: bytes) -> None:
    """The entry records the hash of the bundle's payload and its one signature and signer.

    The 0.0.1 envelope hash covers uncanonicalized JSON we do not have, so it cannot be
    checked; the payload hash and the signature bind the entry to this envelope."""
    if hashlib.new(entry.payload_hash.algorithm, payload).digest() != entry.payload_hash.value:
        raise VerificationError(
            reason=CHECK, detail="log entry payload hash does not match the DSSE payload"
        )
    _check_envelope_signature(entry.signatures, signed)


def _check_intoto(entry: InToto, signed: Signed, payload: bytes) -> None:
    """An intoto 0.0.2 entry as Rekor and keyless's log store it holds the envelope's payload
    type, signature and signer, and its payload's SHA-256, not the payload (sigstore-js and
    npm provenance log such entries): each of those must be the bundle's. An older log's entry
    that kept the payload must hold exactly the bundle's. One of the two must be there. The
    envelope hash (`content.hash`) covers the client's own serialization of the envelope,
    which no standard fixes, so it is not checked, as sigstore-go and sigstore-js do not."""
    hashed = entry.payload_hash
    if hashed is None and entry.payload is None:
        raise VerificationError(
            reason=CHECK, detail="log entry records neither the payload nor its hash"
        )
    if hashed is not None and hashlib.new(hashed.algorithm, payload).digest() != hashed.value:
        raise VerificationError(
            reason=CHECK, detail="log entry payload hash does not match the DSSE payload"
        )
    if entry.payload is not None and entry.payload != payload:
        raise VerificationError(
            reason=CHECK, detail="log entry envelope payload does not match the bundle"
        )
    if entry.payload_type != signed.payload_type:
        raise VerificationError(
            reason=CHECK,
            detail=f"log entry payload type {entry.payload_type[:100]!r} is not the envelope's "
            f"{signed.payload_type!r}",
        )
    _check_envelope_signature(entry.signatures, signed)


def _check_envelope_signature(signatures: tuple[Signature, ...], signed: Signed) -> None:
    if len(signatures) != 1:
        raise VerificationError(
            reason=CHECK, detail="log entry must record exactly one DSSE signature"
        )
    if signatures[0].content != signed.signature:
        raise VerificationError(
            reason=CHECK, detail="log entry signature does not match the DSSE signature"
        )
    _check_signer(signatures[0].signer, signed)


def _check_signer(signer: Signer, signed: Signed) -> None:
    """The logged signer is the bundle's certificate (byte for byte) or its managed key; a
    Rekor v2 signer also names the bundle key's details."""
    if signer.key_details is not None and signer.key_details != signed.key_details:
        raise VerificationError(
            reason=CHECK,
            detail=f"log entry key details {signer.key_details[:64]} != {signed.key_details}",
        )
    if signed.leaf_der is not None:
        if signer.form is not SignerForm.CERTIFICATE:
            raise VerificationError(
                reason=CHECK, detail="log entry names a public key, not the bundle's certificate"
            )
        if signer.der != signed.leaf_der:
            raise VerificationError(
                reason=CHECK, detail="log entry certificate is not the bundle's certificate"
            )
        return
    if signer.form is not SignerForm.PUBLIC_KEY:
        raise VerificationError(
            reason=CHECK, detail="log entry names a certificate, not the bundle's key"
        )
    if signer.der != signed.key_der and _spki(signer.der) != signed.key_der:
        raise VerificationError(
            reason=CHECK, detail="log entry public key is not the verification key"
        )


def _spki(der: bytes) -> bytes | None:
    """A logged key in the DER form the bundle's key is compared in (e.g. a compressed EC
    point written out in full), or None if it is no key."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        return None
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

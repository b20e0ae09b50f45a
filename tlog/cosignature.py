"""Verifier keys and witness cosignatures (C2SP signed-note vkeys, tlog-cosignature v1). Pure.

A verifier key (vkey) names a note signer: `<name>+<hex key ID>+<base64(type || key)>`. The
types keyless reads: 0x01 Ed25519 note signatures (a Rekor v2 log), 0x02 ECDSA over SHA-256
with the key as DER SubjectPublicKeyInfo and the key ID its SHA-256 (a Rekor v1 log, as
transparency-dev's witness encodes it), and 0x04 Ed25519 cosignatures (a witness).

A cosignature/v1 line signs `cosignature/v1\\ntime <t>\\n` followed by the checkpoint's note
text; its signature bytes are `key ID || uint64 big-endian t || Ed25519 signature`. It says: at
time t, the largest consistent tree the witness saw for this origin has this root. The signed
message does not commit to the witness's name, so one key must not serve two names.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from keyless.core.encoding import b64decode, b64encode
from keyless.core.errors import Reason
from keyless.tlog.checkpoint import (
    _NAME,
    KEY_HINT_BYTES,
    NoteSignature,
    PublicKey,
    SignedNote,
    verify_note,
)
from keyless.tlog.errors import CheckpointError

ED25519 = 0x01
ECDSA = 0x02
COSIGNATURE_V1 = 0x04
MAX_VKEY_CHARS = 1024
_TIMESTAMP = struct.Struct(">Q")
_COSIGNATURE_BYTES = _TIMESTAMP.size + 64
MAX_TIMESTAMP = 2**63 - 1


@dataclass(frozen=True)
class VerifierKey:
    """A note verifier: a name, a signature type and a public key (`key_id` derived)."""

    name: str
    kind: int
    public_key: PublicKey

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"invalid note key name {self.name!r}")
        if self.kind not in (ED25519, ECDSA, COSIGNATURE_V1):
            raise ValueError(f"unsupported verifier key type {self.kind:#04x}")
        ecdsa = isinstance(self.public_key, ec.EllipticCurvePublicKey)
        if ecdsa != (self.kind == ECDSA):
            raise TypeError(f"a type {self.kind:#04x} verifier key needs another key type")

    def key_material(self) -> bytes:
        """The public key as a vkey encodes it (raw Ed25519, or DER SPKI for ECDSA)."""
        if isinstance(self.public_key, ec.EllipticCurvePublicKey):
            return self.public_key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        return self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID that the signer's note signature lines begin with."""
        material = self.key_material()
        if self.kind == ECDSA:
            return hashlib.sha256(material).digest()[:KEY_HINT_BYTES]
        data = self.name.encode() + b"\n" + bytes([self.kind]) + material
        return hashlib.sha256(data).digest()[:KEY_HINT_BYTES]

    def render(self) -> str:
        """The vkey string."""
        blob = b64encode(bytes([self.kind]) + self.key_material())
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    def verify_log_signature(self, note: SignedNote) -> None:
        """Check that `note` carries this (log) key's valid note signature.

        Raises:
            CheckpointError: none by this key, or a bad one.
        """
        if self.kind == COSIGNATURE_V1:
            raise TypeError("a cosignature key signs no log checkpoint")
        verify_note(note, public_key=self.public_key, name=self.name)


def parse_vkey(text: str) -> VerifierKey:
    """A verifier key from its string form; the key ID must be the one the key gives.

    Raises:
        CheckpointError: malformed, an unsupported type, or a key ID that does not match.
    """
    if not isinstance(text, str) or len(text) > MAX_VKEY_CHARS:
        raise CheckpointError(f"a verifier key is a string of at most {MAX_VKEY_CHARS} chars")
    parts = text.strip().split("+", 2)
    if len(parts) != 3 or not _NAME.match(parts[0]):
        raise CheckpointError("a verifier key is <name>+<hex key ID>+<base64 key>")
    name, key_id, blob = parts
    try:
        raw = b64decode(blob, what="verifier key")
    except ValueError as exc:
        raise CheckpointError(str(exc)) from exc
    if len(raw) < 2:
        raise CheckpointError("verifier key is too short")
    kind, material = raw[0], raw[1:]
    public_key: PublicKey
    try:
        if kind in (ED25519, COSIGNATURE_V1):
            public_key = ed25519.Ed25519PublicKey.from_public_bytes(material)
        elif kind == ECDSA:
            loaded = serialization.load_der_public_key(material)
            if not isinstance(loaded, ec.EllipticCurvePublicKey) or loaded.curve.name not in (
                "secp256r1",
                "secp384r1",
                "secp521r1",
            ):
                raise CheckpointError("an ECDSA verifier key must be on P-256, P-384 or P-521")
            public_key = loaded
        else:
            raise CheckpointError(f"verifier key type {kind:#04x} is not supported")
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CheckpointError(f"verifier key {name} holds no valid public key") from exc
    key = VerifierKey(name, kind, public_key)
    if key_id != key.key_id.hex():
        raise CheckpointError(
            f"verifier key {name} names key ID {key_id[:16]!r}, but its key's ID is "
            f"{key.key_id.hex()}"
        )
    return key


def log_verifier_key(public_key: PublicKey, *, name: str) -> VerifierKey:
    """The vkey of a log's checkpoint key signing as `name` (Ed25519, or ECDSA P-256)."""
    kind = ECDSA if isinstance(public_key, ec.EllipticCurvePublicKey) else ED25519
    return VerifierKey(name, kind, public_key)


def cosignature_message(text: str, timestamp: int) -> bytes:
    """What a cosignature/v1 signs over a checkpoint's note text at `timestamp`."""
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


class Cosigner:
    """A witness's Ed25519 cosignature/v1 signer under `name`."""

    def __init__(self, *, name: str, private_key: ed25519.Ed25519PrivateKey) -> None:
        if not isinstance(private_key, ed25519.Ed25519PrivateKey):
            raise TypeError("a cosigner key is an Ed25519 private key")
        self.name = name
        self._key = private_key
        self.verifier_key = VerifierKey(name, COSIGNATURE_V1, private_key.public_key())
        self._key_id = self.verifier_key.key_id

    def cosign(self, text: str, *, timestamp: int) -> NoteSignature:
        """The cosignature line over checkpoint note text `text` at `timestamp` (seconds)."""
        if not 0 < timestamp <= MAX_TIMESTAMP:
            raise ValueError(f"cosignature timestamp {timestamp} is out of range")
        signature = self._key.sign(cosignature_message(text, timestamp))
        return NoteSignature(self.name, self._key_id, _TIMESTAMP.pack(timestamp) + signature)


def verify_cosignature(note: SignedNote, key: VerifierKey) -> int:
    """The time of `note`'s valid cosignature by witness `key`; lines of other keys ignored.

    Raises:
        CheckpointError: no cosignature by this key (reason `cosignature-missing`), or one
            that is malformed or does not verify (`cosignature-invalid`).
    """
    if key.kind != COSIGNATURE_V1 or not isinstance(key.public_key, ed25519.Ed25519PublicKey):
        raise TypeError("a witness key is a cosignature/v1 (type 0x04) verifier key")
    for line in note.signatures:
        if line.name != key.name or line.key_hint != key.key_id:
            continue
        if len(line.signature) != _COSIGNATURE_BYTES:
            raise CheckpointError(
                f"cosignature by {key.name} is {len(line.signature)} bytes, not "
                f"{_COSIGNATURE_BYTES}",
                reason=Reason.COSIGNATURE_INVALID,
            )
        timestamp: int = _TIMESTAMP.unpack_from(line.signature)[0]
        if not 0 < timestamp <= MAX_TIMESTAMP:
            raise CheckpointError(
                f"cosignature by {key.name} has timestamp {timestamp}, out of range",
                reason=Reason.COSIGNATURE_INVALID,
            )
        try:
            key.public_key.verify(
                line.signature[_TIMESTAMP.size :], cosignature_message(note.text, timestamp)
            )
        except InvalidSignature as exc:
            raise CheckpointError(
                f"cosignature by {key.name} does not verify", reason=Reason.COSIGNATURE_INVALID
            ) from exc
        return timestamp
    raise CheckpointError(
        f"no cosignature by witness {key.name}", reason=Reason.COSIGNATURE_MISSING
    )


def with_signatures(note: SignedNote, lines: tuple[NoteSignature, ...]) -> SignedNote:
    """`note` with `lines` added, each line once (a line already there is not repeated)."""
    added = tuple(line for line in lines if line not in note.signatures)
    return SignedNote(text=note.text, signatures=note.signatures + added)

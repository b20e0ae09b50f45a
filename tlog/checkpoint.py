"""Checkpoints as signed notes (C2SP signed-note / tlog-checkpoint, Rekor v1 flavour). Pure.

A signed note is `text + "\\n" + signature lines`, where the text ends in a newline and holds no
blank line, and each signature line is `— <name> <base64(key hint || signature)>\\n` (U+2014).
A checkpoint's text is `<origin>\\n<size>\\n<base64 root>\\n[extension lines]`.

Key hints: for ECDSA keys (Rekor v1 logs) the first 4 bytes of SHA-256(DER SubjectPublicKeyInfo),
which is also the first 4 bytes of the log ID; for Ed25519 keys (Go `note`, Rekor v2) the first 4
bytes of SHA-256(name || "\\n" || 0x01 || raw key).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from keyless.core.encoding import b64decode, b64encode
from keyless.core.errors import Reason
from keyless.core.keys import CURVE_HASHES, curve_hash, ecdsa
from keyless.tlog.errors import CheckpointError
from keyless.tlog.merkle import HASH_SIZE, MAX_TREE_SIZE

MAX_NOTE_BYTES = 64 * 1024
MAX_SIGNATURES = 100
MAX_EXTENSION_LINES = 100
KEY_HINT_BYTES = 4
EM_DASH = "\u2014"

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

# A key name: printable, no whitespace, no "+" (Go `note`).
_NAME = re.compile(r"[^\s+]+\Z")
_SIZE = re.compile(r"(?:0|[1-9][0-9]{0,18})\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TEXT_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a signed note."""

    name: str
    key_hint: bytes
    signature: bytes

    def render(self) -> str:
        """The signature line, newline included."""
        blob = b64encode(self.key_hint + self.signature)
        return f"{EM_DASH} {self.name} {blob}\n"


@dataclass(frozen=True)
class SignedNote:
    """A parsed signed note: the signed text and its signature lines (none verified yet)."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def render(self) -> str:
        """The note as sent on the wire."""
        return self.text + "\n" + "".join(sig.render() for sig in self.signatures)


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, tree size, root hash and optional extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line("origin", self.origin)
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise TypeError("checkpoint size must be an int")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise ValueError(f"checkpoint size {self.size} out of range")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise ValueError(f"checkpoint root hash must be {HASH_SIZE} bytes")
        if len(self.extensions) > MAX_EXTENSION_LINES:
            raise ValueError("too many checkpoint extension lines")
        for line in self.extensions:
            _check_line("extension line", line)

    def text(self) -> str:
        """The note text that is signed."""
        root = b64encode(self.root_hash)
        lines = [self.origin, str(self.size), root, *self.extensions]
        return "".join(line + "\n" for line in lines)


def _check_line(what: str, line: str) -> None:
    if not isinstance(line, str) or not line:
        raise ValueError(f"checkpoint {what} must be a non-empty string")
    if _CONTROL.search(line):
        raise ValueError(f"checkpoint {what} contains a control character")


def checkpoint_key_id(public_key: PublicKey, *, name: str) -> bytes:
    """The full (32-byte) C2SP signed-note key ID of `public_key` signing as `name`, which
    Rekor v2 uses as its log ID; its first bytes are the key hint.

    Ed25519: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ raw key); ECDSA: SHA-256(DER SubjectPublicKeyInfo).
    """
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        der = public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(der).digest()
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return hashlib.sha256(name.encode() + b"\n\x01" + raw).digest()
    raise TypeError(f"unsupported checkpoint key type {type(public_key).__name__}")


def key_hint(public_key: PublicKey, *, name: str) -> bytes:
    """The 4-byte key hint a signature line by `public_key` under `name` carries."""
    return checkpoint_key_id(public_key, name=name)[:KEY_HINT_BYTES]


def checkpoint_origin(base_url: str) -> str:
    """A tile log's checkpoint origin (and key name): its base URL without the scheme."""
    origin = base_url.split("://", 1)[-1].rstrip("/")
    if not origin:
        raise ValueError(f"no log origin in {base_url!r}")
    return origin


def _ecdsa(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> ec.ECDSA:
    """ECDSA with the key's curve's hash (`core.keys`); a curve Sigstore does not use is a
    key checkpoints cannot use, a caller's bug."""
    try:
        return ecdsa(curve_hash(key))
    except ValueError:
        raise TypeError(f"unsupported checkpoint curve {key.curve.name}") from None


def sign_note(text: str, *, name: str, private_key: PrivateKey) -> SignedNote:
    """Sign `text` (a valid note text) as `name`; returns the note with one signature line."""
    _check_text(text)
    if not _NAME.match(name):
        raise ValueError(f"invalid note key name {name!r}")
    hint = key_hint(private_key.public_key(), name=name)
    return _sign_text(text, name=name, private_key=private_key, hint=hint)


def _sign_text(text: str, *, name: str, private_key: PrivateKey, hint: bytes) -> SignedNote:
    data = text.encode()
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        signature = private_key.sign(data, _ecdsa(private_key))
    elif isinstance(private_key, ed25519.Ed25519PrivateKey):
        signature = private_key.sign(data)
    else:
        raise TypeError(f"unsupported checkpoint key type {type(private_key).__name__}")
    return SignedNote(text=text, signatures=(NoteSignature(name, hint, signature),))


def sign_checkpoint(checkpoint: Checkpoint, *, name: str, private_key: PrivateKey) -> str:
    """The signed-note text of `checkpoint`, signed by `private_key` under `name`."""
    return sign_note(checkpoint.text(), name=name, private_key=private_key).render()


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise CheckpointError("note text does not end with a newline")
    if "\n\n" in text:
        raise CheckpointError("note text contains a blank line")
    if _TEXT_CONTROL.search(text):
        raise CheckpointError("note text contains a control character")


def _strict_b64(value: str, what: str) -> bytes:
    try:
        return b64decode(value, what=what)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from exc


def parse_note(note: str | bytes) -> SignedNote:
    """Split a signed note into text and signature lines; checks structure, not signatures.

    Raises:
        CheckpointError: the note is oversized, not UTF-8, or malformed.
    """
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_BYTES:
            raise CheckpointError(f"signed note is larger than {MAX_NOTE_BYTES} bytes")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointError("signed note is not UTF-8") from exc
    if not isinstance(note, str):
        raise CheckpointError("signed note must be text")
    if len(note.encode("utf-8", "surrogatepass")) > MAX_NOTE_BYTES:
        raise CheckpointError(f"signed note is larger than {MAX_NOTE_BYTES} bytes")
    if note.count("\n\n") != 1:
        raise CheckpointError("signed note must have exactly one blank line before its signatures")
    text, _, block = note.partition("\n\n")
    text += "\n"
    _check_text(text)
    if not block:
        raise CheckpointError("signed note has no signature", reason=Reason.CHECKPOINT_UNSIGNED)
    if not block.endswith("\n"):
        raise CheckpointError("signed note does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"signed note has more than {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        prefix, _, rest = line.partition(" ")
        name, _, blob = rest.partition(" ")
        if prefix != EM_DASH or not _NAME.match(name) or not blob:
            raise CheckpointError(f"malformed signature line {line[:80]!r}")
        raw = _strict_b64(blob, "signature")
        if len(raw) <= KEY_HINT_BYTES:
            raise CheckpointError("signature is too short to hold a key hint")
        signatures.append(NoteSignature(name, raw[:KEY_HINT_BYTES], raw[KEY_HINT_BYTES:]))
    return SignedNote(text=text, signatures=tuple(signatures))


def verify_note(note: SignedNote, *, public_key: PublicKey, name: str | None = None) -> None:
    """Check that `note` carries a valid signature by `public_key` (under `name`, if given).

    Signature lines by other keys are ignored; a line whose name and key hint match the key but
    whose signature is bad is refused.

    Raises:
        CheckpointError: no signature by this key, or a bad one.
    """
    # An ECDSA key's hint does not depend on the name, so it is computed once.
    ec_hint = (
        key_hint(public_key, name="") if isinstance(public_key, ec.EllipticCurvePublicKey) else None
    )
    _verify_lines(note, public_key=public_key, name=name, hint=ec_hint)


def _verify_lines(
    note: SignedNote, *, public_key: PublicKey, name: str | None, hint: bytes | None
) -> None:
    data = note.text.encode()
    for sig in note.signatures:
        if name is not None and sig.name != name:
            continue
        if sig.key_hint != (hint if hint is not None else key_hint(public_key, name=sig.name)):
            continue
        try:
            if isinstance(public_key, ec.EllipticCurvePublicKey):
                public_key.verify(sig.signature, data, _ecdsa(public_key))
            else:
                public_key.verify(sig.signature, data)
        except InvalidSignature as exc:
            raise CheckpointError(
                f"checkpoint signature by {sig.name} does not verify",
                reason=Reason.CHECKPOINT_SIGNATURE_INVALID,
            ) from exc
        return
    raise _no_signature(name)


def _no_signature(name: str | None) -> CheckpointError:
    wanted = f" named {name}" if name is not None else ""
    return CheckpointError(
        f"checkpoint has no signature by the log's key{wanted}",
        reason=Reason.CHECKPOINT_UNSIGNED,
        hint="check that the trusted root lists this log's public key",
    )


def parse_checkpoint_text(text: str) -> Checkpoint:
    """Parse a checkpoint's note text (origin, size, root, extensions).

    Raises:
        CheckpointError: a line is missing or malformed.
    """
    _check_text(text)
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("checkpoint needs an origin, a tree size and a root hash")
    origin, size, root, *extensions = lines
    if not _SIZE.match(size) or int(size) > MAX_TREE_SIZE:
        raise CheckpointError(f"checkpoint tree size {size[:24]!r} is not a valid size")
    root_hash = _strict_b64(root, "checkpoint root hash")
    if len(root_hash) != HASH_SIZE:
        raise CheckpointError(f"checkpoint root hash is {len(root_hash)} bytes, not {HASH_SIZE}")
    try:
        return Checkpoint(origin, int(size), root_hash, tuple(extensions))
    except ValueError as exc:
        raise CheckpointError(f"malformed checkpoint: {exc}") from exc


def verify_checkpoint(
    note: str | bytes, *, public_key: PublicKey, name: str | None = None
) -> Checkpoint:
    """Parse a signed checkpoint and check its signature by `public_key`; returns its content.

    Raises:
        CheckpointError: the note is malformed or not validly signed by the key.
    """
    signed = parse_note(note)
    checkpoint = parse_checkpoint_text(signed.text)
    verify_note(signed, public_key=public_key, name=name)
    return checkpoint


class CheckpointVerifier:
    """`verify_checkpoint` for one key, with its key hint and algorithm worked out once.

    A client that checks many checkpoints of one log (a verifier of many bundles) would
    otherwise re-encode the key and rebuild the algorithm for each; the verdicts and errors
    are those of `verify_checkpoint`, in the same order.
    """

    def __init__(self, public_key: PublicKey, *, name: str | None = None) -> None:
        self.public_key = public_key
        self.name = name
        # (the ECDSA key hint, or None for Ed25519 whose hint depends on the line's name;
        # the ECDSA algorithm, or None for Ed25519 or an unsupported curve)
        self._prepared: tuple[bytes | None, ec.ECDSA | None] | None = None

    def verify(self, note: str | bytes) -> Checkpoint:
        """Parse a signed checkpoint and check its signature; returns its content.

        Raises:
            CheckpointError: the note is malformed or not validly signed by the key.
            TypeError: the key is of a type checkpoints cannot use.
        """
        signed = parse_note(note)
        checkpoint = parse_checkpoint_text(signed.text)
        hint, algorithm = self._prepared or self._prepare()
        data = signed.text.encode()
        for sig in signed.signatures:
            if self.name is not None and sig.name != self.name:
                continue
            if sig.key_hint != (
                hint if hint is not None else key_hint(self.public_key, name=sig.name)
            ):
                continue
            try:
                if hint is None:
                    self.public_key.verify(sig.signature, data)  # type: ignore[call-arg]
                elif algorithm is None:
                    _ecdsa(self.public_key)  # type: ignore[arg-type]  # raises TypeError
                else:
                    self.public_key.verify(sig.signature, data, algorithm)  # type: ignore[call-arg]
            except InvalidSignature as exc:
                raise CheckpointError(
                    f"checkpoint signature by {sig.name} does not verify",
                    reason=Reason.CHECKPOINT_SIGNATURE_INVALID,
                ) from exc
            return checkpoint
        raise _no_signature(self.name)

    def _prepare(self) -> tuple[bytes | None, ec.ECDSA | None]:
        key = self.public_key
        prepared: tuple[bytes | None, ec.ECDSA | None]
        if isinstance(key, ec.EllipticCurvePublicKey):
            hash_name = CURVE_HASHES.get(key.curve.name)
            prepared = (key_hint(key, name=""), None if hash_name is None else ecdsa(hash_name))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            prepared = (None, None)
        else:
            raise TypeError(f"unsupported checkpoint key type {type(key).__name__}")
        self._prepared = prepared
        return prepared


class CheckpointSigner:
    """Signs and re-checks a log's tree heads as signed-note checkpoints (a `TreeHeadSigner`).

    Rekor v1 style: `origin` is "<host:port> - <treeID>" and `name` is "<host:port>".
    """

    def __init__(self, *, origin: str, name: str, private_key: PrivateKey) -> None:
        _check_line("origin", origin)
        if not _NAME.match(name):
            raise ValueError(f"invalid note key name {name!r}")
        self.origin = origin
        self.name = name
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self._hint = key_hint(self.public_key, name=name)

    def sign(self, *, size: int, root_hash: bytes, timestamp_ms: int) -> bytes:
        """The signed checkpoint for this head, as UTF-8 bytes (the time is not part of it)."""
        text = Checkpoint(self.origin, size, root_hash).text()
        note = _sign_text(text, name=self.name, private_key=self._private_key, hint=self._hint)
        return note.render().encode()

    def verify(self, signed: bytes, *, size: int, root_hash: bytes) -> None:
        """Check that `signed` is this log's checkpoint for exactly (size, root_hash).

        Raises:
            CheckpointError: bad signature, or a different origin, size or root.
        """
        note = parse_note(signed)
        checkpoint = parse_checkpoint_text(note.text)
        _verify_lines(note, public_key=self.public_key, name=self.name, hint=self._hint)
        if checkpoint != Checkpoint(self.origin, size, root_hash):
            raise CheckpointError(
                f"signed checkpoint is for {checkpoint.origin!r} size {checkpoint.size}, "
                f"expected {self.origin!r} size {size} with the stored root"
            )

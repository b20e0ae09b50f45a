"""Rekor log entry bodies, read once: the one parser `keyless verify`, `monitor` and `audit` share.

A body is the canonical JSON a log committed to (its Merkle leaf). Each kind keyless reads
becomes a small frozen value, every field it holds type-checked and bounded, on
`keyless.strictjson` (UTF-8, no duplicate keys, bounded depth):

- Rekor v1: `hashedrekord` 0.0.1, `dsse` 0.0.1 and `intoto` 0.0.2;
- Rekor v2: `hashedrekord` 0.0.2, and `dsse` 0.0.2 as rekor-tiles wrote it before it dropped
  that kind (DSSE envelopes are now logged as hashedrekord over their PAE).

Encodings, as the logs write them:
- a v1 signer is base64 of PEM text, intoto's included: only intoto's `payload` and
  `signatures[].sig` are base64 of base64. The first PEM block counts, as for Go's
  `pem.Decode` and Rekor (a chain's first certificate is its leaf). A v2 signer is DER.
- v1 digests are lowercase hex under a hashlib name (`sha256`); v2 digests are base64 under a
  protobuf `HashAlgorithm` (`SHA2_256`). Both become a `Digest` of raw bytes by hashlib name.
- an intoto 0.0.2 body as Rekor (and keyless's log) stores it has no envelope payload, only
  its hash; `InToto.payload` is then None.

What a body means for a bundle is the verifier's business (`client.verify.entry`); this module
says what a body holds, or why it cannot be read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from keyless import strictjson
from keyless.core.encoding import b64decode
from keyless.core.keys import HASH_ALGORITHMS

# A body holds hashes, keys and signatures, never an artifact: what keyless's logs and
# rekor-tiles take in one request bounds it.
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_SIGNATURES = 16
MAX_SIGNATURE_BYTES = 8 * 1024  # RSA-4096 and ML-DSA-87 signatures fit
MAX_SIGNER_BYTES = 32 * 1024
MAX_PAYLOAD_TYPE_CHARS = 256
MAX_KEY_DETAILS_CHARS = 64
REKOR_V2_KINDS = frozenset({("hashedrekord", "0.0.2"), ("dsse", "0.0.2")})
_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}
_HEX = re.compile(r"[0-9a-f]+\Z")


class EntryBodyError(ValueError):
    """A body that is not an entry keyless can read; `str()` is one line saying why.

    A parser's ValueError, as `strictjson.JSONError` is, not a `keyless.core.errors.Error`:
    what an unreadable entry means depends on the caller, which says it in its own terms (a
    failed `log-body` check, an unreadable entry in an audit or a monitor's report).
    """


class UnknownKindError(EntryBodyError):
    """A JSON object of a kind or version keyless does not read; `kind_label` names both, fit
    for one line of a report."""

    def __init__(self, what: str, kind: object, version: object) -> None:
        self.kind_label = f"{label(kind, 64)} {label(version, 16)}"
        super().__init__(f"{what} kind {self.kind_label} is not one keyless reads")


class SignerForm(StrEnum):
    CERTIFICATE = "certificate"
    PUBLIC_KEY = "public key"


_PEM_LABELS = ((b"CERTIFICATE", SignerForm.CERTIFICATE), (b"PUBLIC KEY", SignerForm.PUBLIC_KEY))


@dataclass(frozen=True)
class Signer:
    """A certificate or a public key (DER SubjectPublicKeyInfo) an entry names as its signer;
    Rekor v2 also names its key details (`PKIX_ECDSA_P256_SHA_256`)."""

    form: SignerForm
    der: bytes
    key_details: str | None = None


@dataclass(frozen=True)
class Digest:
    algorithm: str  # hashlib name: sha256, sha384 or sha512
    value: bytes


@dataclass(frozen=True)
class Signature:
    content: bytes
    signer: Signer


@dataclass(frozen=True)
class HashedRekord:
    """`hashedrekord` 0.0.1 or 0.0.2: a signature over a digest (of an artifact, or in v2 of
    a DSSE envelope's PAE)."""

    kind: ClassVar[str] = "hashedrekord"
    version: str
    digest: Digest
    signature: Signature

    @property
    def signatures(self) -> tuple[Signature, ...]:
        return (self.signature,)


@dataclass(frozen=True)
class DSSE:
    """`dsse` 0.0.1 or 0.0.2: the hash of a DSSE payload and the envelope's signatures. The
    0.0.1 envelope hash covers uncanonicalized JSON nobody can reproduce, so it is not kept."""

    kind: ClassVar[str] = "dsse"
    version: str
    payload_hash: Digest
    signatures: tuple[Signature, ...]


@dataclass(frozen=True)
class InToto:
    """`intoto` 0.0.2: a DSSE envelope's type and signatures, with its payload's hash, and the
    payload itself only where an older log kept it. Its envelope hash is not kept (as DSSE)."""

    kind: ClassVar[str] = "intoto"
    version: str
    payload_type: str
    payload: bytes | None
    payload_hash: Digest | None
    signatures: tuple[Signature, ...]


EntryBody = HashedRekord | DSSE | InToto


def parse_entry_body(
    body: bytes, *, what: str = "entry", announced: tuple[str, str] | None = None
) -> EntryBody:
    """The entry a log body records. `what` opens every error message ("entry", "log body");
    `announced` is the (kind, version) the body must be, as a bundle's `kindVersion` says.

    Raises:
        UnknownKindError: a JSON object of a kind and version keyless does not read.
        EntryBodyError: anything else that is not such an entry, with the field that is not.
    """
    if len(body) > MAX_BODY_BYTES:
        raise EntryBodyError(f"{what} is larger than {MAX_BODY_BYTES} bytes")
    try:
        document = strictjson.loads(body, what=what)
    except strictjson.JSONError as exc:
        raise EntryBodyError(str(exc)) from None
    if not isinstance(document, dict):
        raise EntryBodyError(f"{what} is not a JSON object")
    kind, version = document.get("kind"), document.get("apiVersion")
    if announced is not None and (kind, version) != announced:
        raise EntryBodyError(f"{what} is not a {announced[0]}/{announced[1]} entry as announced")
    known = isinstance(kind, str) and isinstance(version, str)
    parse = _KINDS.get((kind, version)) if known else None
    if parse is None:
        raise UnknownKindError(what, kind, version)
    return parse(_Fields(document, "", what).object("spec"))


def label(value: object, limit: int) -> str:
    """A field of an untrusted body, fit for one line of a report."""
    if not isinstance(value, str):
        return f"({type(value).__name__})"
    text = value[:limit]
    return text if text.isprintable() else repr(text)


class _Fields:
    """One JSON object of a body, read field by field; each error names the field's path."""

    def __init__(self, value: dict[str, Any], path: str, what: str) -> None:
        self._value = value
        self._path = path
        self._what = what

    def error(self, name: str, problem: str) -> EntryBodyError:
        return EntryBodyError(f"{self._what} field {self._path + name!r} {problem}")

    def has(self, name: str) -> bool:
        return name in self._value

    def object(self, name: str) -> _Fields:
        value = self._value.get(name)
        if not isinstance(value, dict):
            raise self.error(name, "is missing or not an object")
        return _Fields(value, f"{self._path}{name}.", self._what)

    def string(self, name: str, *, max_chars: int) -> str:
        value = self._value.get(name)
        if not isinstance(value, str) or not value:
            raise self.error(name, "is missing or not a non-empty string")
        if len(value) > max_chars:
            raise self.error(name, f"is longer than {max_chars} characters")
        return value

    def base64(self, name: str, *, max_bytes: int) -> bytes:
        decoded = _b64(self.string(name, max_chars=4 * max_bytes // 3 + 4))
        if decoded is None:
            raise self.error(name, "is not base64")
        return decoded

    def base64_twice(self, name: str, *, max_bytes: int) -> bytes:
        """intoto 0.0.2's encoding of a payload or signature: base64 of its base64 text."""
        inner = self.base64(name, max_bytes=4 * max_bytes // 3 + 4)
        decoded = _b64(inner.decode("ascii", "replace"))
        if decoded is None:
            raise self.error(name, "is not base64 of base64")
        return decoded

    def items(self, name: str) -> list[_Fields]:
        value = self._value.get(name)
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_SIGNATURES:
            raise self.error(name, f"is missing or not a list of 1 to {MAX_SIGNATURES} items")
        fields = []
        for position, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.error(f"{name}[{position}]", "is not an object")
            fields.append(_Fields(item, f"{self._path}{name}[{position}].", self._what))
        return fields

    def hex_digest(self, name: str) -> Digest:
        """A v1 `{"algorithm": "sha256", "value": "<lowercase hex>"}`."""
        fields = self.object(name)
        algorithm = fields.string("algorithm", max_chars=16)
        size = _DIGEST_SIZES.get(algorithm)
        if size is None:
            raise fields.error("algorithm", f"is not one of {', '.join(_DIGEST_SIZES)}")
        value = fields.string("value", max_chars=2 * max(_DIGEST_SIZES.values()))
        if len(value) != 2 * size or not _HEX.match(value):
            raise fields.error("value", f"is not the lowercase hex of a {algorithm} digest")
        return Digest(algorithm, bytes.fromhex(value))

    def v2_digest(self, name: str) -> Digest:
        """A v2 `{"algorithm": "SHA2_256", "digest": "<base64>"}`."""
        fields = self.object(name)
        algorithm = HASH_ALGORITHMS.get(fields.string("algorithm", max_chars=32))
        if algorithm is None:
            raise fields.error("algorithm", f"is not one of {', '.join(HASH_ALGORITHMS)}")
        value = fields.base64("digest", max_bytes=64)
        if len(value) != _DIGEST_SIZES[algorithm]:
            raise fields.error("digest", f"is not a {algorithm} digest")
        return Digest(algorithm, value)

    def pem_signer(self, name: str) -> Signer:
        """A v1 signer: base64 of a PEM certificate or public key (its first block)."""
        text = self.base64(name, max_bytes=MAX_SIGNER_BYTES).lstrip()
        for label_bytes, form in _PEM_LABELS:
            begin = b"-----BEGIN " + label_bytes + b"-----"
            stop = text.find(b"-----END " + label_bytes + b"-----")
            if not text.startswith(begin) or stop < 0:
                continue
            inner = text[len(begin) : stop]
            # Lines of base64 and nothing else: no headers, no other characters.
            if inner.startswith((b"\n", b"\r\n")):
                der = _b64(inner.translate(None, b"\r\n").decode("ascii", "replace"))
                if der:
                    return Signer(form, der)
            break
        raise self.error(name, "is not a PEM certificate or public key")

    def v2_signature(self) -> Signature:
        """This object as a v2 signature: `{"content": "<base64>", "verifier": {...}}`."""
        content = self.base64("content", max_bytes=MAX_SIGNATURE_BYTES)
        verifier = self.object("verifier")
        details = verifier.string("keyDetails", max_chars=MAX_KEY_DETAILS_CHARS)
        forms = {"x509Certificate": SignerForm.CERTIFICATE, "publicKey": SignerForm.PUBLIC_KEY}
        present = [key for key in forms if verifier.has(key)]
        if len(present) != 1:
            raise self.error("verifier", "holds neither or both of x509Certificate and publicKey")
        der = verifier.object(present[0]).base64("rawBytes", max_bytes=MAX_SIGNER_BYTES)
        return Signature(content, Signer(forms[present[0]], der, details))

    def one_of(self, names: tuple[str, ...]) -> _Fields:
        """The one field of `names` present (a v2 spec, under its name or its early one)."""
        present = [name for name in names if self.has(name)]
        if len(present) != 1:
            raise EntryBodyError(
                f"{self._what} field {self._path.rstrip('.')!r} holds not exactly one of "
                f"{', '.join(names)}"
            )
        return self.object(present[0])


def _b64(text: str) -> bytes | None:
    """Strict, canonical base64 (core.encoding), or None for a field error to name."""
    try:
        return b64decode(text)
    except ValueError:
        return None


def _hashedrekord_v1(spec: _Fields) -> HashedRekord:
    signature = spec.object("signature")
    return HashedRekord(
        "0.0.1",
        spec.object("data").hex_digest("hash"),
        Signature(
            signature.base64("content", max_bytes=MAX_SIGNATURE_BYTES),
            signature.object("publicKey").pem_signer("content"),
        ),
    )


def _dsse_v1(spec: _Fields) -> DSSE:
    signatures = tuple(
        Signature(
            item.base64("signature", max_bytes=MAX_SIGNATURE_BYTES), item.pem_signer("verifier")
        )
        for item in spec.items("signatures")
    )
    return DSSE("0.0.1", spec.hex_digest("payloadHash"), signatures)


def _intoto_v2(spec: _Fields) -> InToto:
    content = spec.object("content")
    envelope = content.object("envelope")
    signatures = tuple(
        Signature(
            item.base64_twice("sig", max_bytes=MAX_SIGNATURE_BYTES), item.pem_signer("publicKey")
        )
        for item in envelope.items("signatures")
    )
    return InToto(
        "0.0.2",
        envelope.string("payloadType", max_chars=MAX_PAYLOAD_TYPE_CHARS),
        envelope.base64_twice("payload", max_bytes=MAX_BODY_BYTES)
        if envelope.has("payload")
        else None,
        content.hex_digest("payloadHash") if content.has("payloadHash") else None,
        signatures,
    )


def _hashedrekord_v2(spec: _Fields) -> HashedRekord:
    # Early rekor-tiles named the field hashedRekordV0_0_2.
    inner = spec.one_of(("hashedRekordV002", "hashedRekordV0_0_2"))
    return HashedRekord("0.0.2", inner.v2_digest("data"), inner.object("signature").v2_signature())


def _dsse_v2(spec: _Fields) -> DSSE:
    inner = spec.one_of(("dsseV002", "dsseV0_0_2"))
    signatures = tuple(item.v2_signature() for item in inner.items("signatures"))
    return DSSE("0.0.2", inner.v2_digest("payloadHash"), signatures)


_KINDS: dict[tuple[str, str], Callable[[_Fields], EntryBody]] = {
    ("hashedrekord", "0.0.1"): _hashedrekord_v1,
    ("dsse", "0.0.1"): _dsse_v1,
    ("intoto", "0.0.2"): _intoto_v2,
    ("hashedrekord", "0.0.2"): _hashedrekord_v2,
    ("dsse", "0.0.2"): _dsse_v2,
}
KINDS = frozenset(_KINDS)

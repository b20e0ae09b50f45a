"""Keys and certificates in log entries: strict PEM parsing, Rekor's canonical PEM, signatures.

Rekor (`pkg/pki/x509`) accepts one PEM `CERTIFICATE` or `PUBLIC KEY` block and stores it
re-encoded (64-character lines, `\\n`, trailing newline), which is exactly what `cryptography`
writes. Certificate chains are refused here: no Sigstore client sends one in an entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keyless.core.encoding import b64decode
from keyless.core.keys import CURVE_HASHES, verify_signature
from keyless.tlog.errors import EntryError

MAX_PEM_BYTES = 32 * 1024
MAX_SIGNATURE_BYTES = 2048
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
# The curves Sigstore signs on (P-256, P-384, P-521), as Rekor's own allow-list.
ALLOWED_CURVES = frozenset(CURVE_HASHES)

_PEM_BLOCK = re.compile(
    rb"-----BEGIN (CERTIFICATE|PUBLIC KEY)-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END \1-----\s*\Z"
)

VerifyingKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class EntryKey:
    """A parsed verifier: its key, the certificate it came from (if any), canonical PEM."""

    key: VerifyingKey
    certificate: x509.Certificate | None
    canonical_pem: bytes

    def subjects(self) -> list[str]:
        """The certificate's SAN values (emails, URIs, DNS names), lower-cased for search.

        `parse_pem_key` has already refused a certificate whose SAN cannot be read.
        """
        return [] if self.certificate is None else _san_values(self.certificate)


def _san_values(certificate: x509.Certificate) -> list[str]:
    """The SAN's emails, URIs and DNS names, lower-cased.

    Raises:
        EntryError: the extension is malformed, or a name is not ASCII (IA5String).
    """
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    except ValueError as exc:
        raise EntryError(f"certificate has a malformed SubjectAltName extension: {exc}") from exc
    names: list[str] = []
    for kind in (x509.RFC822Name, x509.UniformResourceIdentifier, x509.DNSName):
        for value in san.get_values_for_type(kind):
            if not value.isascii():
                raise EntryError(
                    f"certificate SubjectAltName has a non-ASCII name {value[:64]!r}"
                    " (these names are IA5String)"
                )
            names.append(value.lower())
    return names


def decode_b64(value: object, what: str, *, max_bytes: int) -> bytes:
    """Strict standard base64 (padded, canonical) of at most `max_bytes` decoded bytes.

    Raises:
        EntryError: not a string, not valid base64, empty, or too large.
    """
    if not isinstance(value, str) or not value:
        raise EntryError(f"{what} must be a non-empty base64 string")
    try:
        return b64decode(value, what=what, max_bytes=max_bytes)
    except ValueError as exc:
        raise EntryError(str(exc)) from exc


def _check_key(key: object) -> VerifyingKey:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ALLOWED_CURVES:
            raise EntryError(f"elliptic curve {key.curve.name} is not allowed")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            raise EntryError(f"RSA key size {key.key_size} is not allowed")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise EntryError(f"public key type {type(key).__name__} is not allowed")


def parse_pem_key(pem: bytes) -> EntryKey:
    """Parse one PEM certificate or public key into an `EntryKey`.

    Raises:
        EntryError: not exactly one well-formed PEM block of an allowed key.
    """
    if len(pem) > MAX_PEM_BYTES:
        raise EntryError(f"public key is larger than {MAX_PEM_BYTES} bytes")
    match = _PEM_BLOCK.match(pem.strip())
    if match is None:
        raise EntryError("public key must be one PEM CERTIFICATE or PUBLIC KEY block")
    kind, body = match.groups()
    try:
        der = b64decode(b"".join(body.split()))
    except ValueError as exc:
        raise EntryError("public key PEM has invalid base64") from exc
    try:
        if kind == b"CERTIFICATE":
            certificate = x509.load_der_x509_certificate(der)
            key = _check_key(certificate.public_key())
            # Refused here, as Rekor's Go x509 parser refuses it: a SAN no verifier can read
            # names no identity, and a log entry is permanent (its search index is not the
            # reason; the entry itself would be unverifiable by identity).
            _san_values(certificate)
            canonical = certificate.public_bytes(serialization.Encoding.PEM)
        else:
            certificate = None
            key = _check_key(serialization.load_der_public_key(der))
            canonical = key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise EntryError(f"cannot parse public key: {exc}") from exc
    return EntryKey(key=key, certificate=certificate, canonical_pem=canonical)


def verify_prehashed(key: VerifyingKey, signature: bytes, digest: bytes, algorithm: str) -> None:
    """Check `signature` over an already-computed `digest` (hashedrekord).

    Raises:
        EntryError: the signature does not verify, or the key cannot sign digests.
    """
    if isinstance(key, ed25519.Ed25519PublicKey):
        raise EntryError("ed25519 keys are not supported for hashedrekord entries")
    try:
        verify_signature(key, signature, digest, hash_name=algorithm, prehashed=True)
    except InvalidSignature as exc:
        raise EntryError("signature does not verify against the digest") from exc


def verify_message(key: VerifyingKey, signature: bytes, message: bytes) -> None:
    """Check `signature` over `message` with SHA-256 (ECDSA, RSA PKCS#1 v1.5) or Ed25519 (DSSE).

    SHA-256 whatever the curve, as Rekor's dsse and intoto types verify.

    Raises:
        EntryError: the signature does not verify.
    """
    try:
        verify_signature(key, signature, message, hash_name="sha256")
    except InvalidSignature as exc:
        raise EntryError("signature does not verify") from exc

"""Proof of possession: the client's key must be allowed, and must have signed its challenge.

Pure functions over explicit inputs. The allow-lists below are Fulcio's defaults
(fulcio.md §2): the hash follows the key, never the request's `algorithm` field.
"""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import SignatureAlgorithmOID

from keyless.ca.errors import (
    MSG_CSR_UNPARSEABLE,
    MSG_KEY_INSECURE,
    MSG_KEY_UNPARSEABLE,
    MSG_SIGNATURE_INVALID,
    RequestError,
)
from keyless.core.encoding import b64decode
from keyless.core.errors import Reason
from keyless.core.keys import CURVE_HASHES, curve_hash, signature_verifier

ClientKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

ALLOWED_RSA_BITS = frozenset({2048, 3072, 4096})
# The curves Fulcio takes are Sigstore's three; each proves possession with its own hash, the
# only one its CSRs may use (core.keys.CURVE_HASHES). RSA proves with SHA-256.
ALLOWED_CURVES = frozenset(CURVE_HASHES)
RSA_HASH = "sha256"
# CSR signature algorithms Fulcio maps to a hash; anything else (RSA-PSS, SHA-1) is refused.
CSR_SIGNATURE_ALGORITHMS = frozenset(
    {
        SignatureAlgorithmOID.ECDSA_WITH_SHA256,
        SignatureAlgorithmOID.ECDSA_WITH_SHA384,
        SignatureAlgorithmOID.ECDSA_WITH_SHA512,
        SignatureAlgorithmOID.RSA_WITH_SHA256,
        SignatureAlgorithmOID.RSA_WITH_SHA384,
        SignatureAlgorithmOID.RSA_WITH_SHA512,
        SignatureAlgorithmOID.ED25519,
    }
)
MAX_PUBLIC_KEY_BYTES = 8 * 1024
MAX_SIGNATURE_BYTES = 1024
MAX_CSR_BYTES = 64 * 1024

_PEM_BLOCK = re.compile(
    rb"\A\s*-----BEGIN (?P<label>[A-Z ]{1,40})-----\r?\n"
    rb"(?P<body>[A-Za-z0-9+/=\r\n]{1,65536})"
    rb"-----END (?P=label)-----\s*\Z"
)
_CSR_LABELS = (b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST")
# Go's names for key types and hashes, as they appear in Fulcio's registry error.
_GO_KEY_TYPES = {
    ec.EllipticCurvePublicKey: "*ecdsa.PublicKey",
    rsa.RSAPublicKey: "*rsa.PublicKey",
    ed25519.Ed25519PublicKey: "ed25519.PublicKey",
}


def load_public_key(content: bytes) -> ClientKey:
    """The client's public key from PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`) or PKIX DER.

    Raises:
        RequestError: the content is missing, too large, or not a public key.
    """
    if not content or len(content) > MAX_PUBLIC_KEY_BYTES:
        raise RequestError(
            MSG_KEY_UNPARSEABLE, reason=Reason.KEY_UNPARSEABLE, detail="no public key"
        )
    try:
        block = _pem_block(content)
        if block is None:
            if content.lstrip().startswith(b"-----BEGIN"):
                raise ValueError("malformed PEM")
            key = serialization.load_der_public_key(content)
        elif block[0] == b"PUBLIC KEY":
            key = serialization.load_der_public_key(block[1])
        elif block[0] == b"RSA PUBLIC KEY":
            key = serialization.load_pem_public_key(content)
        else:
            raise ValueError(f"unexpected PEM block {block[0].decode()!r}")
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise RequestError(
            MSG_KEY_UNPARSEABLE, reason=Reason.KEY_UNPARSEABLE, detail=str(exc)[:200]
        ) from exc
    return check_public_key(key)


def check_public_key(key: object) -> ClientKey:
    """`key` itself if Fulcio would accept it: RSA 2048/3072/4096, P-256/384/521, Ed25519.

    Raises:
        RequestError: Fulcio's "insecure" message, for any other key.
    """
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size in ALLOWED_RSA_BITS and key.public_numbers().e == 65537:
            return key
        detail = f"RSA-{key.key_size} key (e={key.public_numbers().e}) is not allowed"
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name in ALLOWED_CURVES:
            return key
        detail = f"elliptic curve {key.curve.name} is not allowed"
    elif isinstance(key, ed25519.Ed25519PublicKey):
        return key
    else:
        detail = f"{type(key).__name__.lstrip('_')} keys are not allowed"
    raise RequestError(MSG_KEY_INSECURE, reason=Reason.KEY_INSECURE, detail=detail)


def check_proof_of_possession(*, public_key: ClientKey, signature: bytes, challenge: str) -> None:
    """Check that `signature` is `public_key`'s signature over the UTF-8 `challenge`.

    ECDSA signs the challenge's hash for the curve, in DER or raw `r||s` form; RSA uses
    PKCS#1 v1.5 with SHA-256; Ed25519 signs the bytes themselves.

    Raises:
        RequestError: the signature is missing, oversized, or does not verify.
    """
    if not signature or len(signature) > MAX_SIGNATURE_BYTES:
        raise RequestError(
            MSG_SIGNATURE_INVALID, reason=Reason.POP_INVALID, detail="no proof of possession"
        )
    message = challenge.encode()
    try:
        _verify(public_key, signature, message)
    except InvalidSignature as exc:
        raise RequestError(
            MSG_SIGNATURE_INVALID,
            reason=Reason.POP_INVALID,
            detail="the proof of possession is not a signature over the challenge by this key",
        ) from exc


def _verify(key: ClientKey, signature: bytes, message: bytes) -> None:
    # The key's own scheme: ECDSA with its curve's hash, RSA PKCS#1 v1.5 with SHA-256, Ed25519.
    check = signature_verifier(key)
    try:
        check(signature, message)
    except InvalidSignature:
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise
        size = (key.curve.key_size + 7) // 8
        if len(signature) != 2 * size:
            raise
        # A raw IEEE P1363 signature (r || s), which Fulcio also accepts.
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        check(encode_dss_signature(r, s), message)


def load_csr(pem: bytes) -> x509.CertificateSigningRequest:
    """A PKCS#10 CSR from PEM (`CERTIFICATE REQUEST` or `NEW CERTIFICATE REQUEST`); no DER.

    Raises:
        RequestError: Fulcio's "could not be parsed" message.
    """
    try:
        block = _pem_block(pem) if 0 < len(pem) <= MAX_CSR_BYTES else None
        if block is None or block[0] not in _CSR_LABELS:
            raise RequestError(
                MSG_CSR_UNPARSEABLE, reason=Reason.CSR_UNPARSEABLE, detail="no CSR found"
            )
        return x509.load_der_x509_csr(block[1])
    except ValueError as exc:
        raise RequestError(
            MSG_CSR_UNPARSEABLE, reason=Reason.CSR_UNPARSEABLE, detail=str(exc)[:200]
        ) from exc


def check_csr(csr: x509.CertificateSigningRequest) -> ClientKey:
    """The CSR's key, once the key is allowed and the CSR's self-signature verifies.

    Only the key and the signature count; the subject, SANs and extensions are ignored,
    since the CA alone decides the profile. Checked in Fulcio's order (§2, CSR path).

    Raises:
        RequestError: insecure key, bad self-signature, refused signature algorithm, or a
            (key, hash) pair outside the allow-list.
    """
    try:
        key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise RequestError(MSG_KEY_INSECURE, reason=Reason.KEY_INSECURE, detail=str(exc)) from exc
    key = check_public_key(key)
    algorithm = csr.signature_algorithm_oid
    try:
        valid = csr.is_signature_valid
    except UnsupportedAlgorithm:
        valid = False
    if not valid:
        raise RequestError(
            MSG_SIGNATURE_INVALID,
            reason=Reason.CSR_SIGNATURE_INVALID,
            detail="the CSR's self-signature does not verify",
        )
    if algorithm not in CSR_SIGNATURE_ALGORITHMS:
        message = f"unrecognized signature algorithm: {_go_algorithm_name(csr)}"
        raise RequestError(message, reason=Reason.CSR_ALGORITHM_REFUSED)
    check_algorithm(key, csr.signature_hash_algorithm)
    return key


def check_algorithm(key: ClientKey, hash_algorithm: hashes.HashAlgorithm | None) -> None:
    """Check the (key, hash) pair against Fulcio's default signing-algorithm registry.

    Raises:
        RequestError: Fulcio's "signing algorithm not permitted" message.
    """
    if isinstance(key, ed25519.Ed25519PublicKey):
        expected: str | None = None
    elif isinstance(key, rsa.RSAPublicKey):
        expected = RSA_HASH
    else:
        expected = curve_hash(key)
    actual = hash_algorithm.name if hash_algorithm is not None else None
    if actual == expected:
        return
    go_type = next(name for kind, name in _GO_KEY_TYPES.items() if isinstance(key, kind))
    go_hash = f"SHA-{hash_algorithm.digest_size * 8}" if hash_algorithm else "unknown hash value 0"
    raise RequestError(
        f"signing algorithm not permitted: {go_type}, {go_hash}", reason=Reason.ALGORITHM_REFUSED
    )


def _go_algorithm_name(csr: x509.CertificateSigningRequest) -> str:
    """The name Go's x509 gives a refused CSR signature algorithm, as Fulcio reports it."""
    algorithm = csr.signature_algorithm_oid
    try:
        digest = csr.signature_hash_algorithm
    except UnsupportedAlgorithm:
        digest = None
    name = digest.name.upper().replace("-", "") if digest is not None else ""
    if algorithm == SignatureAlgorithmOID.RSASSA_PSS and name:
        return f"{name}-RSAPSS"
    if algorithm == SignatureAlgorithmOID.RSA_WITH_SHA1:
        return "SHA1-RSA"
    if algorithm == SignatureAlgorithmOID.ECDSA_WITH_SHA1:
        return "ECDSA-SHA1"
    return algorithm.dotted_string


def _pem_block(data: bytes) -> tuple[bytes, bytes] | None:
    """(label, DER) of the single PEM block `data` holds, or None if it is not PEM."""
    match = _PEM_BLOCK.match(data)
    if match is None:
        return None
    try:
        body = b64decode(re.sub(rb"\s", b"", match["body"]))
    except ValueError as exc:
        raise ValueError("malformed PEM base64") from exc
    return match["label"], body

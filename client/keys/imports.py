"""Unencrypted private keys brought under cosign's format (`keyless import-key-pair`).

As `cosign import-key-pair`: one PEM block, `RSA PRIVATE KEY` (PKCS#1), `EC PRIVATE KEY` (SEC1)
or `PRIVATE KEY` (PKCS#8: RSA, ECDSA or Ed25519), checked against the allowed key types, then
written encrypted (`client.keys.encrypted`). An encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`), a
public key or anything else is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keyless.client.keys.algorithms import check_allowed_key
from keyless.client.keys.errors import KeyFileError
from keyless.client.keys.pem import is_pkcs8, read_pem_block

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

IMPORTABLE_PEM_TYPES = ("RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY")


def load_importable_key(data: bytes, *, source: str) -> PrivateKeyTypes:
    """The private key of an unencrypted PEM file `import-key-pair` accepts.

    Raises:
        KeyFileError: another PEM type, a body that does not parse as its type says, or a key
            type or size that is not allowed (`key-type`).
    """
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    kind, der = read_pem_block(data, source=source)
    if kind not in IMPORTABLE_PEM_TYPES:
        raise KeyFileError(
            f"{source}: unsupported private key (PEM type {kind}); give an unencrypted "
            + ", ".join(IMPORTABLE_PEM_TYPES[:-1])
            + f" or {IMPORTABLE_PEM_TYPES[-1]}"
        )
    try:
        key = load_der_private_key(der, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{source}: the {kind} does not parse") from exc
    expected = {
        "RSA PRIVATE KEY": rsa.RSAPrivateKey,
        "EC PRIVATE KEY": ec.EllipticCurvePrivateKey,
        "PRIVATE KEY": rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
    }[kind]
    # The label must tell the truth: cosign parses each label with its own parser.
    if not isinstance(key, expected) or is_pkcs8(der) != (kind == "PRIVATE KEY"):
        raise KeyFileError(f"{source}: the {kind} block holds another kind of key")
    check_allowed_key(key.public_key(), source=source)
    return key

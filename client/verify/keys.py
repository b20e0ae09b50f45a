"""Managed public keys (`--key`): read a PEM public key, bounded and with a clear error."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from keyless.client.verify.errors import VerificationError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

MAX_KEY_BYTES = 64 * 1024


def load_public_key(path: str | os.PathLike[str]) -> PublicKeyTypes:
    """Read a PEM `PUBLIC KEY` file (ECDSA or RSA).

    Raises:
        VerificationError("key"): unreadable, oversized, not PEM, or an unsupported key type.
    """
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_KEY_BYTES + 1)
    except OSError as exc:
        raise VerificationError("key", f"cannot read key {path}: {exc.strerror}") from exc
    if len(data) > MAX_KEY_BYTES:
        raise VerificationError("key", f"key file {path} is larger than {MAX_KEY_BYTES} bytes")
    try:
        key = load_pem_public_key(data)
    except ValueError as exc:
        raise VerificationError("key", f"{path} is not a valid PEM public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise VerificationError("key", f"{path} holds an unsupported key type")
    return key

"""cosign's encrypted private key files (`cosign generate-key-pair` writes `cosign.key`).

The PEM block `ENCRYPTED SIGSTORE PRIVATE KEY` (or the legacy `ENCRYPTED COSIGN PRIVATE KEY`,
still read) holds UTF-8 JSON, go-securesystemslib's `encrypted` format:

    {"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"<base64, 32 bytes>"},
     "cipher":{"name":"nacl/secretbox","nonce":"<base64, 24 bytes>"},
     "ciphertext":"<base64>"}

The box key is scrypt(password, salt, N, r, p, 32 bytes); the ciphertext is NaCl secretbox
(XSalsa20-Poly1305, tag first) over the PKCS#8 DER of the key. Keys are written with N=65536;
reading accepts only the three parameter sets cosign accepts (N = 32768, 65536 or 131072, each
with r=8 and p=1), so a file cannot make this process spend unbounded memory or time on scrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from typing import TYPE_CHECKING, Any

from keyless.client.keys.algorithms import check_allowed_key
from keyless.client.keys.errors import KeyFileError
from keyless.client.keys.pem import is_pkcs8, read_pem_block, write_pem_block
from keyless.core.errors import Reason

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

SIGSTORE_PEM_TYPE = "ENCRYPTED SIGSTORE PRIVATE KEY"
COSIGN_PEM_TYPE = "ENCRYPTED COSIGN PRIVATE KEY"
ENCRYPTED_PEM_TYPES = (SIGSTORE_PEM_TYPE, COSIGN_PEM_TYPE)

SCRYPT_WRITE_PARAMS = {"N": 65536, "r": 8, "p": 1}
# go-securesystemslib's Legacy, Standard and OWASP strengths: the only ones cosign decrypts.
SCRYPT_READ_N = (32768, 65536, 131072)
SALT_BYTES = 32
NONCE_BYTES = 24
BOX_KEY_BYTES = 32
MAX_SALT_BYTES = 1024
# scrypt needs 128 * N * r bytes (128 MiB at N=131072); hashlib's default cap is 32 MiB.
_SCRYPT_MAXMEM = 129 * 131072 * 8 + 1024 * 1024


def encrypt_private_key(key: PrivateKeyTypes, password: bytes) -> bytes:
    """`key` as an `ENCRYPTED SIGSTORE PRIVATE KEY` PEM under `password`, as cosign writes it."""
    import nacl.secret
    from cryptography.hazmat.primitives import serialization

    plaintext = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt, nonce = os.urandom(SALT_BYTES), os.urandom(NONCE_BYTES)
    box_key = _scrypt(password, salt, **SCRYPT_WRITE_PARAMS)
    sealed = nacl.secret.SecretBox(box_key).encrypt(plaintext, nonce).ciphertext
    # Field order and compact separators as Go's encoding/json writes the struct.
    document = {
        "kdf": {"name": "scrypt", "params": dict(SCRYPT_WRITE_PARAMS), "salt": _b64(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": _b64(nonce)},
        "ciphertext": _b64(sealed),
    }
    body = json.dumps(document, separators=(",", ":")).encode()
    return write_pem_block(SIGSTORE_PEM_TYPE, body)


def is_encrypted_private_key(data: bytes) -> bool:
    """Whether `data` holds one of cosign's encrypted key blocks (it is not yet decrypted)."""
    return any(f"-----BEGIN {kind}-----".encode() in data for kind in ENCRYPTED_PEM_TYPES)


def decrypt_private_key(data: bytes, password: bytes, *, source: str) -> PrivateKeyTypes:
    """The private key in a cosign encrypted key file.

    Raises:
        KeyFileError: not a cosign key file (`key-file`), malformed or truncated (`key-file`),
            scrypt parameters cosign refuses (`unsupported-scrypt-parameters`), a wrong password
            or altered ciphertext (`wrong-password`), or a key that is not allowed (`key-type`).
    """
    import nacl.exceptions
    import nacl.secret
    from cryptography.hazmat.primitives import serialization

    kind, body = read_pem_block(data, source=source)
    if kind not in ENCRYPTED_PEM_TYPES:
        raise KeyFileError(
            f"{source} is a {kind} PEM, not a cosign private key ({SIGSTORE_PEM_TYPE})",
            hint=f"an unencrypted key is imported first: keyless import-key-pair --key {source}"
            if "PRIVATE KEY" in kind
            else None,
        )
    document = _document(body, source=source)
    salt, params = _kdf(document, source=source)
    nonce, ciphertext = _cipher(document, source=source)
    box_key = _scrypt(password, salt, **params)
    try:
        plaintext = nacl.secret.SecretBox(box_key).decrypt(ciphertext, nonce)
    except nacl.exceptions.CryptoError as exc:
        raise KeyFileError(
            f"cannot decrypt {source}: wrong password, or the file was altered",
            reason=Reason.WRONG_PASSWORD,
            hint="the password comes from COSIGN_PASSWORD when it is set (even empty)",
        ) from exc
    try:
        key = serialization.load_der_private_key(plaintext, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{source}: the decrypted key is not a PKCS#8 private key") from exc
    # cosign parses the plaintext as PKCS#8 only; cryptography would also take PKCS#1 or SEC1.
    if not is_pkcs8(plaintext):
        raise KeyFileError(f"{source}: the decrypted key is not a PKCS#8 private key")
    check_allowed_key(key.public_key(), source=source)
    return key


def _document(body: bytes, *, source: str) -> dict[str, Any]:
    from keyless.strictjson import JSONError, loads

    try:
        document = loads(body, max_depth=4, what="its encrypted key")
    except JSONError as exc:
        raise KeyFileError(f"{source} is malformed: {exc}") from exc
    if not isinstance(document, dict):
        raise KeyFileError(f"{source} is malformed: the encrypted key is not a JSON object")
    return document


def _kdf(document: dict[str, Any], *, source: str) -> tuple[bytes, dict[str, int]]:
    kdf = document.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        name = kdf.get("name") if isinstance(kdf, dict) else None
        raise KeyFileError(f"{source}: unknown key derivation {name!r} (cosign uses scrypt)")
    params = kdf.get("params")
    values = {k: params.get(k) for k in ("N", "r", "p")} if isinstance(params, dict) else {}
    usable = (
        isinstance(params, dict)
        and set(params) == {"N", "r", "p"}
        and all(type(v) is int for v in values.values())
        and values["N"] in SCRYPT_READ_N
        and (values["r"], values["p"]) == (8, 1)
    )
    if not usable:
        shown = ", ".join(f"{k}={v}" for k, v in values.items()) or repr(params)[:80]
        raise KeyFileError(
            f"{source}: unsupported scrypt parameters ({shown}); cosign reads N=32768, 65536 "
            "or 131072 with r=8, p=1",
            reason=Reason.UNSUPPORTED_SCRYPT_PARAMETERS,
        )
    salt = _field_bytes(kdf, "salt", source=source, what="scrypt salt")
    if not 0 < len(salt) <= MAX_SALT_BYTES:
        raise KeyFileError(f"{source}: the scrypt salt has {len(salt)} bytes")
    return salt, values


def _cipher(document: dict[str, Any], *, source: str) -> tuple[bytes, bytes]:
    cipher = document.get("cipher")
    if not isinstance(cipher, dict) or cipher.get("name") != "nacl/secretbox":
        name = cipher.get("name") if isinstance(cipher, dict) else None
        raise KeyFileError(f"{source}: unknown cipher {name!r} (cosign uses nacl/secretbox)")
    nonce = _field_bytes(cipher, "nonce", source=source, what="secretbox nonce")
    if len(nonce) != NONCE_BYTES:
        raise KeyFileError(
            f"{source}: the secretbox nonce has {len(nonce)} bytes, not {NONCE_BYTES}"
        )
    ciphertext = _field_bytes(document, "ciphertext", source=source, what="ciphertext")
    return nonce, ciphertext


def _field_bytes(holder: dict[str, Any], name: str, *, source: str, what: str) -> bytes:
    value = holder.get(name)
    if not isinstance(value, str):
        raise KeyFileError(f"{source} is malformed: no {what}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyFileError(f"{source} is malformed: the {what} is not base64") from exc


def _scrypt(password: bytes, salt: bytes, *, N: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password, salt=salt, n=N, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=BOX_KEY_BYTES
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()

"""TEST-ONLY: an independent writer and reader of cosign's encrypted key format.

Written from the format's description (shared/reference/wave3-research.md §3.1, after
go-securesystemslib's `encrypted` package), calling scrypt and NaCl secretbox directly, so
that keyless's own implementation is checked against something it did not write.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import textwrap

import nacl.secret

MAXMEM = 256 * 1024 * 1024


def write_key_file(
    pkcs8: bytes,
    password: bytes,
    *,
    n: int = 65536,
    r: int = 8,
    p: int = 1,
    pem_type: str = "ENCRYPTED SIGSTORE PRIVATE KEY",
    nonce: bytes | None = None,
) -> bytes:
    """A key file holding `pkcs8` under `password`, with the given scrypt parameters."""
    salt = os.urandom(32)
    nonce = os.urandom(24) if nonce is None else nonce
    # Parameters cosign would refuse are written with a cheap key, never derived.
    box_key = (
        hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=MAXMEM, dklen=32)
        if (n, r, p) in {(32768, 8, 1), (65536, 8, 1), (131072, 8, 1)}
        else bytes(32)
    )
    sealed = nacl.secret.SecretBox(box_key).encrypt(pkcs8, nonce).ciphertext
    document = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": n, "r": r, "p": p},
            "salt": base64.b64encode(salt).decode(),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(sealed).decode(),
    }
    return pem(pem_type, json.dumps(document, separators=(",", ":")).encode())


def pem(pem_type: str, body: bytes) -> bytes:
    lines = textwrap.wrap(base64.b64encode(body).decode(), 64)
    return (
        f"-----BEGIN {pem_type}-----\n" + "\n".join(lines) + f"\n-----END {pem_type}-----\n"
    ).encode()


def read_document(key_file: bytes) -> dict:
    """The JSON inside a key file's PEM block."""
    lines = key_file.decode().strip().splitlines()
    return json.loads(base64.b64decode("".join(lines[1:-1])))


def read_key_file(key_file: bytes, password: bytes) -> bytes:
    """The PKCS#8 DER inside a key file."""
    document = read_document(key_file)
    params = document["kdf"]["params"]
    box_key = hashlib.scrypt(
        password,
        salt=base64.b64decode(document["kdf"]["salt"]),
        n=params["N"],
        r=params["r"],
        p=params["p"],
        maxmem=MAXMEM,
        dklen=32,
    )
    return nacl.secret.SecretBox(box_key).decrypt(
        base64.b64decode(document["ciphertext"]), base64.b64decode(document["cipher"]["nonce"])
    )

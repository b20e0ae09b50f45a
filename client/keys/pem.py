"""One PEM block out of a key file, read the way cosign (Go's `pem.Decode`) reads it.

The first `-----BEGIN TYPE-----` ... `-----END TYPE-----` block counts; text around it is
ignored, as Go ignores it. The body must be base64 (line breaks and `\\r` allowed) and the
block may carry no RFC 1421 headers: cosign never writes them and no key needs them.
"""

from __future__ import annotations

import base64
import binascii
import re

from keyless.client.keys.errors import KeyFileError

MAX_KEY_FILE_BYTES = 64 * 1024

_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9]+(?: [A-Z0-9]+)*)-----[ \t]*\r?\n(.*?)-----END \1-----", re.DOTALL
)


def read_pem_block(data: bytes, *, source: str) -> tuple[str, bytes]:
    """The type and the decoded body of the first PEM block in `data`.

    Raises:
        KeyFileError: no complete block, headers, or a body that is not base64.
    """
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{source} is larger than {MAX_KEY_FILE_BYTES} bytes")
    match = _BLOCK.search(data)
    if match is None:
        raise KeyFileError(
            f"{source} is not a PEM key (no complete -----BEGIN ...----- block; truncated?)"
        )
    kind, body = match.group(1).decode(), match.group(2)
    if b":" in body:
        raise KeyFileError(f"{source}: PEM headers are not supported in a key file")
    try:
        der = base64.b64decode(b"".join(body.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyFileError(f"{source}: the PEM body is not valid base64 (truncated?)") from exc
    if not der:
        raise KeyFileError(f"{source}: the PEM block is empty")
    return kind, der


def write_pem_block(kind: str, der: bytes) -> bytes:
    """A PEM block with 64-character lines, byte for byte as Go's `pem.EncodeToMemory`."""
    text = base64.b64encode(der)
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    body = b"".join(line + b"\n" for line in lines)
    return f"-----BEGIN {kind}-----\n".encode() + body + f"-----END {kind}-----\n".encode()


def is_pkcs8(der: bytes) -> bool:
    """Whether DER is a PKCS#8 PrivateKeyInfo rather than PKCS#1 or SEC1: its second element
    (after the version INTEGER) is an AlgorithmIdentifier SEQUENCE, not an INTEGER or OCTET
    STRING."""
    from asn1crypto import keys

    try:
        info = keys.PrivateKeyInfo.load(der, strict=True)
        info["private_key_algorithm"]["algorithm"].native  # noqa: B018 - forces the parse
    except (ValueError, TypeError):
        return False
    return True

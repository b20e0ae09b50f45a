"""Base64 and RFC 3339 as the wire formats use them: one writer and one strict reader each.

Every reader here is strict, because what it reads is untrusted (a log entry, a trust root, a
CT log's answer, a token): the variant's own alphabet, its padding exactly, a canonical text
(unused bits zero, so a value has one spelling, as Go's `Strict()` encodings demand) and a size
bound checked before anything is decoded. A reader that must take more says so by its name
(`protojson_b64decode`). Standard library only: this module is on every start-up path.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

_STANDARD = re.compile(r"[A-Za-z0-9+/]*={0,2}\Z")
_URLSAFE = re.compile(r"[A-Za-z0-9_-]*\Z")
_URL_TO_STANDARD = str.maketrans("-_", "+/")
# RFC 3339 §5.6 date-time; "T" and "Z" may be lower case (§5.6 NOTE). Fractions beyond the
# microsecond (protobuf writes nanoseconds) are read and truncated.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})\Z"
)
MAX_RFC3339_CHARS = 35


def b64encode(data: bytes) -> str:
    """Standard base64 with padding (RFC 4648 §4): protojson bytes, Rekor, CT, Kubernetes."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str | bytes, *, what: str = "value", max_bytes: int | None = None) -> bytes:
    """Strict standard base64: padded, canonical, at most `max_bytes` decoded bytes.

    Raises:
        ValueError: "<what> is larger than N bytes", "<what> is not valid base64" or
            "<what> is not canonical base64".
    """
    text = _bounded(text, what, max_bytes)
    if not _STANDARD.match(text) or len(text) % 4:
        raise ValueError(f"{what} is not valid base64")
    decoded = base64.b64decode(text, validate=True)
    if b64encode(decoded) != text:
        raise ValueError(f"{what} is not canonical base64")
    return _within(decoded, what, max_bytes)


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 4648 §5, RFC 7515 §2): JOSE, PKCE, JWK thumbprints."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str | bytes, *, what: str = "value", max_bytes: int | None = None) -> bytes:
    """Strict base64url without padding, canonical, at most `max_bytes` decoded bytes.

    Raises:
        ValueError: as `b64decode`, saying "base64url".
    """
    text = _bounded(text, what, max_bytes)
    if not _URLSAFE.match(text) or len(text) % 4 == 1:
        raise ValueError(f"{what} is not valid base64url")
    decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url_encode(decoded) != text:
        raise ValueError(f"{what} is not canonical base64url")
    return _within(decoded, what, max_bytes)


def protojson_b64decode(
    text: str | bytes, *, what: str = "value", max_bytes: int | None = None
) -> bytes:
    """A protobuf JSON `bytes` value, read as Go's protojson reads it: base64url when the text
    holds `-` or `_`, else standard base64; padded when its length is a multiple of four, else
    unpadded. Canonical, as every other reader here (encoders all write canonical base64).

    Raises:
        ValueError: as `b64decode`.
    """
    text = _bounded(text, what, max_bytes)
    standard = text
    if "-" in text or "_" in text:
        if "+" in text or "/" in text:
            raise ValueError(f"{what} is not valid base64")
        standard = text.translate(_URL_TO_STANDARD)
    if len(text) % 4:
        if "=" in text:
            raise ValueError(f"{what} is not valid base64")
        standard += "=" * (-len(text) % 4)
    return b64decode(standard, what=what, max_bytes=max_bytes)


def _within(decoded: bytes, what: str, max_bytes: int | None) -> bytes:
    if max_bytes is not None and len(decoded) > max_bytes:
        raise ValueError(f"{what} is larger than {max_bytes} bytes")
    return decoded


def _bounded(value: str | bytes, what: str, max_bytes: int | None) -> str:
    """`value` as text, refused before decoding if it is longer than `max_bytes` can be."""
    if max_bytes is not None and len(value) > (max_bytes + 2) // 3 * 4:
        raise ValueError(f"{what} is larger than {max_bytes} bytes")
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"{what} is not valid base64") from None
    return value


def format_rfc3339(moment: datetime, *, whole_seconds: bool = False) -> str:
    """An aware datetime as RFC 3339 in UTC with `Z`, the way trust roots and logs write it.

    Microseconds appear when the time has any (as `isoformat` writes them); `whole_seconds`
    drops them, for documents that carry seconds only (signing configs, OCI annotations).

    Raises:
        TypeError: `moment` is naive (it names no instant; a bug in the caller).
    """
    if moment.utcoffset() is None:
        raise TypeError("a naive datetime names no instant; give an aware UTC datetime")
    utc = moment.astimezone(UTC)
    if whole_seconds:
        utc = utc.replace(microsecond=0)
    return utc.isoformat().replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 date-time (`2026-01-31T00:00:00Z`, `...00.5+02:00`) as an aware UTC datetime.

    Only RFC 3339's own form: ISO 8601's others (no seconds, basic format, week dates, a
    space or comma) are refused, so a time means one instant to every reader.

    Raises:
        ValueError: not an RFC 3339 date-time, or out of range (a leap second included).
    """
    match = _RFC3339.match(text) if len(text) <= MAX_RFC3339_CHARS else None
    if match is None:
        raise ValueError(f"{text[:40]!r} is not an RFC 3339 time like 2026-01-31T00:00:00Z")
    fraction, offset = match.groups()
    micro = (fraction or ".")[1:7].ljust(6, "0")
    zone = "+00:00" if offset in ("Z", "z") else offset
    try:
        return datetime.fromisoformat(f"{text[:10]}T{text[11:19]}.{micro}{zone}").astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{text[:40]!r} is not a valid time: {exc}") from None

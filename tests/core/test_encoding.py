"""core.encoding: base64 in its three spellings and RFC 3339, written once and read strictly."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta, timezone

import pytest

from keyless.core.encoding import (
    b64decode,
    b64encode,
    b64url_decode,
    b64url_encode,
    format_rfc3339,
    parse_rfc3339,
    protojson_b64decode,
)

SAMPLES = [b"", b"a", b"ab", b"abc", b"\xfb\xff\xfe", os.urandom(257)]


@pytest.mark.parametrize("data", SAMPLES)
def test_round_trips(data: bytes) -> None:
    assert b64encode(data) == base64.b64encode(data).decode()
    assert b64decode(b64encode(data)) == data
    assert b64decode(b64encode(data).encode()) == data
    assert "=" not in b64url_encode(data)
    assert b64url_decode(b64url_encode(data)) == data
    assert protojson_b64decode(b64encode(data)) == data
    assert protojson_b64decode(b64url_encode(data)) == data
    assert protojson_b64decode(base64.urlsafe_b64encode(data).decode()) == data


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("QR==", "digest is not canonical base64"),  # unused bits set: a second spelling of "A"
        ("QUJD====", "digest is not valid base64"),  # padding after a full quantum
        ("QQ", "digest is not valid base64"),  # unpadded
        ("QQ=", "digest is not valid base64"),
        ("Q===", "digest is not valid base64"),
        ("QQ==\n", "digest is not valid base64"),
        ("Q Q=", "digest is not valid base64"),
        ("-_8=", "digest is not valid base64"),  # the URL-safe alphabet
        ("QUJ\u00e9", "digest is not valid base64"),
    ],
    ids=[
        "non-canonical",
        "excess-padding",
        "unpadded",
        "short-padding",
        "three-pads",
        "newline",
        "space",
        "urlsafe",
        "non-ascii",
    ],
)
def test_standard_refusals(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        b64decode(text, what="digest")
    assert str(info.value) == message


def test_non_ascii_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^digest is not valid base64$"):
        b64decode(b"QQ\xff=", what="digest")


def test_the_bound_is_checked_before_decoding() -> None:
    assert b64decode(b64encode(b"x" * 32), max_bytes=32) == b"x" * 32
    with pytest.raises(ValueError, match=r"^digest is larger than 32 bytes$"):
        b64decode(b64encode(b"x" * 33), what="digest", max_bytes=32)
    # Too long to be within the bound, though not base64 at all: the size is said first.
    with pytest.raises(ValueError, match=r"^digest is larger than 32 bytes$"):
        b64decode("!" * 10_000_000, what="digest", max_bytes=32)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("QQ==", "claims is not valid base64url"),  # padded
        ("Qx", "claims is not canonical base64url"),
        ("Q", "claims is not valid base64url"),
        ("+/8", "claims is not valid base64url"),
    ],
    ids=["padded", "non-canonical", "impossible-length", "standard-alphabet"],
)
def test_urlsafe_refusals(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        b64url_decode(text, what="claims")
    assert str(info.value) == message


def test_protojson_takes_what_go_protojson_takes() -> None:
    # Standard or URL-safe, padded when the length is a multiple of four, else not.
    assert protojson_b64decode("+/8=") == protojson_b64decode("-_8=") == b"\xfb\xff"
    assert protojson_b64decode("+/8") == protojson_b64decode("-_8") == b"\xfb\xff"


@pytest.mark.parametrize(
    "text",
    ["+_8=", "QQ=", "Q=Q=", "QR==", "Q"],
    ids=["mixed-alphabets", "short-padding", "inner-padding", "non-canonical", "one-char"],
)
def test_protojson_refusals(text: str) -> None:
    with pytest.raises(ValueError, match=r"^rawBytes is not (valid|canonical) base64$"):
        protojson_b64decode(text, what="rawBytes")


def test_rfc3339_writes_utc_with_z() -> None:
    moment = datetime(2026, 1, 31, 12, 30, 5, tzinfo=UTC)
    assert format_rfc3339(moment) == "2026-01-31T12:30:05Z"
    assert format_rfc3339(moment.replace(microsecond=120)) == "2026-01-31T12:30:05.000120Z"
    assert format_rfc3339(moment.replace(microsecond=120), whole_seconds=True) == (
        "2026-01-31T12:30:05Z"
    )
    # Another offset is written as the same instant in UTC.
    plus_two = moment.astimezone(timezone(timedelta(hours=2)))
    assert format_rfc3339(plus_two) == "2026-01-31T12:30:05Z"
    assert format_rfc3339(datetime(999, 1, 2, tzinfo=UTC)) == "0999-01-02T00:00:00Z"


def test_rfc3339_refuses_a_naive_time() -> None:
    with pytest.raises(TypeError, match="naive datetime"):
        format_rfc3339(datetime(2026, 1, 31))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-31T00:00:00Z", datetime(2026, 1, 31, tzinfo=UTC)),
        ("2026-01-31t00:00:00z", datetime(2026, 1, 31, tzinfo=UTC)),
        ("2026-01-31T00:00:00.5Z", datetime(2026, 1, 31, 0, 0, 0, 500000, tzinfo=UTC)),
        # protobuf's nanoseconds, truncated to the microsecond
        ("2026-01-31T00:00:00.123456789Z", datetime(2026, 1, 31, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2026-01-31T02:00:00+02:00", datetime(2026, 1, 31, tzinfo=UTC)),
        ("2026-01-30T19:30:00.25-04:30", datetime(2026, 1, 31, 0, 0, 0, 250000, tzinfo=UTC)),
        ("2026-01-31T00:00:00-00:00", datetime(2026, 1, 31, tzinfo=UTC)),
    ],
)
def test_rfc3339_reads_fractions_and_offsets(text: str, expected: datetime) -> None:
    parsed = parse_rfc3339(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-31",
        "2026-01-31T00:00Z",
        "20260131T000000Z",
        "2026-01-31 00:00:00Z",
        "2026-W05-6T00:00:00Z",
        "2026-01-31T00:00:00,5Z",
        "2026-01-31T00:00:00",
        "2026-01-31T00:00:00+0200",
        "2026-01-31T00:00:00.Z",
        "2026-01-31T00:00:00.1234567890Z",
        "\uff12\uff10\uff12\uff16-01-31T00:00:00Z",
    ],
    ids=[
        "date-only",
        "no-seconds",
        "basic-format",
        "space",
        "week-date",
        "comma",
        "no-offset",
        "offset-without-colon",
        "empty-fraction",
        "ten-digit-fraction",
        "non-ascii-digits",
    ],
)
def test_rfc3339_refuses_other_iso8601_forms(text: str) -> None:
    with pytest.raises(ValueError, match="is not an RFC 3339 time like 2026-01-31T00:00:00Z"):
        parse_rfc3339(text)


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30T00:00:00Z",
        "2026-01-31T00:00:60Z",
        "2026-01-31T24:00:00Z",
        "2026-01-31T00:00:00+24:00",
        "0001-01-01T00:00:00+01:00",
    ],
    ids=["february-30", "leap-second", "hour-24", "offset-24h", "before-year-1"],
)
def test_rfc3339_refuses_impossible_times(text: str) -> None:
    with pytest.raises(ValueError, match="is not a valid time"):
        parse_rfc3339(text)


def test_rfc3339_round_trip() -> None:
    moment = datetime(2026, 1, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert parse_rfc3339(format_rfc3339(moment)) == moment

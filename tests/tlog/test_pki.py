"""tlog.pki's base64 reader for log entries: the bound is on the decoded bytes, exactly."""

from __future__ import annotations

import pytest

from keyless.tlog.errors import EntryError
from keyless.tlog.pki import decode_b64


def test_the_bound_is_exact() -> None:
    assert decode_b64("eHh4" * 10 + "eHg=", "digest", max_bytes=32) == b"x" * 32
    # 33 bytes take the same 44 characters as 32: the text's length alone let them through
    # before keyless.core.encoding checked the decoded size too.
    with pytest.raises(EntryError) as info:
        decode_b64("eHh4" * 11, "digest", max_bytes=32)
    assert str(info.value) == "digest is larger than 32 bytes"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "digest must be a non-empty base64 string"),
        (7, "digest must be a non-empty base64 string"),
        ("eA=", "digest is not valid base64"),
        ("eB==", "digest is not canonical base64"),
    ],
    ids=["empty", "not-a-string", "short-padding", "non-canonical"],
)
def test_refusals(value: object, message: str) -> None:
    with pytest.raises(EntryError) as info:
        decode_b64(value, "digest", max_bytes=32)
    assert str(info.value) == message

"""A CT log's AddChainResponse read into an SCT: its base64 fields are read strictly."""

from __future__ import annotations

import pytest

from keyless.ca.sct import SCT, SCTFormatError

SCT_ = SCT(
    log_id=b"\x01" * 32,
    timestamp_ms=1_700_000_000_000,
    extensions=b"",
    hash_algorithm=4,
    signature_algorithm=3,
    signature=b"\x30\x06\x02\x01\x01\x02\x01\x01",
)


def test_round_trip() -> None:
    assert SCT.from_add_chain_response(SCT_.to_add_chain_response()) == SCT_


@pytest.mark.parametrize(
    "value",
    [
        # The log ID with its last character's unused bits set: the same 32 bytes, spelt
        # differently. Read with validate=True alone (before core.encoding) it was taken.
        "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQF=",
        # Non-ASCII: once a ValueError from the standard library, not the SCT's own error.
        "\u00e9" * 44,
    ],
    ids=["non-canonical", "non-ascii"],
)
def test_a_malformed_base64_field_is_an_sct_format_error(value: str) -> None:
    response = SCT_.to_add_chain_response() | {"id": value}
    with pytest.raises(SCTFormatError) as info:
        SCT.from_add_chain_response(response)
    assert str(info.value) == "the AddChainResponse field 'id' is not base64"

"""ca.wire's protojson `bytes`: either alphabet, padded or not, as Go's protojson reads them."""

from __future__ import annotations

import pytest

from keyless.ca.wire import parse_v2_request


@pytest.mark.parametrize("text", ["+/8=", "+/8", "-_8=", "-_8"])
def test_a_csr_in_either_alphabet_padded_or_not(text: str) -> None:
    body = b'{"certificateSigningRequest": "%s"}' % text.encode()
    request = parse_v2_request(body, authorization="Bearer token")
    assert request.csr == b"\xfb\xff"

"""core.dsse: the pre-authentication encoding every DSSE signer and verifier signs over."""

from __future__ import annotations

from keyless.core.dsse import pae


def test_pae_known_answer() -> None:
    # The example from the DSSE v1 protocol document (protocol.md, "Test vectors").
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters() -> None:
    # A UTF-8 payload type is counted in bytes, and an empty payload still has its length.
    assert pae("t\u00e9", b"") == b"DSSEv1 3 t\xc3\xa9 0 "
    assert pae("x", b"a b\n") == b"DSSEv1 1 x 4 a b\n"

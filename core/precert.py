"""RFC 6962's precertificate leaf: the TBSCertificate a CT log commits to for a precertificate.

A precertificate carries the critical poison extension (OID 1.3.6.1.4.1.11129.2.4.3); its CT
leaf holds its TBSCertificate with that extension removed and nothing else changed (RFC 6962
§3.2). The log builds that leaf, and a client reading the log checks that the precertificate
beside it is the one it commits to: both strip the extension here, on the DER bytes, since a
re-encoding by a parser might not give them back exactly.
"""

from __future__ import annotations

# DER of the poison extension's OID, 1.3.6.1.4.1.11129.2.4.3.
POISON_OID_DER = b"\x06\x0a\x2b\x06\x01\x04\x01\xd6\x79\x02\x04\x03"


def strip_poison(tbs: bytes) -> bytes:
    """A precertificate's TBSCertificate with the poison extension removed.

    Raises:
        ValueError: the TBS is not well-formed DER or carries no poison extension.
    """
    try:
        tag, start, end = _tlv(tbs, 0)
        if tag != 0x30 or end != len(tbs):
            raise ValueError("TBSCertificate is not one SEQUENCE")
        fields = []
        offset = start
        while offset < end:
            field_tag, field_start, field_end = _tlv(tbs, offset)
            fields.append((field_tag, offset, field_start, field_end))
            offset = field_end
        out = []
        stripped = False
        for field_tag, field_offset, field_start, field_end in fields:
            if field_tag != 0xA3:
                out.append(tbs[field_offset:field_end])
                continue
            seq_tag, seq_start, seq_end = _tlv(tbs, field_start)
            if seq_tag != 0x30 or seq_end != field_end:
                raise ValueError("malformed extensions")
            kept = []
            offset = seq_start
            while offset < seq_end:
                _, ext_start, ext_end = _tlv(tbs, offset)
                if tbs[ext_start : ext_start + len(POISON_OID_DER)] == POISON_OID_DER:
                    stripped = True
                else:
                    kept.append(tbs[offset:ext_end])
                offset = ext_end
            if kept:
                out.append(_encode(0xA3, _encode(0x30, b"".join(kept))))
        if not stripped:
            raise ValueError("no poison extension")
        return _encode(0x30, b"".join(out))
    except IndexError as exc:
        raise ValueError(f"truncated DER ({exc})") from exc


def _tlv(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, content start, end) of the DER element at `offset`; single-byte tags only."""
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte DER tags are not expected here")
    first = data[offset + 1]
    position = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if not 1 <= count <= 4:
            raise ValueError("bad DER length")
        length = int.from_bytes(data[position : position + count], "big")
        position += count
    if position + length > len(data):
        raise ValueError("DER element overruns its container")
    return tag, position, position + length


def _encode(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(body)]) + body + content

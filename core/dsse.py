"""DSSE's pre-authentication encoding (PAE): the bytes a DSSE envelope's signatures cover.

DSSE v1 protocol: `"DSSEv1" SP len(type) SP type SP len(body) SP body`, lengths as ASCII
decimal byte counts; the payload type is UTF-8. Signers, verifiers and the logs all sign or
check exactly these bytes, so they are built in one place.
"""

from __future__ import annotations


def pae(payload_type: str, payload: bytes) -> bytes:
    """The PAE of a DSSE envelope's `payloadType` and (decoded) `payload`."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)

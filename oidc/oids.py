"""Fulcio's certificate extension OIDs (1.3.6.1.4.1.57264.1.N) and how each value is encoded.

The CA issues these and the client checks them, so they live in one place. Arcs 1-6 carry the
raw UTF-8 bytes as the extension value; arcs 8-24 carry a DER UTF8String. Arc 7 is the type-id
of the OtherName SAN used by `username` issuers.
"""

from __future__ import annotations

from cryptography.x509 import ObjectIdentifier

FULCIO_ARC = "1.3.6.1.4.1.57264.1"


def fulcio_oid(arc: int) -> ObjectIdentifier:
    """The OID of Fulcio extension number `arc`."""
    return ObjectIdentifier(f"{FULCIO_ARC}.{arc}")


ISSUER_V1 = 1
GITHUB_WORKFLOW_TRIGGER = 2
GITHUB_WORKFLOW_SHA = 3
GITHUB_WORKFLOW_NAME = 4
GITHUB_WORKFLOW_REPOSITORY = 5
GITHUB_WORKFLOW_REF = 6
OTHERNAME_SAN = 7
ISSUER_V2 = 8
BUILD_SIGNER_URI = 9
BUILD_SIGNER_DIGEST = 10
RUNNER_ENVIRONMENT = 11
SOURCE_REPOSITORY_URI = 12
SOURCE_REPOSITORY_DIGEST = 13
SOURCE_REPOSITORY_REF = 14
SOURCE_REPOSITORY_IDENTIFIER = 15
SOURCE_REPOSITORY_OWNER_URI = 16
SOURCE_REPOSITORY_OWNER_IDENTIFIER = 17
BUILD_CONFIG_URI = 18
BUILD_CONFIG_DIGEST = 19
BUILD_TRIGGER = 20
RUN_INVOCATION_URI = 21
SOURCE_REPOSITORY_VISIBILITY_AT_SIGNING = 22
DEPLOYMENT_ENVIRONMENT = 23
TOKEN_SUBJECT = 24

OTHERNAME_SAN_OID = fulcio_oid(OTHERNAME_SAN)

# Arcs whose value is the raw UTF-8 string, with no DER wrapper (deprecated, still emitted).
RAW_ARCS = frozenset(range(1, 7))
# Arcs whose value is a DER UTF8String.
DER_ARCS = frozenset(range(8, 25))

# The kebab-case names Fulcio's config uses for `extension-templates`, mapped to their arc.
TEMPLATE_NAMES: dict[str, int] = {
    "issuer": ISSUER_V2,
    "github-workflow-trigger": GITHUB_WORKFLOW_TRIGGER,
    "github-workflow-sha": GITHUB_WORKFLOW_SHA,
    "github-workflow-name": GITHUB_WORKFLOW_NAME,
    "github-workflow-repository": GITHUB_WORKFLOW_REPOSITORY,
    "github-workflow-ref": GITHUB_WORKFLOW_REF,
    "build-signer-uri": BUILD_SIGNER_URI,
    "build-signer-digest": BUILD_SIGNER_DIGEST,
    "runner-environment": RUNNER_ENVIRONMENT,
    "source-repository-uri": SOURCE_REPOSITORY_URI,
    "source-repository-digest": SOURCE_REPOSITORY_DIGEST,
    "source-repository-ref": SOURCE_REPOSITORY_REF,
    "source-repository-identifier": SOURCE_REPOSITORY_IDENTIFIER,
    "source-repository-owner-uri": SOURCE_REPOSITORY_OWNER_URI,
    "source-repository-owner-identifier": SOURCE_REPOSITORY_OWNER_IDENTIFIER,
    "build-config-uri": BUILD_CONFIG_URI,
    "build-config-digest": BUILD_CONFIG_DIGEST,
    "build-trigger": BUILD_TRIGGER,
    "run-invocation-uri": RUN_INVOCATION_URI,
    "source-repository-visibility-at-signing": SOURCE_REPOSITORY_VISIBILITY_AT_SIGNING,
    "deployment-environment": DEPLOYMENT_ENVIRONMENT,
    "subject": TOKEN_SUBJECT,
}


def encode_extension_value(arc: int, value: str) -> bytes:
    """The extnValue bytes for Fulcio extension `arc` carrying `value`."""
    raw = value.encode()
    if arc in RAW_ARCS:
        return raw
    if arc not in DER_ARCS:
        raise ValueError(f"arc {arc} is not a Fulcio value extension")
    return b"\x0c" + _der_length(len(raw)) + raw


def decode_extension_value(arc: int, data: bytes) -> str:
    """The string carried by Fulcio extension `arc`; raises ValueError on malformed DER."""
    if arc in RAW_ARCS:
        return data.decode()
    if arc not in DER_ARCS:
        raise ValueError(f"arc {arc} is not a Fulcio value extension")
    if len(data) < 2 or data[0] != 0x0C:
        raise ValueError(f"extension {FULCIO_ARC}.{arc} is not a DER UTF8String")
    length, offset = _read_der_length(data, 1)
    if offset + length != len(data):
        raise ValueError(f"extension {FULCIO_ARC}.{arc} has a bad length or trailing bytes")
    return data[offset:].decode()


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _read_der_length(data: bytes, offset: int) -> tuple[int, int]:
    first = data[offset]
    offset += 1
    if first < 0x80:
        return first, offset
    count = first & 0x7F
    if count == 0 or count > 4 or offset + count > len(data):
        raise ValueError("bad DER length")
    length = int.from_bytes(data[offset : offset + count], "big")
    if length < 0x80 or data[offset] == 0:
        raise ValueError("non-minimal DER length")
    return length, offset + count

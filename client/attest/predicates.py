"""Predicate types: cosign's short names, the URIs they stand for, and the check on a type URI.

Kept apart from the statement code so that `keyless attest --help` and `verify-attestation
--help` list the names without loading verification.
"""

from __future__ import annotations

import re

from keyless.client.errors import ClientError
from keyless.core.errors import Reason

MAX_TYPE_CHARS = 512

SLSA_V02 = "https://slsa.dev/provenance/v0.2"
SLSA_V1 = "https://slsa.dev/provenance/v1"
SPDX = "https://spdx.dev/Document"
CYCLONEDX = "https://cyclonedx.org/bom"
LINK = "https://in-toto.io/Link/v1"
COSIGN_CUSTOM = "https://cosign.sigstore.dev/attestation/v1"
COSIGN_VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"
OPENVEX = "https://openvex.dev/ns"

# cosign's `--type` short names and the URIs it maps them to (wave2-research.md §4.1).
PREDICATE_TYPES: dict[str, str] = {
    "custom": COSIGN_CUSTOM,
    "slsaprovenance": SLSA_V02,
    "slsaprovenance02": SLSA_V02,
    "slsaprovenance1": SLSA_V1,
    "spdx": SPDX,
    "spdxjson": SPDX,
    "cyclonedx": CYCLONEDX,
    "link": LINK,
    "vuln": COSIGN_VULN,
    "openvex": OPENVEX,
}

# A type URI: a scheme, then no whitespace or control characters.
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s\x00-\x1f\x7f]+")


class AttestationError(ClientError):
    """A predicate or type that cannot be attested; nothing was signed or logged."""


def predicate_type_uri(value: str) -> str:
    """The predicate type URI `value` names: a cosign short name, or any absolute URI.

    Raises:
        AttestationError: neither a known short name nor a URI.
    """
    if value in PREDICATE_TYPES:
        return PREDICATE_TYPES[value]
    if len(value) <= MAX_TYPE_CHARS and _URI.fullmatch(value):
        return value
    raise AttestationError(
        f"unknown predicate type {value[:80]!r}: use a URI or one of "
        f"{', '.join(sorted(PREDICATE_TYPES))}",
        reason=Reason.PREDICATE_TYPE,
    )

"""The identity a verified token proves: what the CA writes into a certificate."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


class SANType(enum.Enum):
    """The kind of SubjectAlternativeName a principal is issued under."""

    EMAIL = "email"  # rfc822Name
    URI = "uri"  # uniformResourceIdentifier
    OTHERNAME = "othername"  # OtherName, type-id 1.3.6.1.4.1.57264.1.7, UTF8String value


@dataclass(frozen=True)
class Principal:
    """A verified identity, ready for the certificate profile.

    Attributes:
        san_type: which SAN form carries the identity.
        san_value: the SAN's value (an email, a URI, or `user!domain` for OtherName).
        challenge: the claim value the client must sign to prove possession of its key
            (`email` for email issuers, `sub` otherwise).
        extensions: Fulcio extension arc (1.3.6.1.4.1.57264.1.N) -> value; empty values
            are never present, and both arc 1 and arc 8 always carry the issuer.
    """

    san_type: SANType
    san_value: str
    challenge: str
    extensions: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.san_value:
            raise ValueError("a principal needs a non-empty SAN value")
        if any(not value for value in self.extensions.values()):
            raise ValueError("empty extension values are omitted, never issued")
        ordered = dict(sorted(self.extensions.items()))
        object.__setattr__(self, "extensions", MappingProxyType(ordered))

    @property
    def issuer(self) -> str:
        """The issuer recorded in the certificate (arc 8)."""
        return self.extensions[8]

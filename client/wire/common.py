"""Shapes shared by bundles and trusted roots (protobuf-specs `dev.sigstore.common.v1`)."""

from __future__ import annotations

from datetime import datetime

from keyless.client.wire.schema import (
    Field,
    Message,
    data,
    list_of,
    message,
    one_of,
    optional,
    text,
    timestamp,
)

# The enums' values, as sigstore-models lists them (it leaves out the *_UNSPECIFIED ones).
HASH_ALGORITHMS = ("SHA2_256", "SHA2_384", "SHA2_512", "SHA3_256", "SHA3_384")
PUBLIC_KEY_DETAILS = (
    "PKCS1_RSA_PKCS1V5",
    "PKCS1_RSA_PSS",
    "PKIX_RSA_PKCS1V5",
    "PKIX_RSA_PSS",
    "PKIX_RSA_PKCS1V15_2048_SHA256",
    "PKIX_RSA_PKCS1V15_3072_SHA256",
    "PKIX_RSA_PKCS1V15_4096_SHA256",
    "PKIX_RSA_PSS_2048_SHA256",
    "PKIX_RSA_PSS_3072_SHA256",
    "PKIX_RSA_PSS_4096_SHA256",
    "PKIX_ECDSA_P256_HMAC_SHA_256",
    "PKIX_ECDSA_P256_SHA_256",
    "PKIX_ECDSA_P384_SHA_384",
    "PKIX_ECDSA_P521_SHA_512",
    "PKIX_ED25519",
    "PKIX_ED25519_PH",
    "PKIX_ECDSA_P384_SHA_256",
    "PKIX_ECDSA_P521_SHA_256",
    "LMS_SHA256",
    "LMOTS_SHA256",
    "ML_DSA_65",
    "ML_DSA_87",
)


class HashOutput(Message):
    """A digest and the algorithm (a `HASH_ALGORITHMS` name) that made it."""

    algorithm: str
    digest: bytes
    FIELDS = (Field("algorithm", one_of(*HASH_ALGORITHMS)), Field("digest", data))


class MessageSignature(Message):
    """A signature over an artifact, with the artifact's digest for identification only."""

    message_digest: HashOutput | None
    signature: bytes
    FIELDS = (optional("message_digest", message(HashOutput)), Field("signature", data))


class LogId(Message):
    """A transparency log's identity: the hash of its public key."""

    key_id: bytes
    FIELDS = (Field("key_id", data),)


class RFC3161SignedTimestamp(Message):
    """A DER TimeStampResp."""

    signed_timestamp: bytes
    FIELDS = (Field("signed_timestamp", data),)


class PublicKeyIdentifier(Message):
    """An out-of-band key, named by an unauthenticated hint (which is required, and nullable)."""

    hint: str | None
    FIELDS = (Field("hint", text, nullable=True),)


class X509Certificate(Message):
    """One DER certificate."""

    raw_bytes: bytes
    FIELDS = (Field("raw_bytes", data),)


class X509CertificateChain(Message):
    """DER certificates, leaf side first."""

    certificates: tuple[X509Certificate, ...]
    FIELDS = (Field("certificates", list_of(message(X509Certificate))),)


class TimeRange(Message):
    """A closed interval; `end` None means still open."""

    start: datetime
    end: datetime | None
    FIELDS = (Field("start", timestamp), optional("end", timestamp))


class PublicKey(Message):
    """A DER public key, its algorithm (a `PUBLIC_KEY_DETAILS` name) and its validity."""

    raw_bytes: bytes | None
    key_details: str
    valid_for: TimeRange | None
    FIELDS = (
        optional("raw_bytes", data),
        Field("key_details", one_of(*PUBLIC_KEY_DETAILS)),
        optional("valid_for", message(TimeRange)),
    )


class DistinguishedName(Message):
    """A CA's name; proto3 JSON omits an empty string, so each part defaults to ""."""

    organization: str
    common_name: str
    FIELDS = (Field("organization", text, absent=""), Field("common_name", text, absent=""))

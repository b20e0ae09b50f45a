"""The trusted root's shape (protobuf-specs `dev.sigstore.trustroot.v1`), and the client trust
config that carries one, as sigstore-models reads them, with the proto3 defaults that
`keyless.client.trust` documents: proto3 JSON leaves out an empty string, so a CA `subject`
without `organization` or `commonName` (or without any part) reads as empty, as does a
service's `operator`; every other field stays required.

The signing config inside a client trust config is read to refuse a malformed one, as
sigstore-models does; verification uses only the trusted root.
"""

from __future__ import annotations

from keyless.client.wire.common import (
    HASH_ALGORITHMS,
    DistinguishedName,
    LogId,
    PublicKey,
    TimeRange,
    X509CertificateChain,
)
from keyless.client.wire.schema import (
    Field,
    Message,
    integer,
    list_of,
    message,
    one_of,
    optional,
    read_document,
    text,
)

MEDIA_TYPES = (
    "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    "application/vnd.dev.sigstore.trustedroot.v0.2+json",
)
SIGNING_CONFIG_MEDIA_TYPES = (
    "application/vnd.dev.sigstore.signingconfig.v0.1+json",
    "application/vnd.dev.sigstore.signingconfig.v0.2+json",
)
CLIENT_TRUST_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"


class TransparencyLogInstance(Message):
    """A transparency or CT log: where it is, its key, and its ID."""

    base_url: str
    hash_algorithm: str
    public_key: PublicKey
    log_id: LogId
    checkpoint_key_id: LogId | None
    operator: str | None
    FIELDS = (
        Field("base_url", text),
        Field("hash_algorithm", one_of(*HASH_ALGORITHMS)),
        Field("public_key", message(PublicKey)),
        Field("log_id", message(LogId)),
        optional("checkpoint_key_id", message(LogId)),
        optional("operator", text),
    )


class CertificateAuthority(Message):
    """A certificate or timestamp authority: its name, chain and validity."""

    subject: DistinguishedName
    uri: str | None
    cert_chain: X509CertificateChain
    valid_for: TimeRange
    operator: str | None
    FIELDS = (
        Field(
            "subject",
            message(DistinguishedName),
            absent=DistinguishedName(organization="", common_name=""),
        ),
        optional("uri", text),
        Field("cert_chain", message(X509CertificateChain)),
        Field("valid_for", message(TimeRange)),
        optional("operator", text),
    )


class TrustedRoot(Message):
    """The logs, CT logs, CAs and TSAs a client trusts."""

    media_type: str
    tlogs: tuple[TransparencyLogInstance, ...]
    certificate_authorities: tuple[CertificateAuthority, ...]
    ctlogs: tuple[TransparencyLogInstance, ...]
    timestamp_authorities: tuple[CertificateAuthority, ...]
    FIELDS = (
        Field("media_type", one_of(*MEDIA_TYPES)),
        Field("tlogs", list_of(message(TransparencyLogInstance))),
        Field("certificate_authorities", list_of(message(CertificateAuthority))),
        Field("ctlogs", list_of(message(TransparencyLogInstance))),
        Field("timestamp_authorities", list_of(message(CertificateAuthority)), absent=()),
    )


class Service(Message):
    """A service of a signing config: URL, API version, validity, operator."""

    url: str
    major_api_version: int
    valid_for: TimeRange | None
    operator: str
    FIELDS = (
        Field("url", text),
        Field("major_api_version", integer),
        optional("valid_for", message(TimeRange)),
        Field("operator", text, absent=""),
    )


class ServiceConfiguration(Message):
    """How many of a signing config's services to use."""

    selector: str
    count: int | None
    FIELDS = (Field("selector", one_of("ALL", "ANY", "EXACT")), optional("count", integer))


def _services(name: str) -> Field:
    return Field(name, list_of(message(Service)), absent=())


class SigningConfig(Message):
    """The CAs, OIDC issuers, logs and TSAs a client signs with."""

    media_type: str
    ca_urls: tuple[Service, ...]
    oidc_urls: tuple[Service, ...]
    rekor_tlog_urls: tuple[Service, ...]
    rekor_tlog_config: ServiceConfiguration | None
    tsa_urls: tuple[Service, ...]
    tsa_config: ServiceConfiguration | None
    FIELDS = (
        Field("media_type", one_of(*SIGNING_CONFIG_MEDIA_TYPES)),
        _services("ca_urls"),
        _services("oidc_urls"),
        _services("rekor_tlog_urls"),
        optional("rekor_tlog_config", message(ServiceConfiguration)),
        _services("tsa_urls"),
        optional("tsa_config", message(ServiceConfiguration)),
    )


class ClientTrustConfig(Message):
    """A trusted root with the signing config of the same instance."""

    media_type: str
    trusted_root: TrustedRoot
    signing_config: SigningConfig
    FIELDS = (
        Field("media_type", one_of(CLIENT_TRUST_CONFIG_MEDIA_TYPE)),
        Field("trusted_root", message(TrustedRoot)),
        Field("signing_config", message(SigningConfig)),
    )


def read_trusted_root(document: bytes | str, *, what: str = "trusted root") -> TrustedRoot:
    """Read a trusted root's JSON (`what` names it in JSON errors).

    Raises:
        JSONError: not strict JSON.
        WireError: not a trusted root.
    """
    return read_document(TrustedRoot, document, what=what)


def read_client_trust_config(document: bytes | str, *, what: str) -> ClientTrustConfig:
    """Read a client trust config's JSON (`what` names it in JSON errors).

    Raises:
        JSONError: not strict JSON.
        WireError: not a client trust config.
    """
    return read_document(ClientTrustConfig, document, what=what)

"""This deployment's trust material in Sigstore's formats: TrustedRoot, SigningConfig, and the
ClientTrustConfig that carries both (rekor-bundle.md §4).

Pure builders: keys, certificates, URLs and times in, validated JSON documents out. Every
document is parsed back through sigstore-models before it is served, so a client never receives
something the official models would refuse.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from sigstore_models.trustroot.v1 import ClientTrustConfig, SigningConfig, TrustedRoot

from keyless.core.encoding import b64encode, format_rfc3339
from keyless.core.keys import key_details
from keyless.tlog import checkpoint_key_id, checkpoint_origin

TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
SIGNING_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
SIGNING_CONFIG_V01_MEDIA_TYPE = "application/vnd.dev.sigstore.signingconfig.v0.1+json"
CLIENT_TRUST_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"


@dataclass(frozen=True)
class LogKey:
    """One log's public key and the window in which it signed (end None: still signing).

    An Ed25519 key is a Rekor v2 log's checkpoint key: its log ID is the C2SP key ID under
    the log's origin, its base URL without the scheme."""

    base_url: str
    public_key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
    start: datetime
    end: datetime | None = None


@dataclass(frozen=True)
class CAChain:
    """One CA chain (intermediates then root) and its window of use."""

    uri: str
    certificates: Sequence[x509.Certificate]
    start: datetime
    end: datetime | None = None


def trusted_root(
    *,
    cas: Sequence[CAChain],
    tlogs: Sequence[LogKey],
    ctlogs: Sequence[LogKey],
    tsas: Sequence[CAChain] = (),
) -> dict[str, Any]:
    """A TrustedRoot listing every CA, log key and timestamp authority, old ones with their
    end dates. A TSA chain is its signing certificate first, its root last."""
    document = {
        "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
        "tlogs": [_log(key) for key in tlogs],
        "certificateAuthorities": [_ca(chain) for chain in cas],
        "ctlogs": [_log(key) for key in ctlogs],
        "timestampAuthorities": [_ca(chain) for chain in tsas],
    }
    _check(TrustedRoot, document)
    return document


def signing_config(
    *,
    ca_url: str,
    log_url: str,
    oidc_url: str | None,
    start: datetime,
    v2_log_url: str | None = None,
    tsa_url: str | None = None,
) -> dict[str, Any]:
    """A SigningConfig v0.2 naming this deployment's CA, Rekor v1 log, and (if any) Rekor v2
    log, timestamp authority (its full URL) and OIDC issuer.

    Every service has one operator, so a client that keeps the highest API version per
    operator (sigstore-python, keyless sign) signs with the v2 log and a timestamp. The v2 log
    is listed first: a client that takes the newest log it speaks, ties in list order
    (sigstore-js), picks it too, and one that speaks only v1 filters it out (both logs share
    this origin, so even one that ignored the version would reach a v1 API there).
    """
    operator = urlsplit(ca_url).hostname or ca_url

    def service(url: str, version: int = 1) -> dict[str, Any]:
        return {
            "url": url,
            "majorApiVersion": version,
            "validFor": {"start": format_rfc3339(start, whole_seconds=True)},
            "operator": operator,
        }

    logs = ([service(v2_log_url, 2)] if v2_log_url else []) + [service(log_url)]
    document = {
        "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
        "caUrls": [service(ca_url)],
        "oidcUrls": [service(oidc_url)] if oidc_url else [],
        "rekorTlogUrls": logs,
        # sigstore-js only accepts ANY selectors, and wants both configs present.
        "rekorTlogConfig": {"selector": "ANY"},
        "tsaUrls": [service(tsa_url)] if tsa_url else [],
        "tsaConfig": {"selector": "ANY"},
    }
    _check(SigningConfig, document)
    return document


def signing_config_v01(
    *, ca_url: str, log_url: str, oidc_url: str | None, tsa_url: str | None = None
) -> dict[str, Any]:
    """The same services as a SigningConfig v0.1, the shape clients built on protobuf-specs
    0.3 read (sigstore-python 3.x: one CA URL, then the first log URL as a Rekor v1 log).

    Bare URLs carry no API version, so the Rekor v2 log is left out: such a client would speak
    v1 to it. sigstore-models knows only v0.2; the peer tests hold this shape to sigstore-python
    3.x itself.
    """
    return {
        "mediaType": SIGNING_CONFIG_V01_MEDIA_TYPE,
        "caUrl": ca_url,
        **({"oidcUrl": oidc_url} if oidc_url else {}),
        "tlogUrls": [log_url],
        "tsaUrls": [tsa_url] if tsa_url else [],
    }


def client_trust_config(root: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The one file sigstore-python's `--trust-config` takes (3.x: with a v0.1 signing config,
    whose shape sigstore-models does not know, so only the trusted root in it is checked)."""
    document = {
        "mediaType": CLIENT_TRUST_CONFIG_MEDIA_TYPE,
        "trustedRoot": root,
        "signingConfig": config,
    }
    if config["mediaType"] == SIGNING_CONFIG_V01_MEDIA_TYPE:
        _check(TrustedRoot, root)
    else:
        _check(ClientTrustConfig, document)
    return document


def _check(model: type, document: dict[str, Any]) -> None:
    """Parse `document` as the official model does on the wire (raises if it would refuse it)."""
    model.from_json(json.dumps(document))


def _log(key: LogKey) -> dict[str, Any]:
    spki = key.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if isinstance(key.public_key, ed25519.Ed25519PublicKey):
        key_id = checkpoint_key_id(key.public_key, name=checkpoint_origin(key.base_url))
    else:
        key_id = hashlib.sha256(spki).digest()
    return {
        "baseUrl": key.base_url,
        "hashAlgorithm": "SHA2_256",
        "publicKey": {
            "rawBytes": b64encode(spki),
            "keyDetails": key_details(key.public_key),
            "validFor": _window(key.start, key.end),
        },
        "logId": {"keyId": b64encode(key_id)},
    }


def _ca(chain: CAChain) -> dict[str, Any]:
    root = chain.certificates[-1]
    return {
        "subject": {
            "organization": _name(root, NameOID.ORGANIZATION_NAME) or "keyless",
            "commonName": _name(root, NameOID.COMMON_NAME) or "keyless",
        },
        "uri": chain.uri,
        "certChain": {
            "certificates": [
                {"rawBytes": b64encode(cert.public_bytes(serialization.Encoding.DER))}
                for cert in chain.certificates
            ]
        },
        "validFor": _window(chain.start, chain.end),
    }


def _name(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    values = cert.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


def _window(start: datetime, end: datetime | None) -> dict[str, str]:
    return {"start": format_rfc3339(start, whole_seconds=True)} | (
        {"end": format_rfc3339(end, whole_seconds=True)} if end else {}
    )

"""Trust material for policies: named trusted roots, from files or `TrustRoot` documents.

An authority's `trustRootRef` names one of these; an authority without one uses the default
(the `--trusted-root` given on the command line, else public Sigstore's production root shipped
in `client/data`). Three sources give a named root, all read from disk, never from the network:

- `--trust-root NAME=FILE`: a plain Sigstore `trusted_root.json` (what `keyless serve` publishes
  at `/api/v1/trust/trusted_root.json`, or what `keyless trust` saves);
- a policy-controller `TrustRoot` document (`policy.sigstore.dev/v1alpha1`) in the `sigstoreKeys`
  form (bring your own keys). Its `remote` and `repository` (TUF) forms are refused: keyless
  does not run a TUF client for policies;
- keyless's own wrapper, `apiVersion: keyless.dev/v1alpha1`, `kind: TrustRoot`, whose
  `spec.trustedRootFile` names a `trusted_root.json` relative to the policy file.

A Kyverno attestor's `roots`, `rekor.pubkey` and `ctlog.pubkey` replace those parts of the
default root (`derived_trust`), as cosign replaces them in the TUF root.

Each root keeps the SHA-256 of the bytes it came from, so that the evaluator's fingerprint (the
gate's cache key) changes whenever the trust does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyless.client.trust import MAX_TRUSTED_ROOT_BYTES, PRODUCTION_ROOT_RESOURCE, TrustedRoot
from keyless.client.verify.errors import TrustRootError
from keyless.core.encoding import b64decode, b64encode

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

    from keyless.client.trust import LogKey

DEFAULT_TRUST_ROOT = ""  # the name of the default root: `trustRootRef` absent
MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
# sigstoreKeys entries carry no validity; they are trusted from the start of time.
_ALWAYS = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class TrustMaterial:
    """One named trusted root, where it came from, and the hash of its bytes."""

    name: str
    root: TrustedRoot
    sha256: str
    source: str

    def tlog_urls(self) -> list[str]:
        return sorted({_url(log.base_url) for log in self.root.tlogs.values()})


def load_trust_file(name: str, path: Path) -> TrustMaterial:
    """A named trusted root from a Sigstore `trusted_root.json` file.

    Raises:
        TrustRootError: unreadable, too large or malformed.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_TRUSTED_ROOT_BYTES + 1)
    except OSError as exc:
        raise TrustRootError(detail=f"cannot read trusted root {path}: {exc.strerror}") from exc
    if len(data) > MAX_TRUSTED_ROOT_BYTES:
        raise TrustRootError(
            detail=f"trusted root {path} is larger than {MAX_TRUSTED_ROOT_BYTES} bytes"
        )
    return TrustMaterial(name, TrustedRoot.from_json(data), _sha256(data), str(path))


def production_trust() -> TrustMaterial:
    """Public Sigstore's production root, as shipped in `client/data` (see its PROVENANCE)."""
    data = resources.files("keyless.client").joinpath("data", PRODUCTION_ROOT_RESOURCE).read_bytes()
    return TrustMaterial(
        DEFAULT_TRUST_ROOT, TrustedRoot.from_json(data), _sha256(data), "public Sigstore"
    )


def sigstore_keys_root(keys: Any, where: str) -> tuple[bytes, list[str]]:
    """A Sigstore trusted_root.json built from a TrustRoot's `sigstoreKeys`, and the problems.

    policy-controller stores every key and chain as base64 of PEM; the trusted root wants DER.
    """
    problems: list[str] = []
    if not isinstance(keys, dict):
        return b"", [f"{where}: must be a mapping"]
    known = {"certificateAuthorities", "tLogs", "ctLogs", "timestampAuthorities"}
    problems += [f"{where}.{key}: unknown field" for key in keys if key not in known]
    root: dict[str, Any] = {"mediaType": MEDIA_TYPE}
    for field, out in (
        ("certificateAuthorities", "certificateAuthorities"),
        ("timestampAuthorities", "timestampAuthorities"),
    ):
        root[out] = [
            _authority(entry, f"{where}.{field}[{i}]", problems)
            for i, entry in enumerate(_list(keys.get(field), f"{where}.{field}", problems))
        ]
    for field, out in (("tLogs", "tlogs"), ("ctLogs", "ctlogs")):
        root[out] = [
            _log(entry, f"{where}.{field}[{i}]", problems)
            for i, entry in enumerate(_list(keys.get(field), f"{where}.{field}", problems))
        ]
    if not root["certificateAuthorities"] and not problems:
        problems.append(f"{where}.certificateAuthorities: missing")
    return json.dumps(root, sort_keys=True).encode(), problems


def trust_from_json(name: str, data: bytes, source: str) -> TrustMaterial:
    """A named root from trusted_root.json bytes (raises TrustRootError)."""
    return TrustMaterial(name, TrustedRoot.from_json(data), _sha256(data), source)


def derived_trust(
    base: TrustMaterial,
    *,
    roots: tuple[x509.Certificate, ...] = (),
    tlog: tuple[str, PublicKeyTypes] | None = None,
    ctlog: PublicKeyTypes | None = None,
    content: bytes,
) -> TrustMaterial:
    """`base` with its certificate authorities, transparency logs or CT logs replaced.

    Each root certificate becomes an authority of its own, so each is a trust anchor, as in
    cosign's root pool; `tlog` is a log's URL and key; `ctlog` a CT log's key. `content` (the
    PEM text the parts came from) goes into the hash, so the gate's cache key follows it.

    Raises:
        TrustRootError: a key is of a type logs do not use.
    """
    from keyless.client.trust import UNBOUNDED, Authority

    root = base.root
    if roots:
        authorities = tuple(Authority("", (cert,), UNBOUNDED) for cert in roots)
        root = dataclasses.replace(root, certificate_authorities=authorities)
    if tlog is not None:
        root = dataclasses.replace(root, tlogs=_log_keys(tlog[0], tlog[1]))
    if ctlog is not None:
        root = dataclasses.replace(root, ctlogs=_log_keys("", ctlog))
    sha256 = _sha256(base.sha256.encode() + b"\0" + content)
    return TrustMaterial(f"kyverno:{sha256[:16]}", root, sha256, f"{base.source}, amended")


def _log_keys(base_url: str, key: PublicKeyTypes) -> dict[bytes, LogKey]:
    from keyless.client.trust import UNBOUNDED, LogKey
    from keyless.core.keys import key_details

    try:
        details = key_details(key)
    except ValueError:
        raise TrustRootError(detail=f"unsupported log key type {type(key).__name__}") from None
    key_id = hashlib.sha256(_spki(key)).digest()
    return {key_id: LogKey(base_url, key_id, details, key, UNBOUNDED)}


def _authority(entry: Any, where: str, problems: list[str]) -> dict[str, Any]:
    from cryptography import x509

    if not isinstance(entry, dict):
        problems.append(f"{where}: must be a mapping")
        return {}
    known = {"subject", "uri", "certChain"}
    problems += [f"{where}.{key}: unknown field" for key in entry if key not in known]
    pem = _base64(entry.get("certChain"), f"{where}.certChain", problems)
    chain: list[dict[str, str]] = []
    if pem is not None:
        try:
            certificates = x509.load_pem_x509_certificates(pem)
        except ValueError:
            problems.append(f"{where}.certChain: not base64 of PEM certificates")
        else:
            chain = [{"rawBytes": b64encode(c.public_bytes(_der()))} for c in certificates]
    subject = entry.get("subject") or {}
    return {
        "subject": {
            "organization": str(subject.get("organization", "")),
            "commonName": str(subject.get("commonName", "")),
        }
        if isinstance(subject, dict)
        else {},
        "uri": str(entry.get("uri", "")),
        "certChain": {"certificates": chain},
        "validFor": {"start": _ALWAYS},
    }


def _log(entry: Any, where: str, problems: list[str]) -> dict[str, Any]:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from keyless.core.keys import key_details

    if not isinstance(entry, dict):
        problems.append(f"{where}: must be a mapping")
        return {}
    known = {"baseURL", "hashAlgorithm", "publicKey"}
    problems += [f"{where}.{key}: unknown field" for key in entry if key not in known]
    base_url = entry.get("baseURL")
    if not isinstance(base_url, str) or not base_url:
        problems.append(f"{where}.baseURL: missing")
    algorithm = str(entry.get("hashAlgorithm", "sha-256")).lower().replace("_", "-")
    if algorithm not in ("sha-256", "sha256"):
        problems.append(f"{where}.hashAlgorithm: only sha-256 is supported, not {algorithm!r}")
    pem = _base64(entry.get("publicKey"), f"{where}.publicKey", problems)
    raw = b""
    details: str | None = None
    if pem is not None:
        try:
            key = load_pem_public_key(pem)
        except ValueError:
            problems.append(f"{where}.publicKey: not base64 of a PEM public key")
        else:
            raw = _spki(key)
            try:
                details = key_details(key)
            except ValueError:
                problems.append(f"{where}.publicKey: unsupported key type")
    return {
        "baseUrl": base_url if isinstance(base_url, str) else "",
        "hashAlgorithm": "SHA2_256",
        "publicKey": {
            "rawBytes": b64encode(raw),
            "keyDetails": details or "PKIX_ECDSA_P256_SHA_256",
            "validFor": {"start": _ALWAYS},
        },
        "logId": {"keyId": b64encode(hashlib.sha256(raw).digest())},
    }


def _spki(key: PublicKeyTypes) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def _list(value: Any, where: str, problems: list[str]) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"{where}: must be a list")
        return []
    return value


def _base64(value: Any, where: str, problems: list[str]) -> bytes | None:
    if not isinstance(value, str) or not value:
        problems.append(f"{where}: missing (base64 of PEM)")
        return None
    try:
        return b64decode(value)
    except ValueError:
        problems.append(f"{where}: not valid base64")
        return None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _url(url: str) -> str:
    return url.rstrip("/")


__all__ = [
    "DEFAULT_TRUST_ROOT",
    "TrustMaterial",
    "TrustRootError",
    "derived_trust",
    "load_trust_file",
    "production_trust",
    "sigstore_keys_root",
    "trust_from_json",
]

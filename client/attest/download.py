"""What `keyless download` prints, in the shapes cosign users' scripts read.

Nothing here verifies anything: these are the attachments of an image as stored, for a user or
a script to look at (`keyless verify` and `verify-attestation` judge them).
- Signatures: each Sigstore bundle that signs the image (a message signature, or a DSSE statement
  of cosign's signing predicate type) as one JSON line; each cosign v2 `.sig` signature as one
  line of cosign's SignedPayload fields.
- Attestations: each DSSE bundle of another predicate type as one JSON line, with the envelope's
  `payload` also at the top level, so both `jq .payload` and `jq .dsseEnvelope.payload` work.
- SBOM: the predicate of an SPDX or CycloneDX attestation, or the layer of cosign's legacy
  `sha256-<hex>.sbom` attachment.

`keyless tree` reads the same attachments to say which signatures are made with a key (a
bundle's `publicKey`, a `.sig` layer without a certificate) rather than a certificate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from keyless import strictjson
from keyless.client.attest.predicates import CYCLONEDX, SPDX
from keyless.client.oci import BundleReferrer, ImageSignatures, LegacySignature
from keyless.client.oci.signatures import COSIGN_SIGN_PREDICATE
from keyless.core.encoding import b64decode, b64encode

SBOM_PREDICATES = (SPDX, CYCLONEDX)


@dataclass(frozen=True)
class Attachment:
    """One stored bundle, parsed only as far as telling signatures from attestations."""

    bundle: dict[str, Any]
    predicate_type: str | None  # None: a message signature, not a DSSE statement
    statement: dict[str, Any] | None
    manifest_digest: str = ""  # the referrer manifest it was found in

    @property
    def is_signature(self) -> bool:
        return self.predicate_type in (None, COSIGN_SIGN_PREDICATE)

    @property
    def signed_with(self) -> SignedWith | None:
        """What the bundle says it was signed with; None when it names neither a key nor a
        certificate (nothing here is verified)."""
        material = self.bundle.get("verificationMaterial")
        if not isinstance(material, dict):
            return None
        public_key = material.get("publicKey")
        if isinstance(public_key, dict):
            hint = public_key.get("hint")
            return SignedWith(KEY, hint if isinstance(hint, str) and hint else None)
        if "certificate" in material or "x509CertificateChain" in material:
            return SignedWith(CERTIFICATE)
        return None


KEY, CERTIFICATE = "key", "certificate"


@dataclass(frozen=True)
class SignedWith:
    """A signature made with a long-lived key (`KEY`, with the bundle's key hint if any) or
    with a certificate (`CERTIFICATE`), as its attachment says, unverified."""

    kind: str
    hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "hint": self.hint}


def legacy_signed_with(signature: LegacySignature) -> SignedWith:
    """A cosign v2 signature carries a certificate annotation unless a key made it."""
    return SignedWith(KEY if signature.certificate is None else CERTIFICATE)


def attachments(found: ImageSignatures) -> tuple[list[Attachment], list[str]]:
    """The bundles attached to the image, and a line for each one that cannot be read."""
    out: list[Attachment] = []
    problems: list[str] = []
    for referrer in found.bundles:
        try:
            out.append(_attachment(referrer))
        except ValueError as exc:
            problems.append(f"{referrer.source} {referrer.manifest_digest}: {exc}")
    return out, problems


def _attachment(referrer: BundleReferrer) -> Attachment:
    bundle = strictjson.loads(referrer.bundle, what="bundle")
    if not isinstance(bundle, dict):
        raise ValueError("the bundle is not a JSON object")
    envelope = bundle.get("dsseEnvelope")
    if envelope is None:
        return Attachment(bundle, None, None, referrer.manifest_digest)
    if not isinstance(envelope, dict) or not isinstance(envelope.get("payload"), str):
        raise ValueError("the bundle's dsseEnvelope has no payload")
    statement = strictjson.loads(b64decode(envelope["payload"], what="payload"), what="statement")
    predicate_type = statement.get("predicateType") if isinstance(statement, dict) else None
    if not isinstance(predicate_type, str):
        raise ValueError("the DSSE payload is not an in-toto statement with a predicateType")
    return Attachment(bundle, predicate_type, statement, referrer.manifest_digest)


def signature_lines(found: ImageSignatures, bundles: list[Attachment]) -> list[str]:
    """One JSON line per signature: Sigstore bundles first, then cosign v2 signatures."""
    lines = [_line(a.bundle) for a in bundles if a.is_signature]
    lines += [_line(_signed_payload(signature)) for signature in found.legacy]
    return lines


def attestation_lines(bundles: list[Attachment], predicate_type: str | None) -> list[str]:
    """One JSON line per attestation (of `predicate_type`, when given)."""
    lines = []
    for attachment in bundles:
        if attachment.is_signature:
            continue
        if predicate_type is not None and attachment.predicate_type != predicate_type:
            continue
        envelope = attachment.bundle["dsseEnvelope"]
        lines.append(_line({**attachment.bundle, "payload": envelope["payload"]}))
    return lines


def sbom_predicate(bundles: list[Attachment]) -> tuple[bytes, str] | None:
    """The first SBOM attestation's predicate as JSON bytes, and its predicate type."""
    for attachment in bundles:
        if attachment.predicate_type in SBOM_PREDICATES and attachment.statement is not None:
            predicate = attachment.statement.get("predicate")
            text = json.dumps(predicate, indent=2, ensure_ascii=False) + "\n"
            return text.encode(), attachment.predicate_type or ""
    return None


def _signed_payload(signature: LegacySignature) -> dict[str, Any]:
    """cosign's SignedPayload fields for a v2 signature (`Cert` as PEM text here, where cosign
    marshals Go's certificate struct field by field)."""
    out: dict[str, Any] = {
        "Base64Signature": signature.signature,
        "Payload": b64encode(signature.payload),
    }
    if signature.certificate is not None:
        out["Cert"] = signature.certificate
    if signature.chain is not None:
        out["Chain"] = signature.chain
    if signature.rekor_bundle is not None:
        out["Bundle"] = _json_or_text(signature.rekor_bundle)
    if signature.rfc3161_timestamp is not None:
        out["RFC3161Timestamp"] = _json_or_text(signature.rfc3161_timestamp)
    return out


def _json_or_text(annotation: str) -> Any:
    """An annotation that holds JSON, as JSON; anything else as the text it is (nothing here
    is verified, and a listing must not fail on what it lists)."""
    try:
        return strictjson.loads(annotation.encode(), what="annotation")
    except strictjson.JSONError:
        return annotation


def _line(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)

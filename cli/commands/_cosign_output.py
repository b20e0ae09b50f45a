"""`keyless verify -o cosign IMAGE`: what `cosign verify` prints, for scripts written against it.

cosign (cmd/cosign/cli/verify/common.go, `PrintVerificationHeader` and `PrintVerification`)
writes a header to stderr and, to stdout, a newline, one JSON array, a newline: per verified
signature its `payload.SimpleContainerImage`, `{"critical": {"identity": {"docker-reference"},
"image": {"docker-manifest-digest"}, "type"}, "optional": {...}}`, marshalled by Go's
encoding/json (struct fields in order, map keys sorted, `<`, `>`, `&` escaped).

- A cosign v2 signature (`.sig` tag): `critical` and `optional` as its payload claims them,
  `type` "cosign container image signature".
- A Sigstore bundle (cosign v3): as cosign v3's `transformOutput` builds it: the reference as
  typed (go-containerregistry's `Name()`), the predicate type, the subject's annotations.
- Either way `optional` gains, for a certificate, `Subject` (its first SAN), `Issuer`, the
  issuer OID key and the GitHub workflow claims by name and by OID, and, for a log entry with a
  signed entry timestamp, `Bundle` (cosign v2's annotation). cosign v3 fills none of these for
  bundles (cosign#4372), which broke `jq '.[0].optional.Subject'`; here they are filled.

Where keyless differs, on purpose: every verified signature is listed (cosign v3 lists only
the bundles when an image has any, cosign v2 only the `.sig` signatures); `Issuer` falls back to
the issuer extension 1.3.6.1.4.1.57264.1.8 when .1.1 is absent (cosign reads .1.1 only; the
.1.1 key is printed only when the certificate has it); the header's log line is printed only
when every listed signature's log evidence was checked (cosign v3 prints it for bundles even
under --insecure-ignore-tlog); `RFC3161Timestamp` is not printed.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography import x509

    from keyless.client.oci import Reference
    from keyless.client.verify.images import ImageVerification, VerifiedSignature

GO_DOCKER_HUB = "index.docker.io"  # go-containerregistry's name for Docker Hub
# cosign's CertExtensionMap: the deprecated Fulcio extensions (raw values), by arc.
ISSUER_ARC = 1
GITHUB_ARCS = {
    2: "githubWorkflowTrigger",
    3: "githubWorkflowSha",
    4: "githubWorkflowName",
    5: "githubWorkflowRepository",
    6: "githubWorkflowRef",
}


class GoStruct(dict[str, Any]):
    """A JSON object Go marshals from a struct: fields in declaration order, not sorted."""


def cosign_name(image: Reference) -> str:
    """The reference as go-containerregistry's `Name()` writes it: `registry/repo:tag`, or
    `registry/repo@digest` when a digest is given (the tag is then dropped)."""
    from keyless.client.oci.reference import DOCKER_HUB

    registry = GO_DOCKER_HUB if image.registry == DOCKER_HUB else image.registry
    name = f"{registry}/{image.repository}"
    return f"{name}@{image.digest}" if image.digest is not None else f"{name}:{image.tag}"


def verification_header(name: str, outcome: ImageVerification, *, by_key: bool) -> str:
    """cosign's stderr lines before the JSON (a blank line first), for the checks made."""
    lines = [
        "",
        f"Verification for {name} --",
        "The following checks were performed on each of these signatures:",
        "  - The cosign claims were validated",
    ]
    if all(signature.log_index is not None for signature in outcome.verified):
        lines.append("  - Existence of the claims in the transparency log was verified offline")
    if by_key:
        lines.append("  - The signatures were verified against the specified public key")
    else:
        lines.append(
            "  - The code-signing certificate was verified using trusted certificate "
            "authority certificates"
        )
    return "\n".join(lines)


def verification_output(outcome: ImageVerification, name: str) -> str:
    """cosign verify's stdout: a newline, the JSON array, a newline."""
    return "\n" + go_json([_simple_container_image(s, name) for s in outcome.verified]) + "\n"


def _simple_container_image(signature: VerifiedSignature, name: str) -> GoStruct:
    from keyless.client.oci.signatures import COSIGN_PAYLOAD_TYPE, COSIGN_SIGN_PREDICATE
    from keyless.client.verify.dsse import INTOTO_PAYLOAD_TYPE

    optional: dict[str, Any] | None
    kind = signature.signature_type
    if kind == COSIGN_PAYLOAD_TYPE:
        reference = _go_any(signature.claimed_reference or "")
        optional = _go_any(signature.annotations) if signature.annotations is not None else None
    else:
        reference = name
        optional = _go_any(signature.annotations or {})
        # A bundle judged by its key alone is typed by its DSSE payload type; as a signature
        # of the image its statement is of cosign's signing predicate (checked).
        if kind == INTOTO_PAYLOAD_TYPE:
            kind = COSIGN_SIGN_PREDICATE
    extra = _certificate_fields(signature.certificate) if signature.certificate else {}
    if signature.rekor_bundle is not None:
        bundle = GoStruct(signature.rekor_bundle.to_json())  # cosign's RekorBundle struct
        bundle["Payload"] = GoStruct(bundle["Payload"])
        extra["Bundle"] = bundle
    if extra:
        optional = {**(optional or {}), **extra}
    critical = GoStruct(
        identity=GoStruct({"docker-reference": reference}),
        image=GoStruct({"docker-manifest-digest": signature.digest}),
        type=kind,
    )
    return GoStruct(critical=critical, optional=optional)


def _certificate_fields(cert: x509.Certificate) -> dict[str, Any]:
    """What cosign adds to `optional` for a certificate: `Subject`, `Issuer`, the issuer OID
    key and the GitHub claims both by name and by OID, only those with a value."""
    from keyless.client.verify import VerificationError
    from keyless.client.verify.policy import certificate_issuer
    from keyless.oidc.oids import fulcio_oid

    fields: dict[str, Any] = {"Subject": _first_san(cert)}
    try:
        issuer = certificate_issuer(cert)
    except VerificationError:  # no issuer extension: cosign prints no Issuer either
        issuer = ""
    if issuer:
        fields["Issuer"] = issuer
    legacy_issuer = _raw_extension(cert, fulcio_oid(ISSUER_ARC))
    if legacy_issuer:
        fields[fulcio_oid(ISSUER_ARC).dotted_string] = legacy_issuer
    for arc, key in GITHUB_ARCS.items():
        value = _raw_extension(cert, fulcio_oid(arc))
        if value:
            fields[key] = fields[fulcio_oid(arc).dotted_string] = value
    return fields


def _first_san(cert: x509.Certificate) -> str:
    """The first SAN in the order sigstore's `GetSubjectAlternateNames` lists them: DNS names,
    emails, IP addresses, URIs, then Fulcio's otherName."""
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID

    from keyless.client.verify.certs import extension_value
    from keyless.client.verify.policy import certificate_identities

    san = extension_value(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    if san is None:
        return ""
    names = [*san.get_values_for_type(x509.DNSName)]
    names += san.get_values_for_type(x509.RFC822Name)
    names += [str(address) for address in san.get_values_for_type(x509.IPAddress)]
    names += [n for n in certificate_identities(cert) if n not in names]
    return names[0] if names else ""


def _raw_extension(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    """An extension's value bytes as Go's `string(ext.Value)` holds them: each byte that is
    not UTF-8 kept as a lone surrogate, which `go_json` writes as Go does (`\ufffd`); "" when
    absent."""
    from keyless.client.verify.certs import extension_value

    value = extension_value(cert, oid)
    return value.value.decode("utf-8", errors="surrogateescape") if value is not None else ""


def _go_any(value: Any) -> Any:
    """A JSON value as Go's decoder holds it in an `any`: every number a float64, and a lone
    surrogate escape (`"\ud800"`) the character U+FFFD."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return {key: _go_any(item) for key, item in value.items()}
    return [_go_any(item) for item in value]


# Go's encoding/json escapes these in every string (HTMLEscape and the JS line separators),
# and writes each byte that is not UTF-8 (here a lone surrogate) as \ufffd.
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028"}
_GO_ESCAPES["\u2029"] = "\\u2029"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_GO_ESCAPED = re.compile("[<>&\u2028\u2029\ud800-\udfff]")


def go_json(value: Any) -> str:
    """`value` as Go's `json.Marshal` writes it (GoStruct fields in order, other objects'
    keys sorted, floats in Go's shortest form)."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, dict):
        keys = list(value) if isinstance(value, GoStruct) else sorted(value)
        return "{" + ",".join(f"{_go_string(k)}:{go_json(value[k])}" for k in keys) + "}"
    return "[" + ",".join(go_json(item) for item in value) + "]"


def _go_string(text: str) -> str:
    encoded = json.dumps(text, ensure_ascii=False)
    return _GO_ESCAPED.sub(lambda match: _GO_ESCAPES.get(match.group(), "\\ufffd"), encoded)


def _go_float(number: float) -> str:
    """A float64 as encoding/json writes it: the shortest digits, in fixed notation for
    1e-6 <= |x| < 1e21 and exponent notation (e-7, not e-07) otherwise."""
    if not math.isfinite(number):
        return "null"  # not reachable from JSON Go reads: it refuses such numbers
    magnitude = abs(number)
    if magnitude == 0:
        return "-0" if math.copysign(1, number) < 0 else "0"
    shortest = repr(number)
    if magnitude < 1e-6 or magnitude >= 1e21:
        mantissa, _, exponent = shortest.partition("e")
        sign, digits = exponent[0], exponent[1:].lstrip("0")
        return f"{mantissa.removesuffix('.0')}e{sign}{digits.zfill(2) if sign == '+' else digits}"
    fixed = format(Decimal(shortest), "f")
    return fixed.rstrip("0").rstrip(".") if "." in fixed else fixed

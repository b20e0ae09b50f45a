"""In-toto attestations: predicate types, statements, and judging an attestation bundle.

An attestation is an in-toto v1 statement (subjects by SHA-256, a predicate type URI, a JSON
predicate) signed as a DSSE envelope and logged like any keyless signature; `EphemeralSigner`
does the signing and `Verifier` the cryptography. This module adds what is particular to
attestations: cosign's short type names, the checks on a predicate before anything is signed,
and, after a bundle verifies, that its statement is of the expected type.

Sizes: a predicate is at most 512 KiB, so that the signed statement stays inside the log's
1 MiB envelope bound once base64-encoded, and the bundle inside the registry's 1 MiB referrer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyless.client.attest.predicates import (
    COSIGN_VULN,
    CYCLONEDX,
    LINK,
    OPENVEX,
    SLSA_V02,
    SLSA_V1,
    SPDX,
    AttestationError,
)
from keyless.client.errors import ClientError
from keyless.client.files import read_bounded
from keyless.client.verify import VerificationError
from keyless.client.verify.dsse import INTOTO_PAYLOAD_TYPE
from keyless.core.errors import Reason

if TYPE_CHECKING:
    from collections.abc import Sequence

    from keyless.client.bundle import Bundle
    from keyless.client.keys import VerifierKey
    from keyless.client.verify import Policy, Verifier
    from keyless.client.verify.artifact import Artifact

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
MAX_PREDICATE_BYTES = 512 * 1024
MAX_SUBJECT_NAME_CHARS = 1024


def read_predicate(path: Path, predicate_type: str) -> dict[str, Any]:
    """Read a JSON predicate file and check it fits `predicate_type` where that can be told.

    Raises:
        AttestationError: unreadable, too large, not a JSON object, a whole statement, or
            content of another kind than the type says.
    """
    try:
        data = read_bounded(path, limit=MAX_PREDICATE_BYTES)
    except ClientError as exc:
        raise AttestationError(f"predicate: {exc.message}", reason=Reason.PREDICATE) from exc
    try:
        predicate = json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise AttestationError(
            f"predicate {path} is not valid JSON: {_json_problem(exc)}", reason=Reason.PREDICATE
        ) from exc
    if not isinstance(predicate, dict):
        raise AttestationError(
            f"predicate {path} is a JSON {type(predicate).__name__}, not an object",
            reason=Reason.PREDICATE,
        )
    try:
        json.dumps(predicate, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        raise AttestationError(
            f"predicate {path} has a string that is not valid Unicode (a lone surrogate)",
            reason=Reason.PREDICATE,
        ) from exc
    if "predicateType" in predicate and "subject" in predicate:
        raise AttestationError(
            f"{path} is a whole in-toto statement, not a predicate",
            reason=Reason.PREDICATE,
            hint="pass the value of its `predicate` field as --predicate",
        )
    problem = _contradiction(predicate_type, predicate)
    if problem is not None:
        raise AttestationError(
            f"predicate {path} is not a {predicate_type} predicate: {problem}",
            reason=Reason.PREDICATE,
            hint="check --type, or pass the type URI the predicate really is",
        )
    return predicate


def artifact_subject_name(path: Path | None, sha256_hex: str) -> str:
    """The subject name of an attested blob, as cosign's `attest-blob` names it: the file's
    name. A bare digest has no name to take, and consumers such as model-signing need one, so
    it is named by the digest itself (`sha256:<hex>`); `--subject-name` gives a better one."""
    return path.name if path is not None else f"sha256:{sha256_hex}"


def check_subject_name(name: str) -> str:
    """`name`, if it can name an in-toto subject.

    Raises:
        AttestationError: empty, longer than MAX_SUBJECT_NAME_CHARS, with a control
            character, or not encodable as UTF-8 (bytes from the command line that are not).
    """
    if not name:
        raise AttestationError("the subject name is empty", reason=Reason.SUBJECT_NAME)
    if len(name) > MAX_SUBJECT_NAME_CHARS:
        raise AttestationError(
            f"the subject name is longer than {MAX_SUBJECT_NAME_CHARS} characters",
            reason=Reason.SUBJECT_NAME,
        )
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name):
        raise AttestationError(
            "the subject name has a control character", reason=Reason.SUBJECT_NAME
        )
    try:
        name.encode()
    except UnicodeEncodeError as exc:
        raise AttestationError(
            "the subject name is not valid UTF-8", reason=Reason.SUBJECT_NAME
        ) from exc
    return name


def statement(subjects: list[tuple[str, str]], predicate_type: str, predicate: Any) -> bytes:
    """An in-toto v1 statement about `subjects` (name, SHA-256 hex), compact JSON."""
    body = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": name, "digest": {"sha256": sha256_hex}} for name, sha256_hex in subjects
        ],
        "predicateType": predicate_type,
        "predicate": predicate,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class VerifiedAttestation:
    """An attestation that passed: its statement, who made it and where it is logged."""

    statement: dict[str, Any]
    identity: str | None
    issuer: str | None
    log_index: int | None  # None: a log-less instance's bundle (RFC 3161 timestamp only)
    source: str | None = None
    key: str | None = None  # the key reference that verified it (key-signed attestations)

    @property
    def predicate_type(self) -> str:
        return str(self.statement.get("predicateType"))

    def to_json(self) -> dict[str, Any]:
        found = {"source": self.source} if self.source else {}
        keyed = {"key": self.key} if self.key else {}
        return {
            "identity": self.identity,
            "issuer": self.issuer,
            "logIndex": self.log_index,
            **found,
            **keyed,
            "statement": self.statement,
        }


def statement_of(bundle: Bundle) -> dict[str, Any]:
    """The in-toto statement a DSSE bundle carries (unverified: call after or inside a check).

    Raises:
        VerificationError("dsse"): the bundle holds no in-toto statement.
    """
    envelope = bundle.envelope
    if envelope is None:
        raise VerificationError(
            reason=Reason.DSSE, detail="the bundle holds a message signature, not an attestation"
        )
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
        raise VerificationError(
            reason=Reason.DSSE,
            detail=f"envelope payload type {envelope.payload_type!r} is not in-toto",
        )
    try:
        value = json.loads(envelope.payload, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise VerificationError(
            reason=Reason.DSSE, detail="envelope payload is not valid JSON"
        ) from exc
    if not isinstance(value, dict) or not isinstance(value.get("predicateType"), str):
        raise VerificationError(
            reason=Reason.DSSE, detail="envelope payload is not an in-toto statement"
        )
    return value


def verify_attestation(
    verifier: Verifier,
    bundle: Bundle,
    *,
    sha256: bytes | None = None,
    artifact: Artifact | None = None,
    policy: Policy | None = None,
    keys: Sequence[VerifierKey] = (),
    predicate_type: str | None,
    now: datetime,
) -> VerifiedAttestation:
    """Verify an attestation bundle over an artifact: signature, log, identity (or, with
    `keys`, any one of the keys), then type.

    The artifact is its SHA-256 or an `Artifact` (a file, or a sha384:/sha512: digest that an
    in-toto subject may name it by, as npm provenance does); the verifier's subject check
    matches it either way.

    The type is checked only after the bundle verifies, so a forged statement can never be
    what an error message reports.

    Raises:
        VerificationError: the first failed check (`dsse`, the verifier's checks, `type`).
    """
    statement_of(bundle)
    key = None
    if keys:
        from keyless.client.verify.keys import verify_with_any_key

        result, key = verify_with_any_key(
            verifier, bundle, keys=keys, sha256=sha256, artifact=artifact, now=now
        )
    elif policy is not None:
        result = verifier.verify(bundle, sha256=sha256, artifact=artifact, policy=policy, now=now)
    else:
        raise TypeError("verify_attestation needs a policy or keys")
    verified = statement_of(bundle)
    check_type(verified, predicate_type)
    return VerifiedAttestation(
        verified,
        result.identity,
        result.issuer,
        result.log_index,
        key=key.reference if key is not None else None,
    )


def check_type(verified: dict[str, Any], predicate_type: str | None) -> None:
    """The statement is of `predicate_type` (None: any type).

    Raises:
        VerificationError("type"): it is of another type.
    """
    actual = verified.get("predicateType")
    if predicate_type is not None and actual != predicate_type:
        raise VerificationError(
            reason=Reason.TYPE,
            detail=f"the attestation is of predicate type {actual!r}, not {predicate_type!r}",
        )


# Which failure explains best why no attestation passed: a policy or identity refusal first,
# then a broken attestation, and a mere type mismatch last.
_CHECK_RANK = {"policy": 0, "identity": 1, "issuer": 2, "type": 4}


def most_telling(failures: list[VerificationError]) -> VerificationError:
    """The failure to report when several attestations were checked and none passed."""
    return min(failures, key=lambda exc: _CHECK_RANK.get(exc.check, 3))


def _contradiction(predicate_type: str, predicate: dict[str, Any]) -> str | None:
    """Why the predicate's content cannot be of `predicate_type`, for the types that say so."""
    check = _CONTENT_CHECKS.get(predicate_type)
    return check(predicate) if check is not None else None


def _slsa_v1(p: dict[str, Any]) -> str | None:
    if not isinstance(p.get("buildDefinition"), dict) or not isinstance(p.get("runDetails"), dict):
        return "SLSA v1 provenance has buildDefinition and runDetails objects"
    return None


def _slsa_v02(p: dict[str, Any]) -> str | None:
    builder = p.get("builder")
    if not isinstance(builder, dict) or not isinstance(builder.get("id"), str):
        return "SLSA v0.2 provenance has a builder object with an id"
    if not isinstance(p.get("buildType"), str):
        return "SLSA v0.2 provenance has a buildType string"
    return None


def _spdx(p: dict[str, Any]) -> str | None:
    version = p.get("spdxVersion")
    if not isinstance(version, str) or not version.startswith("SPDX-"):
        return 'an SPDX JSON document has spdxVersion "SPDX-x.y"'
    return None


def _cyclonedx(p: dict[str, Any]) -> str | None:
    return (
        None if p.get("bomFormat") == "CycloneDX" else 'a CycloneDX BOM has bomFormat "CycloneDX"'
    )


def _openvex(p: dict[str, Any]) -> str | None:
    context = p.get("@context")
    if not isinstance(context, str) or not context.startswith(OPENVEX):
        return f"an OpenVEX document has an @context under {OPENVEX}"
    return None


def _link(p: dict[str, Any]) -> str | None:
    return None if isinstance(p.get("name"), str) else "an in-toto link has a name"


def _vuln(p: dict[str, Any]) -> str | None:
    if not isinstance(p.get("scanner"), dict):
        return "a cosign vulnerability report has a scanner object"
    return None


_CONTENT_CHECKS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    SLSA_V1: _slsa_v1,
    SLSA_V02: _slsa_v02,
    SPDX: _spdx,
    CYCLONEDX: _cyclonedx,
    OPENVEX: _openvex,
    LINK: _link,
    COSIGN_VULN: _vuln,
}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_problem(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__

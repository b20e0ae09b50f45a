"""The one error contract: every expected failure of every package is an `Error`.

An `Error` carries four things, so that the two places that turn errors into output (each
blueprint's handler and `cli/main.py`) need to know nothing else:
- `message`: one line a user can act on (where a protocol fixes the text, that exact text);
- `reason`: a stable slug from `Reason`, for logs, metrics, JSON output and error details;
- `detail`: the specific cause, when `message` is a protocol's fixed text (never a secret);
- `hint`: an optional remedy.

Two class attributes say what the failure means outside Python: `status`, the HTTP status a
server answers with, and `exit_code`, the code `keyless` exits with. A new subclass sets its
own; no handler keeps a table of kinds. Caller misuse is a bug, not an `Error`: raise
`TypeError` or `RuntimeError`, which become a 500 and a traceback.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import ClassVar


@enum.unique
class Reason(enum.StrEnum):
    """Every reason slug of every package, in one place so that one condition has one name.

    Users see these: in the CA's error `details`, in `keyless_ca_refusals_total{reason}`, in
    the `reason` and `check` fields of JSON output. Renaming one breaks their dashboards and
    scripts; add a member rather than reuse one for another condition.
    """

    # Any package.
    ERROR = "error"
    BAD_REQUEST = "bad-request"
    NOT_FOUND = "not-found"
    TOO_LARGE = "too-large"  # a request, response or document over its size bound
    UNREACHABLE = "unreachable"
    BIND_FAILED = "bind-failed"
    MISSING_LIBRARY = "missing-library"  # an optional extra (python-pkcs11, boto3) is absent

    # Identity tokens (oidc).
    TOKEN_INVALID = "token-invalid"
    TOKEN_MALFORMED = "token-malformed"
    TOKEN_TOO_LARGE = "token-too-large"
    TOKEN_EXPIRED = "token-expired"
    TOKEN_NOT_YET_VALID = "token-not-yet-valid"
    TOKEN_ISSUED_IN_FUTURE = "token-issued-in-future"
    ALG_NOT_ALLOWED = "alg-not-allowed"
    AUD_MISMATCH = "aud-mismatch"
    ISSUER_UNTRUSTED = "issuer-untrusted"
    ISSUER_FETCH_LIMITED = "issuer-fetch-limited"
    JWKS_UNAVAILABLE = "jwks-unavailable"
    KID_UNKNOWN = "kid-unknown"
    KEY_MISMATCH = "key-mismatch"
    SIGNATURE_INVALID = "signature-invalid"
    CLAIM_MISSING = "claim-missing"
    CLAIM_INVALID = "claim-invalid"
    CLAIMS_INVALID = "claims-invalid"
    EMAIL_UNVERIFIED = "email-unverified"
    ISSUER_CONFIG_INVALID = "issuer-config-invalid"
    TOKEN_UNAVAILABLE = "token-unavailable"
    DEV_ISSUER_REFUSED = "dev-issuer-refused"

    # The certificate authority (ca).
    CA_ERROR = "ca-error"
    REQUEST_MALFORMED = "request-malformed"
    KEY_MISSING = "key-missing"
    KEY_UNPARSEABLE = "key-unparseable"
    KEY_INSECURE = "key-insecure"
    POP_INVALID = "pop-invalid"
    CSR_UNPARSEABLE = "csr-unparseable"
    CSR_SIGNATURE_INVALID = "csr-signature-invalid"
    CSR_ALGORITHM_REFUSED = "csr-algorithm-refused"
    ALGORITHM_REFUSED = "algorithm-refused"
    IDENTITY_TOO_LARGE = "identity-too-large"
    SAN_UNENCODABLE = "san-unencodable"
    CA_BACKEND_FAILED = "ca-backend-failed"
    CT_LOG_FAILED = "ct-log-failed"
    CA_CONFIG_INVALID = "ca-config-invalid"

    # The transparency logs (tlog).
    LOG_ERROR = "log-error"
    ENTRY_INVALID = "entry-invalid"
    ENTRY_DUPLICATE = "entry-duplicate"
    TOO_MANY_ITEMS = "too-many-items"
    PROOF_INVALID = "proof-invalid"
    INCLUSION_PROOF_MISMATCH = "inclusion-proof-mismatch"
    CONSISTENCY_PROOF_MISMATCH = "consistency-proof-mismatch"
    CHECKPOINT_INVALID = "checkpoint-invalid"
    CHECKPOINT_UNSIGNED = "checkpoint-unsigned"
    CHECKPOINT_SIGNATURE_INVALID = "checkpoint-signature-invalid"
    STH_INVALID = "sth-invalid"
    LOG_KEY_MISMATCH = "log-key-mismatch"
    LOG_INCONSISTENT = "log-inconsistent"
    STORAGE_FAILED = "storage-failed"
    LOG_START_REFUSED = "log-start-refused"

    # The timestamp authority (tsa).
    TSA_ERROR = "tsa-error"
    TIMESTAMP_REJECTED = "timestamp-rejected"
    UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type"
    TSA_CHAIN_INVALID = "tsa-chain-invalid"
    TSA_CEREMONY_REFUSED = "tsa-ceremony-refused"

    # The servers and the gate (server).
    SERVER_CONFIG_INVALID = "server-config-invalid"
    STATE_DIR_UNUSABLE = "state-dir-unusable"
    TLS_FILES_INVALID = "tls-files-invalid"
    TUF_ERROR = "tuf-error"
    ROOT_VERSION = "root-version"
    VERSION = "version"
    ROOT_KEY_MISMATCH = "root-key-mismatch"
    CORRUPT = "corrupt"

    # The client library (client): signing, trust, logs.
    CLIENT_ERROR = "client-error"
    CA_REFUSED = "ca-refused"
    LOG_REFUSED = "log-refused"
    TSA_REFUSED = "tsa-refused"
    TSA_MISMATCH = "tsa-mismatch"
    UNVERIFIED_BUNDLE = "unverified-bundle"
    SERVER_UNREACHABLE = "server-unreachable"
    SERVER_TRUST_INVALID = "server-trust-invalid"
    SERVER_TRUST_CHANGED = "server-trust-changed"
    NO_TUF_REPOSITORY = "no-tuf-repository"

    # Long-lived keys (client.keys): files, key references, PKCS#11 tokens, KMS keys.
    KEY_FILE = "key-file"
    KEY_REFERENCE = "key-reference"
    KEY_TYPE = "key-type"
    KEY_URL = "key-url"
    UNSUPPORTED_KEY_REFERENCE = "unsupported-key-reference"
    UNSUPPORTED_SCRYPT_PARAMETERS = "unsupported-scrypt-parameters"
    WRONG_PASSWORD = "wrong-password"
    WRONG_PIN = "wrong-pin"
    KMS_REFUSED = "kms-refused"
    KMS_SIGNATURE = "kms-signature"

    # Verification checks (client.verify): each names the check that failed; the GitHub ones
    # are the certificate extensions `keyless verify --certificate-github-workflow-*` and
    # `verify-attestation --repo/--owner` compare.
    ARTIFACT = "artifact"
    BUNDLE = "bundle"
    TRUST_ROOT = "trust-root"
    KEY = "key"
    KEY_MATERIAL = "key-material"
    CERTIFICATE_CHAIN = "certificate-chain"
    CERTIFICATE_PROFILE = "certificate-profile"
    CERTIFICATE_VALIDITY = "certificate-validity"
    SCT = "sct"
    LOG_ENTRY = "log-entry"
    LOG_BODY = "log-body"
    INCLUSION_PROOF = "inclusion-proof"
    CHECKPOINT = "checkpoint"
    SIGNED_ENTRY_TIMESTAMP = "signed-entry-timestamp"
    TIMESTAMP = "timestamp"
    TIME = "time"
    SIGNATURE = "signature"
    MESSAGE_DIGEST = "message-digest"
    DSSE = "dsse"
    IDENTITY = "identity"
    ISSUER = "issuer"
    POLICY = "policy"
    TYPE = "type"
    PREDICATE = "predicate"
    PREDICATE_TYPE = "predicate-type"
    SUBJECT_NAME = "subject-name"
    GITHUB_WORKFLOW_TRIGGER = "github-workflow-trigger"
    GITHUB_WORKFLOW_SHA = "github-workflow-sha"
    GITHUB_WORKFLOW_NAME = "github-workflow-name"
    GITHUB_WORKFLOW_REPOSITORY = "github-workflow-repository"
    GITHUB_WORKFLOW_REF = "github-workflow-ref"
    SOURCE_REPOSITORY = "source-repository"
    SOURCE_REPOSITORY_OWNER = "source-repository-owner"

    # Images, attestations and policies (client.oci, client.attest, client.policy).
    REGISTRY_ERROR = "registry-error"
    REGISTRY = "registry"  # keyless verify IMAGE: the registry failed, nothing was decided
    INVALID_REFERENCE = "invalid-reference"
    INVALID_DIGEST = "invalid-digest"
    AUTH_REQUIRED = "auth-required"
    UNAUTHORIZED = "unauthorized"
    DIGEST_MISMATCH = "digest-mismatch"
    PROTOCOL = "protocol"
    CONNECTION = "connection"
    INSECURE_REGISTRY = "insecure-registry"
    CREDENTIALS = "credentials"
    IDENTITY_MISMATCH = "identity-mismatch"
    INVALID_SIGNATURES = "invalid-signatures"
    WRONG_DIGEST = "wrong-digest"
    NO_SIGNATURES = "no-signatures"
    ONLY_LEGACY_SIGNATURES = "only-legacy-signatures"
    NO_ATTESTATIONS = "no-attestations"
    POLICY_INVALID = "policy-invalid"
    RESOURCE_INVALID = "resource-invalid"
    EXTENSION = "extension"  # a certificate extension a Kyverno attestor requires

    # Witnesses (tlog's C2SP tlog-witness and cosignatures, the client's --witness).
    COSIGNATURE_INVALID = "cosignature-invalid"
    COSIGNATURE_MISSING = "cosignature-missing"
    WITNESS_REQUEST_REFUSED = "witness-request-refused"
    WITNESS_KEY = "witness-key"
    WITNESS_COSIGNATURE = "witness-cosignature"

    # The command line (cli).
    CLI_ERROR = "cli-error"
    ACTION_INPUT_INVALID = "action-input-invalid"


class Error(Exception):
    """Base of every expected failure: a user's, a peer's or the environment's, not a bug."""

    status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1
    reason: str = Reason.ERROR
    hint: str | None = None

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        detail: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        if reason is not None:
            self.reason = reason
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}: {self.detail}" if self.detail else self.message


class ProblemsError(Error):
    """Everything wrong with one input (a configuration, policies, manifests), found in one pass
    so the user fixes it in one edit; `problems` holds one line each.

    A configuration's problems are reported under one heading; with `one_line_per_problem`,
    each problem names its own file and place and is reported as a line of its own, the way
    linters report.
    """

    one_line_per_problem: ClassVar[bool] = False

    def __init__(
        self,
        heading: str,
        problems: Iterable[str],
        *,
        reason: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.problems = list(problems)
        text = f"{heading}:\n" + "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(text, reason=reason, hint=hint)


# The gRPC code grpc-gateway pairs with each HTTP status: Fulcio's and Rekor v2's error bodies
# carry both. A status without a code of its own is UNKNOWN (2).
_GRPC_CODES: dict[int, int] = {
    400: 3,  # INVALID_ARGUMENT
    401: 16,  # UNAUTHENTICATED
    403: 7,  # PERMISSION_DENIED
    404: 5,  # NOT_FOUND
    409: 6,  # ALREADY_EXISTS
    413: 8,  # RESOURCE_EXHAUSTED, as rekor-tiles answers an oversized body
    429: 8,  # RESOURCE_EXHAUSTED
    500: 13,  # INTERNAL
    501: 12,  # UNIMPLEMENTED
    503: 14,  # UNAVAILABLE
    504: 4,  # DEADLINE_EXCEEDED
}
_GRPC_UNKNOWN = 2


def grpc_code(status: int) -> int:
    """The gRPC code for an HTTP status, as grpc-gateway's error bodies give it."""
    return _GRPC_CODES.get(status, _GRPC_UNKNOWN)


__all__ = ["Error", "ProblemsError", "Reason", "grpc_code"]

"""AWS KMS keys (`awskms://[ENDPOINT]/KEY`): the key stays in KMS, which signs each signature.

The reference is sigstore's: `awskms:///1234abcd-...` (a key ID), `awskms:///alias/NAME`,
`awskms:///arn:aws:kms:...:key/...` or `...:alias/...`, with an optional `host:port` endpoint
that is reached over HTTPS (`AWS_TLS_INSECURE_SKIP_VERIFY=1` for a test certificate).
Credentials and region come from boto3's usual chain (`AWS_ACCESS_KEY_ID`, `AWS_REGION`, ...).
boto3 is an optional extra (`keyless[aws]`).

`create_awskms_key` makes the key for `keyless generate-key-pair --kms`, as sigstore's client
makes it: an ECC_NIST_P256 SIGN_VERIFY key under the reference's alias (an alias that already
names a key keeps it).

A message of at most 4096 bytes (a DSSE envelope's PAE) is sent whole (`MessageType=RAW`); a
digest is sent as `MessageType=DIGEST`, as sigstore's client sends it. Every signature KMS
returns is checked with the key's public key before it is used, so a KMS that signs something
else (moto 5.2 signs SHA-256 of a DIGEST message, getmoto/moto#10202) is refused before
anything is logged.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keyless.client.errors import NetworkError
from keyless.client.keys.algorithms import check_allowed_key, describe_key
from keyless.client.keys.errors import KeyFileError, KeyReferenceError
from keyless.core.errors import Reason

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

INSTALL_HINT = "pip install 'keyless[aws]'"
MAX_RAW_MESSAGE_BYTES = 4096
INSECURE_VARIABLE = "AWS_TLS_INSECURE_SKIP_VERIFY"
_FORMAT = (
    "kms specification should be in the format awskms://[ENDPOINT]/[ID/ALIAS/ARN] "
    "(endpoint optional)"
)
_KEY = re.compile(
    r"(?:[0-9a-fA-F-]{36}|alias/[A-Za-z0-9/_-]{1,250}"
    r"|arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(?:key/[0-9a-fA-F-]{36}|alias/[A-Za-z0-9/_-]{1,250}))"
)
_ENDPOINT = re.compile(r"[A-Za-z0-9.-]+(?::\d{1,5})?")
# What each key spec signs with: the digest sent, the KMS algorithm.
_ALGORITHMS = {
    "ECC_NIST_P256": "ECDSA_SHA_256",
    "RSA_2048": "RSASSA_PKCS1_V1_5_SHA_256",
    "RSA_3072": "RSASSA_PKCS1_V1_5_SHA_256",
    "RSA_4096": "RSASSA_PKCS1_V1_5_SHA_256",
}


@dataclass(frozen=True)
class AwsKmsReference:
    endpoint: str | None
    key_id: str


def parse_awskms_reference(reference: str) -> AwsKmsReference:
    """Raises KeyReferenceError with sigstore's format line for anything else."""
    rest = reference[len("awskms://") :]
    endpoint, slash, key_id = rest.partition("/")
    if not slash or not _KEY.fullmatch(key_id) or (endpoint and not _ENDPOINT.fullmatch(endpoint)):
        raise KeyReferenceError(_FORMAT)
    return AwsKmsReference(endpoint or None, key_id)


# The key `generate-key-pair --kms` makes (sigstore's DefaultAlgorithm for AWS).
CREATED_KEY_SPEC = "ECC_NIST_P256"
CREATED_KEY_DESCRIPTION = "Created by keyless generate-key-pair"
RESERVED_ALIAS_PREFIX = "alias/aws/"


def create_awskms_key(reference: str) -> tuple[PublicKeyTypes, bool]:
    """Make an ECDSA P-256 signing key in KMS under the reference's alias, as
    `cosign generate-key-pair --kms` does; an alias that already names a key keeps that key
    (checked like any signing key). Returns the public key and whether a key was created.

    Raises:
        KeyReferenceError: a malformed reference, one that names a key rather than an alias,
            boto3 missing, or no credentials.
        KeyFileError: KMS refused, or the alias names a key that cannot sign here.
        NetworkError: KMS cannot be reached.
    """
    parsed = parse_awskms_reference(reference)
    alias = "alias/" + parsed.key_id.partition("alias/")[2] if "alias/" in parsed.key_id else None
    if alias is None:
        raise KeyReferenceError(
            f"generate-key-pair --kms needs an alias to create the key under: "
            f"awskms://[ENDPOINT]/alias/NAME, not {reference}"
        )
    if alias.startswith(RESERVED_ALIAS_PREFIX):
        raise KeyReferenceError(f"{alias} is an AWS managed key's alias; choose another name")
    client = _client(parsed, reference)
    created = _call(client, reference, "DescribeKey", missing_ok=True, KeyId=parsed.key_id) is None
    if created:
        made = _call(
            client,
            reference,
            "CreateKey",
            KeySpec=CREATED_KEY_SPEC,
            KeyUsage="SIGN_VERIFY",
            Description=CREATED_KEY_DESCRIPTION,
        )
        key_id = made["KeyMetadata"]["KeyId"]
        _call(client, reference, "CreateAlias", AliasName=alias, TargetKeyId=key_id)
    return AwsKmsSigner(reference).public_key, created


def _client(parsed: AwsKmsReference, reference: str) -> Any:
    """A boto3 KMS client for the reference's endpoint and region.

    Raises:
        KeyReferenceError: boto3 missing, or no region.
    """
    try:
        import boto3
    except ImportError as exc:
        raise KeyReferenceError(
            f"AWS KMS keys need boto3: {INSTALL_HINT}", reason=Reason.MISSING_LIBRARY
        ) from exc
    import botocore.exceptions as aws

    insecure = os.environ.get(INSECURE_VARIABLE, "") in ("1", "true")
    # An ARN names its region; else AWS_REGION, then boto3's own chain (AWS_DEFAULT_REGION,
    # the config file).
    region = parsed.key_id.split(":")[3] if parsed.key_id.startswith("arn:") else None
    try:
        return boto3.client(
            "kms",
            endpoint_url=f"https://{parsed.endpoint}" if parsed.endpoint else None,
            verify=not insecure,
            region_name=region or os.environ.get("AWS_REGION") or None,
        )
    except aws.NoRegionError as exc:
        raise KeyReferenceError(f"no AWS region for {reference} (AWS_REGION)") from exc


def _call(
    client: Any, reference: str, operation: str, *, missing_ok: bool = False, **arguments: Any
) -> Any:
    """One KMS call; each way it fails is one line. With `missing_ok`, None for a key or alias
    that does not exist."""
    import botocore.exceptions as aws

    method = getattr(client, re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower())
    try:
        return method(**arguments)
    except aws.NoCredentialsError as exc:
        raise KeyReferenceError(
            f"no AWS credentials for {reference} (AWS_ACCESS_KEY_ID, a profile, ...)"
        ) from exc
    except aws.NoRegionError as exc:
        raise KeyReferenceError(f"no AWS region for {reference} (AWS_REGION)") from exc
    except (aws.EndpointConnectionError, aws.ConnectionError) as exc:
        raise NetworkError(
            f"cannot reach AWS KMS for {reference}: {type(exc).__name__}",
            reason=Reason.UNREACHABLE,
        ) from exc
    except aws.ClientError as exc:
        error = exc.response.get("Error", {})
        if missing_ok and error.get("Code") == "NotFoundException":
            return None
        raise KeyFileError(
            f"AWS KMS refused {operation} for {reference}: "
            f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": "),
            reason=Reason.KMS_REFUSED,
        ) from exc


class AwsKmsSigner:
    """A `KeySigner` over an asymmetric SIGN_VERIFY key in AWS KMS."""

    def __init__(self, reference: str) -> None:
        """Fetch the key's public key and check its type.

        Raises:
            KeyReferenceError: a malformed reference, boto3 missing, or no credentials.
            KeyFileError: no such key, access refused, or a key of the wrong type or usage.
            NetworkError: KMS cannot be reached.
        """
        parsed = parse_awskms_reference(reference)
        self.reference = reference
        self._key_id = parsed.key_id
        self._client = _client(parsed, reference)
        answer = self._call("GetPublicKey", KeyId=self._key_id)
        from cryptography.hazmat.primitives.serialization import load_der_public_key

        if answer.get("KeyUsage") != "SIGN_VERIFY":
            raise KeyFileError(
                f"{reference} is a KMS key for {answer.get('KeyUsage')}, not SIGN_VERIFY",
                reason=Reason.KEY_TYPE,
            )
        spec = answer.get("KeySpec") or answer.get("CustomerMasterKeySpec")
        algorithm = _ALGORITHMS.get(spec or "")
        if algorithm is None or algorithm not in answer.get("SigningAlgorithms", []):
            raise KeyFileError(
                f"{reference} is a {spec} KMS key, which cannot sign here; ECC_NIST_P256 and "
                "RSA_2048/3072/4096 keys can",
                reason=Reason.KEY_TYPE,
            )
        self.public_key = load_der_public_key(answer["PublicKey"])
        check_allowed_key(self.public_key, source=reference)
        self._algorithm = algorithm

    def sign(self, data: bytes) -> bytes:
        if len(data) > MAX_RAW_MESSAGE_BYTES:
            return self.sign_digest(hashlib.sha256(data).digest())
        signature = self._sign(data, "RAW")
        self._check(signature, data, prehashed=False)
        return signature

    def sign_digest(self, sha256: bytes) -> bytes:
        if len(sha256) != 32:
            raise ValueError("a SHA-256 digest is 32 bytes")
        signature = self._sign(sha256, "DIGEST")
        self._check(signature, sha256, prehashed=True)
        return signature

    def _sign(self, message: bytes, kind: str) -> bytes:
        answer = self._call(
            "Sign",
            KeyId=self._key_id,
            Message=message,
            MessageType=kind,
            SigningAlgorithm=self._algorithm,
        )
        return bytes(answer["Signature"])

    def _check(self, signature: bytes, data: bytes, *, prehashed: bool) -> None:
        """The signature KMS returned verifies with the key's public key, or nothing is used."""
        from keyless.client.verify import VerificationError
        from keyless.client.verify.verifier import check_signature

        try:
            check_signature(
                self.public_key, signature, data, prehashed=prehashed, algorithm="sha256"
            )
        except VerificationError as exc:
            raise KeyFileError(
                f"AWS KMS returned a signature that does not verify with {self.reference}'s "
                f"public key ({describe_key(self.public_key)}); nothing was signed",
                reason=Reason.KMS_SIGNATURE,
            ) from exc

    def _call(self, operation: str, **arguments: Any) -> Any:
        return _call(self._client, self.reference, operation, **arguments)

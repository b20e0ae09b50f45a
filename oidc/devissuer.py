"""The development OIDC issuer: real RS256 tokens for local use and tests, never production.

It serves two issuers from one key: `<origin>/oidc` mints email tokens, and
`<origin>/oidc/github` mints tokens shaped like GitHub Actions', trusted as a github-workflow
issuer. Interactive logins (authorization code + PKCE, device grant) approve the configured
development user without a password. Pending grants live in memory, so run one worker.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from keyless.core.encoding import b64url_encode
from keyless.core.errors import Error, Reason
from keyless.oidc.config import TrustedIssuers, issuers_from_document

DEFAULT_AUDIENCE = "sigstore"
DEFAULT_LIFETIME_SECONDS = 600
MAX_LIFETIME_SECONDS = 24 * 3600
GRANT_LIFETIME_SECONDS = 300
MAX_NONCE_CHARS = 512
MAX_PENDING_GRANTS = 1000


class DevIssuerError(Error):
    """A request the development issuer refuses (HTTP 400): `message` is the OAuth
    `error_description`, `error` the OAuth error code (RFC 6749 §5.2, RFC 8628 §3.5)."""

    status = 400
    reason = Reason.DEV_ISSUER_REFUSED
    error = "invalid_request"

    def __init__(self, message: str, *, error: str | None = None) -> None:
        super().__init__(message)
        if error is not None:
            self.error = error


class ForbiddenRequestError(DevIssuerError):
    """A request from a client the issuer does not answer (HTTP 403)."""

    status = 403
    error = "access_denied"


class UserCodeNotFoundError(DevIssuerError):
    """No pending device login shows this user code (HTTP 404)."""

    status = 404


class TooManyLoginsError(DevIssuerError):
    """Too many logins are pending to start another (HTTP 429)."""

    status = 429
    error = "slow_down"


@dataclass
class _Grant:
    claims: dict[str, Any]
    expires_at: float
    code_challenge: str | None = None
    redirect_uri: str | None = None
    client_id: str | None = None
    approved: bool = False
    user_code: str | None = None


@dataclass
class _Grants:
    """Pending authorization codes and device codes, bounded in number and lifetime."""

    pending: dict[str, _Grant] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, key: str, grant: _Grant) -> None:
        with self.lock:
            now = time.monotonic()
            for stale in [k for k, g in self.pending.items() if g.expires_at < now]:
                del self.pending[stale]
            if len(self.pending) >= MAX_PENDING_GRANTS:
                raise TooManyLoginsError("too many pending logins")
            self.pending[key] = grant

    def get(self, key: str) -> _Grant | None:
        with self.lock:
            grant = self.pending.get(key)
            if grant is None or grant.expires_at < time.monotonic():
                return None
            return grant

    def pop(self, key: str) -> _Grant | None:
        with self.lock:
            grant = self.pending.pop(key, None)
        if grant is None or grant.expires_at < time.monotonic():
            return None
        return grant


class DevIssuer:
    """Mints tokens for the development issuers at `<base_url>/oidc` and `/oidc/github`."""

    def __init__(self, *, base_url: str, key: rsa.RSAPrivateKey, user_email: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.issuer_url = f"{self.base_url}/oidc"
        self.github_issuer_url = f"{self.base_url}/oidc/github"
        self.user_email = user_email
        self._key = key
        public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        self.kid = _thumbprint(public_jwk)
        self._jwks = {"keys": [{**public_jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}
        self._grants = _Grants()

    def jwks(self) -> dict[str, Any]:
        return self._jwks

    def trusted_issuers(self) -> TrustedIssuers:
        """The two development issuers, as a keyless issuer configuration."""
        document = {
            "issuers": [
                {
                    "issuer": self.issuer_url,
                    "type": "email",
                    "allow-insecure-loopback": True,
                    "description": "keyless development issuer (email tokens)",
                },
                {
                    "issuer": self.github_issuer_url,
                    "type": "github-workflow",
                    "allow-insecure-loopback": True,
                    "description": "keyless development issuer (GitHub-Actions-shaped tokens)",
                },
            ]
        }
        return issuers_from_document(document, source="development issuer")

    def discovery(self, issuer_url: str) -> dict[str, Any]:
        """The OpenID Provider metadata of one of the two issuers."""
        return {
            "issuer": issuer_url,
            "jwks_uri": f"{self.issuer_url}/jwks",
            "authorization_endpoint": f"{self.issuer_url}/authorize",
            "token_endpoint": f"{self.issuer_url}/token",
            "device_authorization_endpoint": f"{self.issuer_url}/device/code",
            "response_types_supported": ["code"],
            "grant_types_supported": [
                "authorization_code",
                "urn:ietf:params:oauth:grant-type:device_code",
            ],
            "code_challenge_methods_supported": ["S256"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email"],
            "claims_supported": [
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "nbf",
                "email",
                "email_verified",
                "nonce",
            ],
        }

    def mint(
        self,
        claims: Mapping[str, Any],
        *,
        issuer_url: str,
        now: datetime,
        audience: str = DEFAULT_AUDIENCE,
        expires_in: int = DEFAULT_LIFETIME_SECONDS,
    ) -> str:
        """A signed token; `expires_in` may be negative, for an already expired token."""
        if not -MAX_LIFETIME_SECONDS <= expires_in <= MAX_LIFETIME_SECONDS:
            raise DevIssuerError(f"expires_in must be within ±{MAX_LIFETIME_SECONDS}")
        issued = int(now.timestamp())
        payload = {
            "jti": secrets.token_hex(8),
            **claims,
            "iss": issuer_url,
            "aud": audience,
            "iat": min(issued, issued + expires_in),
            "nbf": min(issued, issued + expires_in),
            "exp": issued + expires_in,
        }
        headers = {"kid": self.kid, "typ": "JWT"}
        return jwt.encode(payload, self._key, algorithm="RS256", headers=headers)

    def email_claims(self, email: str, *, subject: str | None = None) -> dict[str, Any]:
        return {"sub": subject or email, "email": email, "email_verified": True}

    def github_claims(
        self,
        *,
        repository: str,
        workflow: str,
        ref: str,
        sha: str | None = None,
        event_name: str = "push",
        environment: str | None = None,
        run_id: str = "1",
        run_attempt: str = "1",
        runner_environment: str = "github-hosted",
        workflow_name: str | None = None,
        job_workflow_ref: str | None = None,
        visibility: str = "public",
    ) -> dict[str, Any]:
        """Claims shaped as GitHub Actions sets them for a job of `repository`'s `workflow`.

        `workflow` is the workflow file (`release.yml` or `.github/workflows/release.yml`);
        the `workflow` claim is its display name (`workflow_name`, the file's `name:`), which
        GitHub replaces by the file's path when the file has none. `job_workflow_ref` names a
        reusable workflow the job runs (`owner/repo/.github/workflows/x.yml@ref`); by default
        the job runs in the workflow itself. IDs are decimal strings and SHAs 40 hex digits.
        """
        owner, slash, name = repository.partition("/")
        if not slash or not owner or not name or "/" in name:
            raise DevIssuerError("repository must look like owner/name")
        path = workflow if "/" in workflow else f".github/workflows/{workflow}"
        if not path.startswith(".github/workflows/") or "@" in path:
            raise DevIssuerError("workflow must be a file under .github/workflows/")
        if sha is not None and not _is_sha1_hex(sha):
            raise DevIssuerError("sha must be 40 lowercase hex digits")
        if runner_environment not in ("github-hosted", "self-hosted"):
            raise DevIssuerError("runner_environment must be github-hosted or self-hosted")
        if visibility not in ("public", "private", "internal"):
            raise DevIssuerError("visibility must be public, private or internal")
        sha = sha or hashlib.sha1(f"{repository}@{ref}".encode()).hexdigest()  # noqa: S324
        workflow_ref = f"{repository}/{path}@{ref}"
        job_ref = job_workflow_ref or workflow_ref
        job_sha = (
            sha if job_ref == workflow_ref else hashlib.sha1(job_ref.encode()).hexdigest()  # noqa: S324
        )
        if environment:
            subject = f"repo:{repository}:environment:{environment}"
        elif event_name in ("pull_request", "pull_request_target"):
            subject = f"repo:{repository}:pull_request"
        else:
            subject = f"repo:{repository}:ref:{ref}"
        claims: dict[str, Any] = {
            "sub": subject,
            "repository": repository,
            "repository_id": _stable_id(repository),
            "repository_owner": owner,
            "repository_owner_id": _stable_id(owner),
            "repository_visibility": visibility,
            "actor": owner,
            "actor_id": _stable_id(owner),
            "workflow": workflow_name or path,
            "workflow_ref": workflow_ref,
            "workflow_sha": sha,
            "job_workflow_ref": job_ref,
            "job_workflow_sha": job_sha,
            "ref": ref,
            "ref_type": "tag" if ref.startswith("refs/tags/") else "branch",
            "ref_protected": "false",
            "sha": sha,
            "event_name": event_name,
            "run_id": run_id,
            "run_number": run_id,
            "run_attempt": run_attempt,
            "runner_environment": runner_environment,
            "head_ref": "",
            "base_ref": "",
        }
        if environment:
            claims["environment"] = environment
        return claims

    def start_authorization(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        code_challenge: str,
        method: str,
        nonce: str | None = None,
    ) -> str:
        """Approve the development user at once; returns the authorization code.

        The request's `nonce`, if any, goes into the ID token unchanged (OIDC Core 3.1.2.1):
        clients such as openid-client refuse a token without the nonce they sent.
        """
        if method != "S256" or not code_challenge:
            raise DevIssuerError("PKCE with code_challenge_method=S256 is required")
        if nonce is not None and len(nonce) > MAX_NONCE_CHARS:
            raise DevIssuerError(f"nonce must be at most {MAX_NONCE_CHARS} characters")
        claims = self.email_claims(self.user_email)
        if nonce is not None:
            claims["nonce"] = nonce
        code = secrets.token_urlsafe(24)
        self._grants.add(
            code,
            _Grant(
                claims=claims,
                expires_at=time.monotonic() + GRANT_LIFETIME_SECONDS,
                code_challenge=code_challenge,
                redirect_uri=redirect_uri,
                client_id=client_id,
            ),
        )
        return code

    def redeem_code(
        self, *, code: str, code_verifier: str, redirect_uri: str, client_id: str, now: datetime
    ) -> str:
        """Exchange an authorization code (once) for an ID token, checking PKCE."""
        grant = self._grants.pop(code)
        if grant is None:
            raise DevIssuerError(
                "unknown, used or expired authorization code", error="invalid_grant"
            )
        if grant.redirect_uri != redirect_uri or grant.client_id != client_id:
            raise DevIssuerError("redirect_uri or client_id does not match", error="invalid_grant")
        digest = hashlib.sha256(code_verifier.encode()).digest()
        expected = b64url_encode(digest)
        if not secrets.compare_digest(expected, grant.code_challenge or ""):
            raise DevIssuerError("PKCE code_verifier does not match", error="invalid_grant")
        return self.mint(grant.claims, issuer_url=self.issuer_url, now=now, audience=client_id)

    def start_device(self, *, client_id: str) -> tuple[str, str]:
        """A (device_code, user_code) pair, approved when the user opens the verification URL."""
        device_code = secrets.token_urlsafe(24)
        user_code = "-".join(secrets.token_hex(2).upper() for _ in range(2))
        self._grants.add(
            device_code,
            _Grant(
                claims=self.email_claims(self.user_email),
                expires_at=time.monotonic() + GRANT_LIFETIME_SECONDS,
                client_id=client_id,
                user_code=user_code,
            ),
        )
        return device_code, user_code

    def approve_device(self, user_code: str) -> None:
        """The development user approves the device login showing `user_code`."""
        with self._grants.lock:
            for grant in self._grants.pending.values():
                if grant.user_code == user_code and grant.expires_at >= time.monotonic():
                    grant.approved = True
                    return
        raise UserCodeNotFoundError("unknown or expired user code")

    def redeem_device(self, *, device_code: str, client_id: str, now: datetime) -> str:
        """The ID token for an approved device login; `authorization_pending` until then."""
        grant = self._grants.get(device_code)
        if grant is None or grant.client_id != client_id:
            raise DevIssuerError("unknown or expired device code", error="expired_token")
        if not grant.approved:
            raise DevIssuerError("the user has not approved yet", error="authorization_pending")
        self._grants.pop(device_code)
        return self.mint(grant.claims, issuer_url=self.issuer_url, now=now, audience=client_id)


def _thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 JWK thumbprint of an RSA key, used as its kid."""
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return b64url_encode(digest)


def _is_sha1_hex(value: str) -> bool:
    return len(value) == 40 and all(c in "0123456789abcdef" for c in value)


def _stable_id(name: str) -> str:
    """A numeric ID that is the same every time for the same name, as GitHub's IDs are."""
    return str(int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big"))

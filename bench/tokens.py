"""Token validation throughput with a warm JWKS cache, against the crypto bound in the same run.

Run: python bench/tokens.py [--seconds N]

Prints tokens/s for:
- the crypto bound: one RS256 signature verify with `cryptography` (what validation must do);
- PyJWT's `jwt.decode` with a preloaded key (a peer doing the same checks);
- keyless `Authenticator.authenticate` (parse, issuer match, alg allow-list, key lookup,
  signature, claims, principal) for an email token and a GitHub-Actions-shaped token.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from keyless.oidc import Authenticator, JWKSCache, StaticKeys
from keyless.oidc.devissuer import DevIssuer


def _rate(name: str, fn: Callable[[], object], seconds: float) -> float:
    for _ in range(200):
        fn()
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            fn()
        count += 100
    rate = count / elapsed
    print(f"{name:<52} {rate:>10,.0f}/s  {1e6 / rate:>7.1f} µs")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuer = DevIssuer(base_url="http://127.0.0.1:8080", key=key, user_email="dev@keyless.test")
    keys = {issuer.issuer_url: issuer.jwks(), issuer.github_issuer_url: issuer.jwks()}
    auth = Authenticator(issuer.trusted_issuers(), keys=StaticKeys(keys, fallback=JWKSCache()))
    now = datetime.now(UTC)
    email = issuer.mint(
        issuer.email_claims("alice@example.com"), issuer_url=issuer.issuer_url, now=now
    )
    github_claims = issuer.github_claims(
        repository="acme/app", workflow="release.yml", ref="refs/heads/main"
    )
    github = issuer.mint(github_claims, issuer_url=issuer.github_issuer_url, now=now)
    public = key.public_key()
    header, payload, signature = email.split(".")
    signing_input = f"{header}.{payload}".encode()
    raw_signature = jwt.utils.base64url_decode(signature)
    print(f"token validation, warm JWKS cache ({args.seconds:.0f} s per row)")
    bound = _rate(
        "crypto bound: RS256 verify (cryptography)",
        lambda: public.verify(raw_signature, signing_input, padding.PKCS1v15(), hashes.SHA256()),
        args.seconds,
    )
    peer = _rate(
        "peer: jwt.decode with audience/issuer checks",
        lambda: jwt.decode(
            email, public, algorithms=["RS256"], audience="sigstore", issuer=issuer.issuer_url
        ),
        args.seconds,
    )
    ours = _rate(
        "keyless: authenticate(email token)",
        lambda: auth.authenticate(email, now=now),
        args.seconds,
    )
    _rate(
        "keyless: authenticate(GitHub Actions token)",
        lambda: auth.authenticate(github, now=now),
        args.seconds,
    )
    print(f"keyless / crypto bound: {ours / bound:.0%}   keyless / jwt.decode: {ours / peer:.2f}x")


if __name__ == "__main__":
    main()

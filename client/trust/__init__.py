"""Trust material: the trusted-root model a `Verifier` checks against, and where it comes from.

- `model`: the pure trust model (`TrustedRoot`, `LogKey`, `Authority`, `TimeRange`), read
  from a file or the shipped public-good roots; no network and no POSIX-only module, so
  `keyless verify` of a bundle file needs nothing else;
- `keys`: the signature check each trusted key makes, by its algorithm;
- `tuf`: a keyless server's trust through its TUF repository (python-tuf, HTTP, the kept copy
  and its lock), for `--server`; imported only by the commands that take it.
"""

from __future__ import annotations

from keyless.client.trust.model import (
    MAX_TRUSTED_ROOT_BYTES,
    PRODUCTION_ROOT_RESOURCE,
    STAGING_ROOT_RESOURCE,
    UNBOUNDED,
    Authority,
    LogKey,
    ServerTrust,
    TimeRange,
    TrustedRoot,
    load_trust_config,
    load_trusted_root,
    production_trusted_root,
    staging_trusted_root,
)

__all__ = [
    "MAX_TRUSTED_ROOT_BYTES",
    "PRODUCTION_ROOT_RESOURCE",
    "STAGING_ROOT_RESOURCE",
    "UNBOUNDED",
    "Authority",
    "LogKey",
    "ServerTrust",
    "TimeRange",
    "TrustedRoot",
    "load_trust_config",
    "load_trusted_root",
    "production_trusted_root",
    "staging_trusted_root",
]

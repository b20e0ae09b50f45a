"""The CA's configuration: the `ca:` section of the server YAML, validated before anything runs.

```yaml
ca:
  backend: generated            # generated (dev: created once, then reused) | file | pkcs11
  directory: ca                 # generated: where the dev CA lives (default <state-dir>/ca)
  chain: ca-chain.pem           # file, pkcs11: PEM chain, issuing CA first, root last
  key: ca-key.enc.pem           # file: encrypted PKCS#8 PEM
  key-password-env: KEYLESS_CA_KEY_PASSWORD   # file: one of these two
  key-password-file: /run/secrets/ca-key-password
  pkcs11-module: /usr/lib/softhsm/libsofthsm2.so  # pkcs11: the vendor's PKCS#11 library
  pkcs11-token-label: keyless   # pkcs11: the token, by label or by pkcs11-slot (slot ID)
  pkcs11-key-label: keyless-intermediate   # pkcs11: the issuing key pair's CKA_LABEL
  pkcs11-pin-env: KEYLESS_PKCS11_PIN       # pkcs11: the user PIN, one of these two
  pkcs11-pin-file: /run/secrets/pkcs11-pin
  cert-validity: 15m            # 1m to 24h; "900s", "15m", "1h" or seconds
  ct-log: in-process            # in-process | http(s)://host[:port][/prefix] of an RFC 6962 log
  ct-log-public-key: ct.pub     # optional, PEM: verify every SCT before returning a certificate
  detached: false               # true: detached SCTs (no precertificate); needs no CT log
  max-request-bytes: 262144     # request bodies above this are refused unread
```
Relative paths are resolved against the config file's directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.ca.errors import CAConfigError
from keyless.ca.pkcs11 import TokenKey
from keyless.ca.profile import DEFAULT_VALIDITY
from keyless.ca.signers import MAX_CHAIN_BYTES, CASigner, load_file_signer, load_generated_signer
from keyless.ca.wire import DEFAULT_MAX_REQUEST_BYTES

IN_PROCESS = "in-process"
BACKENDS = ("generated", "file", "pkcs11")
MIN_VALIDITY = timedelta(minutes=1)
MAX_VALIDITY = timedelta(hours=24)
MAX_PASSWORD_BYTES = 4096
_KNOWN_KEYS = frozenset(
    {
        "backend",
        "directory",
        "chain",
        "key",
        "key-password-env",
        "key-password-file",
        "cert-validity",
        "ct-log",
        "ct-log-public-key",
        "detached",
        "max-request-bytes",
        "pkcs11-module",
        "pkcs11-token-label",
        "pkcs11-slot",
        "pkcs11-key-label",
        "pkcs11-pin-env",
        "pkcs11-pin-file",
    }
)
_DURATION = re.compile(r"([1-9][0-9]{0,5})([smh])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}\Z")


@dataclass(frozen=True)
class CAConfig:
    """A validated CA configuration."""

    backend: str = "generated"
    directory: Path | None = None
    chain_path: Path | None = None
    key_path: Path | None = None
    password_env: str | None = None
    password_file: Path | None = None
    cert_validity: timedelta = DEFAULT_VALIDITY
    ct_log: str = IN_PROCESS
    ct_log_public_key: Path | None = None
    detached: bool = False
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    token_key: TokenKey | None = None  # pkcs11

    @classmethod
    def from_mapping(
        cls, section: Mapping[str, Any], *, base_dir: Path, source: str = "ca"
    ) -> CAConfig:
        """The configuration in a `ca:` section.

        Raises:
            CAConfigError: one line per problem found, all at once.
        """
        problems = [f"unknown key {key!r}" for key in section if key not in _KNOWN_KEYS]
        backend = section.get("backend", "generated")
        if backend not in BACKENDS:
            problems.append(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")

        def path(key: str) -> Path | None:
            value = section.get(key)
            if value is None:
                return None
            if not isinstance(value, str) or not value:
                problems.append(f"{key} must be a path")
                return None
            return base_dir / value

        directory, chain, key = path("directory"), path("chain"), path("key")
        password_file = path("key-password-file")
        ct_log_public_key = path("ct-log-public-key")
        password_env = section.get("key-password-env")
        if password_env is not None and (
            not isinstance(password_env, str) or not _ENV_NAME.match(password_env)
        ):
            problems.append("key-password-env must be an environment variable name")
            password_env = None
        if backend == "file":
            if chain is None:
                problems.append("backend file needs chain (the PEM CA chain)")
            if key is None:
                problems.append("backend file needs key (the encrypted PKCS#8 key)")
            if (password_env is None) == (password_file is None):
                problems.append(
                    "backend file needs exactly one of key-password-env, key-password-file"
                )
        elif backend == "generated" and (chain or key or password_env or password_file):
            problems.append("chain, key and key passwords belong to backend file")
        in_token = token_key(section, path, problems) if backend == "pkcs11" else None
        if backend == "pkcs11" and chain is None:
            problems.append("backend pkcs11 needs chain (the PEM CA chain)")
        if backend != "pkcs11" and any(k.startswith("pkcs11-") for k in section):
            problems.append("pkcs11-* keys belong to backend pkcs11")
        validity = _duration(section.get("cert-validity"), problems)
        ct_log = section.get("ct-log", IN_PROCESS)
        if not isinstance(ct_log, str) or (ct_log != IN_PROCESS and not _is_log_url(ct_log)):
            problems.append(f"ct-log must be {IN_PROCESS!r} or an http(s) URL, got {ct_log!r}")
        detached = section.get("detached", False)
        if not isinstance(detached, bool):
            problems.append(f"detached must be true or false, got {detached!r}")
        limit = section.get("max-request-bytes", DEFAULT_MAX_REQUEST_BYTES)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1024 <= limit <= 2**22:
            problems.append(f"max-request-bytes must be between 1024 and 4194304, got {limit!r}")
        if problems:
            raise CAConfigError(source, problems)
        return cls(
            backend=backend,
            directory=directory,
            chain_path=chain,
            key_path=key,
            password_env=password_env,
            password_file=password_file,
            cert_validity=validity,
            ct_log=ct_log,
            ct_log_public_key=ct_log_public_key,
            detached=detached,
            max_request_bytes=limit,
            token_key=in_token,
        )

    def load_signer(self, *, state_dir: Path, now: datetime) -> CASigner:
        """The CA signer this configuration names, read once (the caller keeps it).

        Raises:
            CAConfigError: missing password, unreadable files, or a chain breaking the rules.
        """
        if self.backend == "generated":
            return load_generated_signer(self.directory or state_dir / "ca", now=now)
        if self.backend == "pkcs11":
            from keyless.ca.pkcs11 import Pkcs11Signer

            if self.token_key is None or self.chain_path is None:
                raise RuntimeError("a pkcs11 backend configuration without its token or chain")
            return Pkcs11Signer(self.token_key, _read_chain(self.chain_path), now=now)
        if self.chain_path is None or self.key_path is None:
            raise RuntimeError("a file backend configuration without paths")
        return load_file_signer(
            chain_path=self.chain_path,
            key_path=self.key_path,
            password=self._password(),
            now=now,
        )

    def load_ct_log_key(self) -> ec.EllipticCurvePublicKey | None:
        """The CT log's public key that SCTs are checked against, if one is configured.

        Raises:
            CAConfigError: the file is unreadable or not an ECDSA public key in PEM.
        """
        if self.ct_log_public_key is None:
            return None
        path = self.ct_log_public_key
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise CAConfigError(str(path), [f"not a readable PEM public key: {exc}"]) from exc
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise CAConfigError(str(path), ["the CT log key must be ECDSA"])
        return key

    def _password(self) -> bytes:
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if not value:
                raise CAConfigError(
                    "the CA key password", [f"environment variable {self.password_env} is not set"]
                )
            return value.encode()
        if self.password_file is None:
            raise RuntimeError("a file backend configuration without a password source")
        try:
            with self.password_file.open("rb") as handle:
                data = handle.read(MAX_PASSWORD_BYTES + 1)
        except OSError as exc:
            raise CAConfigError(
                str(self.password_file), [f"cannot read the password file: {exc.strerror}"]
            ) from exc
        password = data.rstrip(b"\r\n")
        if not password or len(data) > MAX_PASSWORD_BYTES:
            raise CAConfigError(str(self.password_file), ["the password file is empty or too long"])
        return password


def token_key(
    section: Mapping[str, Any], path: Callable[[str], Path | None], problems: list[str]
) -> TokenKey | None:
    """The `pkcs11-*` keys of a config section (`ca:`, `tsa:`): module, token (label or slot),
    key label, PIN source; None, with `problems`, if any is missing or malformed."""
    module = path("pkcs11-module")
    if module is None:
        problems.append("a PKCS#11 key needs pkcs11-module (the PKCS#11 library's path)")
    label, slot = section.get("pkcs11-token-label"), section.get("pkcs11-slot")
    if (label is None) == (slot is None):
        problems.append("a PKCS#11 key needs exactly one of pkcs11-token-label, pkcs11-slot")
    if label is not None and (not isinstance(label, str) or not label):
        problems.append("pkcs11-token-label must be a non-empty string")
    if slot is not None and (isinstance(slot, bool) or not isinstance(slot, int) or slot < 0):
        problems.append("pkcs11-slot must be a slot ID (a non-negative integer)")
    key_label = section.get("pkcs11-key-label")
    if not isinstance(key_label, str) or not key_label:
        problems.append("a PKCS#11 key needs pkcs11-key-label (the key pair's CKA_LABEL)")
    pin_env, pin_file = section.get("pkcs11-pin-env"), path("pkcs11-pin-file")
    if (pin_env is None) == (pin_file is None):
        problems.append("a PKCS#11 key needs exactly one of pkcs11-pin-env, pkcs11-pin-file")
    if pin_env is not None and (not isinstance(pin_env, str) or not _ENV_NAME.match(pin_env)):
        problems.append("pkcs11-pin-env must be an environment variable name")
    if problems or module is None or not isinstance(key_label, str):
        return None
    return TokenKey(
        module=module,
        key_label=key_label,
        token_label=label,
        slot=slot,
        pin_env=pin_env,
        pin_file=pin_file,
    )


def _read_chain(path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes()[: MAX_CHAIN_BYTES + 1])
    except (OSError, ValueError) as exc:
        raise CAConfigError(str(path), [f"not a readable PEM certificate chain: {exc}"]) from exc


def _duration(value: Any, problems: list[str]) -> timedelta:
    if value is None:
        return DEFAULT_VALIDITY
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = int(match[1]) * _UNITS[match[2]]
    else:
        problems.append(f"cert-validity must look like 900s, 15m or 1h, got {value!r}")
        return DEFAULT_VALIDITY
    validity = timedelta(seconds=seconds)
    if not MIN_VALIDITY <= validity <= MAX_VALIDITY:
        problems.append(f"cert-validity must be between 1m and 24h, got {value!r}")
        return DEFAULT_VALIDITY
    return validity


def _is_log_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.query

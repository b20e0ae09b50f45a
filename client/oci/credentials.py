"""Registry credentials: explicit ones, or the docker CLI's config and credential helpers.

The lookup order follows the docker CLI: a per-registry `credHelpers` entry, then an `auths`
entry carrying credentials, then the global `credsStore`. A helper that is not installed is
treated as "no credentials" (anonymous access may still work); a helper that is installed but
fails is an error, since silently going anonymous would hide a broken login.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from keyless.client.oci.errors import CredentialsError
from keyless.client.oci.reference import DOCKER_HUB, DOCKER_HUB_API_HOST, DOCKER_HUB_LEGACY
from keyless.core.encoding import b64decode

MAX_CONFIG_BYTES = 1024 * 1024
MAX_HELPER_OUTPUT_BYTES = 64 * 1024
HELPER_TIMEOUT_SECONDS = 30.0

# The docker CLI stores Docker Hub credentials under its v1 index URL.
_DOCKER_HUB_KEYS = (
    "https://index.docker.io/v1/",
    DOCKER_HUB_LEGACY,
    DOCKER_HUB,
    DOCKER_HUB_API_HOST,
)
_HELPER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
_NOT_FOUND_MARKERS = ("credentials not found", "not found in native keychain")
# The docker helper protocol marks an identity (refresh) token with this username.
_TOKEN_USERNAME = "<token>"


@dataclass(frozen=True)
class Credential:
    """A username and password, or an identity token used as an OAuth2 refresh token."""

    username: str
    password: str = field(repr=False)
    identity_token: str | None = field(default=None, repr=False)


class CredentialSource(Protocol):
    """Where the registry client asks for credentials, per registry host."""

    def lookup(self, registry: str) -> Credential | None:
        """Credentials for `registry` (as written in the reference), or None for anonymous."""
        ...


@dataclass(frozen=True)
class StaticCredentials:
    """One username and password, used for whichever registry is asked about."""

    username: str
    password: str = field(repr=False)

    def lookup(self, registry: str) -> Credential | None:
        """The same credential for every registry."""
        return Credential(self.username, self.password)


class DockerConfigCredentials:
    """Credentials from `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`."""

    def __init__(self, path: Path | None = None, *, helper_timeout: float = HELPER_TIMEOUT_SECONDS):
        if path is None:
            base = os.environ.get("DOCKER_CONFIG")
            path = Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"
        self.path = path
        self.helper_timeout = helper_timeout

    def lookup(self, registry: str) -> Credential | None:
        """Credentials for `registry`, or None if the config has none for it.

        Raises:
            CredentialsError: the config is unreadable, or an installed helper failed.
        """
        config = self._load()
        if config is None:
            return None
        keys = _DOCKER_HUB_KEYS if registry == DOCKER_HUB else (registry,)
        helpers = config.get("credHelpers", {})
        if not isinstance(helpers, dict):
            raise CredentialsError(f"{self.path}: credHelpers is not an object")
        for key in keys:
            if key in helpers:
                return self._from_helper(helpers[key], keys[0])
        auths = config.get("auths", {})
        if not isinstance(auths, dict):
            raise CredentialsError(f"{self.path}: auths is not an object")
        by_host = {_host_key(name): entry for name, entry in auths.items()}
        for key in keys:
            entry = by_host.get(_host_key(key))
            if entry:
                credential = self._from_entry(entry, key)
                if credential is not None:
                    return credential
        store = config.get("credsStore")
        if store:
            return self._from_helper(store, keys[0])
        return None

    def _load(self) -> dict | None:
        """The parsed config, or None if there is no config file."""
        try:
            with self.path.open("rb") as handle:
                raw = handle.read(MAX_CONFIG_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CredentialsError(f"cannot read {self.path}: {exc.strerror}") from exc
        if len(raw) > MAX_CONFIG_BYTES:
            raise CredentialsError(f"{self.path} is larger than {MAX_CONFIG_BYTES} bytes")
        try:
            config = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CredentialsError(f"{self.path} is not valid JSON") from exc
        if not isinstance(config, dict):
            raise CredentialsError(f"{self.path} is not a JSON object")
        return config

    def _from_entry(self, entry: object, key: str) -> Credential | None:
        """Decode one `auths` entry: `auth` (base64 user:password), or username/password."""
        if not isinstance(entry, dict):
            raise CredentialsError(f"{self.path}: auths entry for {key} is not an object")
        token = entry.get("identitytoken")
        encoded = entry.get("auth")
        if isinstance(encoded, str) and encoded:
            try:
                username, sep, password = b64decode(encoded).decode().partition(":")
            except ValueError as exc:  # UnicodeDecodeError is one
                raise CredentialsError(f"{self.path}: auth for {key} is not base64") from exc
            if not sep:
                raise CredentialsError(f"{self.path}: auth for {key} is not user:password")
        else:
            username, password = entry.get("username"), entry.get("password")
        if isinstance(token, str) and token:
            return Credential(str(username or ""), "", identity_token=token)
        if isinstance(username, str) and isinstance(password, str) and username:
            return Credential(username, password)
        return None

    def _from_helper(self, name: object, server: str) -> Credential | None:
        """Ask `docker-credential-<name> get` for the credentials of `server`."""
        if not isinstance(name, str) or not _HELPER_NAME_RE.fullmatch(name):
            raise CredentialsError(f"{self.path}: invalid credential helper name {name!r}")
        program = shutil.which(f"docker-credential-{name}")
        if program is None:
            return None
        try:
            done = subprocess.run(  # noqa: S603 - fixed program path, no shell
                [program, "get"],
                input=server.encode(),
                capture_output=True,
                timeout=self.helper_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise CredentialsError(f"credential helper {name} timed out") from exc
        except OSError as exc:
            raise CredentialsError(f"cannot run credential helper {name}: {exc.strerror}") from exc
        output = done.stdout[: MAX_HELPER_OUTPUT_BYTES + 1]
        if done.returncode != 0:
            text = (output + done.stderr).decode(errors="replace").lower()
            if any(marker in text for marker in _NOT_FOUND_MARKERS):
                return None
            raise CredentialsError(
                f"credential helper {name} failed for {server} (exit {done.returncode})"
            )
        if len(output) > MAX_HELPER_OUTPUT_BYTES:
            raise CredentialsError(f"credential helper {name} printed too much")
        try:
            answer = json.loads(output)
            username, secret = answer["Username"], answer["Secret"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CredentialsError(f"credential helper {name} printed malformed JSON") from exc
        if not isinstance(username, str) or not isinstance(secret, str):
            raise CredentialsError(f"credential helper {name} printed malformed JSON")
        if username == _TOKEN_USERNAME:
            return Credential("", "", identity_token=secret)
        return Credential(username, secret)


def _host_key(name: str) -> str:
    """An `auths` key reduced to its host: `https://host/v1/` and `host` both give `host`."""
    name = name.strip()
    for prefix in ("https://", "http://"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name.split("/", 1)[0]

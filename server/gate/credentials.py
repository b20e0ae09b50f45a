"""Registry credentials for the gate: several docker config files, tried in order.

A cluster keeps registry credentials in image pull secrets (`.dockerconfigjson`, the format of
`~/.docker/config.json`); the gate is given one file per secret (`--registry-auth`, repeatable)
and uses the first file that has an entry for the registry asked about.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from keyless.client.oci import DockerConfigCredentials
from keyless.client.oci.credentials import Credential


class FirstOf:
    """A `CredentialSource` over several docker config files: the first that knows the
    registry answers."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.sources = [DockerConfigCredentials(path) for path in paths]

    def lookup(self, registry: str) -> Credential | None:
        for source in self.sources:
            found = source.lookup(registry)
            if found is not None:
                return found
        return None

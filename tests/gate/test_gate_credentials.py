"""Several image pull secrets given to the gate: the first file naming a registry answers."""

from __future__ import annotations

import base64
import json

import pytest

from keyless.client.oci.errors import CredentialsError
from keyless.server.gate.credentials import FirstOf


def _secret(path, entries: dict[str, tuple[str, str]]):
    auths = {
        host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
        for host, (user, password) in entries.items()
    }
    path.write_text(json.dumps({"auths": auths}))
    return path


def test_the_first_file_that_names_the_registry_answers(tmp_path):
    first = _secret(tmp_path / "a.json", {"ghcr.io": ("ci", "one")})
    second = _secret(
        tmp_path / "b.json",
        {"ghcr.io": ("other", "two"), "registry.acme.io": ("deployer", "three")},
    )
    source = FirstOf([first, second])
    found = source.lookup("ghcr.io")
    assert (found.username, found.password) == ("ci", "one")
    found = source.lookup("registry.acme.io")
    assert (found.username, found.password) == ("deployer", "three")
    assert source.lookup("quay.io") is None


def test_a_broken_file_is_an_error_not_anonymous_access(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    good = _secret(tmp_path / "good.json", {"ghcr.io": ("ci", "one")})
    with pytest.raises(CredentialsError):
        FirstOf([broken, good]).lookup("ghcr.io")

"""Contracts with the rest of keyless: no Flask on import, and errors the CLI can print."""

from __future__ import annotations

import subprocess
import sys

import pytest

from keyless.cli.main import run_reporting
from keyless.client.oci import errors


def test_importing_the_client_loads_no_flask():
    code = "import sys, keyless.client.oci, keyless.client.oci.signatures; print('flask' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    "error_class",
    [
        errors.AuthRequiredError,
        errors.UnauthorizedError,
        errors.NotFoundError,
        errors.DigestMismatchError,
        errors.RegistryConnectionError,
        errors.InvalidReferenceError,
        errors.CredentialsError,
    ],
)
def test_every_registry_error_is_a_one_line_cli_error(error_class, capsys):
    error = error_class("something specific", hint="do this")

    def run() -> int:
        raise error

    assert run_reporting(run) == 1
    assert capsys.readouterr().err == "error: something specific\nhint: do this\n"
    assert error.reason != "registry-error"

"""Docker config credentials: `auths`, credential helpers run as real programs, and refusals."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from keyless.client.oci.credentials import Credential, DockerConfigCredentials, StaticCredentials
from keyless.client.oci.errors import CredentialsError


def _config(tmp_path, content) -> DockerConfigCredentials:
    path = tmp_path / "config.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return DockerConfigCredentials(path)


def _helper(tmp_path, monkeypatch, name: str, script: str) -> None:
    """Install `docker-credential-<name>` as a real executable on PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    program = bindir / f"docker-credential-{name}"
    program.write_text("#!/bin/sh\n" + script)
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")


def test_auths_entry_with_base64_auth(tmp_path):
    raw = base64.b64encode(b"alice:pa:ss").decode()
    creds = _config(tmp_path, {"auths": {"ghcr.io": {"auth": raw}}})
    assert creds.lookup("ghcr.io") == Credential("alice", "pa:ss")
    assert creds.lookup("quay.io") is None


def test_auths_entry_with_username_and_password_and_url_key(tmp_path):
    creds = _config(
        tmp_path,
        {"auths": {"https://registry.example:5000/v2/": {"username": "u", "password": "p"}}},
    )
    assert creds.lookup("registry.example:5000") == Credential("u", "p")


def test_docker_hub_is_found_under_its_v1_index_url(tmp_path):
    raw = base64.b64encode(b"hubuser:hubpass").decode()
    creds = _config(tmp_path, {"auths": {"https://index.docker.io/v1/": {"auth": raw}}})
    assert creds.lookup("docker.io") == Credential("hubuser", "hubpass")


def test_identity_token_entry(tmp_path):
    creds = _config(tmp_path, {"auths": {"ghcr.io": {"identitytoken": "refresh-me"}}})
    found = creds.lookup("ghcr.io")
    assert found is not None and found.identity_token == "refresh-me"


def test_missing_config_means_anonymous(tmp_path):
    assert DockerConfigCredentials(tmp_path / "absent.json").lookup("ghcr.io") is None


def test_docker_config_env_names_the_directory(tmp_path, monkeypatch):
    raw = base64.b64encode(b"envuser:envpass").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"r.example": {"auth": raw}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert DockerConfigCredentials().lookup("r.example") == Credential("envuser", "envpass")


def test_cred_helper_is_run_with_the_server_on_stdin(tmp_path, monkeypatch):
    _helper(
        tmp_path,
        monkeypatch,
        "keylesstest",
        'read server\nprintf \'{"ServerURL":"%s","Username":"helper-user","Secret":"s3"}\' '
        '"$server"\n',
    )
    creds = _config(tmp_path, {"credHelpers": {"ghcr.io": "keylesstest"}})
    assert creds.lookup("ghcr.io") == Credential("helper-user", "s3")


def test_cred_helper_token_username_means_identity_token(tmp_path, monkeypatch):
    _helper(tmp_path, monkeypatch, "tok", 'echo \'{"Username":"<token>","Secret":"rt"}\'\n')
    creds = _config(tmp_path, {"credsStore": "tok"})
    found = creds.lookup("ghcr.io")
    assert found is not None and (found.identity_token, found.password) == ("rt", "")


def test_creds_store_used_when_auths_has_no_credentials(tmp_path, monkeypatch):
    _helper(tmp_path, monkeypatch, "store", 'echo \'{"Username":"from-store","Secret":"x"}\'\n')
    creds = _config(tmp_path, {"auths": {"ghcr.io": {}}, "credsStore": "store"})
    assert creds.lookup("ghcr.io") == Credential("from-store", "x")


def test_helper_saying_not_found_means_anonymous(tmp_path, monkeypatch):
    _helper(
        tmp_path, monkeypatch, "empty", "echo 'credentials not found in native keychain'\nexit 1\n"
    )
    assert _config(tmp_path, {"credsStore": "empty"}).lookup("ghcr.io") is None


def test_helper_not_installed_means_anonymous(tmp_path):
    creds = _config(tmp_path, {"credHelpers": {"ghcr.io": "not-installed-anywhere"}})
    assert creds.lookup("ghcr.io") is None


def test_static_credentials_answer_for_any_registry():
    assert StaticCredentials("u", "p").lookup("anything") == Credential("u", "p")
    assert "p" not in repr(StaticCredentials("u", "p"))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param("{not json", "config.json is not valid JSON", id="not-json"),
        pytest.param("[]", "config.json is not a JSON object", id="not-object"),
        pytest.param({"auths": []}, "auths is not an object", id="auths-list"),
        pytest.param({"credHelpers": "x"}, "credHelpers is not an object", id="helpers-string"),
        pytest.param(
            {"auths": {"ghcr.io": {"auth": "%%%"}}}, "auth for ghcr.io is not base64", id="bad-b64"
        ),
        # "u:" spelt with its unused bits set (canonical: "dTo="), read strictly (core.encoding).
        pytest.param(
            {"auths": {"ghcr.io": {"auth": "dTp="}}},
            "auth for ghcr.io is not base64",
            id="non-canonical-b64",
        ),
        pytest.param(
            {"auths": {"ghcr.io": {"auth": base64.b64encode(b"nocolon").decode()}}},
            "auth for ghcr.io is not user:password",
            id="no-colon",
        ),
        pytest.param(
            {"credsStore": "../../bin/sh"},
            "invalid credential helper name '../../bin/sh'",
            id="helper-path-injection",
        ),
        pytest.param(" " * (1024 * 1024 + 1), "larger than 1048576 bytes", id="huge-config"),
    ],
)
def test_bad_config_is_an_error(tmp_path, config, message):
    with pytest.raises(CredentialsError) as caught:
        _config(tmp_path, config).lookup("ghcr.io")
    assert message in caught.value.message


def test_failing_helper_is_an_error_not_anonymous(tmp_path, monkeypatch):
    _helper(tmp_path, monkeypatch, "broken", "echo 'keychain locked' >&2\nexit 3\n")
    with pytest.raises(CredentialsError) as caught:
        _config(tmp_path, {"credsStore": "broken"}).lookup("ghcr.io")
    assert caught.value.message == "credential helper broken failed for ghcr.io (exit 3)"


def test_helper_printing_garbage_is_an_error(tmp_path, monkeypatch):
    _helper(tmp_path, monkeypatch, "garbage", "echo 'not json'\n")
    with pytest.raises(CredentialsError) as caught:
        _config(tmp_path, {"credsStore": "garbage"}).lookup("ghcr.io")
    assert caught.value.message == "credential helper garbage printed malformed JSON"

"""Image reference parsing: docker/distribution's normalisation, and refusals by defect."""

from __future__ import annotations

import pytest

from keyless.client.oci.errors import InvalidDigestError, InvalidReferenceError
from keyless.client.oci.reference import Reference, parse_reference
from keyless.core.errors import Error

HEX = "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa"


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        pytest.param("ubuntu", "docker.io", "library/ubuntu", "latest", None, id="bare-name"),
        pytest.param("ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", None, id="bare-tag"),
        pytest.param("acme/app", "docker.io", "acme/app", "latest", None, id="hub-namespace"),
        pytest.param("docker.io/ubuntu", "docker.io", "library/ubuntu", "latest", None, id="hub"),
        pytest.param(
            "index.docker.io/acme/app:1", "docker.io", "acme/app", "1", None, id="legacy-hub"
        ),
        pytest.param("ghcr.io/acme/app:1.4", "ghcr.io", "acme/app", "1.4", None, id="ghcr-tag"),
        pytest.param("localhost/app", "localhost", "app", "latest", None, id="localhost-no-port"),
        pytest.param(
            "localhost:5000/a/b/c:v1", "localhost:5000", "a/b/c", "v1", None, id="nested-path"
        ),
        pytest.param(
            "127.0.0.1:5000/app@sha256:" + HEX,
            "127.0.0.1:5000",
            "app",
            None,
            "sha256:" + HEX,
            id="ip-port-digest",
        ),
        pytest.param(
            "ghcr.io/acme/app:1.4@sha256:" + HEX,
            "ghcr.io",
            "acme/app",
            "1.4",
            "sha256:" + HEX,
            id="tag-and-digest",
        ),
        pytest.param("[::1]:5000/app", "[::1]:5000", "app", "latest", None, id="ipv6"),
        # The registry as a runtime reaches it (issue 22): hosts in lowercase, no default port,
        # Docker Hub under one name.
        pytest.param("Registry/app", "registry", "app", "latest", None, id="uppercase-domain"),
        pytest.param("GHCR.IO/acme/app", "ghcr.io", "acme/app", "latest", None, id="upper-host"),
        pytest.param("Ghcr.Io/acme/app", "ghcr.io", "acme/app", "latest", None, id="mixed-host"),
        pytest.param("ghcr.io:443/acme/app", "ghcr.io", "acme/app", "latest", None, id="port-443"),
        pytest.param("ghcr.io:8443/a", "ghcr.io:8443", "a", "latest", None, id="other-port"),
        pytest.param(
            "registry-1.docker.io/nginx", "docker.io", "library/nginx", "latest", None, id="hub-api"
        ),
        pytest.param(
            "Index.Docker.IO:443/nginx", "docker.io", "library/nginx", "latest", None, id="hub-all"
        ),
        pytest.param(
            "a/b__c/d-e--f/g.h", "docker.io", "a/b__c/d-e--f/g.h", "latest", None, id="separators"
        ),
    ],
)
def test_parse_normalises_like_docker(text, registry, repository, tag, digest):
    ref = parse_reference(text)
    assert ref == Reference(registry, repository, tag, digest)


def test_digest_wins_over_tag_when_fetching():
    ref = parse_reference(f"ghcr.io/acme/app:1.4@sha256:{HEX}")
    assert ref.identifier == f"sha256:{HEX}"
    assert str(ref) == f"ghcr.io/acme/app:1.4@sha256:{HEX}"


def test_docker_hub_api_host_differs_from_its_name():
    assert parse_reference("ubuntu").api_host == "registry-1.docker.io"
    assert parse_reference("ghcr.io/a/b").api_host == "ghcr.io"


def test_with_digest_drops_nothing_and_checks_the_digest():
    ref = parse_reference("ghcr.io/acme/app:1.4").with_digest(f"sha256:{HEX}")
    assert (ref.tag, ref.digest) == ("1.4", f"sha256:{HEX}")
    with pytest.raises(InvalidDigestError):
        ref.with_digest("sha256:abc")


def test_with_tag_refuses_a_bad_tag():
    ref = parse_reference("ghcr.io/acme/app")
    assert ref.with_tag(f"sha256-{HEX}.sig").identifier == f"sha256-{HEX}.sig"
    with pytest.raises(InvalidReferenceError, match="invalid tag"):
        ref.with_tag("-leading-dash")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "invalid reference: empty", id="empty"),
        pytest.param(
            "ghcr.io/Acme/app",
            "invalid reference format: repository name (Acme/app) must be lowercase",
            id="uppercase-repository",
        ),
        pytest.param(
            HEX,
            f"invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings",
            id="bare-identifier",
        ),
        pytest.param("ghcr.io/acme/app:", "invalid reference format", id="empty-tag"),
        pytest.param("ghcr.io/acme//app", "invalid reference format", id="empty-component"),
        pytest.param("ghcr.io/acme/app:-x", "invalid reference format", id="tag-leading-dash"),
        pytest.param("ghcr.io/acme/app:" + "a" * 129, "invalid reference format", id="long-tag"),
        pytest.param("ghcr.io/acme/-app", "invalid reference format", id="component-dash"),
        pytest.param("ghcr.io/acme/app\n", "invalid reference format", id="trailing-newline"),
        pytest.param("ghcr.io/acme/app@sha256", "invalid reference format", id="digest-no-hex"),
        pytest.param("a" * 513, "invalid reference: longer than 512 characters", id="too-long"),
        pytest.param(
            "ghcr.io/" + "a" * 250,
            "invalid reference: repository name must not be more than 255 characters",
            id="name-too-long",
        ),
    ],
)
def test_parse_refuses(text, message):
    with pytest.raises(InvalidReferenceError) as caught:
        parse_reference(text)
    assert caught.value.message.startswith(message)
    assert isinstance(caught.value, Error)  # reported by the CLI as `error: <message>`


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "ghcr.io/a@md5:" + "0" * 32, "unsupported digest algorithm 'md5'", id="md5-digest"
        ),
        pytest.param(
            "ghcr.io/a@sha256:" + HEX.upper(),
            f"invalid digest 'sha256:{HEX.upper()}': expected 64 lowercase hex characters",
            id="uppercase-digest",
        ),
        pytest.param(
            "ghcr.io/a@sha256:" + HEX[:40],
            f"invalid digest 'sha256:{HEX[:40]}': expected 64 lowercase hex characters",
            id="short-digest",
        ),
    ],
)
def test_parse_refuses_digests(text, message):
    with pytest.raises(InvalidDigestError) as caught:
        parse_reference(text)
    assert caught.value.message == message

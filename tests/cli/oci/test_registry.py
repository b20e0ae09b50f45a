"""The registry client against a real registry: resolve, fetch, push, tags, bounds, TLS, auth."""

from __future__ import annotations

import json
import secrets

import pytest

from keyless.client.oci import (
    DockerConfigCredentials,
    RegistryClient,
    RegistryLimits,
    StaticCredentials,
    parse_reference,
)
from keyless.client.oci.descriptors import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, digest_of
from keyless.client.oci.errors import (
    AuthRequiredError,
    NotFoundError,
    RegistryConnectionError,
    TooLargeError,
    UnauthorizedError,
)
from tests.cli.oci.conftest import alice
from tests.registry import Pusher


def _repo() -> str:
    return f"acme/app-{secrets.token_hex(4)}"


def test_resolve_tag_to_the_digest_of_the_manifest_bytes(registry, pusher, client):
    image = pusher.push_image(_repo(), "1.4", seed="resolve")
    manifest = client.resolve(parse_reference(image.reference))
    assert manifest.digest == image.digest == digest_of(image.manifest)
    assert manifest.data == image.manifest
    assert manifest.media_type == OCI_MANIFEST
    assert manifest.descriptor.size == image.size


def test_digest_reference_is_fetched_and_verified(registry, pusher, client):
    repo = _repo()
    image = pusher.push_image(repo, "v1", seed="by-digest")
    manifest = client.get_manifest(parse_reference(registry.ref(f"{repo}@{image.digest}")))
    assert manifest.digest == image.digest


def test_docker_media_types_are_accepted(registry, pusher, client):
    image = pusher.push_image(_repo(), "docker", seed="docker", docker_media_types=True)
    manifest = client.resolve(parse_reference(image.reference))
    assert (manifest.media_type, manifest.digest) == (DOCKER_MANIFEST, image.digest)


def test_index_resolves_to_the_index_digest(registry, pusher, client):
    index, children = pusher.push_index(
        _repo(), "multi", seed="idx", platforms=[("linux", "amd64"), ("linux", "arm64")]
    )
    manifest = client.resolve(parse_reference(index.reference))
    assert manifest.is_index and manifest.media_type == OCI_INDEX
    assert manifest.digest == index.digest
    assert [m["digest"] for m in manifest.json()["manifests"]] == [c.digest for c in children]


def test_unknown_tag_is_not_found(registry, pusher, client):
    repo = _repo()
    pusher.push_image(repo, "exists", seed="nf")
    with pytest.raises(NotFoundError) as caught:
        client.resolve(parse_reference(registry.ref(f"{repo}:missing")))
    assert caught.value.message == (
        f"manifest {registry.host}/{repo}:missing not found (MANIFEST_UNKNOWN)"
    )


def test_push_blob_checks_existence_and_get_blob_verifies(registry, client):
    ref = parse_reference(registry.ref(_repo()))
    data = secrets.token_bytes(100)
    assert not client.blob_exists(ref, digest_of(data))
    descriptor = client.push_blob(ref, data, "application/octet-stream")
    assert descriptor.digest == digest_of(data) and descriptor.size == 100
    assert client.blob_exists(ref, descriptor.digest)
    assert client.push_blob(ref, data, "application/octet-stream") == descriptor
    assert client.get_blob(ref, descriptor.digest) == data


def test_put_manifest_by_tag_and_list_tags(registry, pusher, client):
    repo = _repo()
    image = pusher.push_image(repo, "one", seed="tags")
    ref = parse_reference(registry.ref(f"{repo}:one"))
    pushed = client.put_manifest(ref, image.manifest, OCI_MANIFEST, tag="two")
    assert pushed.digest == image.digest
    assert pushed.subject_header is None
    assert sorted(client.list_tags(ref)) == ["one", "two"]
    assert client.manifest_exists(ref.with_tag("two"))
    assert not client.manifest_exists(ref.with_tag("three"))


def test_distribution_2_8_has_no_referrers_api(registry, pusher, client):
    image = pusher.push_image(_repo(), "r", seed="refs")
    assert client.referrers(parse_reference(image.reference), image.digest) is None


def test_manifest_over_the_bound_is_refused(registry, pusher):
    image = pusher.push_image(_repo(), "big", seed="bound")
    limits = RegistryLimits(max_manifest_bytes=len(image.manifest) - 1)
    with (
        RegistryClient(allow_insecure=True, limits=limits) as small,
        pytest.raises(TooLargeError) as caught,
    ):
        small.resolve(parse_reference(image.reference))
    assert caught.value.message == (
        f"manifest {image.reference} is larger than {len(image.manifest) - 1} bytes"
    )


def test_blob_over_the_bound_is_refused(registry, client):
    ref = parse_reference(registry.ref(_repo()))
    descriptor = client.push_blob(ref, b"x" * 2000, "application/octet-stream")
    with pytest.raises(TooLargeError):
        client.get_blob(ref, descriptor.digest, max_bytes=1000)


def test_plain_http_is_refused_unless_allowed(registry, pusher):
    image = pusher.push_image(_repo(), "tls", seed="https-default")
    with RegistryClient() as strict, pytest.raises(RegistryConnectionError) as caught:
        strict.resolve(parse_reference(image.reference))
    assert caught.value.message == (
        f"cannot reach {registry.host} for manifest {image.reference}: TLS failed"
    )


def test_https_registry_with_its_ca(tls_registry):
    image = Pusher(tls_registry).push_image(_repo(), "secure", seed="tls")
    with RegistryClient(ca_bundle=tls_registry.ca_bundle) as secure:
        assert secure.resolve(parse_reference(image.reference)).digest == image.digest
    with RegistryClient() as untrusting, pytest.raises(RegistryConnectionError):
        untrusting.resolve(parse_reference(image.reference))


def test_insecure_allowed_still_prefers_https(tls_registry):
    image = Pusher(tls_registry).push_image(_repo(), "prefer", seed="prefer-tls")
    with RegistryClient(allow_insecure=True, ca_bundle=tls_registry.ca_bundle) as client:
        assert client.resolve(parse_reference(image.reference)).digest == image.digest
        assert client._transport._origins[tls_registry.host] == f"https://{tls_registry.host}"


# Basic auth (htpasswd).


def test_basic_auth_without_credentials_is_a_clear_error(auth_registry):
    image = Pusher(auth_registry).push_image(_repo(), "private", seed="basic")
    with (
        RegistryClient(allow_insecure=True) as anonymous,
        pytest.raises(AuthRequiredError) as caught,
    ):
        anonymous.resolve(parse_reference(image.reference))
    repo = image.reference.split("/", 1)[1].split(":")[0]
    assert caught.value.message == (
        f"authentication required: {auth_registry.host} needs credentials to pull from {repo}"
    )
    assert caught.value.hint.startswith(f"log in with `docker login {auth_registry.host}`")


def test_basic_auth_with_credentials(auth_registry):
    image = Pusher(auth_registry).push_image(_repo(), "private", seed="basic-ok")
    ref = parse_reference(image.reference)
    with RegistryClient(allow_insecure=True, credentials=alice(auth_registry)) as client:
        assert client.resolve(ref).digest == image.digest
        client.push_blob(ref, b"pushed with basic auth", "application/octet-stream")


def test_basic_auth_wrong_password_is_unauthorized(auth_registry):
    image = Pusher(auth_registry).push_image(_repo(), "private", seed="basic-bad")
    wrong = StaticCredentials("alice", "not-the-password")
    with (
        RegistryClient(allow_insecure=True, credentials=wrong) as client,
        pytest.raises(UnauthorizedError) as caught,
    ):
        client.resolve(parse_reference(image.reference))
    assert caught.value.message.startswith(f"unauthorized: {auth_registry.host} refused access")


def test_basic_auth_from_docker_config(auth_registry, tmp_path):
    image = Pusher(auth_registry).push_image(_repo(), "cfg", seed="basic-cfg")
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {"auths": {auth_registry.host: {"username": "alice", "password": "wonderland-42"}}}
        )
    )
    with RegistryClient(allow_insecure=True, credentials=DockerConfigCredentials(config)) as client:
        assert client.resolve(parse_reference(image.reference)).digest == image.digest


# Bearer tokens, checked by the real registry.


def test_bearer_anonymous_pull(token_registry):
    image = Pusher(token_registry).push_image(_repo(), "public", seed="bearer-anon")
    with RegistryClient(allow_insecure=True) as anonymous:
        assert anonymous.resolve(parse_reference(image.reference)).digest == image.digest
    repo = image.reference.split("/", 1)[1].split(":")[0]
    assert (None, f"repository:{repo}:pull") in token_registry.token_server.requests_seen


def test_bearer_anonymous_push_needs_credentials(token_registry):
    ref = parse_reference(token_registry.ref(f"{_repo()}:x"))
    with (
        RegistryClient(allow_insecure=True) as anonymous,
        pytest.raises(AuthRequiredError) as caught,
    ):
        anonymous.push_blob(ref, b"not allowed", "application/octet-stream")
    assert caught.value.message == (
        f"authentication required: {token_registry.host} needs credentials to push to "
        f"{ref.repository}"
    )


def test_bearer_push_with_credentials_asks_for_push_scope(token_registry):
    ref = parse_reference(token_registry.ref(f"{_repo()}:x"))
    bob = StaticCredentials("bob", "builder-7")
    with RegistryClient(allow_insecure=True, credentials=bob) as client:
        descriptor = client.push_blob(ref, b"bob's blob", "application/octet-stream")
        assert client.get_blob(ref, descriptor.digest) == b"bob's blob"
    seen = token_registry.token_server.requests_seen
    assert ("bob", f"repository:{ref.repository}:pull,push") in seen


def test_bearer_wrong_password_is_unauthorized(token_registry):
    ref = parse_reference(token_registry.ref(f"{_repo()}:x"))
    wrong = StaticCredentials("bob", "nope")
    with (
        RegistryClient(allow_insecure=True, credentials=wrong) as client,
        pytest.raises(UnauthorizedError) as caught,
    ):
        client.blob_exists(ref, digest_of(b"x"))
    assert caught.value.message == (
        f"unauthorized: the token service of {token_registry.host} refused the credentials for bob"
    )


def test_http_token_realm_is_refused_without_allow_insecure(token_registry):
    # The registry itself is reached over HTTPS-less loopback only when allowed, so this checks
    # the realm rule directly against the real challenge the registry sends.
    import requests

    from keyless.client.oci.auth import fetch_token, parse_challenge
    from keyless.client.oci.errors import InsecureRegistryError

    response = requests.get(f"{token_registry.url}/v2/", timeout=10)
    challenge = parse_challenge(response.headers["WWW-Authenticate"])
    with requests.Session() as session, pytest.raises(InsecureRegistryError) as caught:
        fetch_token(
            session,
            challenge,
            scope="repository:a:pull",
            credential=None,
            allow_insecure=False,
            timeout=10,
            max_bytes=1024,
            registry=token_registry.host,
        )
    assert caught.value.message.startswith(
        f"{token_registry.host} asks for tokens from a plain-HTTP realm"
    )


def test_insecure_allowed_does_not_mean_unverified_tls(tls_registry):
    image = Pusher(tls_registry).push_image(_repo(), "unverified", seed="no-downgrade")
    with (
        RegistryClient(allow_insecure=True) as client,
        pytest.raises(RegistryConnectionError) as caught,
    ):
        client.resolve(parse_reference(image.reference))
    assert caught.value.message == (
        f"cannot reach {tls_registry.host} for manifest {image.reference}: TLS failed"
    )


def test_bearer_with_identity_token_from_docker_config(token_registry, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"auths": {token_registry.host: {"identitytoken": "bobs-refresh-token"}}})
    )
    ref = parse_reference(token_registry.ref(f"{_repo()}:x"))
    with RegistryClient(allow_insecure=True, credentials=DockerConfigCredentials(config)) as c:
        descriptor = c.push_blob(ref, b"pushed with a refresh token", "application/octet-stream")
        assert c.blob_exists(ref, descriptor.digest)
    assert ("bob", f"repository:{ref.repository}:pull,push") in (
        token_registry.token_server.requests_seen
    )


def test_bearer_with_a_revoked_identity_token_is_unauthorized(token_registry, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {token_registry.host: {"identitytoken": "revoked"}}}))
    ref = parse_reference(token_registry.ref(f"{_repo()}:x"))
    with (
        RegistryClient(allow_insecure=True, credentials=DockerConfigCredentials(config)) as c,
        pytest.raises(UnauthorizedError) as caught,
    ):
        c.blob_exists(ref, digest_of(b"x"))
    assert caught.value.message == (
        f"unauthorized: the token service of {token_registry.host} refused the credentials "
        "for the identity token"
    )


def _forward_proxy(seen: list[str]):
    """A plain-HTTP forward proxy: records each absolute-form request, then forwards it."""
    import requests
    from flask import Flask, Response, request

    app = Flask("keyless-test-proxy")
    upstream = requests.Session()
    upstream.trust_env = False  # The proxy must not send its own requests to itself.

    @app.route("/<path:path>", methods=["GET", "HEAD", "PUT", "POST"])
    def forward(path):
        target = f"http://{request.host}/{path}"
        seen.append(f"{request.method} {target}")
        answer = upstream.request(
            request.method,
            target,
            params=request.args,
            data=request.get_data(),
            headers={k: v for k, v in request.headers if k in ("Accept", "Content-Type")},
            timeout=30,
        )
        response = Response(answer.content, status=answer.status_code)
        for name in ("Content-Type", "Docker-Content-Digest", "Location"):
            if name in answer.headers:
                response.headers[name] = answer.headers[name]
        return response

    return app


def test_proxy_from_the_environment_is_used_and_no_proxy_honoured(registry, pusher, monkeypatch):
    from tests.conftest import serve_wsgi

    image = pusher.push_image(_repo(), "proxied", seed="proxy")
    seen: list[str] = []
    with serve_wsgi(_forward_proxy(seen)) as proxy_url:
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        with RegistryClient(allow_insecure=True) as client:
            assert client.resolve(parse_reference(image.reference)).digest == image.digest
        path = image.reference.split("/", 1)[1].replace(":", "/manifests/")
        assert f"GET http://{registry.host}/v2/{path}" in seen
        seen.clear()
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        with RegistryClient(allow_insecure=True) as client:
            assert client.resolve(parse_reference(image.reference)).digest == image.digest
        assert seen == []

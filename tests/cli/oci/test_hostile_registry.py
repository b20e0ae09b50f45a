"""A registry that lies or misbehaves: a loopback stand-in, since a real one will not.

Each case is named for the defect, and asserts the exact error.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading

import pytest
from flask import Flask, Response, request

from keyless.client.oci import RegistryClient, RegistryLimits, StaticCredentials, parse_reference
from keyless.client.oci.descriptors import OCI_INDEX, OCI_MANIFEST, SIGSTORE_BUNDLE_V03
from keyless.client.oci.errors import (
    DigestMismatchError,
    RegistryConnectionError,
    RegistryProtocolError,
    TooLargeError,
)
from tests.conftest import serve_wsgi

MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest(),
            "size": 2,
        },
        "layers": [],
    }
).encode()
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
OTHER = "sha256:" + hashlib.sha256(b"other").hexdigest()


def _app(routes) -> Flask:
    app = Flask("hostile-registry")
    app.add_url_rule("/v2/", "ping", lambda: Response("{}", mimetype="application/json"))
    for rule, view in routes.items():
        app.add_url_rule(rule, rule, view, methods=["GET", "HEAD", "PUT", "POST"])
    return app


def _manifest_view(body=MANIFEST, content_type=OCI_MANIFEST, digest_header=None):
    def view(**_):
        response = Response(body, content_type=content_type)
        if digest_header:
            response.headers["Docker-Content-Digest"] = digest_header
        return response

    return view


def _client(**kwargs) -> RegistryClient:
    return RegistryClient(allow_insecure=True, **kwargs)


def _ref(url: str, name: str) -> object:
    return parse_reference(f"{url.removeprefix('http://')}/{name}")


@pytest.mark.parametrize(
    ("view", "name", "error", "message"),
    [
        pytest.param(
            _manifest_view(body=MANIFEST + b" "),
            f"app@{DIGEST}",
            DigestMismatchError,
            "content hashes to",
            id="manifest-bytes-differ-from-digest",
        ),
        pytest.param(
            _manifest_view(digest_header=OTHER),
            "app:latest",
            DigestMismatchError,
            f"expected {OTHER}",
            id="announced-digest-differs",
        ),
        pytest.param(
            _manifest_view(content_type="text/html"),
            "app:latest",
            RegistryProtocolError,
            "unsupported manifest media type 'text/html'",
            id="html-content-type",
        ),
        pytest.param(
            _manifest_view(content_type=OCI_INDEX),
            "app:latest",
            RegistryProtocolError,
            f"served as {OCI_INDEX} but declares {OCI_MANIFEST}",
            id="media-type-disagrees",
        ),
        pytest.param(
            _manifest_view(body=b"[1,2]"),
            "app:latest",
            RegistryProtocolError,
            "is not a JSON object",
            id="manifest-not-object",
        ),
        pytest.param(
            _manifest_view(body=b'{"schemaVersion":1}'),
            "app:latest",
            RegistryProtocolError,
            "schemaVersion is not 2",
            id="schema-v1",
        ),
    ],
)
def test_bad_manifests_are_refused(view, name, error, message):
    app = _app({"/v2/app/manifests/<reference>": view})
    with serve_wsgi(app) as url, _client() as client, pytest.raises(error) as caught:
        client.get_manifest(_ref(url, name))
    assert message in caught.value.message


def test_blob_with_wrong_content_is_refused():
    app = _app({"/v2/app/blobs/<digest>": lambda digest: Response(b"not the blob")})
    with serve_wsgi(app) as url, _client() as client, pytest.raises(DigestMismatchError):
        client.get_blob(_ref(url, "app"), DIGEST)


def test_declared_oversize_is_refused_before_reading():
    def huge(digest):
        return Response(b"x" * 10, headers={"Content-Length": "10"})

    app = _app({"/v2/app/blobs/<digest>": huge})
    limits = RegistryLimits(max_blob_bytes=5)
    with (
        serve_wsgi(app) as url,
        _client(limits=limits) as client,
        pytest.raises(TooLargeError) as caught,
    ):
        client.get_blob(_ref(url, "app"), DIGEST)
    assert caught.value.message == f"blob {DIGEST} is larger than 5 bytes"


def test_401_without_challenge():
    app = _app({"/v2/app/manifests/<reference>": lambda reference: Response(status=401)})
    with (
        serve_wsgi(app) as url,
        _client() as client,
        pytest.raises(RegistryProtocolError) as caught,
    ):
        client.resolve(_ref(url, "app:1"))
    assert caught.value.message.endswith("answered 401 without a challenge")


def test_unsupported_auth_scheme():
    def view(reference):
        return Response(status=401, headers={"WWW-Authenticate": 'Negotiate realm="x"'})

    app = _app({"/v2/app/manifests/<reference>": view})
    with (
        serve_wsgi(app) as url,
        _client() as client,
        pytest.raises(RegistryProtocolError) as caught,
    ):
        client.resolve(_ref(url, "app:1"))
    assert caught.value.message.endswith("asks for unsupported authentication 'negotiate'")


@pytest.mark.parametrize(
    ("token_body", "message"),
    [
        pytest.param(b"not json", "sent malformed JSON", id="token-not-json"),
        pytest.param(b'{"token": 5}', "sent no usable token", id="token-not-string"),
        pytest.param(b'{"token": "a\\r\\nX-Injected: 1"}', "sent no usable token", id="token-crlf"),
        pytest.param(
            b'{"token": "' + b"a" * 2000 + b'"}', "larger than 1000 bytes", id="token-too-large"
        ),
    ],
)
def test_bad_token_responses(token_body, message):
    app = Flask("hostile-token")
    holder = {}

    @app.get("/v2/app/manifests/<reference>")
    def manifest(reference):
        realm = f"{holder['url']}/token"
        return Response(
            status=401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'}
        )

    @app.get("/token")
    def token():
        return Response(token_body, mimetype="application/json")

    limits = RegistryLimits(max_token_bytes=1000)
    with serve_wsgi(app) as url, _client(limits=limits) as client:
        holder["url"] = url
        with pytest.raises((RegistryProtocolError, TooLargeError)) as caught:
            client.resolve(_ref(url, "app:1"))
    assert message in caught.value.message


def test_credentials_are_not_forwarded_on_a_cross_host_redirect():
    seen: dict[str, str | None] = {}
    blob = b"redirected blob"
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    storage = Flask("storage")

    @storage.get("/blob")
    def stored():
        seen["storage"] = request.headers.get("Authorization")
        return Response(blob)

    with serve_wsgi(storage) as storage_url:
        registry = Flask("registry")

        @registry.get("/v2/app/blobs/<d>")
        def redirect_blob(d):
            seen["registry"] = request.headers.get("Authorization")
            if request.authorization is None:
                return Response(status=401, headers={"WWW-Authenticate": 'Basic realm="r"'})
            return Response(status=307, headers={"Location": f"{storage_url}/blob"})

        credentials = StaticCredentials("alice", "secret")
        with serve_wsgi(registry) as url, _client(credentials=credentials) as client:
            assert client.get_blob(_ref(url, "app"), digest) == blob
    assert seen["registry"] == "Basic " + base64.b64encode(b"alice:secret").decode()
    assert seen["storage"] is None


def test_redirect_loop_is_bounded():
    app = _app(
        {
            "/v2/app/blobs/<digest>": lambda digest: Response(
                status=302, headers={"Location": request.path}
            )
        }
    )
    with (
        serve_wsgi(app) as url,
        _client() as client,
        pytest.raises(RegistryProtocolError) as caught,
    ):
        client.get_blob(_ref(url, "app"), DIGEST)
    assert caught.value.message == f"too many redirects for blob {DIGEST}"


def test_tag_pagination_is_followed_and_bounded():
    def tags():
        last = request.args.get("last")
        page = int(last or 0)
        response = Response(json.dumps({"name": "app", "tags": [str(page + 1)]}))
        response.headers["Link"] = f'</v2/app/tags/list?n=1&last={page + 1}>; rel="next"'
        if page >= 2:
            del response.headers["Link"]
        return response

    app = _app({"/v2/app/tags/list": tags})
    with serve_wsgi(app) as url:
        with _client() as client:
            assert client.list_tags(_ref(url, "app")) == ["1", "2", "3"]
        with (
            _client(limits=RegistryLimits(max_pages=2)) as client,
            pytest.raises(RegistryProtocolError, match="too many pages"),
        ):
            client.list_tags(_ref(url, "app"))


def test_pagination_to_another_host_is_refused():
    def tags():
        return Response(
            json.dumps({"tags": ["a"]}),
            headers={"Link": '<http://127.0.0.2:1/v2/app/tags/list>; rel="next"'},
        )

    app = _app({"/v2/app/tags/list": tags})
    with (
        serve_wsgi(app) as url,
        _client() as client,
        pytest.raises(RegistryProtocolError) as caught,
    ):
        client.list_tags(_ref(url, "app"))
    assert caught.value.message == "pagination link points to another host"


def test_unfiltered_referrers_are_filtered_by_the_client():
    listing = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": DIGEST,
                "size": 1,
                "artifactType": SIGSTORE_BUNDLE_V03,
            },
            {
                "mediaType": OCI_MANIFEST,
                "digest": OTHER,
                "size": 1,
                "artifactType": "application/spdx+json",
            },
        ],
    }
    app = _app(
        {
            "/v2/app/referrers/<digest>": lambda digest: Response(
                json.dumps(listing), mimetype=OCI_INDEX
            )
        }
    )
    with serve_wsgi(app) as url, _client() as client:
        found = client.referrers(_ref(url, "app"), DIGEST, artifact_type=SIGSTORE_BUNDLE_V03)
        everything = client.referrers(_ref(url, "app"), DIGEST)
    assert [d.digest for d in found] == [DIGEST]
    assert len(everything) == 2


class _ResettingServer:
    """Resets the first `resets` connections, then answers `/v2/...` with a fixed manifest."""

    def __init__(self, resets: int) -> None:
        self.resets = resets
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.connections += 1
                conn.recv(65536)
                if self.connections <= self.resets:
                    # SO_LINGER with a zero timeout makes close() send a TCP RST.
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                    continue
                head = (
                    f"HTTP/1.1 200 OK\r\nContent-Type: {OCI_MANIFEST}\r\n"
                    f"Content-Length: {len(MANIFEST)}\r\nConnection: close\r\n\r\n"
                )
                conn.sendall(head.encode() + MANIFEST)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize(
    ("resets", "succeeds"), [(1, True), (2, False)], ids=["one-reset-retried", "two-resets-fail"]
)
def test_one_retry_on_connection_reset(resets, succeeds):
    server = _ResettingServer(resets)
    ref = parse_reference(f"127.0.0.1:{server.port}/app@{DIGEST}")
    try:
        with RegistryClient(allow_insecure=True) as client:
            # Fix the origin so the scheme probe does not use up a connection.
            client._transport._origins[ref.api_host] = f"http://{ref.api_host}"
            if succeeds:
                assert client.get_manifest(ref).digest == DIGEST
            else:
                with pytest.raises(RegistryConnectionError) as caught:
                    client.get_manifest(ref)
                assert caught.value.message == (
                    f"cannot reach {ref.api_host} for manifest {ref}: connection failed"
                )
    finally:
        server.close()
    assert server.connections == resets + (1 if succeeds else 0)


def test_silent_registry_times_out_with_a_clear_error():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    port = silent.getsockname()[1]
    ref = parse_reference(f"127.0.0.1:{port}/app:1")
    try:
        limits = RegistryLimits(timeout_seconds=0.3)
        with RegistryClient(allow_insecure=True, limits=limits) as client:
            client._transport._origins[ref.api_host] = f"http://{ref.api_host}"
            with pytest.raises(RegistryConnectionError) as caught:
                client.resolve(ref)
    finally:
        silent.close()
    assert caught.value.message == f"cannot reach {ref.api_host} for manifest {ref}: timed out"


def test_redirect_from_https_to_plain_http_is_refused(tmp_path):
    from werkzeug.serving import make_server

    from keyless.client.oci.errors import InsecureRegistryError
    from tests.registry import make_tls_material

    ca, certificate, key = make_tls_material(tmp_path)
    plain = _app({"/blob": lambda: Response(b"downgraded")})
    with serve_wsgi(plain) as plain_url:
        secure = _app(
            {
                "/v2/app/blobs/<digest>": lambda digest: Response(
                    status=302, headers={"Location": f"{plain_url}/blob"}
                )
            }
        )
        server = make_server("127.0.0.1", 0, secure, threaded=True, ssl_context=(certificate, key))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            ref = parse_reference(f"127.0.0.1:{server.server_port}/app")
            with (
                RegistryClient(ca_bundle=ca) as client,
                pytest.raises(InsecureRegistryError) as caught,
            ):
                client.get_blob(ref, DIGEST)
        finally:
            server.shutdown()
            thread.join(timeout=10)
    assert caught.value.message == f"refusing a redirect to http:// for blob {DIGEST}"

"""Test-only: a real OCI registry on loopback, and small generated images pushed into it.

The registry is Debian's `docker-registry` (CNCF Distribution 2.8), started in a subprocess on
a free 127.0.0.1 port with a generated config: anonymous, with htpasswd Basic auth, with TLS,
or with token auth against `TokenServer`, a tiny loopback stand-in for a remote token realm
that signs real ES256 JWTs the registry verifies. Images are pushed with plain `requests`, not
with the client under test, so a bug there cannot hide itself.

Needs the Debian packages `docker-registry` and `apache2-utils` (for `htpasswd -B`).
"""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import io
import ipaddress
import json
import secrets
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import jwt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask, Response, request

from tests.conftest import serve_wsgi, skip_unless_ci

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

TOKEN_SERVICE = "keyless-test-registry"
TOKEN_ISSUER = "keyless-test-token-issuer"
_START_TIMEOUT_SECONDS = 20.0


def registry_binary() -> str:
    """The `docker-registry` executable; a skip (a failure in CI) naming the package if absent."""
    found = shutil.which("docker-registry")
    if found is None:
        skip_unless_ci("docker-registry is not installed (Debian package docker-registry)")
    return found


@dataclass(frozen=True)
class RunningRegistry:
    """A registry process on loopback: where it is and how to log in to it."""

    host: str
    url: str
    username: str | None = None
    password: str | None = None
    ca_bundle: str | None = None
    token_server: TokenServer | None = None

    def ref(self, name: str) -> str:
        """A reference string to `name` (`repo:tag` or `repo@digest`) on this registry."""
        return f"{self.host}/{name}"


@dataclass
class TokenServer:
    """A loopback token realm: checks Basic credentials and signs ES256 JWTs for the registry."""

    users: dict[str, str]
    anonymous_pull: bool = True
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    requests_seen: list[tuple[str | None, str]] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self.certificate = _self_signed(self.key, TOKEN_ISSUER)

    def certificate_pem(self) -> bytes:
        """The self-signed certificate of the signing key, for the registry's rootcertbundle."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def app(self) -> Flask:
        """The Flask app serving `GET /token` the way distribution's token spec describes."""
        app = Flask("keyless-test-token-server")

        @app.route("/token", methods=["GET", "POST"])
        def token() -> Response:
            user = None
            if request.method == "POST":
                # The OAuth2 form the docker CLI uses with an identity (refresh) token.
                if request.form.get("grant_type") != "refresh_token":
                    return Response("unsupported grant", status=400)
                user = self.refresh_tokens.get(request.form.get("refresh_token", ""))
                if user is None:
                    return Response("bad refresh token", status=401)
                params = request.form
            else:
                params = request.args
                auth = request.authorization
                if auth is not None:
                    if self.users.get(auth.username or "") != auth.password:
                        return Response("bad credentials", status=401)
                    user = auth.username
            scopes = params.getlist("scope")
            self.requests_seen.append((user, " ".join(scopes)))
            access = []
            for scope in " ".join(scopes).split():
                kind, _, rest = scope.partition(":")
                name, _, actions = rest.rpartition(":")
                wanted = [a for a in actions.split(",") if a]
                granted = wanted if user else (["pull"] if self.anonymous_pull else [])
                access.append(
                    {"type": kind, "name": name, "actions": [a for a in wanted if a in granted]}
                )
            now = int(time.time())
            claims = {
                "iss": TOKEN_ISSUER,
                "sub": user or "",
                "aud": params.get("service", ""),
                "exp": now + 300,
                "nbf": now - 10,
                "iat": now,
                "jti": secrets.token_hex(8),
                "access": access,
            }
            der = self.certificate.public_bytes(serialization.Encoding.DER)
            signed = jwt.encode(
                claims,
                self.key,
                algorithm="ES256",
                headers={"x5c": [base64.b64encode(der).decode()]},
            )
            field_name = "access_token" if request.method == "POST" else "token"
            return Response(json.dumps({field_name: signed}), mimetype="application/json")

        return app


@contextmanager
def run_registry(
    workdir: Path,
    *,
    username: str | None = None,
    password: str | None = None,
    tls: bool = False,
    token_server: TokenServer | None = None,
) -> Iterator[RunningRegistry]:
    """Start a registry in `workdir` and stop it on exit; yields where it listens."""
    workdir.mkdir(parents=True, exist_ok=True)
    config: dict = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(workdir / "data")},
            "delete": {"enabled": True},
        },
        "http": {"secret": secrets.token_hex(16)},
    }
    ca_bundle = None
    if tls:
        ca_bundle, certificate, key = make_tls_material(workdir)
        config["http"]["tls"] = {"certificate": certificate, "key": key}
    if username is not None:
        if shutil.which("htpasswd") is None:
            skip_unless_ci("htpasswd is not installed (Debian package apache2-utils)")
        hashed = subprocess.run(
            ["htpasswd", "-nbB", username, password or ""],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        (workdir / "htpasswd").write_text(hashed + "\n")
        config["auth"] = {"htpasswd": {"realm": "keyless-test", "path": str(workdir / "htpasswd")}}
    if token_server is not None:
        (workdir / "token-roots.pem").write_bytes(token_server.certificate_pem())
        config["auth"] = {
            "token": {
                "realm": f"{token_server.url}/token",
                "service": TOKEN_SERVICE,
                "issuer": TOKEN_ISSUER,
                "rootcertbundle": str(workdir / "token-roots.pem"),
            }
        }
    scheme = "https" if tls else "http"
    for _ in range(3):
        port = _free_port()
        config["http"]["addr"] = f"127.0.0.1:{port}"
        (workdir / "config.yml").write_text(json.dumps(config))
        log = (workdir / "registry.log").open("ab")
        process = subprocess.Popen(
            [registry_binary(), "serve", str(workdir / "config.yml")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        try:
            if _wait_until_up(process, f"{scheme}://127.0.0.1:{port}/v2/", ca_bundle):
                yield RunningRegistry(
                    host=f"127.0.0.1:{port}",
                    url=f"{scheme}://127.0.0.1:{port}",
                    username=username,
                    password=password,
                    ca_bundle=ca_bundle,
                    token_server=token_server,
                )
                return
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    log_text = (workdir / "registry.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"docker-registry did not start:\n{log_text}")


def make_tls_material(workdir: Path) -> tuple[str, str, str]:
    """A test CA and a server certificate for 127.0.0.1; returns (ca, cert, key) paths."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _self_signed(ca_key, "keyless-test-ca")
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _issue(ca_key, ca_cert, server_key)
    (workdir / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (workdir / "server.pem").write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    (workdir / "server.key").write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(workdir / "ca.pem"), str(workdir / "server.pem"), str(workdir / "server.key")


@contextmanager
def run_token_registry(workdir: Path, token_server: TokenServer) -> Iterator[RunningRegistry]:
    """A registry with token auth, and its token server, both on loopback."""
    with serve_wsgi(token_server.app()) as url:
        token_server.url = url
        with run_registry(workdir, token_server=token_server) as registry:
            yield registry


@dataclass(frozen=True)
class PushedImage:
    """A manifest pushed by the helper: its reference string, digest, media type and bytes."""

    reference: str
    digest: str
    media_type: str
    manifest: bytes

    @property
    def size(self) -> int:
        """The manifest's size in bytes."""
        return len(self.manifest)


class Pusher:
    """Pushes generated content with plain `requests`, answering Basic and Bearer challenges."""

    def __init__(self, registry: RunningRegistry) -> None:
        self.registry = registry
        self.session = requests.Session()
        self.session.trust_env = False
        if registry.ca_bundle:
            self.session.verify = registry.ca_bundle
        self._auth: dict[str, str] = {}

    def push_image(
        self,
        repository: str,
        tag: str | None,
        *,
        seed: str,
        platform: tuple[str, str] = ("linux", "amd64"),
        docker_media_types: bool = False,
    ) -> PushedImage:
        """Push a one-layer image whose content is derived from `seed`; tag it if `tag`."""
        layer = _layer_tar(seed)
        layer_gz = gzip.compress(layer, mtime=0)
        config = json.dumps(
            {
                "architecture": platform[1],
                "os": platform[0],
                "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
                "config": {},
            },
            sort_keys=True,
        ).encode()
        self.push_blob(repository, config)
        self.push_blob(repository, layer_gz)
        manifest_type = DOCKER_MANIFEST if docker_media_types else OCI_MANIFEST
        manifest = {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {
                "mediaType": DOCKER_CONFIG if docker_media_types else OCI_CONFIG,
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": DOCKER_LAYER_GZIP if docker_media_types else OCI_LAYER_GZIP,
                    "digest": _digest(layer_gz),
                    "size": len(layer_gz),
                }
            ],
        }
        return self.push_manifest(repository, tag, json.dumps(manifest).encode(), manifest_type)

    def push_index(
        self, repository: str, tag: str, *, seed: str, platforms: list[tuple[str, str]]
    ) -> tuple[PushedImage, list[PushedImage]]:
        """Push one image per platform and an OCI index over them, tagged `tag`."""
        children = [
            self.push_image(repository, None, seed=f"{seed}-{os_}-{arch}", platform=(os_, arch))
            for os_, arch in platforms
        ]
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": child.media_type,
                    "digest": child.digest,
                    "size": child.size,
                    "platform": {"os": os_, "architecture": arch},
                }
                for child, (os_, arch) in zip(children, platforms, strict=True)
            ],
        }
        pushed = self.push_manifest(repository, tag, json.dumps(index).encode(), OCI_INDEX)
        return pushed, children

    def push_blob(self, repository: str, data: bytes) -> str:
        """Upload one blob (POST then PUT) and return its digest."""
        digest = _digest(data)
        started = self._call("POST", repository, f"/v2/{repository}/blobs/uploads/", "push,pull")
        started.raise_for_status()
        location = requests.compat.urljoin(started.url, started.headers["Location"])
        joiner = "&" if "?" in location else "?"
        done = self._call(
            "PUT",
            repository,
            f"{location}{joiner}digest={digest}",
            "push,pull",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        done.raise_for_status()
        return digest

    def push_manifest(
        self, repository: str, tag: str | None, data: bytes, media_type: str
    ) -> PushedImage:
        """PUT a manifest by tag, or by digest when `tag` is None."""
        digest = _digest(data)
        target = tag or digest
        response = self._call(
            "PUT",
            repository,
            f"/v2/{repository}/manifests/{target}",
            "push,pull",
            data=data,
            headers={"Content-Type": media_type},
        )
        response.raise_for_status()
        name = f"{repository}:{tag}" if tag else f"{repository}@{digest}"
        return PushedImage(self.registry.ref(name), digest, media_type, data)

    def delete_manifest(self, repository: str, digest: str) -> None:
        """Delete a manifest by digest (the registry runs with deletes enabled)."""
        response = self._call("DELETE", repository, f"/v2/{repository}/manifests/{digest}", "*")
        response.raise_for_status()

    def delete_blob(self, repository: str, digest: str) -> None:
        """Delete a blob by digest, to simulate storage that lost it."""
        response = self._call("DELETE", repository, f"/v2/{repository}/blobs/{digest}", "*")
        response.raise_for_status()

    def _call(
        self,
        method: str,
        repository: str,
        path: str,
        actions: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """One request, answering one 401 challenge with this registry's credentials."""
        url = path if "://" in path else f"{self.registry.url}{path}"
        scope = f"repository:{repository}:{actions}"
        for _ in range(2):
            sent = dict(headers or {})
            if scope in self._auth:
                sent["Authorization"] = self._auth[scope]
            response = self.session.request(method, url, headers=sent, data=data, timeout=30)
            if response.status_code != 401:
                return response
            challenge = response.headers.get("WWW-Authenticate", "")
            basic = (self.registry.username or "", self.registry.password or "")
            if challenge.startswith("Basic"):
                raw = base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
                self._auth[scope] = f"Basic {raw}"
            else:
                server = self.registry.token_server
                user, password = next(iter(server.users.items()))
                answer = self.session.get(
                    f"{server.url}/token",
                    params={"service": TOKEN_SERVICE, "scope": scope},
                    auth=(user, password),
                    timeout=30,
                )
                answer.raise_for_status()
                self._auth[scope] = f"Bearer {answer.json()['token']}"
        return response


def _layer_tar(seed: str) -> bytes:
    """A deterministic tar holding one small file derived from `seed`."""
    content = hashlib.sha256(seed.encode()).hexdigest().encode() * 4
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo(f"keyless-test/{seed[:40]}.txt")
        info.size = len(content)
        info.mtime = 0
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(process: subprocess.Popen, url: str, ca_bundle: str | None) -> bool:
    """Poll `url` until the registry answers (any HTTP status), or the process exits."""
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with suppress(requests.RequestException):
            requests.get(url, timeout=2, verify=ca_bundle or True)
            return True
        time.sleep(0.05)
    return False


def _self_signed(key: ec.EllipticCurvePrivateKey, name: str) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _issue(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    """A TLS server certificate for 127.0.0.1 and localhost, issued by the test CA."""
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

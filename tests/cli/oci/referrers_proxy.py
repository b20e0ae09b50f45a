"""Test-only: the OCI 1.1 referrers API in front of a real Distribution 2.8 registry.

Debian ships only Distribution 2.8, which has no referrers API; registries that have it
(Distribution 3, zot, most clouds) cannot run here. This loopback stand-in forwards every
request to the real registry, and adds what those registries do: it answers `OCI-Subject` to a
manifest PUT that has a `subject`, and serves `GET /v2/<name>/referrers/<digest>`.
"""

from __future__ import annotations

import json

import requests
from flask import Flask, Response, request

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_FORWARDED_HEADERS = ("Content-Type", "Docker-Content-Digest", "Location", "WWW-Authenticate")


def referrers_proxy(upstream: str) -> Flask:
    """A WSGI app adding the referrers API to the registry at `upstream` (`http://host:port`)."""
    app = Flask("keyless-test-referrers-proxy")
    referrers: dict[tuple[str, str], list[dict]] = {}

    @app.get("/v2/<path:name>/referrers/<digest>")
    def list_referrers(name: str, digest: str) -> Response:
        wanted = request.args.get("artifactType")
        found = [
            d for d in referrers.get((name, digest), []) if wanted in (None, d["artifactType"])
        ]
        response = Response(
            json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": found}),
            mimetype=OCI_INDEX,
        )
        if wanted is not None:
            response.headers["OCI-Filters-Applied"] = "artifactType"
        return response

    @app.route("/<path:path>", methods=["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"])
    def forward(path: str) -> Response:
        body = request.get_data()
        answer = requests.request(
            request.method,
            f"{upstream}/{path}",
            params=request.args,
            data=body,
            headers={k: v for k, v in request.headers if k in ("Accept", "Content-Type")},
            timeout=30,
            allow_redirects=False,
        )
        response = Response(answer.content, status=answer.status_code)
        for header in _FORWARDED_HEADERS:
            if header in answer.headers:
                response.headers[header] = answer.headers[header]
        if request.method == "PUT" and "/manifests/" in path and answer.status_code == 201:
            manifest = json.loads(body)
            subject = manifest.get("subject")
            if subject:
                name = path.removeprefix("v2/").split("/manifests/")[0]
                artifact = manifest.get("artifactType") or manifest["config"]["mediaType"]
                referrers.setdefault((name, subject["digest"]), []).append(
                    {
                        "mediaType": manifest["mediaType"],
                        "digest": answer.headers["Docker-Content-Digest"],
                        "size": len(body),
                        "artifactType": artifact,
                        "annotations": manifest.get("annotations", {}),
                    }
                )
                response.headers["OCI-Subject"] = subject["digest"]
        return response

    return app

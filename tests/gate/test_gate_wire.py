"""AdmissionReview v1 wire details that need no server: the answer's shape and `?timeout=`."""

from __future__ import annotations

import base64
import json

import pytest

from keyless.server.gate.admission import parse_timeout, response


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("30s", 30.0),
        ("1m0s", 60.0),
        ("1m30s", 90.0),
        ("2.5s", 2.5),
        ("0s", None),
        ("", None),
        (None, None),
        ("10", None),
        ("-5s", None),
        ("1h", None),
        ("9" * 40 + "s", None),
    ],
)
def test_the_api_servers_timeout_parameter(text, seconds):
    assert parse_timeout(text) == seconds


def test_a_patch_is_compact_base64_json_with_its_type():
    patch = [
        {"op": "replace", "path": "/spec/containers/0/image", "value": "a:1@sha256:" + "ab" * 32}
    ]
    answer = response("u-1", True, patch=patch)
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    body = answer["response"]
    assert body["patchType"] == "JSONPatch"
    decoded = base64.b64decode(body["patch"], validate=True)
    assert decoded == json.dumps(patch, separators=(",", ":")).encode()
    assert set(body) == {"uid", "allowed", "patch", "patchType"}


def test_a_refusal_has_a_status_and_an_allow_has_none():
    refused = response("u-2", False, code=403, message="no")["response"]
    assert refused == {"uid": "u-2", "allowed": False, "status": {"code": 403, "message": "no"}}
    allowed = response("u-3", True, warnings=["w"])["response"]
    assert allowed == {"uid": "u-3", "allowed": True, "warnings": ["w"]}

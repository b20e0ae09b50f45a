"""Digests and descriptors: strict parsing, and content that does not match its digest."""

from __future__ import annotations

import hashlib

import pytest

from keyless.client.oci.descriptors import (
    OCI_EMPTY_BLOB,
    OCI_EMPTY_DIGEST,
    Descriptor,
    check_content,
    digest_of,
    tag_for_digest,
)
from keyless.client.oci.errors import DigestMismatchError, RegistryProtocolError

HEX = hashlib.sha256(b"x").hexdigest()


def test_empty_descriptor_digest_is_the_two_byte_blob():
    assert digest_of(OCI_EMPTY_BLOB) == OCI_EMPTY_DIGEST


def test_sha512_content_is_checked_with_sha512():
    digest = "sha512:" + hashlib.sha512(b"abc").hexdigest()
    check_content(b"abc", digest, what="blob")
    with pytest.raises(DigestMismatchError):
        check_content(b"abd", digest, what="blob")


def test_content_mismatch_names_both_digests():
    with pytest.raises(DigestMismatchError) as caught:
        check_content(b"y", f"sha256:{HEX}", what="blob b")
    assert caught.value.message == (
        f"blob b: content hashes to {digest_of(b'y')}, expected sha256:{HEX}"
    )


def test_tags_for_a_digest():
    assert tag_for_digest(f"sha256:{HEX}") == f"sha256-{HEX}"
    assert tag_for_digest(f"sha256:{HEX}", ".sig") == f"sha256-{HEX}.sig"


def test_descriptor_round_trip_keeps_optional_fields():
    obj = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": f"sha256:{HEX}",
        "size": 12,
        "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "annotations": {"a": "b"},
        "platform": {"os": "linux", "architecture": "arm64"},
    }
    assert Descriptor.from_json(obj).to_json() == obj


GOOD = {"mediaType": "application/x+json", "digest": f"sha256:{HEX}", "size": 1}


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        pytest.param([], "d is not a JSON object", id="not-object"),
        pytest.param({**GOOD, "mediaType": "nonsense"}, "d has an invalid mediaType", id="bad-mt"),
        pytest.param({**GOOD, "digest": None}, "d has no digest", id="no-digest"),
        pytest.param(
            {**GOOD, "digest": "sha1:" + "0" * 40},
            "d: unsupported digest algorithm 'sha1'",
            id="sha1-digest",
        ),
        pytest.param({**GOOD, "size": -1}, "d has an invalid size", id="negative-size"),
        pytest.param({**GOOD, "size": True}, "d has an invalid size", id="bool-size"),
        pytest.param({**GOOD, "size": "1"}, "d has an invalid size", id="string-size"),
        pytest.param(
            {**GOOD, "artifactType": 3}, "d has an invalid artifactType", id="bad-artifact-type"
        ),
        pytest.param({**GOOD, "annotations": []}, "d has invalid annotations", id="list-notes"),
        pytest.param(
            {**GOOD, "annotations": {"k": 1}}, "d has an invalid annotation 'k'", id="int-note"
        ),
        pytest.param(
            {**GOOD, "annotations": {str(i): "" for i in range(65)}},
            "d has more than 64 annotations",
            id="too-many-notes",
        ),
        pytest.param(
            {**GOOD, "annotations": {"k": "v" * 70000}},
            "d has an invalid annotation 'k'",
            id="huge-note",
        ),
    ],
)
def test_descriptor_refuses(obj, message):
    with pytest.raises(RegistryProtocolError) as caught:
        Descriptor.from_json(obj, what="d")
    assert caught.value.message == message

"""Bundles written as proto3 JSON (sigstore-js) omit default values; keyless restores only those
that can legitimately be defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyless.client.bundle import Bundle
from keyless.client.verify import BundleError


@pytest.fixture
def document(vectors: Path) -> dict:
    cases = vectors / "sigstore-conformance" / "test" / "assets" / "bundle-verify"
    path = next(
        p for p in sorted(cases.glob("*/bundle.sigstore.json")) if "_fail" not in p.parent.name
    )
    return json.loads(path.read_text())


def _entry(document: dict) -> dict:
    return document["verificationMaterial"]["tlogEntries"][0]


def test_omitted_log_index_and_hashes_mean_zero_and_empty(document: dict) -> None:
    entry = _entry(document)
    entry["logIndex"] = "0"
    entry["inclusionProof"]["logIndex"] = "0"
    explicit = Bundle.from_json(json.dumps(document))
    del entry["logIndex"], entry["inclusionProof"]["logIndex"], entry["inclusionProof"]["hashes"]
    restored = Bundle.from_json(json.dumps(document))
    assert restored.entry.log_index == 0
    assert restored.entry.inclusion_proof.log_index == 0
    assert restored.entry.inclusion_proof.hashes == ()
    assert explicit.entry.log_id == restored.entry.log_id


@pytest.mark.parametrize("field", ["canonicalizedBody", "logId", "kindVersion", "inclusionProof"])
def test_fields_without_a_legitimate_default_stay_required(document: dict, field: str) -> None:
    del _entry(document)[field]
    with pytest.raises(BundleError) as info:
        Bundle.from_json(json.dumps(document))
    assert info.value.message.startswith("verification failed (bundle): malformed bundle: ")

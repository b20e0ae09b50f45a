"""Every issuance and every refusal is one JSON line on the `keyless.audit` logger: what an
auditor needs (time, serial, identity, issuer, key, SCT, client address), never the token."""

from __future__ import annotations

import json
import logging

from tests.ca.helpers import chain_of, csr_pem, p256, post_csr


def _records(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "keyless.audit"]


def test_an_issuance_is_one_json_line(server_ca, caplog) -> None:
    caplog.set_level(logging.INFO, logger="keyless.audit")
    token = server_ca.email_token()
    chain = chain_of(post_csr(server_ca.url, token, csr_pem(p256())))
    (record,) = _records(caplog)
    leaf = chain[0]
    assert record["event"] == "issued"
    assert record["serial"] == f"{leaf.serial_number:x}"
    assert record["identity"] == ["alice@example.com"]
    assert record["issuer"] == server_ca.issuer.issuer_url
    assert record["key_algorithm"] == "secp256r1"
    assert record["client"] == "127.0.0.1"
    assert record["path"] == "/api/v2/signingCert"
    assert record["sct"] == "embedded" and isinstance(record["sct_timestamp"], int)
    assert record["time"].endswith("Z")
    assert token not in caplog.text
    assert token.split(".")[1] not in caplog.text


def test_a_refusal_is_one_json_line_with_its_reason(server_ca, caplog) -> None:
    caplog.set_level(logging.INFO, logger="keyless.audit")
    token = server_ca.email_token(audience="not-sigstore")
    before = server_ca.ct_size()
    response = post_csr(server_ca.url, token, csr_pem(p256()))
    assert response.status_code == 400, response.text
    (record,) = _records(caplog)
    assert record["event"] == "refused"
    assert record["status"] == 400
    assert record["reason"] == "aud-mismatch"
    assert record["client"] == "127.0.0.1"
    assert "serial" not in record
    assert token not in caplog.text
    assert server_ca.ct_size() == before

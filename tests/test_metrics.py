"""/metrics for real: `keyless serve` with two gunicorn workers sums every worker's counts, and
each service counts its own events (issuance, refusals, log appends, CT, TSA) on the dev
server."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client.parser import text_string_to_metric_families
from rfc3161_client import TimestampRequestBuilder

from keyless.client.sign.fulcio import CAClient
from tests.conftest import keyless_serve

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample of `url`/metrics, by name and labels."""
    reply = requests.get(f"{url}/metrics", headers={"Connection": "close"}, timeout=10)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@contextmanager
def serve_two_workers(tmp_path: Path, metrics_dir: Path) -> Iterator[str]:
    config = tmp_path / "server.yaml"
    config.write_text(
        f"state-dir: {tmp_path / 'state'}\n"
        "dev-issuer: {enabled: true}\n"
        "server: {workers: 2, threads: 4}\n"
    )
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with keyless_serve(
        "--config", str(config), env=environment, stdout=subprocess.DEVNULL, start_seconds=60
    ) as (url, _):
        yield url


def _csr() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def _writers(metrics_dir: Path) -> set[str]:
    """The pids whose counters are on disk: the master's (made before the fork) and each
    worker's that counted something."""
    return {path.stem.rsplit("_", 1)[1] for path in metrics_dir.glob("counter_*.db")}


def _issue(url: str) -> None:
    # A new connection each time, so the kernel hands requests to either worker.
    session = requests.Session()
    session.headers["Connection"] = "close"
    token = session.post(f"{url}/oidc/mint", json={"email": "a@example.com"}, timeout=10)
    key = ec.generate_private_key(ec.SECP256R1())
    CAClient(url, session=session).signing_certificate(token.json()["id_token"], key)


def test_two_workers_counts_are_summed(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    stale = metrics_dir / "counter_1.db"
    stale.write_bytes(b"a file from the last run, which the start must remove")
    with serve_two_workers(tmp_path, metrics_dir) as url:
        assert not stale.exists()
        # Batches of concurrent requests on new connections until both workers have served
        # some (each worker's counts are in files named by its pid, beside the master's).
        issued = 0
        while issued < 80 and len(_writers(metrics_dir)) < 3:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda _: _issue(url), range(8)))
            issued += 8
        refused = requests.post(
            f"{url}/api/v2/signingCert",
            json={"certificateSigningRequest": base64.b64encode(_csr()).decode()},
            headers={"Authorization": "Bearer not-a-token"},
            timeout=10,
        )
        assert refused.status_code == 400
        assert len(_writers(metrics_dir)) >= 3, "one worker served every request"
        # Whichever worker answers /metrics, it reports every worker's counts.
        for _ in range(6):
            samples = scrape(url)
            assert value(samples, "fulcio_new_certs") == issued
            assert value(samples, "keyless_ca_ct_submissions_total", result="logged") == issued
            assert value(samples, "keyless_ca_refusals_total", reason="token-malformed") == 1
            route = "/api/v2/signingCert"
            assert (
                value(samples, "http_requests_total", route=route, method="POST", code="200")
                == issued
            )
            assert value(samples, "fulcio_api_latency_count", method=route, code="200") == issued
            assert value(samples, "fulcio_api_latency_count", method=route, code="400") == 1
        text = requests.get(f"{url}/metrics", timeout=10).text
        # Fulcio's dashboards query the Go counter's name, without prometheus-client's _total.
        assert f"\nfulcio_new_certs {issued}.0\n" in text
        assert "fulcio_new_certs_total" not in text


def _ecdsa_public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _v1_entry(artifact: bytes) -> dict:
    key = ec.generate_private_key(ec.SECP256R1())
    signature = key.sign(artifact, ec.ECDSA(hashes.SHA256()))
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {
                "hash": {"algorithm": "sha256", "value": hashlib.sha256(artifact).hexdigest()}
            },
            "signature": {
                "content": base64.b64encode(signature).decode(),
                "publicKey": {"content": base64.b64encode(_ecdsa_public_pem(key)).decode()},
            },
        },
    }


def _v2_entry(artifact: bytes) -> dict:
    key = ec.generate_private_key(ec.SECP256R1())
    signature = key.sign(artifact, ec.ECDSA(hashes.SHA256()))
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "hashedRekordRequestV002": {
            "digest": base64.b64encode(hashlib.sha256(artifact).digest()).decode(),
            "signature": {
                "content": base64.b64encode(signature).decode(),
                "verifier": {
                    "publicKey": {"rawBytes": base64.b64encode(spki).decode()},
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                },
            },
        }
    }


def test_log_appends_are_counted_v1_and_v2(server) -> None:
    before = scrape(server.url)
    artifact = os.urandom(16)
    v1 = requests.post(f"{server.url}/api/v1/log/entries", json=_v1_entry(artifact), timeout=10)
    assert v1.status_code == 201
    again = requests.post(f"{server.url}/api/v1/log/entries", json=v1_body(v1), timeout=10)
    assert again.status_code == 409
    v2 = requests.post(f"{server.url}/api/v2/log/entries", json=_v2_entry(artifact), timeout=10)
    assert v2.status_code == 201
    after = scrape(server.url)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("rekor_new_entries") == 1  # the duplicate is not an append
    assert grew("rekor_v2_new_hashedrekord_entries") == 1
    # Two group commits at least (one per log); a duplicate may commit nothing new.
    assert grew("keyless_tlog_commit_seconds_count") >= 2
    path = "/api/v1/log/entries"
    assert grew("rekor_api_latency_count", path=path, code="201") == 1
    assert grew("rekor_api_latency_count", path=path, code="409") == 1
    assert grew("rekor_api_latency_count", path="/api/v2/log/entries", code="201") == 1


def v1_body(response: requests.Response) -> dict:
    """The proposed entry again, from the logged body (a duplicate of it)."""
    import json

    [entry] = response.json().values()
    return json.loads(base64.b64decode(entry["body"]))


def test_timestamps_granted_rejected_and_refused_are_counted(server) -> None:
    url = f"{server.url}/api/v1/timestamp"
    before = scrape(server.url)
    query = TimestampRequestBuilder().data(b"signature").nonce(nonce=True).build()
    headers = {"Content-Type": "application/timestamp-query"}
    granted = requests.post(url, data=query.as_bytes(), headers=headers, timeout=10)
    assert granted.status_code == 200
    rejected = requests.post(url, data=b"\x30\x03\x02\x01\x01", headers=headers, timeout=10)
    assert rejected.status_code == 400
    refused = requests.post(url, data=b"x", headers={"Content-Type": "text/plain"}, timeout=10)
    assert refused.status_code == 415
    after = scrape(server.url)
    for result in ("granted", "rejected", "refused"):
        grown = value(after, "keyless_tsa_timestamps_total", result=result) - value(
            before, "keyless_tsa_timestamps_total", result=result
        )
        assert grown == 1, result


def test_ct_submissions_over_http_are_counted_by_result(server) -> None:
    before = scrape(server.url)
    reply = requests.post(f"{server.url}/ct/v1/add-chain", json={"chain": []}, timeout=10)
    assert reply.status_code == 400
    after = scrape(server.url)
    refusals = [
        key
        for key, count in after.items()
        if key[0] == "keyless_ct_submissions_total"
        and ("endpoint", "add-chain") in key[1]
        and count > before.get(key, 0.0)
    ]
    assert len(refusals) == 1
    assert ("result", "logged") not in refusals[0][1]


def test_a_refusal_counts_its_reason_and_issues_nothing(server) -> None:
    before = scrape(server.url)
    token = server.email_token()
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    # A proof of possession signed by another key than the one to certify.
    proof = other.sign(b"alice@example.com", ec.ECDSA(hashes.SHA256()))
    reply = requests.post(
        f"{server.url}/api/v2/signingCert",
        json={
            "credentials": {"oidcIdentityToken": token},
            "publicKeyRequest": {
                "publicKey": {"algorithm": "ECDSA", "content": _ecdsa_public_pem(key).decode()},
                "proofOfPossession": base64.b64encode(proof).decode(),
            },
        },
        timeout=10,
    )
    assert reply.status_code == 400
    reason = reply.json()["details"][0]["reason"]
    after = scrape(server.url)
    assert value(after, "keyless_ca_refusals_total", reason=reason) == (
        value(before, "keyless_ca_refusals_total", reason=reason) + 1
    )
    assert value(after, "fulcio_new_certs") == value(before, "fulcio_new_certs")


@pytest.mark.parametrize("path", ["/no/such/route", "/api/v1/log/entries/" + "ab" * 40])
def test_request_labels_are_route_patterns_not_raw_paths(server, path: str) -> None:
    requests.get(f"{server.url}{path}", timeout=10)
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    assert path not in text

"""The CA with a remote CT log over HTTP: success, an unreachable log, and a refusing log."""

from __future__ import annotations

import socket

from tests.ca.conftest import ca_server
from tests.ca.ctverify import verify_embedded_sct
from tests.ca.helpers import chain_of, csr_pem, p256, post_csr

CT_FAILED = "Error entering certificate in CTL"


def test_remote_ct_log_over_http(server_ca, tmp_path):
    before = server_ca.ct_size()
    with ca_server(tmp_path, ca_dir=server_ca.state / "ca", ct_url=server_ca.url) as remote:
        own_before = remote.ct_size()
        chain = chain_of(post_csr(remote.url, remote.email_token(), csr_pem(p256())))
        assert remote.ct_size() == own_before
    assert server_ca.ct_size() == before + 1
    verify_embedded_sct(chain[0], issuer=chain[1], log_key=server_ca.ct_log.public_key)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_ct_log_issues_nothing(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}"
    with ca_server(tmp_path, ct_url=url) as remote:
        response = post_csr(remote.url, remote.email_token(), csr_pem(p256()))
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == 13 and body["message"] == CT_FAILED
    assert "BEGIN CERTIFICATE" not in response.text


def test_ct_log_refusing_the_root_issues_nothing(server_ca, detached_ca, tmp_path):
    # The detached CA's log accepts only the detached CA's root, not this CA's.
    before = detached_ca.ct_size()
    with ca_server(tmp_path, ca_dir=server_ca.state / "ca", ct_url=detached_ca.url) as remote:
        response = post_csr(remote.url, remote.email_token(), csr_pem(p256()))
    assert response.status_code == 500
    assert response.json()["message"] == CT_FAILED
    assert detached_ca.ct_size() == before


def test_sct_checked_against_the_configured_log_key(server_ca, tmp_path):
    options = {"ca_dir": server_ca.state / "ca", "ct_url": server_ca.url}
    with ca_server(tmp_path / "good", ct_log_key=server_ca.ct_log.public_key, **options) as ca:
        chain = chain_of(post_csr(ca.url, ca.email_token(), csr_pem(p256())))
    verify_embedded_sct(chain[0], issuer=chain[1], log_key=server_ca.ct_log.public_key)


def test_sct_from_an_unexpected_log_issues_nothing(server_ca, detached_ca, tmp_path):
    options = {"ca_dir": server_ca.state / "ca", "ct_url": server_ca.url}
    with ca_server(tmp_path, ct_log_key=detached_ca.ct_log.public_key, **options) as ca:
        response = post_csr(ca.url, ca.email_token(), csr_pem(p256()))
    assert response.status_code == 500
    body = response.json()
    assert body["message"] == CT_FAILED
    assert body["details"][0]["metadata"]["detail"] == "the SCT is from another CT log"
    assert "BEGIN CERTIFICATE" not in response.text

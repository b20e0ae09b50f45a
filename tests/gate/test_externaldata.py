"""Gatekeeper's external data (`externaldata.gatekeeper.sh/v1beta1` ProviderRequest and
ProviderResponse), judged by the gate's evaluator and cache: in process for the protocol, and
through `keyless gate serve` for TLS 1.3, mutual TLS and a real registry."""

from __future__ import annotations

import json
import ssl

import pytest
import requests
from requests.adapters import HTTPAdapter
from werkzeug.test import Client

from keyless.client.policy import load_policy_set
from keyless.server.gate.app import create_gate_app
from keyless.server.gate.gate import GateSettings
from tests.gate.webhook import cip, run_gate, static
from tests.registry import make_tls_material

DIGEST = "sha256:" + "ef" * 32
POLICIES = (
    cip("acme", static("pass"), glob="ghcr.io/acme/**")
    + "---\n"
    + cip(
        "vendor", static("fail", message="vendor images are not allowed"), glob="vendor.example/**"
    )
)


def provider_request(*keys: object) -> dict:
    return {
        "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
        "kind": "ProviderRequest",
        "request": {"keys": list(keys)},
    }


@pytest.fixture
def client(tmp_path) -> Client:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICIES)
    settings = GateSettings(timeout=5.0, workers=2, external_data_timeout=2.0)
    return Client(create_gate_app(load_policy_set([policy]), settings))


def _ask(client: Client, path: str, body: object, status: int = 200) -> dict:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = client.post(path, data=data, content_type="application/json")
    assert answer.status_code == status, answer.data
    document = json.loads(answer.data)
    assert (document["apiVersion"], document["kind"]) == (
        "externaldata.gatekeeper.sh/v1beta1",
        "ProviderResponse",
    )
    return document["response"]


def test_verify_answers_each_key_and_errors_only_deterministic_refusals(client) -> None:
    passing, failing = f"ghcr.io/acme/app@{DIGEST}", f"vendor.example/tool@{DIGEST}"
    response = _ask(
        client,
        "/externaldata/verify",
        provider_request(passing, failing, "Not A Reference", passing),
    )
    assert response["idempotent"] is True
    assert "systemError" not in response
    first, second, third = response["items"]  # the repeated key is answered once
    assert first["key"] == passing and "error" not in first
    assert first["value"]["allowed"] is True and first["value"]["digest"] == DIGEST
    assert first["value"]["policies"][0] == {
        "name": "acme",
        "mode": "enforce",
        "passed": True,
        "authority": "static",
        "signer": None,
        "issuer": None,
    }
    assert second["key"] == failing and second["value"]["allowed"] is False
    assert "vendor images are not allowed" in second["error"]
    assert third["key"] == "Not A Reference" and "invalid reference" in third["error"]


def test_a_registry_that_cannot_answer_is_a_system_error_not_an_answer(
    tmp_path, hanging_registry
) -> None:
    """Gatekeeper caches items, errors included, for minutes; a transient failure must not be
    one of them."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(cip("all", static("pass")))
    settings = GateSettings(timeout=5.0, workers=2, external_data_timeout=1.0)
    app = create_gate_app(load_policy_set([policy]), settings, allow_insecure_registry=True)
    tagged = f"{hanging_registry}/acme/app:1.0"
    pinned = f"ghcr.io/acme/app@{DIGEST}"
    response = _ask(Client(app), "/externaldata/verify", provider_request(tagged, pinned))
    assert [item["key"] for item in response["items"]] == [pinned]
    assert response["systemError"].startswith(f"{tagged}: could not judge {tagged} within")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "the ProviderRequest is not valid JSON"),
        (b'{"kind": "ProviderRequest", "kind": "ProviderRequest"}', "duplicate field 'kind'"),
        ({"apiVersion": "v1", "kind": "ProviderRequest", "request": {"keys": []}}, "expected"),
        (provider_request(*[f"ghcr.io/a/b:{i}" for i in range(10_000)]), "at most 1000 keys"),
        (provider_request(["nested"]), "request.keys[0]: must be an image reference"),
        (provider_request("x" * 513), "request.keys[0]: must be an image reference"),
        (b"[" * 100 + b"]" * 100, "nested"),
    ],
    ids=["not-json", "duplicate-key", "wrong-kind", "10000-keys", "nested", "long", "deep"],
)
def test_a_request_that_is_not_a_provider_request_is_400(client, body, message) -> None:
    response = _ask(client, "/externaldata/verify", body, status=400)
    assert response["items"] == []
    assert message in response["systemError"]


def test_an_oversized_body_is_413_with_a_system_error(client) -> None:
    response = _ask(client, "/externaldata/verify", b" " * (5 * 1024 * 1024), status=413)
    assert "larger than" in response["systemError"]


def test_mutate_leaves_digests_and_refuses_bad_references(client) -> None:
    pinned = f"ghcr.io/acme/app@{DIGEST}"
    response = _ask(client, "/externaldata/mutate", provider_request(pinned, "ghcr.io/Acme/App"))
    assert response["items"][0] == {"key": pinned, "value": pinned}
    assert "must be lowercase" in response["items"][1]["error"]


# Through `keyless gate serve`: TLS 1.3, mutual TLS, tags pinned against a real registry.


class _TLS12(HTTPAdapter):
    """A client that speaks at most TLS 1.2, trusting `ca` and presenting `cert`."""

    def __init__(self, ca: str, cert: tuple[str, str]) -> None:
        self._context = ssl.create_default_context(cafile=ca)
        self._context.maximum_version = ssl.TLSVersion.TLSv1_2
        self._context.load_cert_chain(*cert)
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["ssl_context"] = self._context
        return super().init_poolmanager(*args, **kwargs)


def _post(session: requests.Session, url: str, body: dict) -> requests.Response:
    return session.post(url, json=body, timeout=30)


@pytest.fixture(scope="module")
def pushed(registry):
    from tests.registry import Pusher

    return Pusher(registry).push_image("externaldata/app", "1.0", seed="external data")


def test_over_tls_13_with_mutual_tls_and_a_real_registry(tmp_path, registry, pushed) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(cip("release", static("pass"), glob=f"{registry.host}/externaldata/**"))
    clients = tmp_path / "clients"
    clients.mkdir()
    client_ca, client_cert, client_key = make_tls_material(clients)
    strangers = tmp_path / "strangers"
    strangers.mkdir()
    _, stranger_cert, stranger_key = make_tls_material(strangers)
    arguments = ("--policy", str(policy), "--allow-insecure-registry", "--client-ca", client_ca)
    with run_gate(tmp_path / "gate", *arguments) as gate:
        url = gate.url + "/externaldata"
        # Without a client certificate: refused, as a system error Gatekeeper does not cache.
        refused = _post(gate.session, url + "/verify", provider_request(pushed.reference))
        assert refused.status_code == 403
        assert refused.json()["response"]["systemError"] == (
            "external data needs a client certificate (--client-ca)"
        )
        # The admission webhooks need none.
        assert gate.session.get(gate.url + "/healthz", timeout=10).status_code == 200
        gate.session.cert = (client_cert, client_key)
        verified = _post(gate.session, url + "/verify", provider_request(pushed.reference))
        assert verified.status_code == 200
        (item,) = verified.json()["response"]["items"]
        # A tag an enforce policy matches is refused as the validating webhook refuses it...
        assert (
            item["value"]["digest"] == pushed.digest
            and "must be an image digest" in (item["error"])
        )
        # ...and pinned by the mutation provider, for Gatekeeper's Assign.
        mutated = _post(gate.session, url + "/mutate", provider_request(pushed.reference))
        (pin,) = mutated.json()["response"]["items"]
        assert pin == {"key": pushed.reference, "value": f"{pushed.reference}@{pushed.digest}"}
        digest_ref = f"{registry.host}/externaldata/app@{pushed.digest}"
        again = _post(gate.session, url + "/verify", provider_request(digest_ref))
        (ok,) = again.json()["response"]["items"]
        assert ok["value"]["allowed"] is True and "error" not in ok
        # TLS 1.2 is refused on these paths (Gatekeeper's client requires 1.3).
        old = requests.Session()
        old.mount("https://", _TLS12(gate.ca_bundle, (client_cert, client_key)))
        downgraded = _post(old, url + "/verify", provider_request(digest_ref))
        assert downgraded.status_code == 403
        assert downgraded.json()["response"]["systemError"] == (
            "external data needs TLS 1.3, not TLSv1.2"
        )
        # A client certificate from another CA does not get through the handshake.
        stranger = requests.Session()
        stranger.verify, stranger.cert = gate.ca_bundle, (stranger_cert, stranger_key)
        with pytest.raises(requests.exceptions.SSLError):
            _post(stranger, url + "/verify", provider_request(digest_ref))

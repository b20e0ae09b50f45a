"""Every route of `keyless serve` and of the gate answers with a trailing slash exactly as without
one, for each of its methods, straight away (no redirect: a client that does not follow one
would lose its POST). The routes come from each app's URL map, so a new route is covered the day
it is added; sigstore-python 3.x's `POST /api/v1/log/entries/` and Rekor clients'
`GET /api/v1/log/entries/?logIndex=N` are checked end to end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from keyless.client.policy.cip import PolicySet
from keyless.client.policy.evaluator import Evaluator
from keyless.server.gate.app import GateApp
from keyless.server.gate.gate import Gate, GateSettings
from keyless.server.gate.metrics import GateMetrics
from keyless.server.paths import clean_path
from tests.conftest import DevServer, dev_server, serve_wsgi
from tests.tlog.conftest import make_signer

# Answers that change from one request to the next (counts, a new device code, a checkpoint
# signed afresh with ECDSA): only their status and type are compared.
VARYING = {"/metrics", "/oidc/device/code", "/api/v1/log/entries/<entry_id>"}


@pytest.fixture(scope="module")
def keyless(tmp_path_factory) -> Iterator[DevServer]:
    """The composed app of its own (entries are logged here), with one entry in its v1 log."""
    with dev_server(tmp_path_factory.mktemp("state")) as running:
        yield running


@pytest.fixture(scope="module")
def entry(keyless: DevServer) -> tuple[str, int]:
    """The UUID and index of an entry, posted as sigstore-python 3.x posts: with a slash."""
    posted = requests.post(
        f"{keyless.url}/api/v1/log/entries/",
        json=make_signer().hashedrekord(b"posted with a trailing slash"),
        timeout=30,
    )
    assert posted.status_code == 201, posted.text
    [(uuid, body)] = posted.json().items()
    return uuid, body["logIndex"]


def _concrete(rule: str, entry_uuid: str) -> str:
    """A path for `rule` naming a real resource, so that the route's own answer is tested."""
    paths = {
        "/api/v1/log/entries/<entry_id>": f"/api/v1/log/entries/{entry_uuid}",
        "/api/v1/trust/<name>.json": "/api/v1/trust/trusted_root.json",
        "/tuf/<path:name>": "/tuf/1.root.json",
        # The v2 log is empty: its own 404 names the tile, so the slash is not in the value.
        "/api/v2/tile/<path:path>": "/api/v2/tile/0/000",
    }
    if "<" not in rule:
        return rule
    assert rule in paths, f"give tests/test_trailing_slash.py a concrete path for {rule}"
    return paths[rule]


def _ask(method: str, url: str) -> requests.Response:
    # A JSON body every POST route refuses with its own message: the same message with and
    # without a slash shows the body arrived.
    body: dict[str, Any] = {"data": b"{}"} if method == "POST" else {}
    headers = {"Content-Type": "application/json"} if method == "POST" else {}
    return requests.request(method, url, headers=headers, allow_redirects=False, timeout=30, **body)


def _check_every_route(base_url: str, rules: list[Any], entry_uuid: str = "") -> list[str]:
    """Ask each rule's path and method with and without a slash; return what was checked."""
    unrouted = _ask("GET", f"{base_url}/no/such/route")
    assert unrouted.status_code == 404
    checked = []
    for rule in rules:
        path = _concrete(rule.rule, entry_uuid)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            plain = _ask(method, base_url + path)
            slashed = _ask(method, f"{base_url}{path}/")
            where = f"{method} {path}/"
            assert not 300 <= plain.status_code < 400, where
            # The route itself answered, not the router.
            assert (plain.status_code, plain.content) != (404, unrouted.content), where
            assert slashed.status_code == plain.status_code, where
            assert slashed.headers.get("Content-Type") == plain.headers.get("Content-Type"), where
            if rule.rule not in VARYING:
                assert slashed.content == plain.content, where
            checked.append(where)
    return checked


def test_every_route_of_keyless_serve_answers_with_a_trailing_slash(keyless, entry) -> None:
    rules = list(keyless.app.url_map.iter_rules())
    checked = _check_every_route(keyless.url, rules, entry_uuid=entry[0])
    assert "POST /api/v1/log/entries/" in checked
    assert "GET /api/v1/timestamp/certchain/" in checked
    assert f"GET /api/v1/log/entries/{entry[0]}/" in checked
    assert len(checked) == sum(len(r.methods - {"HEAD", "OPTIONS"}) for r in rules)


def test_an_entry_posted_with_a_slash_is_read_back_with_a_slash(keyless, entry) -> None:
    uuid, index = entry
    by_index = requests.get(
        f"{keyless.url}/api/v1/log/entries/", params={"logIndex": index}, timeout=30
    )
    assert by_index.status_code == 200, by_index.text
    assert list(by_index.json()) == [uuid]
    by_uuid = requests.get(f"{keyless.url}/api/v1/log/entries/{uuid}/", timeout=30)
    assert list(by_uuid.json()) == [uuid]


def test_every_route_of_the_gate_answers_with_a_trailing_slash() -> None:
    evaluator = Evaluator(PolicySet(policies=(), trust={}), registry=lambda: None)
    app = GateApp(Gate(evaluator, GateSettings(), GateMetrics()))
    rules = list(app.url_map.iter_rules())
    with serve_wsgi(app) as url:
        checked = _check_every_route(url, rules)
        wrong_method = requests.get(f"{url}/validations/", timeout=30)
        assert (wrong_method.status_code, wrong_method.json()) == (
            405,
            {"error": "use POST with an AdmissionReview v1"},
        )
    assert sorted(checked) == [
        "GET /healthz/",
        "GET /metrics/",
        "POST /externaldata/mutate/",
        "POST /externaldata/verify/",
        "POST /mutations/",
        "POST /validations/",
    ]


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [
        ("/", "/"),
        ("", ""),
        ("/api/v1/log/entries/", "/api/v1/log/entries"),
        ("/api/v1/log/entries", "/api/v1/log/entries"),
        ("//api//v1/log/entries//", "/api/v1/log/entries"),
        ("/tuf/targets/abc.json/", "/tuf/targets/abc.json"),
    ],
)
def test_clean_path(path: str, cleaned: str) -> None:
    assert clean_path(path) == cleaned

"""The gate end to end: `keyless serve` (CA, logs, dev tokens), Debian's docker-registry,
`keyless sign IMAGE` by alice, and `keyless gate serve` over TLS answering AdmissionReviews.

The gate admits alice's image for a policy naming alice, refuses it for a policy naming bob,
refuses an unsigned image, admits it in warn mode with a warning, and follows a re-pointed tag
to its new digest.
"""

from __future__ import annotations

from pathlib import Path

import jsonpatch
import pytest
import requests

from keyless.cli.main import main
from tests.gate.webhook import admission_review, cip, decoded_patch, pod, run_gate

ALICE = "alice@example.com"
BOB = "bob@example.com"


def _policy(server, email: str, *, name: str = "acme", mode: str = "enforce") -> str:
    authority = f"""  - name: dev
    keyless:
      url: {server.url}
      trustRootRef: keyless-dev
      identities:
      - issuer: {server.url}/oidc
        subject: {email}
"""
    return cip(name, authority, glob="127.0.0.1*/gate/**", mode=mode)


def _sign(server, image: str, email: str) -> None:
    token = server.email_token(email)
    argv = ["sign", "--server", server.url, "--identity-token", token]
    assert main([*argv, "--allow-insecure-registry", image]) == 0


@pytest.fixture(scope="module")
def trust_file(server, tmp_path_factory) -> Path:
    answer = requests.get(f"{server.url}/api/v1/trust/trusted_root.json", timeout=30)
    answer.raise_for_status()
    path = tmp_path_factory.mktemp("trust") / "keyless-dev.json"
    path.write_bytes(answer.content)
    return path


@pytest.fixture(scope="module")
def signed(server, registry):
    """`gate/signed:1.0`, pushed and signed by alice."""
    from tests.registry import Pusher

    image = Pusher(registry).push_image("gate/signed", "1.0", seed="gate e2e signed")
    _sign(server, image.reference, ALICE)
    return image


@pytest.fixture(scope="module")
def gate_for(server, trust_file, tmp_path_factory):
    """Start a gate with one policy text; the gates of a module are stopped at its end."""
    from contextlib import ExitStack

    with ExitStack() as stack:

        def start(text: str, *extra: str):
            workdir = tmp_path_factory.mktemp("gate")
            (workdir / "policy.yaml").write_text(text)
            arguments = ["--policy", str(workdir / "policy.yaml")]
            arguments += ["--trust-root", f"keyless-dev={trust_file}", "--allow-insecure-registry"]
            return stack.enter_context(run_gate(workdir, *arguments, *extra))

        yield start


@pytest.fixture(scope="module")
def alice_gate(server, gate_for):
    return gate_for(_policy(server, ALICE))


def _pinned(registry, repository: str, digest: str) -> str:
    return f"{registry.host}/{repository}@{digest}"


def _admit(gate, obj) -> tuple[dict, dict]:
    """Mutate then validate `obj` as the API server would: the patch is applied in between."""
    mutation = gate.review("/mutations", admission_review(obj))
    assert mutation["allowed"] is True
    patched = jsonpatch.apply_patch(obj, decoded_patch(mutation))
    return mutation, gate.review("/validations", admission_review(patched))


def test_policy_naming_alice_pins_the_tag_and_admits(registry, signed, alice_gate):
    tagged = signed.reference
    mutation, validation = _admit(alice_gate, pod(tagged))
    assert decoded_patch(mutation) == [
        {
            "op": "replace",
            "path": "/spec/containers/0/image",
            "value": f"{registry.host}/gate/signed:1.0@{signed.digest}",
        }
    ]
    assert validation == {"uid": validation["uid"], "allowed": True}
    # The pinned object again: nothing to patch, and a cache hit admits it.
    pinned = pod(f"{registry.host}/gate/signed:1.0@{signed.digest}")
    again = alice_gate.review("/mutations", admission_review(pinned))
    assert decoded_patch(again) == []
    assert alice_gate.review("/validations", admission_review(pinned))["allowed"] is True
    assert alice_gate.metric("keyless_gate_cache_hits_total", required=True) >= 1


def test_policy_naming_bob_refuses_and_says_who_signed(server, registry, signed, gate_for):
    gate = gate_for(_policy(server, BOB))
    pinned = _pinned(registry, "gate/signed", signed.digest)
    answer = gate.review("/validations", admission_review(pod(pinned)))
    assert answer["allowed"] is False
    assert answer["status"] == {
        "code": 403,
        "message": (
            f"spec.containers[0].image: {pinned}: acme/dev: signed by {ALICE} "
            f"({server.url}/oidc) but the policy wants {BOB} ({server.url}/oidc)"
        ),
    }
    assert "warnings" not in answer


def test_unsigned_image_is_refused_with_no_signature_found(server, registry, alice_gate):
    from tests.registry import Pusher

    image = Pusher(registry).push_image("gate/unsigned", "1.0", seed="gate e2e never signed")
    mutation, validation = _admit(alice_gate, pod(image.reference))
    pinned = _pinned(registry, "gate/unsigned", image.digest)
    assert (
        decoded_patch(mutation)[0]["value"] == f"{registry.host}/gate/unsigned:1.0@{image.digest}"
    )
    assert validation["allowed"] is False
    assert validation["status"]["code"] == 403
    assert validation["status"]["message"] == (
        f"spec.containers[0].image: acme/dev: no signature found for {pinned}"
    )


def test_warn_mode_admits_with_a_warning_and_pins_nothing(server, registry, signed, gate_for):
    gate = gate_for(_policy(server, BOB, name="acme-audit", mode="warn"))
    mutation = gate.review("/mutations", admission_review(pod(signed.reference)))
    assert decoded_patch(mutation) == []
    pinned = _pinned(registry, "gate/signed", signed.digest)
    answer = gate.review("/validations", admission_review(pod(pinned)))
    assert answer["allowed"] is True
    assert "status" not in answer
    assert answer["warnings"] == [
        f"spec.containers[0].image: {pinned}: acme-audit/dev: signed by {ALICE} "
        f"({server.url}/oidc) but the policy wants {BOB} ({server.url}/oidc)"
    ]


def test_a_repointed_tag_is_pinned_to_its_new_digest(server, registry, alice_gate):
    from tests.registry import Pusher

    pusher = Pusher(registry)
    first = pusher.push_image("gate/moving", "stable", seed="gate e2e moving 1")
    _sign(server, first.reference, ALICE)
    mutation, validation = _admit(alice_gate, pod(first.reference))
    assert decoded_patch(mutation)[0]["value"].endswith(f":stable@{first.digest}")
    assert validation["allowed"] is True

    second = pusher.push_image("gate/moving", "stable", seed="gate e2e moving 2")
    assert second.digest != first.digest
    mutation, validation = _admit(alice_gate, pod(second.reference))
    assert decoded_patch(mutation) == [
        {
            "op": "replace",
            "path": "/spec/containers/0/image",
            "value": f"{registry.host}/gate/moving:stable@{second.digest}",
        }
    ]
    # Not signed yet: the new digest is judged on its own, not by the old digest's verdict.
    assert validation["allowed"] is False
    assert "no signature found for" in validation["status"]["message"]
    _sign(server, second.reference, ALICE)
    mutation, validation = _admit(alice_gate, pod(second.reference))
    assert validation["allowed"] is True


def test_concurrent_admissions_of_one_new_digest_verify_it_once(server, registry, alice_gate):
    """16 admissions at once, each a pod with 8 containers of one digest nobody judged yet:
    one verification in all (the others wait for it or hit the cache it fills)."""
    import threading

    from tests.registry import Pusher

    image = Pusher(registry).push_image("gate/popular", "1.0", seed="gate e2e popular")
    _sign(server, image.reference, ALICE)
    pinned = _pinned(registry, "gate/popular", image.digest)

    def verifications() -> float:
        return alice_gate.metric("keyless_gate_verify_seconds_count", required=True)

    before = verifications()
    start = threading.Barrier(16)
    answers: list[dict] = []

    def admit() -> None:
        review = admission_review(pod(*[pinned] * 8))
        start.wait()
        answers.append(alice_gate.review("/validations", review))

    threads = [threading.Thread(target=admit) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a["allowed"] for a in answers] == [True] * 16
    assert verifications() - before == 1

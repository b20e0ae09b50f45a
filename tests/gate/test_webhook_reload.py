"""`keyless gate serve` as a process: policies that reload, and the decision log's file."""

from __future__ import annotations

import json
import time

from tests.gate.webhook import admission_review, cip, pod, run_gate, static

DIGEST = "sha256:" + "cd" * 32
IMAGE = f"ghcr.io/acme/app@{DIGEST}"


def _allowed(gate) -> bool:
    return gate.review("/validations", admission_review(pod(IMAGE)))["allowed"]


def _until(check, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("the gate did not pick up the policy change in time")


def test_a_changed_policy_file_is_judged_by_without_a_restart(tmp_path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(cip("acme", static("pass"), glob="ghcr.io/acme/**"))
    decisions = tmp_path / "decisions.jsonl"
    arguments = ("--policy", str(policy), "--reload-interval", "0.2s")
    with run_gate(tmp_path / "gate", *arguments, "--decision-log", str(decisions)) as gate:
        assert _allowed(gate)
        policy.write_text(cip("acme", static("fail", message="revoked"), glob="ghcr.io/acme/**"))
        _until(lambda: not _allowed(gate))
        policy.write_text("not: [a, policy")
        _until(lambda: gate.metric("keyless_gate_policy_reload_failing") == 1)
        assert not _allowed(gate)
        assert "policy reload refused, the old policies stay" in gate.output()
    lines = [json.loads(line) for line in decisions.read_text().splitlines()]
    assert lines[0]["allowed"] is True and lines[-1]["allowed"] is False
    assert {line["images"][0]["digest"] for line in lines} == {DIGEST}

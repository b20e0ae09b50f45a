"""Every stored sigstore-conformance bundle-verify case, through `keyless verify-bundle`.

Each case runs twice, as the suite does: with the artifact path and with `sha256:<hex>`. Must-pass
cases exit 0; must-fail cases exit 1 and name the check that should fail, with a fragment of
the reason, so a client that fails for the wrong reason does not pass.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from keyless.cli.main import main
from tests.conftest import DATA

DEFAULT_IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
DEFAULT_ISSUER = "https://token.actions.githubusercontent.com"

# case -> (check named in the error, fragment of the reason).
EXPECTED_FAILURES: dict[str, tuple[str, str]] = {
    "bundle-empty-certificate-chain_fail": ("bundle", "certificate chain is empty"),
    "bundle-from-wrong-instance_fail": ("log-entry", "is not a transparency log in the trusted"),
    "bundle-invalid-base64-signature_fail": ("bundle", "messageSignature.signature"),
    "bundle-malformed-json_fail": ("bundle", "bundle is not valid JSON"),
    "bundle-negative-log-index_fail": ("bundle", "logIndex"),
    "bundle-unknown-version_fail": ("bundle", "mediaType"),
    "bundle-with-root-cert_fail": ("certificate-chain", "a root that is not in the trusted root"),
    "checkpoint-bad-keyhint_fail": ("checkpoint", "no signature by the log's key"),
    "checkpoint-wrong-roothash_fail": ("inclusion-proof", "does not match checkpoint"),
    "dsse-invalid-sig_fail": ("signature", "over the DSSE envelope does not verify"),
    "dsse-mismatch-envelope_fail": ("log-body", "payload hash does not match"),
    "dsse-mismatch-sig_fail": ("log-body", "signature does not match the DSSE signature"),
    "inclusion-proof-corrupted-hash_fail": ("inclusion-proof", "does not match checkpoint root"),
    # The tampered key is inside the canonicalized body, which the SET signs.
    "incorrect-public-key_fail": ("signed-entry-timestamp", "does not verify"),
    "integrated-time-in-future_fail": ("certificate-validity", "2026-05-07T15:34:11Z is outside"),
    "intoto-expired-certificate_fail": ("certificate-validity", "is outside the certificate"),
    # Its entry's signature is base64 once, not twice as intoto 0.0.2 writes it.
    "intoto-log-entry-mismatch_fail": ("log-body", "sig' is not base64 of base64"),
    "intoto-missing-inclusion-proof_fail": ("bundle", "inclusionProof: Field required"),
    "intoto-set-outside-signing-cert-validity_fail": ("certificate-validity", "is outside"),
    "intoto-tsa-timestamp-outside-cert-validity_fail": ("certificate-validity", "is outside"),
    "invalid-checkpoint-signature_fail": ("checkpoint", "does not verify"),
    "invalid-ct-key_fail": ("sct", "no SCT is from a CT log in the trusted root"),
    # The stale proof comes without a checkpoint, which a v0.2 bundle must carry.
    "invalid-inclusion-proof_fail": ("bundle", "must carry a checkpoint"),
    "managed-key-no-key_fail": ("key-material", "signed with a managed key"),
    "managed-key-wrong-key_fail": ("key", "is not a valid PEM public key"),
    "message-digest-mismatch_fail": ("message-digest", "is not the artifact's sha256"),
    "rekor2-checkpoint-missing-log-signature_fail": ("checkpoint", "signed note"),
    "rekor2-checkpoint-missing-origin_fail": ("checkpoint", "needs an origin"),
    "rekor2-checkpoint-missing-root-hash_fail": ("checkpoint", "needs an origin"),
    "rekor2-checkpoint-missing-size_fail": ("checkpoint", "needs an origin"),
    "rekor2-checkpoint-no-matching-signature_fail": ("checkpoint", "no signature by the log"),
    "rekor2-dsse-invalid-sig_fail": ("signature", "over the DSSE envelope does not verify"),
    "rekor2-dsse-mismatch-envelope_fail": ("log-body", "does not match the PAE"),
    "rekor2-dsse-mismatch-sig_fail": ("log-body", "signature does not match"),
    "rekor2-no-inclusion-proof_fail": ("bundle", "inclusionProof: Field required"),
    "rekor2-no-timestamp_fail": ("bundle", "neither an inclusion promise nor an RFC 3161"),
    "rekor2-timestamp-outside-trust-root-tsa-validity_fail": ("timestamp", "outside the trusted"),
    "rekor2-timestamp-outside-tsa-cert-validity_fail": ("timestamp", "certificate has expired"),
    "rekor2-timestamp-payload-mismatch_fail": ("timestamp", "Mismatch between messages"),
    # FreeTSA's response is not strict DER (unsorted SET OF certificates); it is refused
    # before trust is even considered.
    "rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail": ("timestamp", "not a valid DER"),
    "rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail": (
        "timestamp",
        "does not verify against any trusted TSA",
    ),
    "rekor2-timestamp-with-incorrect-time_fail": ("certificate-validity", "is outside"),
    "set-invalid-signature_fail": ("signed-entry-timestamp", "does not verify"),
    "signature-mismatch_fail": ("signature", "over the artifact does not verify"),
    "trust-root-tlog-missing-validity-start_fail": ("trust-root", "validFor.start"),
    "wrong-hashedrekord-artifact_fail": ("log-body", "log entry is for artifact"),
    "wrong-hashedrekord-cert-and-sig_fail": ("log-body", "signature does not match"),
    "wrong-hashedrekord-entry_fail": ("log-body", "log entry is for artifact"),
    "wrong-material_fail": ("message-digest", "is not the artifact's sha256"),
}

# Cases that cannot pass, with the reason per entry. Empty: all 140 runs are expected to pass.
SKIPPED: dict[str, str] = {}

CASES_DIR = DATA / "sigstore-conformance/test/assets/bundle-verify"


def _case_names() -> list[str]:
    return sorted(p.name for p in CASES_DIR.iterdir() if p.is_dir()) if CASES_DIR.is_dir() else []


def test_expectations_cover_every_case() -> None:
    names = _case_names()
    assert len(names) == 70
    failing = {n for n in names if n.endswith("_fail")}
    assert len(failing) == 49
    assert failing == set(EXPECTED_FAILURES)


def _argv(case: Path, *, digest: bool) -> list[str]:
    artifact = case / "artifact" if (case / "artifact").exists() else case.parent / "a.txt"
    argv = ["verify-bundle", "--bundle", str(case / "bundle.sigstore.json")]
    if (case / "key.pub").exists():
        argv += ["--key", str(case / "key.pub")]
    else:
        identity = case / "identity"
        issuer = case / "issuer"
        argv += [
            "--certificate-identity",
            identity.read_text().strip() if identity.exists() else DEFAULT_IDENTITY,
            "--certificate-oidc-issuer",
            issuer.read_text().strip() if issuer.exists() else DEFAULT_ISSUER,
        ]
    if (case / "trusted_root.json").exists():
        argv += ["--trusted-root", str(case / "trusted_root.json")]
    if digest:
        argv.append("sha256:" + hashlib.sha256(artifact.read_bytes()).hexdigest())
    else:
        argv.append(str(artifact))
    return argv


@pytest.mark.parametrize("form", ["PATH", "DIGEST"])
@pytest.mark.parametrize("name", _case_names())
def test_verify(name: str, form: str, capsys: pytest.CaptureFixture[str]) -> None:
    if name in SKIPPED:
        pytest.skip(SKIPPED[name])
    code = main(_argv(CASES_DIR / name, digest=form == "DIGEST"))
    captured = capsys.readouterr()
    if not name.endswith("_fail"):
        assert code == 0, captured.err
        assert captured.out.startswith("OK: ")
        return
    check, fragment = EXPECTED_FAILURES[name]
    assert code == 1
    lines = captured.err.splitlines()
    assert lines, "a failure must say why"
    assert lines[0].startswith(f"error: verification failed ({check}): "), lines[0]
    assert fragment in lines[0]
    assert "Traceback" not in captured.err
    assert captured.out == ""

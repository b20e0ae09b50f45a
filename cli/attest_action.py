"""The GitHub Action's entry point (`action.yml`): sign files and images, attest provenance.

Inputs arrive as `KEYLESS_*` environment variables that action.yml maps from its inputs (never
interpolated into a shell script, so an input cannot inject commands). The job's OIDC token is
fetched once from GitHub (`ACTIONS_ID_TOKEN_REQUEST_URL`/`_TOKEN`, which exist only with
`permissions: id-token: write`) and used for every signature. With provenance, the SLSA v1
predicate is built from that token's claims, as `actions/attest-build-provenance` builds it.
Outputs go to `$GITHUB_OUTPUT`.

With the `key` input (`KEYLESS_KEY`: a key reference such as `env://COSIGN_PRIVATE_KEY`, whose
password `keyless` reads from `COSIGN_PASSWORD`, or `awskms://...`), every signature and
attestation is made with that key instead (`keyless sign --key`, `keyless attest --key`); the
job's token is then asked for only to build provenance.

Run as `python -m keyless.cli.attest_action`; exit status 0 only if every subject was signed (and
attested when asked).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from keyless.client.attest.predicates import SLSA_V1
from keyless.core.encoding import b64url_decode
from keyless.core.errors import Error, Reason

GITHUB_BUILD_TYPE = "https://actions.github.io/buildtypes/workflow/v1"
MAX_SUBJECTS = 256


class ActionError(Error):
    """An input the action cannot work with: reported as a GitHub `::error::` line."""

    reason = Reason.ACTION_INPUT_INVALID


def provenance_predicate(claims: Mapping[str, Any], server_url: str) -> dict[str, Any]:
    """SLSA v1 provenance for the job, from its OIDC token claims (attest-build-provenance's
    shape: wave2-research.md §4.4)."""
    try:
        repository = claims["repository"]
        workflow_ref = claims["workflow_ref"]
        ref = claims["ref"]
        sha = claims["sha"]
        job_workflow_ref = claims["job_workflow_ref"]
    except KeyError as exc:
        raise ActionError(f"the job's token lacks the {exc.args[0]} claim") from exc
    path = workflow_ref.removeprefix(f"{repository}/").partition("@")[0]
    return {
        "buildDefinition": {
            "buildType": GITHUB_BUILD_TYPE,
            "externalParameters": {
                "workflow": {"ref": ref, "repository": f"{server_url}/{repository}", "path": path}
            },
            "internalParameters": {
                "github": {
                    name: claims.get(name, "")
                    for name in (
                        "event_name",
                        "repository_id",
                        "repository_owner_id",
                        "runner_environment",
                    )
                }
            },
            "resolvedDependencies": [
                {"uri": f"git+{server_url}/{repository}@{ref}", "digest": {"gitCommit": sha}}
            ],
        },
        "runDetails": {
            "builder": {"id": f"{server_url}/{job_workflow_ref}"},
            "metadata": {
                "invocationId": f"{server_url}/{repository}/actions/runs/"
                f"{claims.get('run_id', '')}/attempts/{claims.get('run_attempt', '')}"
            },
        },
    }


def run(env: Mapping[str, str]) -> int:
    """Sign (and attest) every subject; write the outputs. Returns the exit status."""
    from keyless.cli.main import main as keyless

    subjects = [line.strip() for line in env.get("KEYLESS_SUBJECTS", "").splitlines()]
    subjects = [subject for subject in subjects if subject]
    if not subjects:
        raise ActionError("the subjects input lists no file or image")
    if len(subjects) > MAX_SUBJECTS:
        raise ActionError(f"at most {MAX_SUBJECTS} subjects per step")
    for subject in subjects:
        if subject.startswith("-"):  # would be read as an option of keyless sign
            raise ActionError(f"subject {subject[:80]!r} starts with '-'; prefix a path with ./")
    predicate_path = env.get("KEYLESS_PREDICATE_PATH", "")
    predicate_type = env.get("KEYLESS_PREDICATE_TYPE", "")
    if bool(predicate_path) != bool(predicate_type):
        raise ActionError("predicate-path and predicate-type go together")
    provenance_wanted = _flag(env, "KEYLESS_ATTEST_PROVENANCE")
    where = _where(env)
    if _flag(env, "KEYLESS_ALLOW_INSECURE_REGISTRY"):
        where.append("--allow-insecure-registry")
    key = env.get("KEYLESS_KEY", "").strip()
    # Inputs are checked above, before the token is asked for.
    token = None
    if not key or provenance_wanted:
        token = _job_token(env, for_provenance_only=bool(key))
    # `--key=REF`: a reference cannot be taken for an option.
    common = [f"--key={key}" if key else f"--identity-token={token}", *where]
    outputs: dict[str, list[str]] = {"bundles": [], "images": [], "attestations": []}
    with tempfile.TemporaryDirectory(prefix="keyless-action-") as scratch:
        predicates: list[tuple[str, str]] = []
        if provenance_wanted:
            provenance = Path(scratch) / "provenance.json"
            server_url = env.get("GITHUB_SERVER_URL") or "https://github.com"
            provenance.write_text(json.dumps(provenance_predicate(_claims(token), server_url)))
            predicates.append((str(provenance), SLSA_V1))
        if predicate_path:
            predicates.append((predicate_path, predicate_type))
        for subject in subjects:
            image = _is_image(subject)
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                status = keyless(["sign", *common, subject])
            sys.stdout.write(printed.getvalue())
            if status != 0:
                return 1
            if image:
                # `keyless sign IMAGE` prints each signed name@digest: pin what was signed.
                pinned = printed.getvalue().split()
                outputs["images"].extend(pinned[:1])
                subject = pinned[0] if pinned else subject
            else:
                outputs["bundles"].append(f"{subject}.sigstore.json")
            for path, kind in predicates:
                attest = ["attest", *common, f"--predicate={path}", f"--type={kind}", subject]
                if keyless(attest) != 0:
                    return 1
                if not image:
                    outputs["attestations"].append(f"{subject}.intoto.jsonl")
    _write_outputs(env, outputs)
    return 0


def _job_token(env: Mapping[str, str], *, for_provenance_only: bool) -> str:
    """The job's OIDC token; with a key, only provenance needs it, and an error says so."""
    from keyless.oidc.acquire import TokenSourceError, ambient_token

    try:
        token = ambient_token(env.get("KEYLESS_OIDC_AUDIENCE") or "sigstore")
    except TokenSourceError as exc:
        if not for_provenance_only:
            raise
        raise ActionError(
            "attest-provenance builds the provenance from the job's OIDC token, also when "
            f"signing with a key: {exc.message} (grant the job `permissions: id-token: write`)"
        ) from exc
    if token is None:
        raise ActionError("no GitHub Actions OIDC token: this runs only inside a workflow job")
    return token


def _where(env: Mapping[str, str]) -> list[str]:
    """The services to sign with: a keyless server, a trust config, or public Sigstore."""
    server = env.get("KEYLESS_SERVER", "")
    trust_config = env.get("KEYLESS_TRUST_CONFIG", "")
    if server and trust_config:
        raise ActionError("give server or trust-config, not both")
    if server:
        return ["--server", server]
    if trust_config:
        return ["--trust-config", trust_config]
    data = resources.files("keyless.client").joinpath("data")
    return [
        "--signing-config",
        str(data.joinpath("production_signing_config.v0.2.json")),
        "--trusted-root",
        str(data.joinpath("production_trusted_root.json")),
    ]


def _claims(token: str) -> dict[str, Any]:
    """The claims of the job's own token, read without verification: the CA verifies it, and
    the provenance it feeds is signed under a certificate bound to the same claims."""
    try:
        value = json.loads(b64url_decode(token.split(".")[1]))
    except (IndexError, ValueError) as exc:
        raise ActionError("the job's OIDC token is not a JWT") from exc
    if not isinstance(value, dict):
        raise ActionError("the job's OIDC token has no claims object")
    return value


def _is_image(subject: str) -> bool:
    from keyless.cli.commands._images import image_reference

    return image_reference(subject) is not None


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in ("", "false"):
        return False
    if value == "true":
        return True
    raise ActionError(
        f"{name.removeprefix('KEYLESS_').lower().replace('_', '-')} must be true or false"
    )


def _write_outputs(env: Mapping[str, str], outputs: dict[str, list[str]]) -> None:
    """Multi-line outputs in GitHub's `name<<DELIMITER` form, with a delimiter no value holds."""
    target = env.get("GITHUB_OUTPUT")
    if not target:
        return
    delimiter = f"keyless-{os.urandom(8).hex()}"
    with open(target, "a", encoding="utf-8") as handle:
        for name, values in outputs.items():
            handle.write(f"{name}<<{delimiter}\n")
            handle.writelines(f"{value}\n" for value in values)
            handle.write(f"{delimiter}\n")


def main() -> int:
    from keyless.cli.main import run_reporting

    return run_reporting(lambda: run(os.environ), github=True)


if __name__ == "__main__":
    sys.exit(main())

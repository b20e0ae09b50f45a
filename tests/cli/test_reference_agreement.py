"""Verification that agrees with the reference clients (issue 14), one section per finding.

Real data where it exists (sigstore-conformance bundles and roots, sigstore-python as an
oracle); otherwise bundles are made with real keys, certificates, SETs, checkpoints and RFC 3161
timestamps from the forged instance of `tests.cli.forge` and keyless's own TSA code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from keyless.cli.main import main
from keyless.client.bundle import Bundle
from keyless.client.trust import TrustedRoot, load_trust_config
from keyless.client.verify import (
    AllOf,
    Identity,
    Issuer,
    TrustRootError,
    VerificationError,
    Verifier,
)
from keyless.client.verify.artifact import Artifact
from keyless.core.dsse import pae
from tests.cli.conftest import START
from tests.cli.forge import Instance, dumps
from tests.conftest import DATA

CASES = DATA / "sigstore-conformance/test/assets/bundle-verify"
ARTIFACT = (CASES / "a.txt").read_bytes()
CONFORMANCE_IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
CONFORMANCE_ISSUER = "https://token.actions.githubusercontent.com"
CONFORMANCE_POLICY = AllOf([Identity(CONFORMANCE_IDENTITY), Issuer(CONFORMANCE_ISSUER)])
IDENTITY = "alice@example.com"
ISSUER = "https://issuer.keyless.test"
NOW = datetime.now(UTC)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _case(name: str) -> tuple[dict, Path]:
    case = CASES / name
    return json.loads((case / "bundle.sigstore.json").read_text()), case / "trusted_root.json"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.err


def _verify_cli(
    tmp_path: Path,
    bundle: dict,
    root: dict,
    target: str,
    capsys: pytest.CaptureFixture[str],
    command: str = "verify",
    options: tuple[str, ...] = (),
) -> tuple[int, str]:
    """`keyless COMMAND [OPTIONS] TARGET` (verify or verify-attestation) of a forged bundle for
    alice under the forged root."""
    (tmp_path / "bundle.json").write_text(dumps(bundle))
    (tmp_path / "root.json").write_text(dumps(root))
    return _run(
        [
            command,
            "--bundle",
            str(tmp_path / "bundle.json"),
            "--trusted-root",
            str(tmp_path / "root.json"),
            "--certificate-identity",
            IDENTITY,
            "--certificate-oidc-issuer",
            ISSUER,
            *options,
            target,
        ],
        capsys,
    )


# 1. Several RFC 3161 timestamps: a threshold of verified times, each failure reported.


def _two_timestamps() -> tuple[dict, Path]:
    """rekor2-happy-path with, first, a timestamp from FreeTSA (not in its trusted root) taken
    from the conformance case that has only that one."""
    bundle, root = _case("rekor2-happy-path")
    untrusted, _ = _case("rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail")
    stamps = bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
    foreign = untrusted["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
    stamps.insert(0, foreign[0])
    return bundle, root


def test_untrusted_timestamp_beside_a_trusted_one_is_reported_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from keyless.client.trust import load_trusted_root

    bundle, root = _two_timestamps()
    with caplog.at_level(logging.WARNING):
        result = Verifier(load_trusted_root(root)).verify(
            Bundle.from_json(json.dumps(bundle)),
            sha256=hashlib.sha256(ARTIFACT).digest(),
            policy=CONFORMANCE_POLICY,
            now=NOW,
        )
    assert len(result.signed_times) == 1
    assert len(result.timestamp_failures) == 1
    assert result.timestamp_failures[0].startswith("timestamp #0 (")
    assert "does not verify against any trusted TSA" in result.timestamp_failures[0]
    assert result.to_json()["timestampFailures"] == list(result.timestamp_failures)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"warning: {result.timestamp_failures[0]}; not counted (the other signed times are)"
    ]


def test_sigstore_python_agrees_on_the_two_timestamp_bundle() -> None:
    from sigstore.models import Bundle as TheirBundle
    from sigstore.models import TrustedRoot as TheirRoot
    from sigstore.verify import Verifier as TheirVerifier
    from sigstore.verify import policy

    bundle, root = _two_timestamps()
    TheirVerifier(trusted_root=TheirRoot.from_file(str(root))).verify_artifact(
        ARTIFACT,
        TheirBundle.from_json(json.dumps(bundle)),
        policy.Identity(identity=CONFORMANCE_IDENTITY, issuer=CONFORMANCE_ISSUER),
    )


def test_below_the_threshold_is_refused_listing_each_failure() -> None:
    from keyless.client.trust import load_trusted_root

    bundle, root = _two_timestamps()
    verifier = Verifier(load_trusted_root(root), time_threshold=2)
    with pytest.raises(VerificationError) as info:
        verifier.verify(
            Bundle.from_json(json.dumps(bundle)),
            sha256=hashlib.sha256(ARTIFACT).digest(),
            policy=CONFORMANCE_POLICY,
            now=NOW,
        )
    assert info.value.check == "timestamp"
    assert info.value.detail.startswith(
        "1 of the bundle's signed times verify, 2 needed; timestamp #0 ("
    )
    assert "does not verify against any trusted TSA" in info.value.detail


def test_threshold_met_exactly_with_two_trusted_timestamps(instance: Instance) -> None:
    # Both sides of a threshold of 2: two timestamps from one trusted TSA pass; drop one and
    # the same bundle is refused.
    tsa = _Tsa(instance)
    bundle = instance.sign(ARTIFACT)
    signature = base64.b64decode(bundle["messageSignature"]["signature"])
    del bundle["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]
    stamps = [tsa.stamp(signature), tsa.stamp(signature)]
    bundle["verificationMaterial"]["timestampVerificationData"] = {
        "rfc3161Timestamps": [{"signedTimestamp": s} for s in stamps]
    }
    verifier = Verifier(TrustedRoot.from_json(dumps(tsa.root())), time_threshold=2)
    digest = hashlib.sha256(ARTIFACT).digest()
    policy = AllOf([Identity(IDENTITY), Issuer(ISSUER)])
    result = verifier.verify(Bundle.from_json(dumps(bundle)), sha256=digest, policy=policy, now=NOW)
    assert len(result.signed_times) == 2 and result.timestamp_failures == ()
    del bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][1]
    with pytest.raises(VerificationError) as info:
        verifier.verify(Bundle.from_json(dumps(bundle)), sha256=digest, policy=policy, now=NOW)
    assert info.value.detail == "1 of the bundle's signed times verify, 2 needed"


def test_zero_threshold_is_a_programming_error(instance: Instance) -> None:
    with pytest.raises(ValueError, match="at least one verified signed time"):
        Verifier(TrustedRoot.from_json(dumps(instance.trusted_root())), time_threshold=0)


class _Tsa:
    """A real TSA (keyless's own `tsa` code) listed in a copy of the instance's root."""

    _shared: dict[int, _Tsa] = {}  # noqa: RUF012 - one TSA per session instance

    @classmethod
    def shared(cls, instance: Instance) -> _Tsa:
        """The same TSA for every test of one instance (its root and stamps must agree)."""
        if id(instance) not in cls._shared:
            cls._shared[id(instance)] = cls(instance)
        return cls._shared[id(instance)]

    def __init__(self, instance: Instance) -> None:
        from keyless.tsa.authority import TimestampAuthority
        from keyless.tsa.certs import dev_tsa_chain

        self.instance = instance
        key = ec.generate_private_key(ec.SECP256R1())
        self.chain = dev_tsa_chain(key, now=START)
        # Inside the leaf certificate that `Instance.sign` issues a day after START.
        moment = (START + timedelta(days=1, minutes=2)).timestamp()
        self.authority = TimestampAuthority(key=key, chain=self.chain, clock=lambda: moment)

    def stamp(self, signature: bytes) -> str:
        from keyless.tsa.request import TimestampRequest

        request = TimestampRequest(
            hash_algorithm="sha256", digest=hashlib.sha256(signature).digest(), nonce=None
        )
        return _b64(self.authority.grant(request))

    def root(self) -> dict:
        doc = self.instance.trusted_root()
        doc["timestampAuthorities"] = [
            {
                "subject": {"organization": "keyless", "commonName": "keyless TSA"},
                "uri": "https://tsa.keyless.test",
                "certChain": {
                    "certificates": [
                        {"rawBytes": _b64(c.public_bytes(serialization.Encoding.DER))}
                        for c in self.chain
                    ]
                },
                "validFor": {"start": START.strftime("%Y-%m-%dT%H:%M:%SZ")},
            }
        ]
        return doc


# 2. Proto3 defaults in trust documents: a CA subject without commonName.


def test_ca_subject_without_common_name_loads_and_verifies(
    instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = instance.trusted_root()
    del root["certificateAuthorities"][0]["subject"]["commonName"]
    (tmp_path / "a.txt").write_bytes(ARTIFACT)
    code, err = _verify_cli(
        tmp_path, instance.sign(ARTIFACT), root, str(tmp_path / "a.txt"), capsys
    )
    assert code == 0, err
    assert err.startswith("Verified OK: ")


def test_ca_and_tsa_without_any_subject_load(instance: Instance) -> None:
    root = _Tsa(instance).root()
    del root["certificateAuthorities"][0]["subject"]
    del root["timestampAuthorities"][0]["subject"]
    parsed = TrustedRoot.from_json(dumps(root))
    assert len(parsed.certificate_authorities) == 1
    assert len(parsed.timestamp_authorities) == 1


def test_trust_config_with_proto3_omissions_loads(instance: Instance, tmp_path: Path) -> None:
    root = instance.trusted_root()
    del root["certificateAuthorities"][0]["subject"]["organization"]
    config = {
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": root,
        "signingConfig": {
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [{"url": "https://ca.keyless.test", "majorApiVersion": 1}],
        },
    }
    (tmp_path / "config.json").write_text(dumps(config))
    assert list(load_trust_config(tmp_path / "config.json").tlogs) == [instance.log_id]


def test_what_the_schema_requires_stays_required(instance: Instance) -> None:
    root = instance.trusted_root()
    del root["certificateAuthorities"][0]["subject"]["commonName"]
    del root["certificateAuthorities"][0]["certChain"]
    with pytest.raises(TrustRootError) as info:
        TrustedRoot.from_json(dumps(root))
    # The error names the field that is missing, not the one whose proto3 default stands in.
    assert info.value.detail == (
        "malformed trusted root: certificateAuthorities.0.certChain: Field required"
    )
    root = instance.trusted_root()
    root["certificateAuthorities"][0]["subject"] = "keyless"
    with pytest.raises(TrustRootError, match="subject"):
        TrustedRoot.from_json(dumps(root))


# 3. v0.1 bundles with an inclusion promise and no inclusion proof.


def _verify_bundle_cli(
    bundle: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], root: Path | None = None
) -> tuple[int, str]:
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    argv = ["verify-bundle", "--bundle", str(tmp_path / "bundle.json")]
    argv += ["--certificate-identity", CONFORMANCE_IDENTITY]
    argv += ["--certificate-oidc-issuer", CONFORMANCE_ISSUER]
    if root is not None:
        argv += ["--trusted-root", str(root)]
    return _run([*argv, str(CASES / "a.txt")], capsys)


def test_v01_bundle_without_inclusion_proof_verifies_by_its_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, _ = _case("happy-path-v0.1")
    del bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    code, err = _verify_bundle_cli(bundle, tmp_path, capsys)
    assert code == 0, err


def test_v01_bundle_without_inclusion_proof_still_needs_a_good_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, _ = _case("set-invalid-signature_fail")
    del bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    code, err = _verify_bundle_cli(bundle, tmp_path, capsys)
    assert code == 1
    assert err.startswith("error: verification failed (signed-entry-timestamp): ")


def test_v02_bundle_without_inclusion_proof_is_still_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, _ = _case("happy-path-v0.2")
    del bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    code, err = _verify_bundle_cli(bundle, tmp_path, capsys)
    assert code == 1
    assert err.splitlines()[0] == (
        "error: verification failed (bundle): malformed bundle: verificationMaterial."
        "tlogEntries.0.inclusionProof: Field required (only v0.1 bundles may omit it, "
        "this is v0.2)"
    )


# 4 and 5. sha384/sha512 digests: in-toto subjects, and P-384/P-521 message signatures.


def _statement(digest: dict[str, str]) -> bytes:
    return json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "pkg.tgz", "digest": digest}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {},
        }
    ).encode()


def _dsse_bundle(instance: Instance, payload: bytes, *, v2: str | None = None) -> dict:
    """A v0.3 DSSE bundle logged as dsse/0.0.1 (with a SET) or, with `v2`, as a Rekor v2
    entry with an RFC 3161 timestamp instead (the caller's root must list the TSA): `v2` is
    "hashedrekord" (hashedrekord/0.0.2 over the PAE, as Rekor v2 logs envelopes) or "dsse"
    (dsse/0.0.2, as rekor-tiles did before it dropped that kind)."""
    payload_type = "application/vnd.in-toto+json"
    issued = START + timedelta(days=1)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = instance.issue_leaf(key, identity=IDENTITY, issuer=ISSUER, not_before=issued)
    signature = key.sign(pae(payload_type, payload), ec.ECDSA(hashes.SHA256()))
    leaf_der = leaf.public_bytes(serialization.Encoding.DER)
    verifier = {
        "x509Certificate": {"rawBytes": _b64(leaf_der)},
        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
    }
    if v2 == "hashedrekord":
        body = {
            "apiVersion": "0.0.2",
            "kind": "hashedrekord",
            "spec": {
                "hashedRekordV002": {
                    "data": {
                        "algorithm": "SHA2_256",
                        "digest": _b64(hashlib.sha256(pae(payload_type, payload)).digest()),
                    },
                    "signature": {"content": _b64(signature), "verifier": verifier},
                }
            },
        }
    elif v2 == "dsse":
        body = {
            "apiVersion": "0.0.2",
            "kind": "dsse",
            "spec": {
                "dsseV002": {
                    "payloadHash": {
                        "algorithm": "SHA2_256",
                        "digest": _b64(hashlib.sha256(payload).digest()),
                    },
                    "signatures": [{"content": _b64(signature), "verifier": verifier}],
                }
            },
        }
    else:
        body = {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(payload).hexdigest(),
                },
                "signatures": [
                    {
                        "signature": _b64(signature),
                        "verifier": _b64(leaf.public_bytes(serialization.Encoding.PEM)),
                    }
                ],
            },
        }
    entry = instance.log_entry(rfc8785.dumps(body), integrated_at=issued + timedelta(minutes=1))
    entry["kindVersion"] = {"kind": body["kind"], "version": body["apiVersion"]}
    material: dict = {"certificate": {"rawBytes": _b64(leaf_der)}, "tlogEntries": [entry]}
    if v2:
        del entry["inclusionPromise"], entry["integratedTime"]
        material["timestampVerificationData"] = {
            "rfc3161Timestamps": [{"signedTimestamp": _Tsa.shared(instance).stamp(signature)}]
        }
    return {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": _b64(payload),
            "payloadType": payload_type,
            "signatures": [{"sig": _b64(signature), "keyid": ""}],
        },
    }


@pytest.mark.parametrize("algorithm", ["sha512", "sha384"])
def test_digest_of_another_algorithm_matches_the_statement_subject(
    instance: Instance, algorithm: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hex_digest = hashlib.new(algorithm, ARTIFACT).hexdigest()
    bundle = _dsse_bundle(instance, _statement({algorithm: hex_digest}))
    target = f"{algorithm}:{hex_digest}"
    code, err = _verify_cli(tmp_path, bundle, instance.trusted_root(), target, capsys)
    assert code == 0, err
    assert err.startswith(f"Verified OK: {target} signed by {IDENTITY} ({ISSUER})")


def test_sha512_digest_not_a_subject_is_refused_not_taken_for_an_image(
    instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = _dsse_bundle(instance, _statement({"sha512": "ab" * 64}))
    target = "sha512:" + hashlib.sha512(ARTIFACT).hexdigest()
    code, err = _verify_cli(tmp_path, bundle, instance.trusted_root(), target, capsys)
    assert code == 1
    assert err.splitlines()[0] == (
        f"error: verification failed (dsse): artifact {target} is not a subject of the "
        f"in-toto statement (subjects: sha512:{'ab' * 64})"
    )


def test_file_matches_a_subject_named_by_sha512_only(
    instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pkg.tgz").write_bytes(ARTIFACT)
    bundle = _dsse_bundle(instance, _statement({"sha512": hashlib.sha512(ARTIFACT).hexdigest()}))
    code, err = _verify_cli(
        tmp_path, bundle, instance.trusted_root(), str(tmp_path / "pkg.tgz"), capsys
    )
    assert code == 0, err


@pytest.mark.parametrize("algorithm", ["sha512", "sha384"])
def test_verify_attestation_accepts_a_digest_of_another_algorithm(
    instance: Instance, algorithm: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # npm provenance names its subject by SHA-512 only: `keyless verify-attestation
    # sha512:<hex>` matches it through the same subject check as `keyless verify`.
    hex_digest = hashlib.new(algorithm, ARTIFACT).hexdigest()
    bundle = _dsse_bundle(instance, _statement({algorithm: hex_digest}))

    def verify_attestation(target: str) -> tuple[int, str]:
        return _verify_cli(
            tmp_path,
            bundle,
            instance.trusted_root(),
            target,
            capsys,
            command="verify-attestation",
            options=("--type", "slsaprovenance1"),
        )

    code, err = verify_attestation(f"{algorithm}:{hex_digest}")
    assert code == 0, err
    other = hashlib.new(algorithm, b"another file").hexdigest()
    code, err = verify_attestation(f"{algorithm}:{other}")
    assert code == 1
    assert f"artifact {algorithm}:{other} is not a subject of the in-toto statement" in err


def test_a_subject_whose_digests_disagree_does_not_match(instance: Instance) -> None:
    from keyless.client.verify.dsse import check_subject

    statement = _statement({"sha256": hashlib.sha256(ARTIFACT).hexdigest(), "sha512": "00" * 64})
    artifact = Artifact(
        name="f", path=None, algorithm="sha512", value=hashlib.sha512(ARTIFACT).digest()
    )
    with pytest.raises(VerificationError, match="is not a subject"):
        check_subject("application/vnd.in-toto+json", statement, artifact=artifact)


CURVES = {
    "P-384": (ec.SECP384R1, hashes.SHA384, "sha384", "SHA2_384"),
    "P-521": (ec.SECP521R1, hashes.SHA512, "sha512", "SHA2_512"),
}


def _message_bundle(instance: Instance, curve: str, *, logged: str | None = None) -> dict:
    """A v0.3 message-signature bundle by a P-384 or P-521 key over the artifact's digest of
    the paired algorithm (as sigstore-go and sigstore-java sign); `logged` overrides the hash
    algorithm of the artifact digest the log body records."""
    curve_class, hash_class, name, proto = CURVES[curve]
    issued = START + timedelta(days=1)
    key = ec.generate_private_key(curve_class())
    leaf = instance.issue_leaf(key, identity=IDENTITY, issuer=ISSUER, not_before=issued)
    digest = hashlib.new(name, ARTIFACT).digest()
    signature = key.sign(digest, ec.ECDSA(Prehashed(hash_class())))
    body = rfc8785.dumps(
        {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {
                    "hash": {
                        "algorithm": logged or name,
                        "value": hashlib.new(logged or name, ARTIFACT).hexdigest(),
                    }
                },
                "signature": {
                    "content": _b64(signature),
                    "publicKey": {"content": _b64(leaf.public_bytes(serialization.Encoding.PEM))},
                },
            },
        }
    )
    return {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {
            "certificate": {"rawBytes": _b64(leaf.public_bytes(serialization.Encoding.DER))},
            "tlogEntries": [instance.log_entry(body, integrated_at=issued + timedelta(minutes=1))],
        },
        "messageSignature": {
            "messageDigest": {"algorithm": proto, "digest": _b64(digest)},
            "signature": _b64(signature),
        },
    }


@pytest.mark.parametrize("curve", sorted(CURVES))
def test_p384_and_p521_message_signatures_verify(
    instance: Instance, curve: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.txt").write_bytes(ARTIFACT)
    bundle = _message_bundle(instance, curve)
    code, err = _verify_cli(
        tmp_path, bundle, instance.trusted_root(), str(tmp_path / "a.txt"), capsys
    )
    assert code == 0, err
    # The bare digest of the bundle's algorithm works too.
    name = CURVES[curve][2]
    target = f"{name}:{hashlib.new(name, ARTIFACT).hexdigest()}"
    code, err = _verify_cli(tmp_path, bundle, instance.trusted_root(), target, capsys)
    assert code == 0, err


def test_sha384_bundle_against_a_sha256_digest_says_what_to_give(
    instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = "sha256:" + hashlib.sha256(ARTIFACT).hexdigest()
    bundle = _message_bundle(instance, "P-384")
    code, err = _verify_cli(tmp_path, bundle, instance.trusted_root(), target, capsys)
    assert code == 1
    assert err.splitlines()[:2] == [
        f"error: verification failed (message-digest): the bundle signs the artifact's sha384 "
        f"digest, which {target} does not give",
        "hint: verify the file itself, or give its sha384:<hex> digest",
    ]


def test_sha384_message_signature_of_another_file_is_refused(
    instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "b.txt").write_bytes(ARTIFACT + b"!")
    bundle = _message_bundle(instance, "P-384")
    code, err = _verify_cli(
        tmp_path, bundle, instance.trusted_root(), str(tmp_path / "b.txt"), capsys
    )
    assert code == 1
    assert err.startswith("error: verification failed (message-digest): bundle message digest ")
    assert "is not the artifact's sha384" in err


def test_log_body_must_record_the_same_algorithm(
    instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.txt").write_bytes(ARTIFACT)
    bundle = _message_bundle(instance, "P-384", logged="sha256")
    code, err = _verify_cli(
        tmp_path, bundle, instance.trusted_root(), str(tmp_path / "a.txt"), capsys
    )
    assert code == 1
    assert err.splitlines()[0] == (
        "error: verification failed (log-body): log entry hash algorithm sha256 is not sha384"
    )


def test_unsupported_message_digest_algorithm_is_refused(instance: Instance) -> None:
    bundle = _message_bundle(instance, "P-384")
    bundle["messageSignature"]["messageDigest"]["algorithm"] = "SHA3_256"
    verifier = Verifier(TrustedRoot.from_json(dumps(instance.trusted_root())))
    with pytest.raises(VerificationError) as info:
        verifier.verify(
            Bundle.from_json(dumps(bundle)),
            sha256=hashlib.sha256(ARTIFACT).digest(),
            policy=AllOf([Identity(IDENTITY), Issuer(ISSUER)]),
            now=NOW,
        )
    assert (info.value.check, info.value.detail) == (
        "message-digest",
        "bundle message digest algorithm SHA3_256 is not supported",
    )


# 6. Log keys without validFor are unbounded; what the schema requires stays required.


def test_log_keys_without_validity_verify(
    instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = instance.trusted_root()
    del root["tlogs"][0]["publicKey"]["validFor"]
    del root["ctlogs"][0]["publicKey"]["validFor"]
    (tmp_path / "a.txt").write_bytes(ARTIFACT)
    code, err = _verify_cli(
        tmp_path, instance.sign(ARTIFACT), root, str(tmp_path / "a.txt"), capsys
    )
    assert code == 0, err


def test_log_key_validity_given_is_still_enforced(
    instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The counterpart: a bound that is given still refuses a time outside it.
    root = instance.trusted_root(log_end=START + timedelta(hours=1))
    (tmp_path / "a.txt").write_bytes(ARTIFACT)
    code, err = _verify_cli(
        tmp_path, instance.sign(ARTIFACT), root, str(tmp_path / "a.txt"), capsys
    )
    assert code == 1
    assert "is outside the validity 2025-01-01T00:00:00Z..2025-01-01T01:00:00Z" in err


# 7. Rekor v2 entries of DSSE bundles: hashedrekord/0.0.2 over the envelope's PAE
#    (rekor-v2-spec §6.1.4), the one kind a Rekor v2 log takes; any other kind for the
#    bundle's content is refused (issue 23).


def _v2_root(instance: Instance) -> dict:
    return _Tsa.shared(instance).root()


def _subject_statement() -> bytes:
    return _statement({"sha256": hashlib.sha256(ARTIFACT).hexdigest()})


def test_rekor_v2_dsse_envelope_logged_as_hashedrekord_verifies(instance: Instance) -> None:
    bundle = _dsse_bundle(instance, _subject_statement(), v2="hashedrekord")
    verifier = Verifier(TrustedRoot.from_json(dumps(_v2_root(instance))))
    result = verifier.verify(
        Bundle.from_json(dumps(bundle)),
        sha256=hashlib.sha256(ARTIFACT).digest(),
        policy=AllOf([Identity(IDENTITY), Issuer(ISSUER)]),
        now=NOW,
    )
    assert result.entry_kind == "hashedrekord/0.0.2"
    assert result.dsse_payload_type == "application/vnd.in-toto+json"
    assert len(result.signed_times) == 1


def _v2_dsse_error(instance: Instance, bundle: dict) -> VerificationError:
    verifier = Verifier(TrustedRoot.from_json(dumps(_v2_root(instance))))
    with pytest.raises(VerificationError) as info:
        verifier.verify(
            Bundle.from_json(dumps(bundle)),
            sha256=hashlib.sha256(ARTIFACT).digest(),
            policy=AllOf([Identity(IDENTITY), Issuer(ISSUER)]),
            now=NOW,
        )
    return info.value


def _relog(instance: Instance, bundle: dict, edit) -> dict:  # type: ignore[no-untyped-def]
    """The bundle with its log body changed by `edit` and logged again (new proof)."""
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    edit(body)
    fresh = instance.log_entry(rfc8785.dumps(body), integrated_at=START)
    entry["canonicalizedBody"] = fresh["canonicalizedBody"]
    entry["inclusionProof"] = fresh["inclusionProof"]
    entry["kindVersion"] = {"kind": body["kind"], "version": body["apiVersion"]}
    return bundle


def test_rekor_v2_hashedrekord_over_the_payload_not_the_pae_is_refused(
    instance: Instance,
) -> None:
    """A DSSE envelope's hashedrekord entry records the digest of what the signature signs,
    the PAE: one over the payload (or another envelope) is not this envelope's entry."""
    payload = _subject_statement()

    def payload_digest(body: dict) -> None:
        data = body["spec"]["hashedRekordV002"]["data"]
        data["digest"] = _b64(hashlib.sha256(payload).digest())

    bundle = _relog(instance, _dsse_bundle(instance, payload, v2="hashedrekord"), payload_digest)
    error = _v2_dsse_error(instance, bundle)
    assert (error.check, error.detail) == (
        "log-body",
        f"log entry digest {hashlib.sha256(payload).hexdigest()} does not match the PAE of "
        "the DSSE envelope",
    )


def test_rekor_v2_hashedrekord_with_another_signature_or_signer_is_refused(
    instance: Instance,
) -> None:
    payload = _subject_statement()

    def other_signature(body: dict) -> None:
        signature = body["spec"]["hashedRekordV002"]["signature"]
        signature["content"] = _b64(b"\x30\x06\x02\x01\x01\x02\x01\x01")

    bundle = _dsse_bundle(instance, payload, v2="hashedrekord")
    error = _v2_dsse_error(instance, _relog(instance, bundle, other_signature))
    assert error.detail == "log entry signature does not match the bundle signature"

    def other_signer(body: dict) -> None:
        verifier = body["spec"]["hashedRekordV002"]["signature"]["verifier"]
        verifier["x509Certificate"]["rawBytes"] = _b64(
            instance.inter_cert.public_bytes(serialization.Encoding.DER)
        )

    bundle = _dsse_bundle(instance, payload, v2="hashedrekord")
    error = _v2_dsse_error(instance, _relog(instance, bundle, other_signer))
    assert error.detail == "log entry certificate is not the bundle's certificate"


def test_rekor_v2_dsse_entry_is_refused(instance: Instance) -> None:
    """A dsse/0.0.2 entry, consistent with the envelope in every field, is still not how Rekor
    v2 logs one: keyless accepted it until issue 23; sigstore-python and sigstore-go refuse it."""
    error = _v2_dsse_error(instance, _dsse_bundle(instance, _subject_statement(), v2="dsse"))
    assert (error.check, error.detail) == (
        "log-body",
        "a DSSE bundle cannot be backed by a dsse/0.0.2 entry (Rekor v2 logs a DSSE envelope "
        "as hashedrekord/0.0.2 over its PAE)",
    )


@pytest.mark.parametrize("kind", ["dsse", "hashedrekord"])
def test_message_signature_behind_an_envelope_entry_is_refused(
    instance: Instance, kind: str
) -> None:
    """The reverse: a message-signature bundle whose entry is a DSSE envelope's (either Rekor
    v2 form, relogged under the bundle), whatever else matches."""
    [theirs] = _dsse_bundle(instance, _subject_statement(), v2=kind)["verificationMaterial"][
        "tlogEntries"
    ]
    bundle = instance.sign(ARTIFACT)
    ours = instance.log_entry(base64.b64decode(theirs["canonicalizedBody"]), integrated_at=START)
    del ours["inclusionPromise"], ours["integratedTime"]
    ours["kindVersion"] = theirs["kindVersion"]
    signature = base64.b64decode(bundle["messageSignature"]["signature"])
    bundle["verificationMaterial"]["tlogEntries"] = [ours]
    bundle["verificationMaterial"]["timestampVerificationData"] = {
        "rfc3161Timestamps": [{"signedTimestamp": _Tsa.shared(instance).stamp(signature)}]
    }
    error = _v2_dsse_error(instance, bundle)
    expected = {
        # A DSSE kind never backs a message signature.
        "dsse": "a message-signature bundle cannot be backed by a dsse/0.0.2 entry",
        # A hashedrekord over the envelope's PAE is for the PAE, not for this artifact.
        "hashedrekord": "log entry is for artifact sha256:",
    }[kind]
    assert error.check == "log-body"
    assert error.detail.startswith(expected)


def test_unknown_entry_kind_is_named(instance: Instance) -> None:
    bundle = _dsse_bundle(instance, _subject_statement(), v2="hashedrekord")
    bundle["verificationMaterial"]["tlogEntries"][0]["kindVersion"] = {
        "kind": "rekord",
        "version": "0.0.1",
    }
    error = _v2_dsse_error(instance, bundle)
    assert (error.check, error.detail) == ("log-body", "unsupported log entry kind rekord/0.0.1")


# 8. intoto 0.0.2 entries as Rekor stores them: no envelope payload, its hash instead
#    (sigstore-js `attest`, @sigstore/cli and npm provenance log such entries; issue 23). The
#    entry's signature, signer, payload type and payload hash are held to the envelope.


def _intoto_bundle(instance: Instance, edit=None) -> dict:  # type: ignore[no-untyped-def]
    """A DSSE bundle whose entry is intoto 0.0.2, canonicalised by keyless's own Rekor v1 code
    (which, like Rekor, keeps no payload); `edit` changes the stored body before it is logged."""
    from keyless.tlog.rekor_kinds import canonicalize

    bundle = _dsse_bundle(instance, _subject_statement())
    envelope = bundle["dsseEnvelope"]
    leaf = base64.b64decode(bundle["verificationMaterial"]["certificate"]["rawBytes"])
    pem = x509.load_der_x509_certificate(leaf).public_bytes(serialization.Encoding.PEM)
    proposed = {
        "apiVersion": "0.0.2",
        "kind": "intoto",
        "spec": {
            "content": {
                "envelope": {
                    "payloadType": envelope["payloadType"],
                    "payload": _b64(envelope["payload"].encode()),
                    "signatures": [
                        {
                            "sig": _b64(envelope["signatures"][0]["sig"].encode()),
                            "publicKey": _b64(pem),
                        }
                    ],
                },
                "hash": {"algorithm": "sha256", "value": hashlib.sha256(b"envelope").hexdigest()},
            }
        },
    }
    body = json.loads(canonicalize(proposed).body)
    assert "payload" not in body["spec"]["content"]["envelope"]
    if edit is not None:
        edit(body["spec"]["content"])
    entry = instance.log_entry(
        rfc8785.dumps(body), integrated_at=START + timedelta(days=1, minutes=1)
    )
    entry["kindVersion"] = {"kind": "intoto", "version": "0.0.2"}
    bundle["verificationMaterial"]["tlogEntries"] = [entry]
    return bundle


def _verify_forged(instance: Instance, bundle: dict):  # type: ignore[no-untyped-def]
    verifier = Verifier(TrustedRoot.from_json(dumps(instance.trusted_root())))
    return verifier.verify(
        Bundle.from_json(dumps(bundle)),
        sha256=hashlib.sha256(ARTIFACT).digest(),
        policy=AllOf([Identity(IDENTITY), Issuer(ISSUER)]),
        now=NOW,
    )


def test_intoto_entry_without_the_payload_verifies(instance: Instance) -> None:
    """Refused until issue 23 with "log body field 'payload' is missing or not a str"."""
    result = _verify_forged(instance, _intoto_bundle(instance))
    assert result.entry_kind == "intoto/0.0.2"
    assert result.dsse_payload_type == "application/vnd.in-toto+json"


def _intoto_error(instance: Instance, edit) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(VerificationError) as info:
        _verify_forged(instance, _intoto_bundle(instance, edit))
    return info.value.check, info.value.detail


def _set_in(path: str, value: object):  # type: ignore[no-untyped-def]
    def edit(content: dict) -> None:
        *parents, last = path.split(".")
        target = content
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is None:
            del target[last]
        else:
            target[last] = value

    return edit


OTHER_SIG = base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()


@pytest.mark.parametrize(
    ("path", "value", "detail"),
    [
        ("payloadHash.value", hashlib.sha256(b"another statement").hexdigest(),
         "log entry payload hash does not match the DSSE payload"),
        ("payloadHash", None, "log entry records neither the payload nor its hash"),
        ("envelope.payloadType", "text/plain",
         "log entry payload type 'text/plain' is not the envelope's "
         "'application/vnd.in-toto+json'"),
        ("envelope.signatures.0.sig", _b64(OTHER_SIG.encode()),
         "log entry signature does not match the DSSE signature"),
        ("envelope.payload", _b64(_b64(b"another statement").encode()),
         "log entry envelope payload does not match the bundle"),
    ],
    ids=["other-payload-hash", "no-payload-or-hash", "other-payload-type", "other-signature",
         "other-kept-payload"],
)  # fmt: skip
def test_intoto_entry_that_is_not_the_envelopes_is_refused(
    instance: Instance, path: str, value: object, detail: str
) -> None:
    assert _intoto_error(instance, _set_in(path, value)) == ("log-body", detail)


def test_intoto_entry_of_another_signer_or_with_two_signatures_is_refused(
    instance: Instance,
) -> None:
    other = instance.inter_cert.public_bytes(serialization.Encoding.PEM)

    def other_signer(content: dict) -> None:
        content["envelope"]["signatures"][0]["publicKey"] = _b64(other)

    assert _intoto_error(instance, other_signer) == (
        "log-body",
        "log entry certificate is not the bundle's certificate",
    )

    def two(content: dict) -> None:
        content["envelope"]["signatures"] *= 2

    assert _intoto_error(instance, two) == (
        "log-body",
        "log entry must record exactly one DSSE signature",
    )


def test_intoto_entry_that_kept_the_payload_verifies(instance: Instance) -> None:
    """An older log's entry with the payload (as the conformance intoto vectors have it)."""
    payload = _subject_statement()

    def keep(content: dict) -> None:
        content["envelope"]["payload"] = _b64(_b64(payload).encode())

    assert _verify_forged(instance, _intoto_bundle(instance, keep)).entry_kind == "intoto/0.0.2"


# Log-less instances (GitHub's private-repository Sigstore): RFC 3161 timestamps, no log entry.
# The rule: such a bundle verifies only under a trusted root that lists no transparency log;
# its signed times are its RFC 3161 timestamps alone (the threshold applies), and the SCT is
# checked only when the root lists CT logs.


def _logless_bundle(instance: Instance) -> dict:
    bundle = _dsse_bundle(
        instance, _statement({"sha256": hashlib.sha256(ARTIFACT).hexdigest()}), v2=True
    )
    del bundle["verificationMaterial"]["tlogEntries"]
    return bundle


def _logless_root(instance: Instance) -> dict:
    root = _Tsa.shared(instance).root()
    root["tlogs"], root["ctlogs"] = [], []
    return root


def _verify_attestation_cli(
    tmp_path: Path, bundle: dict, root: dict, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    (tmp_path / "a.txt").write_bytes(ARTIFACT)
    target = str(tmp_path / "a.txt")
    return _verify_cli(tmp_path, bundle, root, target, capsys, command="verify-attestation")


def test_logless_bundle_verifies_under_a_logless_root(
    instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _verify_attestation_cli(
        tmp_path, _logless_bundle(instance), _logless_root(instance), capsys
    )
    assert code == 0, err
    assert err.splitlines()[0] == (
        f"Verified OK: {tmp_path / 'a.txt'} attested (https://slsa.dev/provenance/v1) by "
        f"{IDENTITY} ({ISSUER}), no log entry (RFC 3161 timestamp of a log-less instance)"
    )
    result = Verifier(TrustedRoot.from_json(dumps(_logless_root(instance)))).verify(
        Bundle.from_json(dumps(_logless_bundle(instance))),
        sha256=hashlib.sha256(ARTIFACT).digest(),
        policy=AllOf([Identity(IDENTITY), Issuer(ISSUER)]),
        now=NOW,
    )
    assert (result.log_url, result.log_index, result.entry_kind) == (None, None, None)
    assert result.to_json()["log"] is None
    assert len(result.signed_times) == 1


def test_logless_bundle_is_refused_under_a_root_with_logs(
    instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _verify_attestation_cli(
        tmp_path, _logless_bundle(instance), _Tsa.shared(instance).root(), capsys
    )
    assert code == 1
    assert err.splitlines()[0] == (
        "error: verification failed (log-entry): the bundle has no transparency log entry, "
        "only RFC 3161 timestamps, and the trusted root lists transparency logs; only the "
        "root of a log-less instance (no logs, a TSA) verifies such a bundle"
    )


def test_logless_bundle_needs_a_timestamp_from_a_trusted_tsa(instance: Instance) -> None:
    bundle = _logless_bundle(instance)
    # A timestamp by another TSA, over the same signature, in place of the trusted one.
    signature = base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"])
    bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"] = [
        {"signedTimestamp": _Tsa(instance).stamp(signature)}
    ]
    with pytest.raises(VerificationError) as info:
        Verifier(TrustedRoot.from_json(dumps(_logless_root(instance)))).verify(
            Bundle.from_json(dumps(bundle)),
            sha256=hashlib.sha256(ARTIFACT).digest(),
            policy=AllOf([Identity(IDENTITY), Issuer(ISSUER)]),
            now=NOW,
        )
    assert info.value.check == "timestamp"
    assert info.value.detail.startswith(
        "0 of the bundle's signed times verify, 1 needed; timestamp #0 "
    )


@pytest.mark.parametrize(
    ("version", "media_type"),
    [
        ("0.3", "application/vnd.dev.sigstore.bundle.v0.3+json"),
        ("0.1", "application/vnd.dev.sigstore.bundle+json;version=0.1"),
    ],
)
def test_bundle_without_entry_or_timestamp_is_malformed(
    instance: Instance, version: str, media_type: str
) -> None:
    from keyless.client.bundle import BundleError

    bundle = _logless_bundle(instance)
    bundle["mediaType"] = media_type
    if version == "0.3":
        del bundle["verificationMaterial"]["timestampVerificationData"]
        expected = "expected exactly one transparency log entry, got 0 (and no RFC 3161 timestamp)"
    else:
        # v0.1 has a chain and requires its log entry (its SET), timestamps or not.
        leaf = bundle["verificationMaterial"].pop("certificate")
        bundle["verificationMaterial"]["x509CertificateChain"] = {"certificates": [leaf]}
        expected = "expected exactly one transparency log entry, got 0"
    with pytest.raises(BundleError) as info:
        Bundle.from_json(dumps(bundle))
    assert str(info.value) == f"bundle: {expected}"

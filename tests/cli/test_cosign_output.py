"""`-o cosign`'s encoder and names against what Go and go-containerregistry write.

The expected strings are Go's: encoding/json (struct fields in order, map keys sorted, `<>&`
and U+2028/9 escaped, `\\b`/`\\f` short since Go 1.22, a non-UTF-8 byte as `\\ufffd`, float64 in
the shortest form, exponents as e+21 / e-7), and go-containerregistry's `Name()` (Docker Hub as
index.docker.io, the tag dropped when a digest is given). Certificates are made here with
Fulcio's extensions, to pin what cosign reads of them: `Subject` is the first SAN in Go's order
(DNS, email, IP, URI, otherName), the claims are the raw extension values.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from keyless.cli.commands._cosign_output import GoStruct, cosign_name, go_json, verification_output
from keyless.client.oci import parse_reference
from keyless.client.verify.images import ImageVerification, VerifiedSignature

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("value", "go"),
    [
        ({"b": 1.0, "a": "<&>"}, '{"a":"\\u003c\\u0026\\u003e","b":1}'),
        (GoStruct(z=None, a=[True, False]), '{"z":null,"a":[true,false]}'),
        (
            "\u2028\u2029\b\f\n\r\t\x00\x1f\x7f é",
            '"\\u2028\\u2029\\b\\f\\n\\r\\t\\u0000\\u001f\x7f é"',
        ),
        ("\udcff", '"\\ufffd"'),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1.5e-7, "1.5e-7"),
        (1e-100, "1e-100"),
        (0.000001, "0.000001"),
        (123456789012345678.0, "123456789012345680"),
        (-0.0, "-0"),
        (0.1, "0.1"),
        (2**63 - 1, "9223372036854775807"),  # an int64 field, not a float64
    ],
    ids=lambda v: repr(v)[:24],
)
def test_go_json(value, go: str) -> None:
    assert go_json(value) == go


@pytest.mark.parametrize(
    ("typed", "name"),
    [
        ("ubuntu", "index.docker.io/library/ubuntu:latest"),
        ("docker.io/acme/app:1.4", "index.docker.io/acme/app:1.4"),
        (f"ghcr.io/acme/app:1.4@{DIGEST}", f"ghcr.io/acme/app@{DIGEST}"),
        ("localhost:5000/a/b:v1", "localhost:5000/a/b:v1"),
    ],
)
def test_cosign_name_is_go_containerregistrys(typed: str, name: str) -> None:
    assert cosign_name(parse_reference(typed)) == name


def _fulcio_oid(arc: int) -> x509.ObjectIdentifier:
    return x509.ObjectIdentifier(f"1.3.6.1.4.1.57264.1.{arc}")


def _certificate(names: list[x509.GeneralName], extensions: dict[int, bytes]) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
    )
    for arc, value in extensions.items():
        builder = builder.add_extension(
            x509.UnrecognizedExtension(_fulcio_oid(arc), value), critical=False
        )
    return builder.sign(key, hashes.SHA256())


def _output(cert: x509.Certificate, **fields) -> str:
    signature = VerifiedSignature(
        digest=DIGEST,
        docker_reference="r",
        signature_type="cosign container image signature",
        identity=None,
        issuer=None,
        log_index=1,
        source="legacy-tag",
        certificate=cert,
        claimed_reference="ghcr.io/acme/app",
        **fields,
    )
    outcome = ImageVerification(parse_reference("ghcr.io/acme/app:1"), DIGEST, (signature,), (), ())
    return verification_output(outcome, "ghcr.io/acme/app:1")


def test_certificate_claims_as_cosign_reads_them() -> None:
    """Raw values of .1.1-.1.6 (a byte that is not UTF-8 as Go writes it), the first SAN in
    Go's order (the email, though the URI comes first in the extension), payload annotations
    merged and sorted with them."""
    names = [
        x509.UniformResourceIdentifier("https://github.com/acme/app/.github/workflows/r.yml@x"),
        x509.RFC822Name("alice@example.com"),
    ]
    issuer = "https://token.actions.githubusercontent.com"
    cert = _certificate(names, {1: issuer.encode(), 2: b"pu\xffsh", 5: b"acme/app"})
    assert _output(cert, annotations={"team": "a"}) == (
        '\n[{"critical":{"identity":{"docker-reference":"ghcr.io/acme/app"},"image":'
        f'{{"docker-manifest-digest":"{DIGEST}"}},"type":"cosign container image signature"}},'
        f'"optional":{{"1.3.6.1.4.1.57264.1.1":"{issuer}","1.3.6.1.4.1.57264.1.2":"pu\\ufffdsh",'
        f'"1.3.6.1.4.1.57264.1.5":"acme/app","Issuer":"{issuer}","Subject":"alice@example.com",'
        '"githubWorkflowRepository":"acme/app","githubWorkflowTrigger":"pu\\ufffdsh",'
        '"team":"a"}}]\n'
    )


def test_issuer_from_the_v2_extension_when_the_v1_one_is_absent() -> None:
    """cosign reads only .1.1 and would print no Issuer; the .1.8 issuer (a DER UTF8String)
    is printed as Issuer, and no .1.1 key is invented."""
    issuer = b"https://issuer.example"
    cert = _certificate(
        [x509.IPAddress(ipaddress.ip_address("192.0.2.1")), x509.DNSName("build.example")],
        {8: b"\x0c" + bytes([len(issuer)]) + issuer},
    )
    assert _output(cert).endswith(
        '"optional":{"Issuer":"https://issuer.example","Subject":"build.example"}}]\n'
    )

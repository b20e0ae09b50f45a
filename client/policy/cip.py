"""ClusterImagePolicy documents: policy-controller's policy format, parsed into `model`'s types.

A policy file (or every `*.yaml`/`*.yml`/`*.json` file of a directory) holds YAML documents:

- `ClusterImagePolicy` (`policy.sigstore.dev/v1beta1` or `v1alpha1`): which images (globs, see
  `client.policy.glob`) need which signers (authorities), `mode: enforce | warn`;
- `TrustRoot`: trust material an authority names with `trustRootRef` (see `trustroots`);
- a `ConfigMap` named `config-policy-controller`, whose `no-match-policy` (`deny`, the default,
  `warn` or `allow`) says what happens to an image no policy matches.

Kyverno ClusterPolicies (`kyverno.io/v1`, `v2beta1`) with verifyImages rules are read by
`client.policy.kyverno` into the same model, in the same files and directories.

Everything else is refused, and so is every field keyless does not implement, so that a policy
never means less here than its author meant: unknown fields, `match`, CIP-level `policy`,
`source`, `kms` and `secretRef` keys, `ca-cert`, `insecureIgnoreSCT: true`, attestation
policies in CUE or fetched from elsewhere (`remote`, `configMapRef`), attestations with a key
authority. Attestation policies are Rego, evaluated with policy-controller's query
(`data.sigstore.isCompliant`) over the whole in-toto statement.
Loading collects every problem, one line each: `file: document N (name): field.path: what`.
The YAML itself is read strictly (`keyless.core.strictyaml`): a duplicate key, an alias or a
value JSON cannot hold is refused as `file:line:column: what`.

Differences from policy-controller that make a policy stricter, never looser:
`issuerRegExp` and `subjectRegExp` must match the WHOLE value (Python `re.fullmatch`), where
policy-controller's Go regexps match anywhere unless anchored with `^...$`; a `ctlog.url`
selects that transparency log out of the trust root.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from keyless.client.attest.predicates import AttestationError, predicate_type_uri
from keyless.client.attest.rego import POLICY_CONTROLLER_QUERY, PolicyError, RegoPolicy
from keyless.client.keys import KeyFileError, VerifierKey
from keyless.client.keys.algorithms import check_allowed_key
from keyless.client.policy.documents import Where as _Where
from keyless.client.policy.documents import check_keys as _check_keys
from keyless.client.policy.documents import metadata_name as _metadata
from keyless.client.policy.documents import string_value as _string
from keyless.client.policy.errors import PolicyFileError
from keyless.client.policy.glob import GlobError, compile_glob
from keyless.client.policy.kyverno import is_kyverno, parse_kyverno
from keyless.client.policy.model import (
    AttestationRule,
    Authority,
    ImagePolicy,
    KeyAuthority,
    KeylessAuthority,
    KeylessIdentity,
    Mode,
    NoMatchPolicy,
    PolicySet,
    SignatureFormat,
    StaticAuthority,
)
from keyless.client.policy.trustroots import (
    DEFAULT_TRUST_ROOT,
    TrustMaterial,
    production_trust,
    sigstore_keys_root,
    trust_from_json,
)
from keyless.client.verify import IdentityRegexp, IssuerRegexp, TrustRootError, VerificationError

CIP_API_VERSIONS = ("policy.sigstore.dev/v1beta1", "policy.sigstore.dev/v1alpha1")
TRUST_ROOT_API_VERSION = "policy.sigstore.dev/v1alpha1"
KEYLESS_API_VERSION = "keyless.dev/v1alpha1"
CONFIG_MAP_NAME = "config-policy-controller"
MAX_POLICY_FILE_BYTES = 1024 * 1024
MAX_POLICY_FILES = 256
MAX_DOCUMENTS = 1024
MAX_KEY_BYTES = 64 * 1024
_POLICY_SUFFIXES = (".yaml", ".yml", ".json")


def load_policy_set(
    paths: Sequence[str | Path],
    *,
    trust_files: dict[str, TrustMaterial] | None = None,
    default_trust: TrustMaterial | None = None,
    no_match_policy: str | None = None,
) -> PolicySet:
    """Read the policy files and directories, and check every document.

    Kyverno documents go to `client.policy.kyverno`; the set's `warnings` say where keyless
    reads one more strictly than Kyverno. `trust_files` are roots named on the command line
    (`--trust-root NAME=FILE`);
    `default_trust` is the root of authorities without `trustRootRef` (public Sigstore when
    None); `no_match_policy` overrides the ConfigMap's.

    Raises:
        PolicyFileError: every problem found, one line each.
    """
    problems: list[str] = []
    documents: list[tuple[str, int, dict[str, Any]]] = []
    for path in policy_files(paths, problems):
        documents.extend(_documents(path, problems))
    if len(documents) > MAX_DOCUMENTS:
        raise PolicyFileError([f"more than {MAX_DOCUMENTS} documents"])
    trust: dict[str, TrustMaterial] = dict(trust_files or {})
    trust[DEFAULT_TRUST_ROOT] = default_trust or production_trust()
    configured_no_match: str | None = None
    cips: list[tuple[_Where, dict[str, Any]]] = []
    kyverno: list[tuple[_Where, dict[str, Any]]] = []
    for source, index, document in documents:
        where = _Where(source, index, _name(document), problems)
        kind, api = document.get("kind"), document.get("apiVersion")
        if kind == "ClusterImagePolicy" and api in CIP_API_VERSIONS:
            cips.append((where, document))
        elif is_kyverno(document):
            kyverno.append((where, document))
        elif kind == "TrustRoot" and api in (TRUST_ROOT_API_VERSION, KEYLESS_API_VERSION):
            material = _trust_root(where, document, Path(source).parent)
            if material is not None:
                if material.name in trust:
                    where.add("metadata.name", f"trust root {material.name!r} is defined twice")
                trust[material.name] = material
        elif kind == "ConfigMap" and api == "v1" and where.name == CONFIG_MAP_NAME:
            configured_no_match = _config_map(where, document) or configured_no_match
        else:
            where.add(
                "kind",
                f"{api}/{kind} is not a policy document (expected ClusterImagePolicy, a "
                f"Kyverno ClusterPolicy, TrustRoot, or the {CONFIG_MAP_NAME} ConfigMap)",
            )
    policies: list[ImagePolicy] = []
    warnings: list[str] = []
    parsed = [(w, _cluster_image_policy(w, d, trust)) for w, d in cips]
    parsed += [(w, p) for w, d in kyverno for p in parse_kyverno(w, d, trust, warnings)]
    for where, policy in parsed:
        if policy is None:
            continue
        if any(p.name == policy.name for p in policies):
            where.add("metadata.name", f"policy {policy.name!r} is defined twice")
        policies.append(policy)
    no_match = no_match_policy or configured_no_match or NoMatchPolicy.DENY
    if no_match not in tuple(NoMatchPolicy):
        problems.append(f"no-match-policy: must be deny, warn or allow, not {no_match!r}")
    if not policies and not problems:
        problems.append(
            f"{', '.join(str(p) for p in paths)}: no ClusterImagePolicy or Kyverno ClusterPolicy "
            "found"
        )
    if problems:
        raise PolicyFileError(problems)
    return PolicySet(tuple(policies), trust, NoMatchPolicy(no_match), tuple(warnings))


def policy_files(paths: Sequence[str | Path], problems: list[str]) -> list[Path]:
    """The policy files `paths` name: each file, and a directory's `*.yaml`, `*.yml` and
    `*.json` files in name order; a problem for each path that is neither."""
    files: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.suffix in _POLICY_SUFFIXES and p.is_file()
            )
            if not found:
                problems.append(f"{path}: the directory holds no .yaml, .yml or .json file")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or directory")
    if len(files) > MAX_POLICY_FILES:
        problems.append(f"more than {MAX_POLICY_FILES} policy files")
        return []
    return files


def _documents(path: Path, problems: list[str]) -> Iterable[tuple[str, int, dict[str, Any]]]:
    from keyless.core.strictyaml import StrictYAMLError, load_all

    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_POLICY_FILE_BYTES + 1)
    except OSError as exc:
        problems.append(f"{path}: cannot read the file: {exc.strerror}")
        return []
    try:
        loaded = load_all(data, source=str(path), max_bytes=MAX_POLICY_FILE_BYTES)
    except StrictYAMLError as exc:
        problems.append(str(exc))
        return []
    out = []
    for index, document in enumerate(loaded, start=1):
        if document is None:
            continue
        if not isinstance(document, dict):
            problems.append(f"{path}: document {index}: must be a mapping")
            continue
        out.append((str(path), index, document))
    return out


def _name(document: dict[str, Any]) -> str | None:
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else None


def _cluster_image_policy(
    where: _Where, document: dict[str, Any], trust: dict[str, TrustMaterial]
) -> ImagePolicy | None:
    count = len(where.problems)
    name = _metadata(where, document)
    spec = _check_keys(
        where, document.get("spec"), "spec", {"images", "authorities", "mode", "match", "policy"}
    )
    if "match" in spec:
        where.add("spec.match", "matching by resource kind and labels is not supported yet")
    if "policy" in spec:
        where.add("spec.policy", "CIP-level (cue/rego) policies are not supported yet")
    globs, patterns = [], []
    images = spec.get("images")
    if not isinstance(images, list) or not images:
        where.add("spec.images", "missing (a list of {glob: ...})")
        images = []
    for i, image in enumerate(images):
        entry = _check_keys(where, image, f"spec.images[{i}]", {"glob"})
        glob = _string(where, entry.get("glob"), f"spec.images[{i}].glob", required=True)
        if glob is None:
            continue
        try:
            patterns.append(compile_glob(glob))
            globs.append(glob)
        except GlobError as exc:
            where.add(f"spec.images[{i}].glob", str(exc))
    mode = spec.get("mode", Mode.ENFORCE)
    if mode not in tuple(Mode):
        where.add("spec.mode", f"must be enforce or warn, not {mode!r}")
    authorities: list[Authority] = []
    listed = spec.get("authorities")
    if not isinstance(listed, list) or not listed:
        where.add("spec.authorities", "missing (at least one authority)")
        listed = []
    for i, entry in enumerate(listed):
        authority = _authority(where, entry, f"spec.authorities[{i}]", i, trust)
        if authority is None:
            continue
        if any(a.name == authority.name for a in authorities):
            where.add(f"spec.authorities[{i}].name", f"{authority.name!r} is used twice")
        authorities.append(authority)
    if len(where.problems) > count or name is None:
        return None
    content = json.dumps(document.get("spec"), sort_keys=True, default=str).encode()
    return ImagePolicy(
        name=name,
        globs=tuple(globs),
        mode=Mode(mode),
        authorities=tuple(authorities),
        source=f"{where.source}: document {where.index}",
        content_sha256=hashlib.sha256(name.encode() + b"\0" + content).hexdigest(),
        patterns=tuple(patterns),
    )


_AUTHORITY_KEYS = {
    "name",
    "key",
    "keyless",
    "static",
    "source",
    "ctlog",
    "rfc3161timestamp",
    "signatureFormat",
    "attestations",
}


def _authority(
    where: _Where, value: Any, path: str, index: int, trust: dict[str, TrustMaterial]
) -> Authority | None:
    count = len(where.problems)
    entry = _check_keys(where, value, path, _AUTHORITY_KEYS)
    name = _string(where, entry.get("name"), f"{path}.name") or f"authority-{index}"
    kinds = [k for k in ("key", "keyless", "static") if entry.get(k) is not None]
    if not kinds:
        where.add(path, "expected exactly one of key, keyless, static")
        return None
    if len(kinds) > 1:
        where.add(path, f"expected exactly one of key, keyless, static, got {', '.join(kinds)}")
        return None
    kind = kinds[0]
    if kind == "static":
        for other in ("attestations", "source", "ctlog", "rfc3161timestamp"):
            if entry.get(other):
                where.add(path, f"static cannot be combined with {other}")
    attestations: tuple[AttestationRule, ...] = ()
    if entry.get("attestations") is not None and kind != "static":
        attestations = _attestations(where, entry["attestations"], f"{path}.attestations")
        if kind == "key" and attestations:
            where.add(f"{path}.attestations", "attestations are supported with keyless only")
    if entry.get("source"):
        where.add(f"{path}.source", "signatures kept in another repository are not supported yet")
    signature_format = entry.get("signatureFormat") or SignatureFormat.LEGACY
    if signature_format not in tuple(SignatureFormat):
        where.add(f"{path}.signatureFormat", f"must be legacy or bundle, not {signature_format!r}")
    refs: list[tuple[str, str]] = []
    tlog_url = None
    if entry.get("ctlog") is not None:
        ctlog = _check_keys(where, entry["ctlog"], f"{path}.ctlog", {"url", "trustRootRef"})
        tlog_url = _string(where, ctlog.get("url"), f"{path}.ctlog.url")
        ref = _string(where, ctlog.get("trustRootRef"), f"{path}.ctlog.trustRootRef")
        if ref is not None:
            refs.append((f"{path}.ctlog.trustRootRef", ref))
    require_timestamp = entry.get("rfc3161timestamp") is not None and kind != "static"
    if entry.get("rfc3161timestamp") is not None:
        stamp = _check_keys(
            where, entry["rfc3161timestamp"], f"{path}.rfc3161timestamp", {"trustRootRef"}
        )
        ref = _string(where, stamp.get("trustRootRef"), f"{path}.rfc3161timestamp.trustRootRef")
        if ref is not None:
            refs.append((f"{path}.rfc3161timestamp.trustRootRef", ref))
    built: dict[str, Any] = {}
    if kind == "static":
        built = _static(where, entry["static"], f"{path}.static")
    elif kind == "key":
        built = _key(where, entry["key"], f"{path}.key", Path(where.source).parent)
    else:
        built, ref = _keyless(where, entry["keyless"], f"{path}.keyless")
        if ref is not None:
            refs.insert(0, (f"{path}.keyless.trustRootRef", ref))
    trust_root = DEFAULT_TRUST_ROOT
    for ref_path, ref in refs:
        if ref not in trust or ref == DEFAULT_TRUST_ROOT:
            where.add(ref_path, f"names no TrustRoot document and no --trust-root: {ref!r}")
        elif trust_root not in (DEFAULT_TRUST_ROOT, ref):
            where.add(ref_path, f"must name the same trust root as the rest of {path}")
        else:
            trust_root = ref
    if (
        require_timestamp
        and trust_root in trust
        and not trust[trust_root].root.timestamp_authorities
    ):
        where.add(
            f"{path}.rfc3161timestamp",
            f"the trust root {_trust_label(trust[trust_root])} lists no timestamp authority",
        )
    if tlog_url is not None and trust_root in trust and kind != "static":
        urls = trust[trust_root].tlog_urls()
        if tlog_url.rstrip("/") not in urls:
            where.add(
                f"{path}.ctlog.url",
                f"{tlog_url} is not a transparency log of the trust root "
                f"{_trust_label(trust[trust_root])} (it has: {', '.join(urls) or 'none'})",
            )
    if len(where.problems) > count:
        return None
    if kind == "static":
        return StaticAuthority(name=name, **built)
    signing: dict[str, Any] = {
        "name": name,
        "trust_root": trust_root,
        "tlog_url": tlog_url.rstrip("/") if tlog_url else None,
        "signature_format": SignatureFormat(signature_format),
        "require_timestamp": require_timestamp,
    }
    if kind == "key":
        # Without `ctlog`, a signature that verifies with the key counts whether or not it was
        # logged (policy-controller's IgnoreTlog for key authorities).
        return KeyAuthority(**signing, ignore_tlog=tlog_url is None, **built)
    return KeylessAuthority(**signing, attestations=attestations, **built)


_ATTESTATION_KEYS = {"name", "predicateType", "policy"}
_ATTESTATION_POLICY_KEYS = {"type", "data", "remote", "configMapRef"}


def _attestations(where: _Where, value: Any, path: str) -> tuple[AttestationRule, ...]:
    """`attestations[]`: name, predicateType (a short name or a URI), optional Rego `policy`
    evaluated with policy-controller's query (`data.sigstore.isCompliant`) over the statement."""
    if not isinstance(value, list) or not value:
        where.add(path, "must be a non-empty list")
        return ()
    rules: list[AttestationRule] = []
    for index, item in enumerate(value):
        at = f"{path}[{index}]"
        entry = _check_keys(where, item, at, _ATTESTATION_KEYS)
        name = _string(where, entry.get("name"), f"{at}.name", required=True)
        kind = _string(where, entry.get("predicateType"), f"{at}.predicateType", required=True)
        predicate_type = None
        if kind is not None:
            try:
                predicate_type = predicate_type_uri(kind)
            except AttestationError as exc:
                where.add(f"{at}.predicateType", exc.message)
        policy = None
        if entry.get("policy") is not None:
            policy = _attestation_policy(where, entry["policy"], f"{at}.policy", name or at)
        if name is not None and predicate_type is not None:
            rules.append(AttestationRule(name, predicate_type, policy))
    names = [rule.name for rule in rules]
    for name in sorted({n for n in names if names.count(n) > 1}):
        where.add(path, f"two attestations are named {name!r}")
    return tuple(rules)


def _attestation_policy(where: _Where, value: Any, path: str, name: str) -> RegoPolicy | None:
    policy = _check_keys(where, value, path, _ATTESTATION_POLICY_KEYS)
    kind = policy.get("type")
    if kind == "cue":
        where.add(f"{path}.type", "CUE policies are not supported (Rego only)")
        return None
    if kind != "rego":
        where.add(f"{path}.type", f"must be rego, not {kind!r}")
        return None
    for fetched in ("remote", "configMapRef"):
        if policy.get(fetched) is not None:
            where.add(f"{path}.{fetched}", "policies are read from the file only (put it in data)")
    data = _string(where, policy.get("data"), f"{path}.data", required=True)
    if data is None:
        return None
    try:
        return RegoPolicy(data, query=POLICY_CONTROLLER_QUERY, name=name)
    except PolicyError as exc:
        where.add(f"{path}.data", exc.message)
        return None


def _trust_label(material: TrustMaterial) -> str:
    return repr(material.name) if material.name else f"default ({material.source})"


def _static(where: _Where, value: Any, path: str) -> dict[str, Any]:
    static = _check_keys(where, value, path, {"action", "message"})
    action = static.get("action")
    if action not in ("pass", "fail"):
        where.add(f"{path}.action", f"must be pass or fail, not {action!r}")
    message = _string(where, static.get("message"), f"{path}.message") or ""
    return {"passes": action == "pass", "message": message}


def _key(where: _Where, value: Any, path: str, base: Path) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    key = _check_keys(where, value, path, {"data", "file", "kms", "secretRef", "hashAlgorithm"})
    algorithm = key.get("hashAlgorithm", "sha256")
    if algorithm != "sha256":
        where.add(f"{path}.hashAlgorithm", f"{algorithm!r} is not supported (only sha256)")
    given = [k for k in ("data", "file", "kms", "secretRef") if key.get(k)]
    if len(given) > 1:
        where.add(
            path, f"expected exactly one of data, file, kms, secretRef, got {', '.join(given)}"
        )
        return {}
    if not given:
        where.add(path, "expected exactly one of data, file")
        return {}
    if given[0] == "kms":
        where.add(
            f"{path}.kms", "KMS keys are not supported here; give the PEM key as data or file"
        )
        return {}
    if given[0] == "secretRef":
        where.add(
            f"{path}.secretRef",
            "Kubernetes secrets are not supported here; give the PEM key as data or file",
        )
        return {}
    field = given[0]
    text = _string(where, key[field], f"{path}.{field}")
    if text is None:
        return {}
    raw = text.encode()
    if field == "file":
        try:
            with (base / text).open("rb") as handle:
                raw = handle.read(MAX_KEY_BYTES + 1)
        except OSError as exc:
            where.add(f"{path}.file", f"cannot read {base / text}: {exc.strerror}")
            return {}
    if len(raw) > MAX_KEY_BYTES:
        where.add(f"{path}.{field}", f"larger than {MAX_KEY_BYTES} bytes")
        return {}
    try:
        public_key = load_pem_public_key(raw)
    except ValueError:
        where.add(f"{path}.{field}", "not a PEM public key")
        return {}
    if not isinstance(
        public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
    ):
        where.add(f"{path}.{field}", f"unsupported key type {type(public_key).__name__}")
        return {}
    try:
        check_allowed_key(public_key, source="the key")
    except KeyFileError as exc:
        where.add(f"{path}.{field}", exc.message)
        return {}
    reference = str(base / text) if field == "file" else f"{path}.data"
    return {"keys": (VerifierKey(reference, public_key),)}


def _keyless(where: _Where, value: Any, path: str) -> tuple[dict[str, Any], str | None]:
    keyless = _check_keys(
        where,
        value,
        path,
        {"url", "ca-cert", "identities", "trustRootRef", "insecureIgnoreSCT"},
    )
    # policy-controller defaults a missing url to public Fulcio; the trust root decides here.
    if keyless.get("url") is not None and keyless.get("ca-cert") is not None:
        where.add(path, "expected exactly one of url, ca-cert, got both")
    _string(where, keyless.get("url"), f"{path}.url")
    if keyless.get("ca-cert") is not None:
        where.add(
            f"{path}.ca-cert",
            "is not supported; name the CA's trust root with trustRootRef "
            "(a TrustRoot document or --trust-root NAME=FILE)",
        )
    ignore_sct = keyless.get("insecureIgnoreSCT", False)
    if ignore_sct not in (False, True):
        where.add(f"{path}.insecureIgnoreSCT", "must be true or false")
    elif ignore_sct:
        where.add(
            f"{path}.insecureIgnoreSCT",
            "true is not supported: keyless always checks the certificate's SCT",
        )
    identities: list[KeylessIdentity] = []
    listed = keyless.get("identities")
    if not isinstance(listed, list) or not listed:
        where.add(f"{path}.identities", "missing (at least one issuer and subject)")
        listed = []
    for i, entry in enumerate(listed):
        identity = _identity(where, entry, f"{path}.identities[{i}]")
        if identity is not None:
            identities.append(identity)
    ref = _string(where, keyless.get("trustRootRef"), f"{path}.trustRootRef")
    return {"identities": tuple(identities)}, ref


def _identity(where: _Where, value: Any, path: str) -> KeylessIdentity | None:
    count = len(where.problems)
    entry = _check_keys(where, value, path, {"issuer", "issuerRegExp", "subject", "subjectRegExp"})
    values = {key: _string(where, entry.get(key), f"{path}.{key}") for key in entry}
    for exact, regexp in (("issuer", "issuerRegExp"), ("subject", "subjectRegExp")):
        given = [k for k in (exact, regexp) if values.get(k) is not None]
        if not given:
            where.add(path, f"expected exactly one of {exact}, {regexp}")
        elif len(given) > 1:
            where.add(path, f"expected exactly one of {exact}, {regexp}, got both")
        if values.get(regexp) is not None:
            try:
                (IdentityRegexp if exact == "subject" else IssuerRegexp)(values[regexp])
            except VerificationError as exc:
                where.add(f"{path}.{regexp}", exc.detail.split(" ", 1)[1])
    if len(where.problems) > count:
        return None
    return KeylessIdentity(
        issuer=values.get("issuer"),
        issuer_regexp=values.get("issuerRegExp"),
        subject=values.get("subject"),
        subject_regexp=values.get("subjectRegExp"),
    )


def _trust_root(where: _Where, document: dict[str, Any], base: Path) -> TrustMaterial | None:
    name = _metadata(where, document)
    keyless = document.get("apiVersion") == KEYLESS_API_VERSION
    known = {"trustedRootFile"} if keyless else {"remote", "repository", "sigstoreKeys"}
    spec = _check_keys(where, document.get("spec"), "spec", known)
    if name is None or not spec:
        return None
    source = f"{where.source}: document {where.index}"
    if keyless:
        file = _string(where, spec.get("trustedRootFile"), "spec.trustedRootFile", required=True)
        if file is None:
            return None
        from keyless.client.policy.trustroots import load_trust_file

        try:
            material = load_trust_file(name, base / file)
        except TrustRootError as exc:
            where.add("spec.trustedRootFile", exc.detail)
            return None
        return material
    for form in ("remote", "repository"):
        if form in spec:
            where.add(
                f"spec.{form}",
                "TUF trust roots are not supported; use sigstoreKeys, or save the "
                "trusted_root.json and name it with --trust-root NAME=FILE",
            )
    if "sigstoreKeys" not in spec:
        if not any(form in spec for form in ("remote", "repository")):
            where.add("spec", "expected sigstoreKeys")
        return None
    data, problems = sigstore_keys_root(spec["sigstoreKeys"], "spec.sigstoreKeys")
    for problem in problems:
        path, _, message = problem.partition(": ")
        where.add(path, message)
    if problems:
        return None
    try:
        return trust_from_json(name, data, source)
    except TrustRootError as exc:
        where.add("spec.sigstoreKeys", exc.detail)
        return None


def _config_map(where: _Where, document: dict[str, Any]) -> str | None:
    _metadata(where, document, "data")
    data = _check_keys(
        where,
        document.get("data") or {},
        "data",
        {"no-match-policy", "fail-on-empty-authorities", "enable-oci11"},
    )
    for key in ("fail-on-empty-authorities", "enable-oci11"):
        if key in data and str(data[key]).lower() not in ("true", "false"):
            where.add(f"data.{key}", "must be true or false")
    if str(data.get("fail-on-empty-authorities", "true")).lower() == "false":
        where.add("data.fail-on-empty-authorities", "false is not supported")
    value = data.get("no-match-policy")
    if value is not None and value not in tuple(NoMatchPolicy):
        where.add("data.no-match-policy", f"must be deny, warn or allow, not {value!r}")
        return None
    return value

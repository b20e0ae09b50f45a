"""Kyverno ClusterPolicy documents with `verifyImages` rules, parsed into `model`'s types.

A `kyverno.io/v1` or `kyverno.io/v2beta1` `ClusterPolicy` whose rules are all `verifyImages`
rules becomes one `ImagePolicy` per `verifyImages` entry, named `<policy>.<rule>` (with
`.verifyImages[i]` when a rule has several), so `policy check`, `verify`-style output and the
gate judge it as they judge a ClusterImagePolicy. Kyverno's semantics, read from its sources
(kyverno/kyverno `api/kyverno/v1/image_verification_types.go`,
`pkg/engine/internal/imageverifier.go`, `pkg/image/verifiers/cpol/cosign/cosign.go`):

- `imageReferences` / `skipImageReferences`: `*`/`?` wildcards (`client.policy.wildcard`);
- `attestors[]`: every set must pass; a set needs `count` of its entries (absent: all of them),
  tried in order; several PEM keys in one `keys.publicKeys` are one entry each; a nested
  `attestor` is a set of its own (`model.AuthorityGroup`);
- `keys.publicKeys` (PEM, sha256), `keyless` (`subject`/`issuer` wildcards, `subjectRegExp`/
  `issuerRegExp`, `additionalExtensions`: `client.policy.kyverno_identity`), `roots`,
  `rekor.pubkey` and `ctlog.pubkey` (which replace those parts of the default trust root, as
  cosign replaces them in the TUF root; the default is `--trusted-root`, else public Sigstore);
  `rekor.url` is where entries are looked up, the log keys come from the trust root;
- `attestations[]`: `type` (or the deprecated `predicateType`), their own `attestors`, and
  `conditions` (`client.policy.kyverno_conditions`), which every attestation of the type by
  the attestor must satisfy;
- the failure action: a rule enforces when any of its `verifyImages` entries says
  `failureAction: Enforce`, else takes the first entry's action, else the spec's deprecated
  `validationFailureAction` (default Audit); Enforce is `mode: enforce`, Audit `mode: warn`;
- `mutateDigest`, `verifyDigest` (both default true): the gate pins tags only for the first,
  and refuses tags only for the second; `required` (default true): keyless verifies in the
  validating webhook itself, so an image is always verified (`required: false` gets a warning);
- `match` must select Pods (Kyverno extends a Pod rule to Deployments, CronJobs and the other
  controllers, and keyless judges them all).

Everything else is refused, one line naming the field, so that a policy never means less here
than in Kyverno: namespaced `Policy`, `exclude`, matching by namespace, name, selector or user,
`context`, `preconditions`, non-verifyImages rules, `imageExtractors`, `Notary`, `certificates`,
`kms` and `secret` keys, `k8s://` references, `annotations`, `repository`, `rekor.ignoreTlog`,
`ctlog.ignoreSCT`, `tsaCertChain`, `validate.deny`, `imageRegistryCredentials`,
`failurePolicy: Ignore`, `applyRules: One`, `admission: false`, variables (`{{ }}`) outside
attestation conditions, and Kyverno's own validation errors, with its words (`An image
reference is required`, `Count cannot exceed length of entries`, `mutateDigest must be set to
false for 'Audit' failure action`, in Kyverno's curly quotes, ...). ImageValidatingPolicy
(CEL) is refused as a kind.

Kyverno's regexps are Go regexps matched anywhere in the value; keyless matches the whole
value (stricter), and the load says, one warning line per pattern, where that changes what a
pattern accepts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keyless.client.keys import VerifierKey
from keyless.client.policy.documents import Where, check_keys, metadata_name, string_value
from keyless.client.policy.kyverno_conditions import ConditionError, compile_conditions
from keyless.client.policy.kyverno_identity import (
    EXTENSIONS,
    IdentityPatternError,
    KyvernoIdentity,
    anchoring_changes,
    compile_regexp,
)
from keyless.client.policy.model import (
    AttestationRule,
    Authority,
    AuthorityGroup,
    ImagePolicy,
    KeyAuthority,
    KeylessAuthority,
    KeylessIdentity,
    Mode,
    SignatureFormat,
)
from keyless.client.policy.trustroots import DEFAULT_TRUST_ROOT, TrustMaterial, derived_trust
from keyless.client.policy.wildcard import WildcardError, compile_wildcard
from keyless.client.verify import TrustRootError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

API_VERSIONS = ("kyverno.io/v1", "kyverno.io/v2beta1")
KINDS = ("ClusterPolicy", "Policy")
IVP_API_VERSIONS = (
    "policies.kyverno.io/v1",
    "policies.kyverno.io/v1beta1",
    "policies.kyverno.io/v1alpha1",
)
IVP_KINDS = ("ImageValidatingPolicy", "NamespacedImageValidatingPolicy")
DEFAULT_REKOR_URL = "https://rekor.sigstore.dev"
MAX_PEM_BYTES = 64 * 1024
MAX_KEYS = 64
MAX_ROOTS = 16
_END_PUBLIC_KEY = "-----END PUBLIC KEY-----"
_ENFORCE = ("Enforce", "enforce")
_AUDIT = ("Audit", "audit")
_SIGNATURE_ALGORITHMS = ("", "sha224", "sha256", "sha384", "sha512")
_POD_CONTROLLERS = "Deployments, CronJobs and the other pod controllers"

_SPEC_KEYS = {
    "rules",
    "validationFailureAction",
    "validationFailureActionOverrides",
    "background",
    "admission",
    "emitWarning",
    "failurePolicy",
    "webhookTimeoutSeconds",
    "webhookConfiguration",
    "schemaValidation",
    "applyRules",
    "useServerSideApply",
}
_RULE_KEYS = {
    "name",
    "match",
    "exclude",
    "context",
    "preconditions",
    "celPreconditions",
    "mutate",
    "validate",
    "generate",
    "verifyImages",
    "imageExtractors",
    "reportProperties",
    "skipBackgroundRequests",
}
_RULE_REFUSED = {
    "exclude": "excluding resources is not supported yet: keyless would judge what Kyverno exempts",
    "context": "context entries (ConfigMaps, API calls, variables) are not supported",
    "preconditions": "preconditions are not supported",
    "celPreconditions": "preconditions are not supported",
    "mutate": "keyless reads verifyImages rules only, and refuses a policy with other rules "
    "rather than apply half of it",
    "validate": "keyless reads verifyImages rules only, and refuses a policy with other rules "
    "rather than apply half of it",
    "generate": "keyless reads verifyImages rules only, and refuses a policy with other rules "
    "rather than apply half of it",
    "imageExtractors": "custom image extractors are not supported: keyless judges the images "
    "of containers, init containers and ephemeral containers",
}
_VERIFY_KEYS = {
    "failureAction",
    "type",
    "image",
    "imageReferences",
    "skipImageReferences",
    "key",
    "roots",
    "subject",
    "issuer",
    "additionalExtensions",
    "annotations",
    "attestors",
    "attestations",
    "repository",
    "cosignOCI11",
    "mutateDigest",
    "verifyDigest",
    "validate",
    "required",
    "imageRegistryCredentials",
    "useCache",
}


@dataclass
class _Context:
    """What the parse of one document carries: where problems go, the trust material, the
    warnings, and the verifyImages entry being read."""

    where: Where
    trust: dict[str, TrustMaterial]
    warnings: list[str]
    content: bytes = b""  # the spec, as the policies' content hash covers it
    bundles: bool = False  # type: SigstoreBundle
    added: dict[str, TrustMaterial] = field(default_factory=dict)

    def add(self, path: str, message: str) -> None:
        self.where.add(path, message)

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(self.where.line(path, message))


def is_kyverno(document: dict[str, Any]) -> bool:
    """Whether the document is a Kyverno policy (read here, or refused here by kind)."""
    api, kind = document.get("apiVersion"), document.get("kind")
    return (api in API_VERSIONS and kind in KINDS) or (
        api in IVP_API_VERSIONS and kind in IVP_KINDS
    )


def parse_kyverno(
    where: Where,
    document: dict[str, Any],
    trust: dict[str, TrustMaterial],
    warnings: list[str],
) -> list[ImagePolicy]:
    """The ImagePolicies of one Kyverno document; problems go to `where`, lines to show at load
    to `warnings`, and trust material the attestors build into `trust`. A document with any
    problem gives no policy at all."""
    api, kind = document.get("apiVersion"), document.get("kind")
    if kind in IVP_KINDS:
        where.add(
            "kind",
            f"{api}/{kind} (CEL rules) is not supported yet; keyless reads Kyverno's "
            "kyverno.io/v1 ClusterPolicy with verifyImages rules",
        )
        return []
    if kind == "Policy":
        where.add(
            "kind",
            f"{api}/Policy applies only in its own namespace, and keyless judges every "
            "namespace alike: make it a ClusterPolicy to use it here",
        )
        return []
    content = json.dumps(document.get("spec"), sort_keys=True, default=str).encode()
    context = _Context(where, trust, warnings, content)
    count = len(where.problems)
    name = metadata_name(where, document)
    spec = check_keys(where, document.get("spec"), "spec", _SPEC_KEYS)
    enforce = _spec(context, spec)
    rules = spec.get("rules")
    if not isinstance(rules, list) or not rules:
        where.add("spec.rules", "missing (at least one rule with verifyImages)")
        rules = []
    policies: list[ImagePolicy] = []
    seen: set[str] = set()
    for index, rule in enumerate(rules):
        policies += _rule(context, rule, f"spec.rules[{index}]", name or "", enforce, seen)
    if len(where.problems) > count or name is None:
        return []
    trust.update(context.added)
    return policies


def _spec(context: _Context, spec: dict[str, Any]) -> bool | None:
    """Check the spec's own fields; whether its (deprecated) action enforces (None: the
    action is invalid, and refused)."""
    action = spec.get("validationFailureAction", "Audit")
    if action not in _ENFORCE + _AUDIT:
        context.add("spec.validationFailureAction", f"must be Audit or Enforce, not {action!r}")
        return None
    if "validationFailureActionOverrides" in spec:
        context.add(
            "spec.validationFailureActionOverrides",
            "actions per namespace are not supported: keyless judges every namespace alike",
        )
    for key in ("background", "emitWarning", "schemaValidation", "useServerSideApply"):
        _bool(context, spec, key, "spec", True)
    if not _bool(context, spec, "admission", "spec", True):
        context.add(
            "spec.admission",
            "false is not supported: such a policy never runs at admission, and keyless "
            "judges admissions and pipelines only",
        )
    if spec.get("applyRules", "All") != "All":
        context.add(
            "spec.applyRules",
            f"{spec['applyRules']!r} is not supported: keyless applies every rule (All)",
        )
    hook = spec.get("webhookConfiguration")
    if hook is not None:
        hook = check_keys(
            context.where,
            hook,
            "spec.webhookConfiguration",
            {"failurePolicy", "timeoutSeconds", "matchConditions"},
        )
        if hook.get("matchConditions"):
            context.add(
                "spec.webhookConfiguration.matchConditions",
                "match conditions are not supported yet",
            )
        for key, deprecated in (
            ("failurePolicy", "failurePolicy"),
            ("timeoutSeconds", "webhookTimeoutSeconds"),
        ):
            if key in hook and deprecated in spec:
                context.add(
                    f"spec.{deprecated}",
                    f"remove the deprecated field and use spec.webhookConfiguration.{key} instead",
                )
        _failure_policy(context, hook.get("failurePolicy"), "spec.webhookConfiguration")
        _timeout(context, hook.get("timeoutSeconds"), "spec.webhookConfiguration.timeoutSeconds")
    _failure_policy(context, spec.get("failurePolicy"), "spec")
    _timeout(context, spec.get("webhookTimeoutSeconds"), "spec.webhookTimeoutSeconds")
    return action in _ENFORCE


def _failure_policy(context: _Context, value: Any, path: str) -> None:
    if value is None or value == "Fail":
        return
    if value == "Ignore":
        context.add(
            f"{path}.failurePolicy",
            "Ignore is not supported: it admits what could not be judged, and keyless never "
            "takes an error for a pass (use Fail)",
        )
        return
    context.add(f"{path}.failurePolicy", f"must be Fail or Ignore, not {value!r}")


def _timeout(context: _Context, value: Any, path: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 30:
        context.add(path, "must be a whole number of seconds from 1 to 30")


def _bool(context: _Context, entry: dict[str, Any], key: str, path: str, default: bool) -> bool:
    value = entry.get(key, default)
    if not isinstance(value, bool):
        context.add(f"{path}.{key}", "must be true or false")
        return default
    return value


def _rule(
    context: _Context,
    value: Any,
    path: str,
    policy: str,
    enforce: bool | None,
    seen: set[str],
) -> list[ImagePolicy]:
    rule = check_keys(context.where, value, path, _RULE_KEYS)
    name = string_value(context.where, rule.get("name"), f"{path}.name", required=True)
    if name is not None:
        if name in seen:
            context.add(f"{path}.name", f"Duplicate rule name: '{name}'")
        seen.add(name)
    for key, why in _RULE_REFUSED.items():
        if key in rule:
            context.add(f"{path}.{key}", why)
    if "skipBackgroundRequests" in rule:
        _bool(context, rule, "skipBackgroundRequests", path, True)
    _match(context, rule.get("match"), f"{path}.match")
    listed = rule.get("verifyImages")
    if not isinstance(listed, list) or not listed:
        context.add(f"{path}.verifyImages", "missing (keyless reads verifyImages rules only)")
        return []
    entries = [e if isinstance(e, dict) else {} for e in listed]
    mode = (
        Mode.ENFORCE
        if _rule_enforces(context, entries, f"{path}.verifyImages", enforce)
        else Mode.WARN
    )
    policies = []
    for index, entry in enumerate(listed):
        at = f"{path}.verifyImages[{index}]"
        label = f"{policy}.{name}" + (f".verifyImages[{index}]" if len(listed) > 1 else "")
        entry_action = entries[index].get("failureAction")
        audits = entry_action in _AUDIT if entry_action is not None else enforce is False
        built = _image_verification(context, entry, at, label, mode, audits)
        if built is not None:
            policies.append(built)
    return policies


def _rule_enforces(
    context: _Context, entries: list[dict[str, Any]], path: str, spec: bool | None
) -> bool:
    """Kyverno's ruleAction: Enforce when any entry enforces, else the first entry's action,
    else the spec's."""
    actions = []
    for index, entry in enumerate(entries):
        action = entry.get("failureAction")
        if action is None:
            continue
        if action not in ("Audit", "Enforce"):
            context.add(
                f"{path}[{index}].failureAction", f"must be Audit or Enforce, not {action!r}"
            )
            continue
        actions.append(action)
    if "Enforce" in actions:
        return True
    return bool(spec) if not actions else False


def _match(context: _Context, value: Any, path: str) -> None:
    """`match` must select Pods, by kind only."""
    if value is None:
        context.add(path, "missing (a rule must match Pod)")
        return
    match = check_keys(
        context.where, value, path, {"any", "all", "resources", "subjects", "roles", "clusterRoles"}
    )
    for key in ("subjects", "roles", "clusterRoles"):
        if key in match:
            context.add(f"{path}.{key}", "matching by user, group or role is not supported yet")
    forms = [k for k in ("any", "all", "resources") if k in match]
    if len(forms) != 1:
        context.add(path, "expected exactly one of any, all, resources")
        return
    form = forms[0]
    if form == "resources":
        filters = [("resources", {"resources": match["resources"]})]
    else:
        listed = match[form]
        if not isinstance(listed, list) or not listed:
            context.add(f"{path}.{form}", "must be a non-empty list of resource filters")
            return
        filters = [(f"{form}[{i}]", item) for i, item in enumerate(listed)]
    pods = []
    for at, item in filters:
        prefix = f"{path}.{at}" if form != "resources" else path
        entry = check_keys(
            context.where, item, prefix, {"resources", "subjects", "roles", "clusterRoles"}
        )
        for key in ("subjects", "roles", "clusterRoles"):
            if key in entry:
                context.add(
                    f"{prefix}.{key}", "matching by user, group or role is not supported yet"
                )
        pods.append(_kinds(context, entry.get("resources"), f"{prefix}.resources"))
    if not (any(pods) if form == "any" else all(pods)):
        context.add(
            path,
            "keyless judges the images of every Pod and pod controller, so a rule must match "
            f"Pod (Kyverno extends a Pod rule to {_POD_CONTROLLERS})",
        )


def _kinds(context: _Context, value: Any, path: str) -> bool:
    """Whether a resource description selects Pods, by kind alone."""
    description = check_keys(
        context.where,
        value,
        path,
        {
            "kinds",
            "names",
            "name",
            "namespaces",
            "annotations",
            "selector",
            "namespaceSelector",
            "operations",
        },
    )
    for key in description:
        if key != "kinds":
            context.add(
                f"{path}.{key}",
                "matching by namespace, name, labels, annotations or operation is not supported "
                "yet: keyless judges every object's images alike",
            )
    kinds = description.get("kinds")
    if not isinstance(kinds, list) or not kinds or not all(isinstance(k, str) for k in kinds):
        context.add(f"{path}.kinds", "must be a non-empty list of kinds")
        return True  # already refused; say it once
    return any(k == "*" or k.split("/")[-1] in ("Pod", "*") for k in kinds)


def _image_verification(
    context: _Context,
    value: Any,
    path: str,
    name: str,
    mode: Mode,
    audits: bool,
) -> ImagePolicy | None:
    count = len(context.where.problems)
    entry = dict(check_keys(context.where, value, path, _VERIFY_KEYS))
    kind = entry.get("type", "Cosign")
    if kind == "Notary":
        context.add(
            f"{path}.type", "Notary signatures are not supported (Cosign or SigstoreBundle)"
        )
    elif kind not in ("Cosign", "SigstoreBundle"):
        context.add(f"{path}.type", f"must be Cosign, SigstoreBundle or Notary, not {kind!r}")
    context.bundles = kind == "SigstoreBundle"
    _convert(context, entry, path)
    references = _patterns(context, entry.get("imageReferences"), f"{path}.imageReferences")
    if not entry.get("imageReferences"):
        context.add(path, "An image reference is required")
    skips = _patterns(context, entry.get("skipImageReferences"), f"{path}.skipImageReferences")
    for key, why in (
        ("repository", "signatures kept in another repository are not supported yet"),
        (
            "imageRegistryCredentials",
            "registry credentials are not read from policies: keyless "
            "uses those of the pipeline or the gate it runs in",
        ),
    ):
        if key in entry:
            context.add(f"{path}.{key}", why)
    if entry.get("validate"):
        context.add(
            f"{path}.validate", "validate.deny checks across attestations are not supported yet"
        )
    for key in ("cosignOCI11", "useCache"):
        _bool(context, entry, key, path, key == "useCache")
    mutate = _bool(context, entry, "mutateDigest", path, True)
    verify = _bool(context, entry, "verifyDigest", path, True)
    if audits and mutate:
        # Kyverno's message, curly quotes and all.
        message = "mutateDigest must be set to false for \u2018Audit\u2019 failure action"
        context.add(f"{path}.mutateDigest", message)
    if not _bool(context, entry, "required", path, True):
        context.warn(
            f"{path}.required",
            "keyless verifies every matching image in its validating webhook whatever "
            "`required` says (Kyverno's false lets an image through when its mutating "
            "webhook did not run)",
        )
    members: list[Authority] = []
    attestors = entry.get("attestors")
    if attestors is not None:
        members += _sets(context, attestors, f"{path}.attestors", "attestors", None)
    attestations = entry.get("attestations")
    if attestations is not None:
        if not isinstance(attestations, list):
            context.add(f"{path}.attestations", "must be a list")
        else:
            for index, item in enumerate(attestations):
                group = _attestation(context, item, f"{path}.attestations[{index}]", index)
                if group is not None:
                    members.append(group)
    if not attestors and not attestations:
        context.add(
            path,
            "attestors or attestations: neither is given, so Kyverno only checks digests, and "
            "keyless does not judge images by their digest alone",
        )
    if len(context.where.problems) > count or not members:
        return None
    top: Authority = members[0]
    if len(members) > 1:
        top = AuthorityGroup(name="verifyImages", members=tuple(members), threshold=len(members))
    return ImagePolicy(
        name=name,
        globs=tuple(p.pattern for p in references),
        mode=mode,
        authorities=(top,),
        source=f"{context.where.source}: document {context.where.index}",
        content_sha256=hashlib.sha256(name.encode() + b"\0" + context.content).hexdigest(),
        patterns=tuple(references),
        skip_patterns=tuple(skips),
        mutate_digest=mutate,
        verify_digest=verify,
        undecided_refuses=True,  # failurePolicy: Fail, the only one keyless reads
    )


def _convert(context: _Context, entry: dict[str, Any], path: str) -> None:
    """Kyverno's `ImageVerification.Convert()`: the deprecated `image`, `key`, `issuer`,
    `subject`, `roots` and `annotations` become imageReferences and an attestor set."""
    if "additionalExtensions" in entry:
        context.add(
            f"{path}.additionalExtensions",
            "is deprecated, and Kyverno ignores it here: put it under "
            "attestors[].entries[].keyless.additionalExtensions",
        )
    image, key, issuer = (entry.get(k) or "" for k in ("image", "key", "issuer"))
    if not (image or key or issuer):
        for ignored in ("roots", "subject", "annotations"):
            if entry.get(ignored):
                context.add(
                    f"{path}.{ignored}",
                    "is deprecated, and Kyverno ignores it without image, key or issuer: use "
                    "attestors",
                )
        return
    if image:
        if not isinstance(image, str):
            context.add(f"{path}.image", "must be a string")
        else:
            listed = entry.get("imageReferences") or []
            entry["imageReferences"] = [*listed, image] if isinstance(listed, list) else listed
    if not (key or issuer or entry.get("annotations")):
        return
    if entry.get("attestations"):
        context.add(
            f"{path}.{'key' if key else 'issuer'}",
            "deprecated, and with attestations Kyverno's conversion drops it: move it into "
            "attestations[].attestors",
        )
        return
    attestor: dict[str, Any] = {}
    if entry.get("annotations"):
        attestor["annotations"] = entry["annotations"]
    if key:
        attestor["keys"] = {"publicKeys": key}
    elif issuer:
        attestor["keyless"] = {
            k: v
            for k, v in (
                ("issuer", issuer),
                ("subject", entry.get("subject")),
                ("roots", entry.get("roots")),
            )
            if v
        }
    listed = entry.get("attestors") or []
    entry["attestors"] = [*listed, {"entries": [attestor]}] if isinstance(listed, list) else listed


def _patterns(context: _Context, value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        context.add(path, "must be a list of image patterns")
        return []
    patterns = []
    for index, item in enumerate(value):
        at = f"{path}[{index}]"
        if not isinstance(item, str):
            context.add(at, "must be a string")
        elif "{{" in item:
            context.add(at, "variables are not allowed in image reference")
        else:
            try:
                patterns.append(compile_wildcard(item))
            except WildcardError as exc:
                context.add(at, str(exc))
    return patterns


def _sets(
    context: _Context, value: Any, path: str, label: str, rule: AttestationRule | None
) -> list[AuthorityGroup]:
    if not isinstance(value, list):
        context.add(path, "must be a list of attestor sets")
        return []
    groups = []
    for index, item in enumerate(value):
        group = _attestor_set(context, item, f"{path}[{index}]", f"{label}[{index}]", rule)
        if group is not None:
            groups.append(group)
    return groups


def _attestor_set(
    context: _Context, value: Any, path: str, label: str, rule: AttestationRule | None
) -> AuthorityGroup | None:
    count = len(context.where.problems)
    attestor_set = check_keys(context.where, value, path, {"count", "entries"})
    entries = attestor_set.get("entries")
    if not isinstance(entries, list) or not entries:
        context.add(path, "An entry is required")
        entries = []
    required = attestor_set.get("count")
    if required is not None:
        if isinstance(required, bool) or not isinstance(required, int) or required < 1:
            context.add(f"{path}.count", "must be a whole number, at least 1")
            required = None
        elif required > len(entries):
            context.add(path, "Count cannot exceed length of entries")
    members: list[Authority] = []
    for index, entry in enumerate(entries):
        members += _attestor(context, entry, f"{path}.entries[{index}]", f"entries[{index}]", rule)
    if len(context.where.problems) > count or not members:
        return None
    return AuthorityGroup(name=label, members=tuple(members), threshold=required or len(members))


def _attestor(
    context: _Context, value: Any, path: str, label: str, rule: AttestationRule | None
) -> list[Authority]:
    attestor = check_keys(
        context.where,
        value,
        path,
        {
            "keys",
            "certificates",
            "keyless",
            "attestor",
            "annotations",
            "repository",
            "signatureAlgorithm",
        },
    )
    kinds = [
        k for k in ("keys", "certificates", "keyless", "attestor") if attestor.get(k) is not None
    ]
    if len(kinds) != 1:
        context.add(path, "keys, certificates, keyless, or a nested attestor is required")
        return []
    if attestor.get("annotations"):
        context.add(
            f"{path}.annotations",
            "signature annotations are not checked by keyless (Sigstore bundles carry none)",
        )
    if "repository" in attestor:
        context.add(
            f"{path}.repository", "signatures kept in another repository are not supported yet"
        )
    _algorithm(context, attestor.get("signatureAlgorithm", ""), f"{path}.signatureAlgorithm")
    kind = kinds[0]
    at = f"{path}.{kind}"
    if kind == "certificates":
        context.add(
            at,
            "certificate attestors are not supported yet: for a key use keys.publicKeys, for a "
            "CA keyless.roots",
        )
        return []
    if kind == "attestor":
        if rule is not None:
            context.add(
                at,
                "a nested attestor is not supported in attestations: Kyverno checks no signer "
                "there (list the entries instead)",
            )
            return []
        nested = _attestor_set(context, attestor["attestor"], at, f"{label}.attestor", None)
        return [nested] if nested is not None else []
    if kind == "keys":
        if rule is not None:
            context.add(at, "attestations verified with keys are not supported yet")
            return []
        return list(_keys(context, attestor["keys"], at, f"{label}.keys"))
    built = _keyless(context, attestor["keyless"], at, f"{label}.keyless", rule)
    return [built] if built is not None else []


def _algorithm(context: _Context, value: Any, path: str) -> None:
    if value not in _SIGNATURE_ALGORITHMS:
        context.add(path, "Invalid signature algorithm provided")
    elif value not in ("", "sha256"):
        context.add(path, f"{value!r} is not supported (only sha256)")


def _keys(context: _Context, value: Any, path: str, label: str) -> list[KeyAuthority]:
    keys = check_keys(
        context.where,
        value,
        path,
        {"publicKeys", "signatureAlgorithm", "kms", "secret", "rekor", "ctlog"},
    )
    given = [k for k in ("publicKeys", "kms", "secret") if keys.get(k)]
    if not given:
        context.add(path, "A public key, kms key or secret is required")
        return []
    if len(given) > 1:
        context.add(path, f"expected one of publicKeys, kms, secret, got {', '.join(given)}")
        return []
    if given[0] == "kms":
        context.add(
            f"{path}.kms", "KMS keys are not supported yet: give the PEM public key in publicKeys"
        )
        return []
    if given[0] == "secret":
        context.add(
            f"{path}.secret",
            "Kubernetes secrets are not read: give the PEM public key in publicKeys",
        )
        return []
    _algorithm(context, keys.get("signatureAlgorithm", ""), f"{path}.signatureAlgorithm")
    text = keys["publicKeys"]
    public_keys = _public_keys(context, text, f"{path}.publicKeys")
    url, rekor_key, rekor_pem = _rekor(context, keys.get("rekor"), f"{path}.rekor")
    _ctlog(context, keys.get("ctlog"), f"{path}.ctlog", certificates=False)
    if not public_keys or url is None:
        return []
    trust_root = _trust(context, f"{path}.rekor", url, rekor_key, rekor_pem=rekor_pem)
    if trust_root is None:
        return []
    names = [label] if len(public_keys) == 1 else [f"{label}[{i}]" for i in range(len(public_keys))]
    return [
        KeyAuthority(
            name=name,
            keys=(VerifierKey(f"{path}.publicKeys{name.removeprefix(label)}", key),),
            trust_root=trust_root,
            signature_format=_format(context),
        )
        for name, key in zip(names, public_keys, strict=True)
    ]


def _public_keys(context: _Context, value: Any, path: str) -> list[PublicKeyTypes]:
    """Kyverno's splitPEM: several `PUBLIC KEY` blocks in one string are one key each."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if not isinstance(value, str):
        context.add(path, "must be a string")
        return []
    if len(value) > MAX_PEM_BYTES:
        context.add(path, f"larger than {MAX_PEM_BYTES} bytes")
        return []
    if "{{" in value:
        context.add(path, "variables are not supported: give the PEM public key itself")
        return []
    if not value.strip().startswith("-----BEGIN PUBLIC KEY-----"):
        context.add(path, "not a PEM public key (k8s:// and KMS references are not supported)")
        return []
    blocks = value.split(_END_PUBLIC_KEY)[:-1]
    pems = [b + _END_PUBLIC_KEY for b in blocks] if len(blocks) > 1 else [value]
    if len(pems) > MAX_KEYS:
        context.add(path, f"more than {MAX_KEYS} keys")
        return []
    keys: list[PublicKeyTypes] = []
    for index, pem in enumerate(pems):
        at = path if len(pems) == 1 else f"{path} (key {index + 1})"
        try:
            key = load_pem_public_key(pem.strip().encode())
        except ValueError:
            context.add(at, "not a PEM public key")
            continue
        if not isinstance(
            key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
        ):
            context.add(at, f"unsupported key type {type(key).__name__}")
            continue
        keys.append(key)
    return keys


def _rekor(
    context: _Context, value: Any, path: str
) -> tuple[str | None, PublicKeyTypes | None, bytes]:
    """The log URL (Kyverno's default when `rekor` is absent) and the log key, if given."""
    if value is None:
        return DEFAULT_REKOR_URL, None, b""
    rekor = check_keys(context.where, value, path, {"url", "pubkey", "ignoreTlog"})
    if _bool(context, rekor, "ignoreTlog", path, False):
        context.add(
            f"{path}.ignoreTlog",
            "true is not supported: keyless always checks the transparency log",
        )
    url = string_value(context.where, rekor.get("url"), f"{path}.url")
    if url is None:
        context.add(path, "An URL is required")
    elif "{{" in url:
        context.add(f"{path}.url", "variables are not supported")
        url = None
    elif not url.startswith(("https://", "http://")):
        context.add(f"{path}.url", f"must be an http(s) URL, not {url!r}")
        url = None
    pem = rekor.get("pubkey")
    key = _pem_key(context, pem, f"{path}.pubkey") if pem else None
    return url, key, pem.encode() if isinstance(pem, str) else b""


def _ctlog(
    context: _Context, value: Any, path: str, *, certificates: bool
) -> tuple[PublicKeyTypes | None, bytes]:
    if value is None:
        return None, b""
    ctlog = check_keys(context.where, value, path, {"ignoreSCT", "pubkey", "tsaCertChain"})
    if _bool(context, ctlog, "ignoreSCT", path, False) and certificates:
        context.add(
            f"{path}.ignoreSCT",
            "true is not supported: keyless always checks the certificate's SCT",
        )
    if ctlog.get("tsaCertChain"):
        context.add(
            f"{path}.tsaCertChain",
            "is not supported yet: put the TSA in a trusted_root.json given with --trusted-root",
        )
    pem = ctlog.get("pubkey")
    if not pem:
        return None, b""
    return _pem_key(context, pem, f"{path}.pubkey"), pem.encode() if isinstance(pem, str) else b""


def _pem_key(context: _Context, value: Any, path: str) -> PublicKeyTypes | None:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if not isinstance(value, str) or len(value) > MAX_PEM_BYTES or "{{" in value:
        context.add(path, "must be a PEM public key")
        return None
    try:
        return load_pem_public_key(value.strip().encode())
    except ValueError:
        context.add(path, "not a PEM public key")
        return None


def _keyless(
    context: _Context, value: Any, path: str, label: str, rule: AttestationRule | None
) -> KeylessAuthority | None:
    count = len(context.where.problems)
    keyless = check_keys(
        context.where,
        value,
        path,
        {
            "rekor",
            "ctlog",
            "issuer",
            "issuerRegExp",
            "subject",
            "subjectRegExp",
            "roots",
            "additionalExtensions",
        },
    )
    values = {
        key: string_value(context.where, keyless.get(key), f"{path}.{key}") or ""
        for key in ("issuer", "issuerRegExp", "subject", "subjectRegExp", "roots")
    }
    for key, text in values.items():
        if "{{" in text:
            context.add(f"{path}.{key}", "variables are not supported")
    if keyless.get("rekor") is None and not values["roots"]:
        context.add(path, "Either Rekor URL or roots are required")
    url, rekor_key, rekor_pem = _rekor(context, keyless.get("rekor"), f"{path}.rekor")
    ct_key, ct_pem = _ctlog(context, keyless.get("ctlog"), f"{path}.ctlog", certificates=True)
    extensions = _extensions(
        context, keyless.get("additionalExtensions"), f"{path}.additionalExtensions"
    )
    roots = _roots(context, values["roots"], f"{path}.roots") if values["roots"] else ()
    for key in ("subjectRegExp", "issuerRegExp"):
        pattern = values[key]
        if not pattern:
            continue
        try:
            compile_regexp(pattern)
        except IdentityPatternError as exc:
            context.add(f"{path}.{key}", str(exc))
            continue
        if anchoring_changes(pattern):
            context.warn(
                f"{path}.{key}",
                f"{pattern!r} must match the whole value here, where Kyverno matches it anywhere "
                "in the value (write ^...$ to mean the same in both)",
            )
    identity: Any = None
    if context.bundles:
        identity = _bundle_identity(context, values, path, keyless)
    elif len(context.where.problems) == count:
        identity = KyvernoIdentity(
            subject=values["subject"],
            subject_regexp=values["subjectRegExp"],
            issuer=values["issuer"],
            issuer_regexp=values["issuerRegExp"],
            extensions=extensions,
        )
        if identity.checks_nothing:
            context.warn(
                path,
                "names no subject, issuer or extension: any certificate of the trusted CAs "
                "passes, as in Kyverno",
            )
    if len(context.where.problems) > count or url is None or identity is None:
        return None
    trust_root = _trust(
        context,
        f"{path}.rekor",
        url,
        rekor_key,
        rekor_pem=rekor_pem,
        roots=roots,
        roots_pem=values["roots"].encode(),
        ctlog_key=ct_key,
        ctlog_pem=ct_pem,
    )
    if trust_root is None:
        return None
    if isinstance(identity, KeylessIdentity):
        return KeylessAuthority(
            name=label,
            trust_root=trust_root,
            signature_format=SignatureFormat.BUNDLE,
            identities=(identity,),
            attestations=(rule,) if rule is not None else (),
        )
    return KeylessAuthority(
        name=label,
        trust_root=trust_root,
        signature_format=_format(context),
        identity=identity,
        expected=identity.describe(),
        attestations=(rule,) if rule is not None else (),
    )


def _bundle_identity(
    context: _Context,
    values: dict[str, str],
    path: str,
    keyless: dict[str, Any],
) -> KeylessIdentity | None:
    """`type: SigstoreBundle` goes through sigstore-go: exact subject and issuer (or regexps),
    both needed, and no roots, log keys or extensions (Kyverno takes trust from TUF there)."""
    for key in ("roots", "additionalExtensions"):
        if keyless.get(key):
            context.add(f"{path}.{key}", "is ignored by Kyverno for SigstoreBundle: remove it")
    for part in ("rekor", "ctlog"):
        found = keyless.get(part)
        if isinstance(found, dict) and found.get("pubkey"):
            context.add(
                f"{path}.{part}.pubkey", "is ignored by Kyverno for SigstoreBundle: remove it"
            )
    pairs = (("subject", "subjectRegExp"), ("issuer", "issuerRegExp"))
    for exact, regexp in pairs:
        if values[exact] and values[regexp]:
            context.add(path, f"expected one of {exact}, {regexp} for SigstoreBundle, got both")
            return None
        if not values[exact] and not values[regexp]:
            context.add(
                path,
                f"{exact} or {regexp} is required for SigstoreBundle: without both a subject and "
                "an issuer Kyverno checks no identity",
            )
            return None
    return KeylessIdentity(
        issuer=values["issuer"] or None,
        issuer_regexp=values["issuerRegExp"] or None,
        subject=values["subject"] or None,
        subject_regexp=values["subjectRegExp"] or None,
    )


def _extensions(context: _Context, value: Any, path: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        context.add(path, "must be a mapping of extension names to wildcards")
        return ()
    out = []
    for key, wanted in sorted(value.items()):
        if key not in EXTENSIONS:
            context.add(f"{path}.{key}", f"invalid certificate extension {key}")
        elif not isinstance(wanted, str) or "{{" in wanted:
            context.add(f"{path}.{key}", "must be a string (no variables)")
        else:
            out.append((key, wanted))
    return tuple(out)


def _roots(context: _Context, text: str, path: str) -> tuple[x509.Certificate, ...]:
    from cryptography import x509

    if len(text) > MAX_PEM_BYTES:
        context.add(path, f"larger than {MAX_PEM_BYTES} bytes")
        return ()
    try:
        certificates = x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        context.add(path, "not PEM certificates")
        return ()
    if len(certificates) > MAX_ROOTS:
        context.add(path, f"more than {MAX_ROOTS} certificates")
        return ()
    return tuple(certificates)


def _format(context: _Context) -> SignatureFormat:
    return SignatureFormat.BUNDLE if context.bundles else SignatureFormat.LEGACY


def _trust(
    context: _Context,
    path: str,
    url: str,
    rekor_key: PublicKeyTypes | None,
    *,
    rekor_pem: bytes = b"",
    roots: tuple[x509.Certificate, ...] = (),
    roots_pem: bytes = b"",
    ctlog_key: PublicKeyTypes | None = None,
    ctlog_pem: bytes = b"",
) -> str | None:
    """The name of the trust root an attestor's signatures are verified under: the default,
    or the default with the attestor's roots, log key and CT log key in place of its own."""
    if not roots and rekor_key is None and ctlog_key is None:
        return DEFAULT_TRUST_ROOT
    base = context.trust[DEFAULT_TRUST_ROOT]
    content = b"\0".join((roots_pem, url.encode(), rekor_pem, ctlog_pem))
    try:
        material = derived_trust(
            base,
            roots=roots,
            tlog=(url.rstrip("/"), rekor_key) if rekor_key is not None else None,
            ctlog=ctlog_key,
            content=content,
        )
    except TrustRootError as exc:
        context.add(path, exc.detail)
        return None
    context.added[material.name] = material
    return material.name


def _attestation(context: _Context, value: Any, path: str, index: int) -> AuthorityGroup | None:
    count = len(context.where.problems)
    attestation = check_keys(
        context.where, value, path, {"name", "type", "predicateType", "attestors", "conditions"}
    )
    name = string_value(context.where, attestation.get("name"), f"{path}.name")
    kind = string_value(context.where, attestation.get("type"), f"{path}.type")
    kind = kind or string_value(
        context.where, attestation.get("predicateType"), f"{path}.predicateType"
    )
    if kind is None:
        context.add(path, "missing type")
    conditions = None
    if attestation.get("conditions") is not None and kind is not None:
        try:
            conditions = compile_conditions(attestation["conditions"], kind)
        except ConditionError as exc:
            at, _, message = str(exc).partition(": ")
            context.add(f"{path}.conditions{at}", message)
    if not attestation.get("attestors"):
        context.add(
            f"{path}.attestors",
            "missing: Kyverno then accepts attestations by any signer of the public Sigstore CA; "
            "name the attestors",
        )
    if len(context.where.problems) > count or kind is None:
        return None
    rule = AttestationRule(name or f"attestations[{index}]", kind, conditions=conditions)
    groups = _sets(context, attestation["attestors"], f"{path}.attestors", "attestors", rule)
    if len(context.where.problems) > count or not groups:
        return None
    return AuthorityGroup(
        name=f"attestations[{index}]", members=tuple(groups), threshold=len(groups)
    )

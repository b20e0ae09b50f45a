"""The Kubernetes objects that install the gate, as `keyless gate manifests` prints them.

Namespace (optional), ConfigMaps for policies and trust roots (when given), the TLS Secret (only
for a self-signed trial), the gate's Deployment and Service, and the two webhook
configurations: `failurePolicy: Fail` (an unreachable gate admits nothing), `sideEffects:
None`, `admissionReviewVersions: [v1]`, and a namespace opt-in (label `keyless.dev/include:
"true"`) so that the gate's own namespace and kube-system never depend on the gate. Secrets
(the TLS key, registry credentials) are mounted owner-only and read through the pod's fsGroup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keyless.core.encoding import b64encode
from keyless.server.gate.tls import SERVICE

PORT = 8443
OPT_IN_LABEL = "keyless.dev/include"
WEBHOOK_NAME = "gate.keyless.dev"
CONFIG_DIR = "/etc/keyless-gate"
# The trusted root of authorities without trustRootRef, beside the named ones in the trust
# ConfigMap; trust root names start with a letter or digit, so it cannot collide.
DEFAULT_TRUST_FILE = "_trusted_root.json"
# The gate's user, and the pod's fsGroup through which it reads its Secrets: the kubelet writes
# a Secret's files as root, so a non-root process reads one mounted owner-only (defaultMode
# 0400, which the fsGroup makes 0440) only through that group. JSON has no octal: 0o400 is 256.
POD_USER = 10001
SECRET_MODE = 0o400
RULES = [
    ("", ["pods", "pods/ephemeralcontainers"]),
    ("apps", ["deployments", "replicasets", "statefulsets", "daemonsets"]),
    ("batch", ["jobs", "cronjobs"]),
]


@dataclass(frozen=True)
class ManifestOptions:
    namespace: str = "keyless-system"
    image: str = "keyless:latest"
    create_namespace: bool = True
    ca_bundle: str | None = None
    tls: tuple[bytes, bytes] | None = None  # a self-signed (certificate, key) to ship
    policies: dict[str, bytes] = field(default_factory=dict)
    trust_roots: dict[str, bytes] = field(default_factory=dict)
    trusted_root: bytes | None = None  # of authorities without trustRootRef (default: public)
    registry_auth_secrets: tuple[str, ...] = ()
    no_match_policy: str | None = None
    timeout_seconds: int = 25
    replicas: int = 2
    gatekeeper: bool = False  # Gatekeeper's Provider, ConstraintTemplate and Constraint too


def manifests(options: ManifestOptions) -> list[dict[str, Any]]:
    """The objects, in the order `kubectl apply` needs them."""
    ns = options.namespace
    labels = {"app.kubernetes.io/name": SERVICE}
    meta = {"name": SERVICE, "namespace": ns, "labels": labels}
    docs: list[dict[str, Any]] = []
    if options.create_namespace:
        docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    if options.policies:
        docs.append(_config_map(f"{SERVICE}-policies", ns, options.policies))
    trust_files = _trust_files(options)
    if trust_files:
        docs.append(_config_map(f"{SERVICE}-trust", ns, trust_files))
    ca_bundle = options.ca_bundle
    if options.tls is not None:
        cert, key = options.tls
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"{SERVICE}-tls", "namespace": ns},
                "type": "kubernetes.io/tls",
                "data": {"tls.crt": b64encode(cert), "tls.key": b64encode(key)},
            }
        )
        ca_bundle = b64encode(cert)
    docs.append(_deployment(options, meta, labels))
    docs.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "selector": labels,
                "ports": [{"name": "https", "port": 443, "targetPort": "https"}],
            },
        }
    )
    if options.gatekeeper:
        # Gatekeeper's own webhooks ask the gate; its webhooks would judge everything twice.
        docs.extend(gatekeeper_objects(ns, ca_bundle))
    else:
        docs.append(_webhooks(options, "MutatingWebhookConfiguration", "/mutations", ca_bundle))
        docs.append(_webhooks(options, "ValidatingWebhookConfiguration", "/validations", ca_bundle))
    return docs


def _config_map(name: str, namespace: str, files: dict[str, bytes]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {key: value.decode("utf-8") for key, value in files.items()},
    }


GATEKEEPER_PROVIDER_TIMEOUT = 3  # seconds: Gatekeeper's validating webhook default
GATEKEEPER_TEMPLATE = "keylessverified"
# Rego for Gatekeeper's ConstraintTemplate: every image of a Pod, of a workload's pod template
# and of a CronJob's, sent to the provider; any per-image error or a system error is a
# violation (a system error is never an allow).
GATEKEEPER_REGO = """package keylessverified

import rego.v1

pod_spec := input.review.object.spec if input.review.kind.kind == "Pod"

pod_spec := input.review.object.spec.jobTemplate.spec.template.spec if {
  input.review.kind.kind == "CronJob"
}

pod_spec := input.review.object.spec.template.spec if {
  not input.review.kind.kind in {"Pod", "CronJob"}
}

images contains container.image if {
  some field in ["containers", "initContainers", "ephemeralContainers"]
  some container in pod_spec[field]
}

response := external_data({"provider": "keyless-gate", "keys": [image | some image in images]})

violation contains {"msg": msg} if {
  some error in response.errors
  msg := sprintf("keyless gate refused %v: %v", [error[0], error[1]])
}

violation contains {"msg": msg} if {
  response.system_error != ""
  msg := sprintf("keyless gate could not decide: %v", [response.system_error])
}
"""


def gatekeeper_objects(namespace: str, ca_bundle: str | None) -> list[dict[str, Any]]:
    """Gatekeeper's `Provider` for the gate's `/externaldata/verify`, a `ConstraintTemplate`
    whose Rego calls it for every image, and a `Constraint` over the kinds the gate judges."""
    provider_spec: dict[str, Any] = {
        "url": f"https://{SERVICE}.{namespace}:443/externaldata/verify",
        "timeout": GATEKEEPER_PROVIDER_TIMEOUT,
    }
    if ca_bundle:
        provider_spec["caBundle"] = ca_bundle
    kinds = [
        {"apiGroups": [group], "kinds": list(dict.fromkeys(_kind(r) for r in resources))}
        for group, resources in RULES
    ]
    return [
        {
            "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
            "kind": "Provider",
            "metadata": {"name": "keyless-gate"},
            "spec": provider_spec,
        },
        {
            "apiVersion": "templates.gatekeeper.sh/v1",
            "kind": "ConstraintTemplate",
            "metadata": {"name": GATEKEEPER_TEMPLATE},
            "spec": {
                "crd": {"spec": {"names": {"kind": "KeylessVerified"}}},
                "targets": [{"target": "admission.k8s.gatekeeper.sh", "rego": GATEKEEPER_REGO}],
            },
        },
        {
            "apiVersion": "constraints.gatekeeper.sh/v1beta1",
            "kind": "KeylessVerified",
            "metadata": {"name": "images-signed"},
            "spec": {
                "enforcementAction": "deny",
                "match": {
                    "kinds": kinds,
                    "namespaceSelector": {"matchLabels": {OPT_IN_LABEL: "true"}},
                },
            },
        },
    ]


def _kind(resource: str) -> str:
    """The kind of a webhook rule's resource: `replicasets` -> `ReplicaSet`."""
    names = {
        "pods": "Pod",
        "deployments": "Deployment",
        "replicasets": "ReplicaSet",
        "statefulsets": "StatefulSet",
        "daemonsets": "DaemonSet",
        "jobs": "Job",
        "cronjobs": "CronJob",
    }
    return names[resource.split("/")[0]]


def _trust_files(options: ManifestOptions) -> dict[str, bytes]:
    files = {f"{name}.json": data for name, data in options.trust_roots.items()}
    if options.trusted_root is not None:
        files[DEFAULT_TRUST_FILE] = options.trusted_root
    return files


def _deployment(
    options: ManifestOptions, meta: dict[str, Any], labels: dict[str, str]
) -> dict[str, Any]:
    args = [
        "gate",
        "serve",
        "--host=0.0.0.0",
        f"--port={PORT}",
        f"--policy={CONFIG_DIR}/policies",
        f"--tls-cert={CONFIG_DIR}/tls/tls.crt",
        f"--tls-key={CONFIG_DIR}/tls/tls.key",
        f"--timeout={options.timeout_seconds}s",
    ]
    args += [f"--trust-root={n}={CONFIG_DIR}/trust/{n}.json" for n in options.trust_roots]
    if options.trusted_root is not None:
        args.append(f"--trusted-root={CONFIG_DIR}/trust/{DEFAULT_TRUST_FILE}")
    if options.no_match_policy:
        args.append(f"--no-match-policy={options.no_match_policy}")
    mounts = [
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (a path in the pod: an emptyDir)
        {"name": "policies", "mountPath": f"{CONFIG_DIR}/policies", "readOnly": True},
        {"name": "tls", "mountPath": f"{CONFIG_DIR}/tls", "readOnly": True},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        {"name": "policies", "configMap": {"name": f"{SERVICE}-policies"}},
        {"name": "tls", "secret": {"secretName": f"{SERVICE}-tls", "defaultMode": SECRET_MODE}},
    ]
    if _trust_files(options):
        mounts.append({"name": "trust", "mountPath": f"{CONFIG_DIR}/trust", "readOnly": True})
        volumes.append({"name": "trust", "configMap": {"name": f"{SERVICE}-trust"}})
    for index, secret in enumerate(options.registry_auth_secrets):
        where = f"{CONFIG_DIR}/registry-{index}"
        args.append(f"--registry-auth={where}/.dockerconfigjson")
        mounts.append({"name": f"registry-{index}", "mountPath": where, "readOnly": True})
        volumes.append(
            {
                "name": f"registry-{index}",
                "secret": {"secretName": secret, "defaultMode": SECRET_MODE},
            }
        )
    probe = {"httpGet": {"path": "/healthz", "port": "https", "scheme": "HTTPS"}}
    container = {
        "name": "gate",
        "image": options.image,
        "command": ["keyless"],
        "args": args,
        "ports": [{"name": "https", "containerPort": PORT}],
        "readinessProbe": {**probe, "periodSeconds": 5},
        "livenessProbe": {**probe, "periodSeconds": 20},
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "512Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": options.replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [container],
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": POD_USER,
                        "runAsGroup": POD_USER,
                        "fsGroup": POD_USER,
                    },
                    "volumes": volumes,
                },
            },
        },
    }


def _webhooks(
    options: ManifestOptions, kind: str, path: str, ca_bundle: str | None
) -> dict[str, Any]:
    client: dict[str, Any] = {
        "service": {"name": SERVICE, "namespace": options.namespace, "path": path, "port": 443}
    }
    if ca_bundle:
        client["caBundle"] = ca_bundle
    webhook: dict[str, Any] = {
        "name": WEBHOOK_NAME,
        "admissionReviewVersions": ["v1"],
        "clientConfig": client,
        "failurePolicy": "Fail",
        "sideEffects": "None",
        "timeoutSeconds": options.timeout_seconds,
        "namespaceSelector": {
            "matchExpressions": [{"key": OPT_IN_LABEL, "operator": "In", "values": ["true"]}]
        },
        "rules": [
            {
                "apiGroups": [group],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": resources,
                "scope": "Namespaced",
            }
            for group, resources in RULES
        ],
    }
    if kind == "MutatingWebhookConfiguration":
        webhook["reinvocationPolicy"] = "IfNeeded"
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": f"{SERVICE}.keyless.dev"},
        "webhooks": [webhook],
    }

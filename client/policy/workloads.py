"""The images of Kubernetes workloads, each with where it sits in the object.

`keyless policy check --resource` and `keyless gate` reduce every workload kind to its pod spec,
as policy-controller does: a Pod's `spec`, the `spec.template.spec` of a Deployment, ReplicaSet,
StatefulSet, DaemonSet or Job, and a CronJob's `spec.jobTemplate.spec.template.spec`. Each image
of its containers, initContainers and ephemeralContainers, and of its image volumes
(`volumes[].image.reference`), comes with its JSON pointer (for a JSONPatch) and its field path
as policy-controller prints it (`spec.containers[0].image`).

Odd input is refused, never skipped: an object that is not a mapping, a container list that is
not a list, an image that is not a string, and YAML that `keyless.core.strictyaml` refuses (a
duplicate `image:` key must not show the reviewer one image and the policy another). A container
without an image has nothing to judge (the API allows it in templates) and is left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keyless.client.errors import ClientError
from keyless.core.errors import ProblemsError, Reason

MAX_RESOURCE_FILE_BYTES = 4 * 1024 * 1024
MAX_CONTAINERS = 1024

# (API group, kind) -> the keys from the object to its pod spec.
POD_SPEC_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "Pod"): ("spec",),
    ("apps", "Deployment"): ("spec", "template", "spec"),
    ("apps", "ReplicaSet"): ("spec", "template", "spec"),
    ("apps", "StatefulSet"): ("spec", "template", "spec"),
    ("apps", "DaemonSet"): ("spec", "template", "spec"),
    ("batch", "Job"): ("spec", "template", "spec"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")


class WorkloadError(ClientError, ProblemsError):
    """A Kubernetes object or manifest file cannot be read; `problems` has one line each."""

    reason = Reason.RESOURCE_INVALID
    exit_code = 2
    one_line_per_problem = True

    def __init__(self, problems: list[str]) -> None:
        super().__init__("the resources are invalid", problems)


@dataclass(frozen=True)
class WorkloadImage:
    """One image of a workload: the reference as written, its JSON pointer and field path."""

    image: str
    pointer: str
    field: str


def api_group(api_version: str) -> str:
    """The group of an apiVersion: `apps/v1` -> `apps`, `v1` -> `` (the core group)."""
    group, sep, _ = api_version.rpartition("/")
    return group if sep else ""


def pod_spec_path(group: str, kind: str) -> tuple[str, ...] | None:
    """The keys leading to the pod spec of a (group, kind), None for a kind without one."""
    return POD_SPEC_PATHS.get((group, kind))


def workload_images(obj: Any, path: Sequence[str]) -> list[WorkloadImage]:
    """Every image of the pod spec at `path` inside `obj`, init containers first.

    A missing pod spec or container list has no images; anything of the wrong type is refused.

    Raises:
        WorkloadError: one line per problem, each naming the field path.
    """
    problems: list[str] = []
    node: Any = obj
    walked: list[str] = []
    for key in path:
        if not isinstance(node, Mapping):
            where = ".".join(walked) or "the object"
            raise WorkloadError([f"{where}: must be a mapping, not {_type(node)}"])
        node = node.get(key)
        walked.append(key)
        if node is None:
            return []
    if not isinstance(node, Mapping):
        raise WorkloadError([f"{'.'.join(walked)}: must be a mapping, not {_type(node)}"])
    field_prefix, pointer_prefix = ".".join(walked), "/" + "/".join(walked)
    images: list[WorkloadImage] = []
    for name in CONTAINER_FIELDS:
        containers = node.get(name)
        if containers is None:
            continue
        where = f"{field_prefix}.{name}"
        if not isinstance(containers, list):
            problems.append(f"{where}: must be a list, not {_type(containers)}")
            continue
        if len(containers) > MAX_CONTAINERS:
            problems.append(f"{where}: more than {MAX_CONTAINERS} containers")
            continue
        for index, container in enumerate(containers):
            at = f"{where}[{index}]"
            if not isinstance(container, Mapping):
                problems.append(f"{at}: must be a mapping, not {_type(container)}")
                continue
            image = container.get("image")
            if image is None:
                continue
            if not isinstance(image, str):
                problems.append(f"{at}.image: must be a string, not {_type(image)}")
                continue
            images.append(
                WorkloadImage(image, f"{pointer_prefix}/{name}/{index}/image", f"{at}.image")
            )
    images += _volume_images(node.get("volumes"), field_prefix, pointer_prefix, problems)
    if problems:
        raise WorkloadError(problems)
    return images


def _volume_images(
    volumes: Any, field_prefix: str, pointer_prefix: str, problems: list[str]
) -> list[WorkloadImage]:
    """Image volumes (`volumes[].image.reference`, Kubernetes ImageVolume): an OCI image
    mounted into the pod is as much what runs as a container's image, so it is judged too."""
    if volumes is None:
        return []
    where = f"{field_prefix}.volumes"
    if not isinstance(volumes, list):
        problems.append(f"{where}: must be a list, not {_type(volumes)}")
        return []
    if len(volumes) > MAX_CONTAINERS:
        problems.append(f"{where}: more than {MAX_CONTAINERS} volumes")
        return []
    images = []
    for index, volume in enumerate(volumes):
        at = f"{where}[{index}]"
        if not isinstance(volume, Mapping):
            problems.append(f"{at}: must be a mapping, not {_type(volume)}")
            continue
        source = volume.get("image")
        if source is None:
            continue
        if not isinstance(source, Mapping):
            problems.append(f"{at}.image: must be a mapping, not {_type(source)}")
            continue
        reference = source.get("reference")
        if reference is None:
            continue
        if not isinstance(reference, str):
            problems.append(f"{at}.image.reference: must be a string, not {_type(reference)}")
            continue
        pointer = f"{pointer_prefix}/volumes/{index}/image/reference"
        images.append(WorkloadImage(reference, pointer, f"{at}.image.reference"))
    return images


def object_images(obj: Any) -> list[WorkloadImage]:
    """The images of a Kubernetes object, read by its own apiVersion and kind.

    Kinds without a pod spec (Service, ConfigMap, ...) have none.

    Raises:
        WorkloadError: the object is not a mapping, or a field has the wrong type.
    """
    if not isinstance(obj, Mapping):
        raise WorkloadError([f"the object must be a mapping, not {_type(obj)}"])
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        raise WorkloadError(["apiVersion and kind: must be strings"])
    path = pod_spec_path(api_group(api_version), kind)
    return [] if path is None else workload_images(obj, path)


def images_in_files(paths: Iterable[str | Path]) -> list[str]:
    """Every image of the workloads in these manifest files (multi-document YAML), in order.

    Raises:
        WorkloadError: a file cannot be read or parsed, a document is malformed, or the files
            hold no image at all (so a pipeline never passes on a manifest it did not read).
    """
    from keyless.core.strictyaml import StrictYAMLError, load_all

    problems: list[str] = []
    images: list[str] = []
    names = [str(p) for p in paths]
    for name in names:
        try:
            with open(name, "rb") as handle:
                data = handle.read(MAX_RESOURCE_FILE_BYTES + 1)
        except OSError as exc:
            problems.append(f"{name}: cannot read the file: {exc.strerror}")
            continue
        try:
            documents = load_all(data, source=name, max_bytes=MAX_RESOURCE_FILE_BYTES)
        except StrictYAMLError as exc:
            problems.append(str(exc))
            continue
        for index, document in enumerate(documents, start=1):
            if document is None:
                continue
            try:
                images.extend(found.image for found in object_images(document))
            except WorkloadError as exc:
                problems.extend(f"{name}: document {index}: {p}" for p in exc.problems)
    if not problems and not images:
        kinds = ", ".join(kind for _, kind in POD_SPEC_PATHS)
        problems.append(f"{', '.join(names)}: no image found in a {kinds}")
    if problems:
        raise WorkloadError(problems)
    return images


def _type(value: Any) -> str:
    """A JSON/YAML type name for messages."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else type(value).__name__


__all__ = [
    "POD_SPEC_PATHS",
    "WorkloadError",
    "WorkloadImage",
    "api_group",
    "images_in_files",
    "object_images",
    "pod_spec_path",
    "workload_images",
]

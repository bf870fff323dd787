"""Validation of a RayCluster: every problem at once, each with a path and a concrete fix.

Purely computational. Two passes over the raw mapping (as parsed from YAML):

* types, through the pydantic models (what the Kubernetes API server checks with the CRD);
* values, by the rules below (what the KubeRay operator checks, plus a few Kubernetes and Ray
  rules that would otherwise fail later, at pod creation or in ``ray start``).

The value rules read the raw mapping defensively (a field of the wrong type is skipped: the type
pass already reports it), so one run reports type and value problems together.

KubeRay rules mirrored (ray-operator/controllers/ray/utils/validation.go, KubeRay 1.x):
metadata.name <= 53 characters and a DNS-1035 label; head and worker pod templates have a
container; minReplicas/maxReplicas not negative and min <= max; both set when autoscaling is
off; per-group idleTimeoutSeconds only with autoscaler v2 semantics; priority only with v2 and
Ray >= 2.56; no suspended worker group with autoscaling; resources not in both the top-level
``resources`` and ``rayStartParams``; no ``rayStartParams.labels``; valid group labels;
``RAY_enable_autoscaler_v2`` not set without autoscaling nor together with
``autoscalerOptions.version``; restartPolicy Never/unset with autoscaler v2;
``autoscalerOptions.idleTimeoutSeconds >= 0``; no ``KUBERAY_GEN_AUTOSCALER_START_CMD`` in
``autoscalerOptions.env``; managedBy in the two allowed values.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from rayscale.planner.model import HEAD_GROUP
from rayscale.spec.errors import Loc, Problem, problems_from_validation_error
from rayscale.spec.models import (
    API_VERSION,
    INT32_MAX,
    KIND,
    RAY_ENABLE_AUTOSCALER_V2,
    RUNTIME_ENV_AGENT_ANNOTATION,
    RayCluster,
    ray_version_tuple,
)
from rayscale.spec.quantity import QuantityError, ceil_quantity, parse_quantity
from rayscale.spec.resources import STANDARD_PARAMS, parse_resources_param

__all__ = ["find_problems", "structural_problems", "value_problems"]

MAX_CLUSTER_NAME = 53
"""KubeRay: 63 minus len("-serve-svc"), the longest service suffix it appends."""
MANAGED_BY = ("ray.io/kuberay-operator", "kueue.x-k8s.io/multikueue")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
PRIORITY_SINCE = (2, 56, 0)
KUBERAY_GEN_AUTOSCALER_START_CMD = "KUBERAY_GEN_AUTOSCALER_START_CMD"
INT_PARAMS = (*STANDARD_PARAMS, "object-store-memory")
"""rayStartParams that ``ray start`` parses as integers."""

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def find_problems(data: Mapping[str, Any] | RayCluster) -> list[Problem]:
    """Every problem of a RayCluster (a raw mapping, or a model built in code). Never raises."""
    doc = data.to_dict() if isinstance(data, RayCluster) else data
    if not isinstance(doc, Mapping):
        return [Problem("", f"a RayCluster must be a mapping, got {type(doc).__name__}", _OBJ_FIX)]
    return _dedupe([*structural_problems(doc), *value_problems(doc)])


def structural_problems(doc: Mapping[str, Any]) -> list[Problem]:
    """Type problems: what the pydantic models (the CRD schema) reject."""
    try:
        RayCluster.model_validate(doc)
    except ValidationError as err:
        return problems_from_validation_error(err)
    return []


def value_problems(doc: Mapping[str, Any]) -> list[Problem]:
    """Value problems: KubeRay's rules and the ones listed in the module docstring."""
    spec = _map(doc.get("spec"))
    ctx = _Context.of(spec)
    return [
        *_type_meta(doc),
        *(_metadata(doc["metadata"]) if isinstance(doc.get("metadata"), Mapping) else ()),
        *_spec(spec, ctx),
    ]


_OBJ_FIX = "write the RayCluster as a YAML mapping with apiVersion, kind, metadata and spec"


# ---------------------------------------------------------------------------------------------
# Safe readers of the raw mapping: a value of the wrong type reads as absent.


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str]] = set()
    out = []
    for problem in problems:
        if (problem.path, problem.message) not in seen:
            seen.add((problem.path, problem.message))
            out.append(problem)
    return out


@dataclass(frozen=True)
class _Context:
    """Spec-wide facts several rules depend on."""

    autoscaling: bool
    v2: bool
    """KubeRay's v2 test: autoscalerOptions.version v2, or RAY_enable_autoscaler_v2 on the head."""
    version_set: bool
    ray_version: str | None
    head_env: Mapping[str, Any]
    """The head Ray container's env list as name -> entry."""

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> _Context:
        options = _map(spec.get("autoscalerOptions"))
        head_env = _env_by_name(_ray_container(_map(spec.get("headGroupSpec"))))
        env_v2 = _str(_map(head_env.get(RAY_ENABLE_AUTOSCALER_V2)).get("value")) in ("1", "true")
        return cls(
            autoscaling=spec.get("enableInTreeAutoscaling") is True,
            v2=options.get("version") == "v2" or env_v2,
            version_set=options.get("version") is not None,
            ray_version=_str(spec.get("rayVersion")),
            head_env=head_env,
        )


def _ray_container(group: Mapping[str, Any]) -> Mapping[str, Any]:
    containers = _list(_map(_map(group.get("template")).get("spec")).get("containers"))
    return _map(containers[0]) if containers else {}


def _env_by_name(container: Mapping[str, Any]) -> dict[str, Any]:
    return {
        entry["name"]: entry
        for entry in _list(container.get("env"))
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str)
    }


# ---------------------------------------------------------------------------------------------
# The object and its metadata


def _type_meta(doc: Mapping[str, Any]) -> Iterator[Problem]:
    api_version = doc.get("apiVersion")
    if api_version is None:
        yield Problem.at(
            ("apiVersion",), "apiVersion is required", f"add apiVersion: {API_VERSION}"
        )
    elif isinstance(api_version, str) and api_version != API_VERSION:
        yield Problem.at(
            ("apiVersion",),
            f'apiVersion "{api_version}" is not supported; rayscale reads {API_VERSION}',
            f"set apiVersion: {API_VERSION} (the RayCluster API of KubeRay 1.x)",
        )
    kind = doc.get("kind")
    if kind is None:
        yield Problem.at(("kind",), "kind is required", f"add kind: {KIND}")
    elif isinstance(kind, str) and kind != KIND:
        yield Problem.at(("kind",), f'kind "{kind}" is not {KIND}', f"set kind: {KIND}")


def _annotations(annotations: Mapping[str, Any]) -> Iterator[Problem]:
    value = annotations.get(RUNTIME_ENV_AGENT_ANNOTATION)
    if isinstance(value, str) and value not in ("true", "false"):
        yield Problem.at(
            ("metadata", "annotations", RUNTIME_ENV_AGENT_ANNOTATION),
            f'must be "true" (run Ray\'s runtime-env agent: pip, conda, working_dir... '
            f'runtime_envs work) or "false" (the default: only env_vars), not "{value}"',
            f'write {RUNTIME_ENV_AGENT_ANNOTATION}: "true" or remove the annotation',
        )


def _metadata(meta: Mapping[str, Any]) -> Iterator[Problem]:
    yield from _annotations(_map(meta.get("annotations")))
    name = meta.get("name")
    loc: Loc = ("metadata", "name")
    if name is None or name == "":
        yield Problem.at(loc, "metadata.name is required", "add metadata: {name: my-cluster}")
        return
    if not isinstance(name, str):
        return
    if len(name) > MAX_CLUSTER_NAME:
        yield Problem.at(
            loc,
            f"name is {len(name)} characters long; KubeRay allows at most {MAX_CLUSTER_NAME} "
            '(its longest generated name adds "-serve-svc")',
            f'shorten it, e.g. "{_suggest_dns1035(name)}"',
        )
    if not _DNS1035.match(name):
        yield Problem.at(
            loc,
            f'"{name}" is not a DNS-1035 label: use lowercase letters, digits and "-", '
            "start with a letter and end with a letter or digit",
            f'rename it, e.g. "{_suggest_dns1035(name)}"',
        )
    namespace = meta.get("namespace")
    if isinstance(namespace, str) and not (
        len(namespace) <= 63 and _DNS1123_LABEL.match(namespace)
    ):
        yield Problem.at(
            ("metadata", "namespace"),
            f'namespace "{namespace}" is not a valid Kubernetes namespace name',
            'use lowercase letters, digits and "-" (at most 63), e.g. "default"',
        )


def _suggest_dns1035(name: str) -> str:
    fixed = re.sub(r"[^a-z0-9-]+", "-", name.lower())
    fixed = re.sub(r"^[^a-z]+", "", fixed)[:MAX_CLUSTER_NAME].rstrip("-")
    return fixed or "my-cluster"


# ---------------------------------------------------------------------------------------------
# spec


def _spec(spec: Mapping[str, Any], ctx: _Context) -> Iterator[Problem]:
    managed_by = spec.get("managedBy")
    if isinstance(managed_by, str) and managed_by not in MANAGED_BY:
        yield Problem.at(
            ("spec", "managedBy"),
            f'managedBy "{managed_by}" is not one of {", ".join(MANAGED_BY)}',
            f"remove managedBy (the KubeRay operator manages the cluster) or use {MANAGED_BY[1]}",
        )
    yield from _autoscaler_options(_map(spec.get("autoscalerOptions")), ctx)
    yield from _head_env(ctx)
    if "headGroupSpec" in spec:
        yield from _head_group(_map(spec.get("headGroupSpec")), ctx)
    groups = _list(spec.get("workerGroupSpecs"))
    for index, group in enumerate(groups):
        if isinstance(group, Mapping):
            yield from _worker_group(("spec", "workerGroupSpecs", index), group, ctx)
    yield from _duplicate_group_names(groups)


def _autoscaler_options(options: Mapping[str, Any], ctx: _Context) -> Iterator[Problem]:
    loc: Loc = ("spec", "autoscalerOptions")
    idle = _int(options.get("idleTimeoutSeconds"))
    if idle is not None:
        yield from _int_range((*loc, "idleTimeoutSeconds"), idle, "a number of seconds such as 60")
    policy = options.get("imagePullPolicy")
    if isinstance(policy, str) and policy not in PULL_POLICIES:
        yield _choice((*loc, "imagePullPolicy"), policy, PULL_POLICIES)
    if "resources" in options:
        yield from _container_resources((*loc, "resources"), _map(options.get("resources")))
    for index, entry in enumerate(_list(options.get("env"))):
        if _map(entry).get("name") == KUBERAY_GEN_AUTOSCALER_START_CMD:
            yield Problem.at(
                (*loc, "env", index, "name"),
                f"{KUBERAY_GEN_AUTOSCALER_START_CMD} is set by KubeRay and must not be overridden",
                "remove this env entry (args may reference $KUBERAY_GEN_AUTOSCALER_START_CMD)",
            )
    if ctx.autoscaling and ctx.version_set and RAY_ENABLE_AUTOSCALER_V2 in ctx.head_env:
        yield Problem.at(
            (*loc, "version"),
            f"both autoscalerOptions.version and the head env var {RAY_ENABLE_AUTOSCALER_V2} "
            "are set",
            f"keep autoscalerOptions.version and remove {RAY_ENABLE_AUTOSCALER_V2} from the head",
        )


def _head_env(ctx: _Context) -> Iterator[Problem]:
    entry = _map(ctx.head_env.get(RAY_ENABLE_AUTOSCALER_V2))
    if not ctx.autoscaling and _str(entry.get("value")) in ("1", "true"):
        yield Problem.at(
            ("spec", "headGroupSpec", "template", "spec", "containers", 0, "env"),
            f"{RAY_ENABLE_AUTOSCALER_V2} is {entry.get('value')!r} but enableInTreeAutoscaling "
            "is not true",
            "set spec.enableInTreeAutoscaling: true, or remove the env var",
        )


def _head_group(head: Mapping[str, Any], ctx: _Context) -> Iterator[Problem]:
    loc: Loc = ("spec", "headGroupSpec")
    yield from _group_common(loc, head, ctx)
    service_type = head.get("serviceType")
    if isinstance(service_type, str) and service_type not in SERVICE_TYPES:
        yield _choice((*loc, "serviceType"), service_type, SERVICE_TYPES)


def _worker_group(loc: Loc, group: Mapping[str, Any], ctx: _Context) -> Iterator[Problem]:
    yield from _group_name(loc, group.get("groupName"))
    yield from _replicas(loc, group, ctx)
    yield from _group_common(loc, group, ctx)
    yield from _idle_and_priority(loc, group, ctx)
    if group.get("suspend") is True and ctx.autoscaling:
        yield Problem.at(
            (*loc, "suspend"),
            "a suspended worker group is not allowed together with enableInTreeAutoscaling: "
            "true (KubeRay rejects it)",
            "remove suspend: true, or set maxReplicas: 0 to keep the group empty",
        )


def _group_name(loc: Loc, name: object) -> Iterator[Problem]:
    if not isinstance(name, str):
        return
    where = (*loc, "groupName")
    if name == HEAD_GROUP:
        yield Problem.at(
            where,
            f'"{HEAD_GROUP}" is the name KubeRay and Ray give the head group',
            'rename the worker group, e.g. "worker-group"',
        )
    elif len(name) > 63 or not _LABEL_NAME.match(name):
        yield Problem.at(
            where,
            f'group name "{name}" is not a valid Kubernetes label value (it labels the pods '
            "ray.io/group=<name>): use at most 63 letters, digits, '-', '_' or '.', starting "
            "and ending with a letter or digit",
            f'rename it, e.g. "{_suggest_label(name)}"',
        )


def _suggest_label(name: str) -> str:
    fixed = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)[:63].strip("-_.")
    return fixed or "small-group"


def _replicas(loc: Loc, group: Mapping[str, Any], ctx: _Context) -> Iterator[Problem]:
    values = {key: _int(group.get(key)) for key in ("replicas", "minReplicas", "maxReplicas")}
    for key, value in values.items():
        if value is not None:
            yield from _int_range((*loc, key), value, "a number of pods such as 1")
    hosts = _int(group.get("numOfHosts"))
    if hosts is not None and not 1 <= hosts <= INT32_MAX:
        yield Problem.at(
            (*loc, "numOfHosts"),
            f"numOfHosts must be at least 1, got {hosts}",
            "set numOfHosts: 1 (one pod per replica), or the hosts of one multi-host replica",
        )
    low, high = values["minReplicas"], values["maxReplicas"]
    if low is not None and high is not None and 0 <= high < low:
        yield Problem.at(
            (*loc, "minReplicas"),
            f"minReplicas {low} is greater than maxReplicas {high}",
            f"lower minReplicas to at most {high}, or raise maxReplicas to at least {low}",
        )
    if not ctx.autoscaling:
        yield from _fixed_size_bounds(loc, group, values["replicas"])


def _fixed_size_bounds(
    loc: Loc, group: Mapping[str, Any], replicas: int | None
) -> Iterator[Problem]:
    size = replicas if replicas is not None else 1
    for key in ("minReplicas", "maxReplicas"):
        if key not in group:
            yield Problem.at(
                (*loc, key),
                f"{key} is required when enableInTreeAutoscaling is not true",
                f"add minReplicas: {size} and maxReplicas: {size} for a fixed-size group, "
                "or set spec.enableInTreeAutoscaling: true",
            )


def _idle_and_priority(loc: Loc, group: Mapping[str, Any], ctx: _Context) -> Iterator[Problem]:
    idle = _int(group.get("idleTimeoutSeconds"))
    if idle is not None:
        yield from _int_range((*loc, "idleTimeoutSeconds"), idle, "a number of seconds such as 60")
        if not ctx.v2:
            yield Problem.at(
                (*loc, "idleTimeoutSeconds"),
                "a per-group idleTimeoutSeconds needs autoscaler v2 semantics; KubeRay rejects "
                "it otherwise",
                "set spec.autoscalerOptions.version: v2, or remove it and use "
                "spec.autoscalerOptions.idleTimeoutSeconds for all groups",
            )
    priority = _int(group.get("priority"))
    if priority:
        yield from _priority((*loc, "priority"), priority, ctx)


def _priority(loc: Loc, priority: int, ctx: _Context) -> Iterator[Problem]:
    version = ray_version_tuple(ctx.ray_version)
    if version is None or version < PRIORITY_SINCE:
        yield Problem.at(
            loc,
            f"priority needs Ray 2.56.0 or later, but rayVersion is {ctx.ray_version or 'unset'}",
            'set spec.rayVersion: "2.60.0" (and matching images), or remove priority',
        )
    if not ctx.v2:
        yield Problem.at(
            loc,
            f"priority {priority} is only honoured by autoscaler v2; KubeRay rejects it otherwise",
            "set spec.autoscalerOptions.version: v2, or remove priority",
        )


def _restart_policy(loc: Loc, restart: str) -> Problem:
    return Problem.at(
        loc,
        f"restartPolicy {restart} is not allowed with autoscaler v2",
        "set restartPolicy: Never, or remove it",
    )


def _duplicate_group_names(groups: list[Any]) -> Iterator[Problem]:
    first: dict[str, int] = {}
    for index, group in enumerate(groups):
        name = _map(group).get("groupName")
        if not isinstance(name, str):
            continue
        if name in first:
            yield Problem.at(
                ("spec", "workerGroupSpecs", index, "groupName"),
                f'group name "{name}" is already used by workerGroupSpecs[{first[name]}]',
                f'give each worker group a unique name, e.g. "{name}-{index}"',
            )
        else:
            first[name] = index


# ---------------------------------------------------------------------------------------------
# Shared by the head group and the worker groups


def _group_common(loc: Loc, group: Mapping[str, Any], ctx: _Context) -> Iterator[Problem]:
    yield from _containers(loc, group)
    params = _map(group.get("rayStartParams"))
    resources = _map(group.get("resources"))
    yield from _ray_start_params((*loc, "rayStartParams"), params)
    yield from _top_level_resources((*loc, "resources"), resources)
    yield from _labels((*loc, "labels"), _map(group.get("labels")))
    if resources and any(key in params for key in (*STANDARD_PARAMS, "resources")):
        yield Problem.at(
            (*loc, "resources"),
            "resources are set both here and in rayStartParams (num-cpus, num-gpus, memory or "
            "resources); KubeRay rejects the combination",
            "keep the top-level resources map and remove those keys from rayStartParams",
        )
    if ctx.autoscaling and _ray_container(group) and not _cpu_known(group, params, resources):
        yield Problem.at(
            (*loc, "template", "spec", "containers", 0, "resources"),
            "the number of CPUs of this group cannot be determined, so the autoscaler cannot "
            "plan for it",
            'set resources.limits.cpu on the Ray container, or rayStartParams num-cpus: "1"',
        )
    if ctx.autoscaling and ctx.v2:
        restart = _map(_map(group.get("template")).get("spec")).get("restartPolicy")
        if isinstance(restart, str) and restart != "Never":
            yield _restart_policy((*loc, "template", "spec", "restartPolicy"), restart)


def _containers(loc: Loc, group: Mapping[str, Any]) -> Iterator[Problem]:
    template = group.get("template")
    if not isinstance(template, Mapping):
        return
    spec_loc: Loc = (*loc, "template", "spec", "containers")
    containers = _map(template.get("spec")).get("containers")
    if containers is None or containers == []:
        yield Problem.at(
            spec_loc,
            "the pod template has no containers",
            "add the Ray container: containers: [{name: ray, image: rayproject/ray:2.60.0}]",
        )
        return
    for index, container in enumerate(_list(containers)):
        resources = _map(_map(container).get("resources"))
        yield from _container_resources((*spec_loc, index, "resources"), resources)


def _cpu_known(
    group: Mapping[str, Any], params: Mapping[str, Any], resources: Mapping[str, Any]
) -> bool:
    if any(key.lower() == "cpu" for key in resources) or "num-cpus" in params:
        return True
    container_resources = _map(_ray_container(group).get("resources"))
    return any("cpu" in _map(container_resources.get(kind)) for kind in ("limits", "requests"))


def _ray_start_params(loc: Loc, params: Mapping[str, Any]) -> Iterator[Problem]:
    for key in INT_PARAMS:
        value = params.get(key)
        if isinstance(value, str) and not re.fullmatch(r"\s*\d+\s*", value):
            yield Problem.at(
                (*loc, key),
                f'{key} must be a whole number (ray start --{key} takes an integer), got "{value}"',
                _int_param_fix(key, value),
            )
    text = params.get("resources")
    if isinstance(text, str):
        yield from _resources_param((*loc, "resources"), text)
    if "labels" in params:
        yield Problem.at(
            (*loc, "labels"),
            "rayStartParams labels is not supported by KubeRay",
            "move the labels to the group's top-level labels map (labels: {key: value})",
        )


def _int_param_fix(key: str, value: str) -> str:
    try:
        amount = parse_quantity(value)
    except QuantityError:
        return f'write {key}: "1" (a whole number)'
    if amount < 0:
        return f'write {key}: "0" or more'
    unit = " (bytes)" if "memory" in key else ""
    return f'write {key}: "{ceil_quantity(amount)}"{unit}'


def _resources_param(loc: Loc, text: str) -> Iterator[Problem]:
    fix = 'write resources: \'"{\\"Custom1\\": 1}"\' (a JSON object of resource amounts)'
    try:
        parsed = parse_resources_param(text)
    except ValueError as err:
        yield Problem.at(loc, f"invalid resources JSON: {err}", fix)
        return
    for name in parsed:
        if name in ("CPU", "GPU", "memory", "object_store_memory"):
            yield Problem.at(
                loc,
                f'"{name}" cannot be a custom resource (ray start rejects it)',
                f"use rayStartParams {_param_for(name)} instead",
            )


def _param_for(name: str) -> str:
    reverse = {value: key for key, value in STANDARD_PARAMS.items()}
    return reverse.get(name, "object-store-memory")


def _top_level_resources(loc: Loc, resources: Mapping[str, Any]) -> Iterator[Problem]:
    for name, value in resources.items():
        if name == "object_store_memory":
            yield Problem.at(
                (*loc, name),
                "object_store_memory cannot be a Ray resource",
                "set rayStartParams object-store-memory (bytes) instead",
            )
        elif isinstance(value, str):
            yield from _quantity((*loc, name), value)


def _container_resources(loc: Loc, resources: Mapping[str, Any]) -> Iterator[Problem]:
    parsed: dict[str, dict[str, Decimal]] = {}
    for kind in ("limits", "requests"):
        parsed[kind] = {}
        for name, value in _map(resources.get(kind)).items():
            amount = yield from _quantity((*loc, kind, name), value)
            if amount is not None:
                parsed[kind][name] = amount
    for name, request in parsed["requests"].items():
        limit = parsed["limits"].get(name)
        if limit is not None and request > limit:
            yield Problem.at(
                (*loc, "requests", name),
                f"the {name} request ({resources['requests'][name]}) is more than its limit "
                f"({resources['limits'][name]}); Kubernetes rejects the pod",
                "lower the request to at most the limit, or raise the limit",
            )


def _quantity(loc: Loc, value: object) -> Generator[Problem, None, Decimal | None]:
    """Yield a problem for a bad or negative quantity; return the parsed amount otherwise."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None  # a type problem, reported by the type pass
    try:
        amount = parse_quantity(value)
    except QuantityError as err:
        yield Problem.at(loc, f"bad quantity: {err.message}", err.fix)
        return None
    if amount < 0:
        yield Problem.at(loc, f"quantity {value} is negative", "use zero or a positive amount")
        return None
    return amount


def _labels(loc: Loc, labels: Mapping[str, Any]) -> Iterator[Problem]:
    for key, value in labels.items():
        if not _qualified_name(key):
            yield Problem.at(
                (*loc, key),
                f'"{key}" is not a valid label key ([prefix/]name; the name at most 63 '
                "letters, digits, '-', '_' or '.')",
                f'rename it, e.g. "{_suggest_label(key.split("/")[-1])}"',
            )
        if isinstance(value, str) and value and (len(value) > 63 or not _LABEL_NAME.match(value)):
            yield Problem.at(
                (*loc, key),
                f'"{value}" is not a valid label value',
                f'use at most 63 letters, digits, "-", "_" or ".", e.g. "{_suggest_label(value)}"',
            )


def _qualified_name(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and _LABEL_NAME.match(name) is not None


def _int_range(loc: Loc, value: int, example: str) -> Iterator[Problem]:
    field = str(loc[-1])
    if value < 0:
        yield Problem.at(loc, f"{field} must not be negative, got {value}", f"use {example}")
    elif value > INT32_MAX:
        yield Problem.at(
            loc, f"{field} {value} is larger than {INT32_MAX} (int32)", f"use {example}"
        )


def _choice(loc: Loc, value: str, allowed: tuple[str, ...]) -> Problem:
    field = str(loc[-1])
    close = difflib.get_close_matches(value, allowed, n=1, cutoff=0.5)
    hint = f"did you mean {field}: {close[0]}? " if close else ""
    return Problem.at(
        loc,
        f'"{value}" is not one of {", ".join(allowed)}',
        f"{hint}use one of {', '.join(allowed)}",
    )

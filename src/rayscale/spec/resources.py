"""The Ray resources of one host of a group, as KubeRay and Ray's autoscaler compute them.

Purely computational. Per resource, the first source that names it wins:

1. the group's top-level ``resources`` map (KubeRay >= 1.4). Names are matched as KubeRay
   does: ``cpu``/``CPU`` -> CPU, ``memory`` -> memory, a GPU key (``GPU``, ``nvidia.com/gpu``)
   -> GPU, anything else is a custom resource;
2. ``rayStartParams``: ``num-cpus``, ``num-gpus``, ``memory`` (bytes) and ``resources`` (a JSON
   object, in KubeRay's quoted form ``'"{\\"Custom1\\": 1}"'`` or as plain JSON);
3. the Ray container's (first container's) ``resources.limits``;
4. its ``resources.requests``.

CPU, GPU and memory round up to whole numbers (``"500m"`` -> 1 CPU, ``"1.5Gi"`` -> bytes).
GPU is the first key, in sorted order, that ends in ``gpu`` (or is an NVIDIA MIG slice) with a
non-zero value. ``google.com/tpu`` becomes ``TPU`` and ``aws.amazon.com/neuroncore`` becomes
``neuron_cores``, unless the custom resources already name an accelerator. When the top-level
``resources`` map is set it is the only source of custom resources (Ray's rule).

``object_store_memory`` is never included: Ray does not let tasks request it, so it plays no
part in planning (Ray's KubeRay config builder leaves it out for the same reason).
Ray's ``TPU-<type>-head`` marker resource (derived from GKE node selectors) is not modelled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal

from rayscale.planner.model import HEAD_GROUP
from rayscale.spec.errors import Loc, Problem, SpecError
from rayscale.spec.models import GroupSpec, HeadGroupSpec, RayCluster, WorkerGroupSpec
from rayscale.spec.quantity import QuantityError, parse_quantity

__all__ = [
    "ACCELERATOR_RESOURCES",
    "group_resources",
    "head_resources",
    "is_gpu_resource_key",
    "parse_resources_param",
]

ACCELERATOR_RESOURCES = {"google.com/tpu": "TPU", "aws.amazon.com/neuroncore": "neuron_cores"}
"""Kubernetes extended resources that KubeRay turns into Ray custom resources."""

STANDARD_PARAMS = {"num-cpus": "CPU", "num-gpus": "GPU", "memory": "memory"}
"""rayStartParams that set a standard Ray resource (all take whole numbers)."""

_MIG = re.compile(r"nvidia\.com/mig-\d+g\.\d+gb$")


def is_gpu_resource_key(key: str) -> bool:
    """KubeRay's GPU test: a name ending in ``gpu`` or an NVIDIA MIG slice."""
    return key.endswith("gpu") or _MIG.search(key) is not None


def parse_resources_param(text: str) -> dict[str, float]:
    """Parse rayStartParams ``resources``: ``'"{\\"Custom1\\": 1}"'``, ``'{"A": 1}'`` or plain JSON.

    Raises ValueError with a human-readable reason when it is not a JSON object of
    non-negative numbers.
    """
    body = text.strip()
    while len(body) >= 2 and body[0] == body[-1] and body[0] in "'\"`":
        body = body[1:-1].strip()
    if '\\"' in body:
        body = body.replace('\\"', '"')
    try:
        parsed: object = json.loads(body)
        if isinstance(parsed, str):
            parsed = json.loads(parsed)
    except json.JSONDecodeError as err:
        raise ValueError(f"is not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(parsed, dict):
        raise ValueError("must be a JSON object mapping resource names to amounts")
    out: dict[str, float] = {}
    for name, amount in parsed.items():
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise ValueError(f'resource "{name}" must be a non-negative number, got {amount!r}')
        out[str(name)] = float(amount)
    return out


def group_resources(group: GroupSpec, loc: Loc | None = None) -> dict[str, float]:
    """The Ray resources of one host of ``group`` (head or worker), e.g.
    ``{"CPU": 1.0, "memory": 1e9}``. Raises SpecError if they cannot be determined."""
    where = loc if loc is not None else _default_loc(group)
    try:
        return _resolve(group, where)
    except QuantityError as err:
        raise SpecError(
            [Problem.at(where, f"bad resource quantity: {err.message}", err.fix)]
        ) from None


def head_resources(cluster: RayCluster) -> dict[str, float]:
    """The Ray resources of the head node (the ``headgroup``)."""
    return group_resources(cluster.spec.head_group_spec, ("spec", "headGroupSpec"))


# ---------------------------------------------------------------------------------------------


@dataclass
class _TopLevel:
    """The group's top-level ``resources`` map, sorted into KubeRay's categories."""

    cpu: Decimal | None = None
    gpu: Decimal | None = None
    memory: Decimal | None = None
    custom: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, resources: Mapping[str, str]) -> _TopLevel:
        top = cls()
        for name in sorted(resources):
            amount = parse_quantity(resources[name])
            lowered = name.lower()
            if lowered == "cpu":
                top.cpu = amount
            elif lowered == "memory":
                top.memory = amount
            elif is_gpu_resource_key(lowered):
                top.gpu = amount if top.gpu is None else top.gpu
            else:
                top.custom[name] = float(amount)
        return top


def _resolve(group: GroupSpec, loc: Loc) -> dict[str, float]:
    top = _TopLevel.of(group.resources)
    params = group.ray_start_params
    container = group.ray_container
    limits = dict(container.resources.limits) if container else {}
    requests = dict(container.resources.requests) if container else {}

    cpu = _first(top.cpu, _param(params, "num-cpus"), _get(limits, "cpu"), _get(requests, "cpu"))
    if cpu is None:
        raise SpecError([_no_cpu(loc)])
    out: dict[str, float] = {"CPU": _ceil(cpu)}
    gpu = _first(top.gpu, _param(params, "num-gpus"), _gpu(limits), _gpu(requests))
    if gpu is not None:
        out["GPU"] = _ceil(gpu)
    memory = _first(
        top.memory, _param(params, "memory"), _get(limits, "memory"), _get(requests, "memory")
    )
    if memory is not None:
        out["memory"] = _ceil(memory)
    for name, amount in _custom(group, top, loc).items():
        out.setdefault(name, amount)
    accelerator = _accelerator(limits, requests, out)
    if accelerator is not None:
        out.setdefault(*accelerator)
    return out


def _custom(group: GroupSpec, top: _TopLevel, loc: Loc) -> dict[str, float]:
    if group.resources:
        return top.custom
    text = group.ray_start_params.get("resources")
    if text is None:
        return {}
    try:
        parsed = parse_resources_param(text)
    except ValueError as err:
        where = (*loc, "rayStartParams", "resources")
        fix = 'write resources: \'"{\\"Custom1\\": 1}"\''
        raise SpecError([Problem.at(where, f"invalid resources JSON: {err}", fix)]) from None
    return {name: amount for name, amount in parsed.items() if name not in ("CPU", "GPU", "memory")}


def _accelerator(
    limits: Mapping[str, str | int | float],
    requests: Mapping[str, str | int | float],
    resources: Mapping[str, float],
) -> tuple[str, float] | None:
    if any(name in resources for name in ACCELERATOR_RESOURCES.values()):
        return None
    for source in (limits, requests):
        for key in sorted(source):
            if key in ACCELERATOR_RESOURCES:
                amount = parse_quantity(source[key])
                if amount > 0:
                    return ACCELERATOR_RESOURCES[key], _ceil(amount)
    return None


def _first(*candidates: Decimal | None) -> Decimal | None:
    return next((value for value in candidates if value is not None), None)


def _param(params: Mapping[str, str], key: str) -> Decimal | None:
    return parse_quantity(params[key]) if key in params else None


def _get(source: Mapping[str, str | int | float], key: str) -> Decimal | None:
    return parse_quantity(source[key]) if key in source else None


def _gpu(source: Mapping[str, str | int | float]) -> Decimal | None:
    for key in sorted(source):
        if is_gpu_resource_key(key):
            amount = parse_quantity(source[key])
            if amount > 0:
                return amount
    return None


def _ceil(amount: Decimal) -> float:
    return float(amount.to_integral_value(rounding=ROUND_CEILING))


def _no_cpu(loc: Loc) -> Problem:
    return Problem.at(
        loc,
        "the number of CPUs of this group cannot be determined "
        "(no resources.CPU, no rayStartParams num-cpus, no cpu limit or request)",
        'set rayStartParams num-cpus: "1", or resources.limits.cpu on the Ray container',
    )


def _default_loc(group: GroupSpec) -> Loc:
    if isinstance(group, WorkerGroupSpec):
        return ("spec", "workerGroupSpecs", group.group_name)
    if isinstance(group, HeadGroupSpec):
        return ("spec", "headGroupSpec")
    return (HEAD_GROUP,)

"""The declarative boundary between the autoscaler and a runtime.

The autoscaler never creates or deletes pods. It observes (:class:`Observation`: the desired
state it wrote last and the worker pods that exist) and writes a new desired state
(:class:`ScaleRequest`: replicas per group plus ``workersToDelete``). A :class:`Backend`
applies that in ONE call: on Kubernetes one JSON patch of the RayCluster, locally one update
of the local store; the operator's reconciler (:mod:`rayscale.builders.reconcile`) then makes
pods match. This is KubeRay's autoscaler-operator protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from rayscale.planner import Demand

PodPhase = Literal["pending", "running", "failed"]
RayNodeStatus = Literal["running", "idle", "draining"]


class BadDemandError(ValueError):
    """Ray's request_resources value could not be read; it is reported once and ignored."""


@dataclass(frozen=True, slots=True)
class RayNode:
    """One live Ray node as GCS reports it; ``instance_id`` is its pod's name
    (``RAY_CLOUD_INSTANCE_ID``) and ``group`` its ``RAY_NODE_TYPE_NAME``."""

    node_id: str
    instance_id: str
    group: str
    status: RayNodeStatus
    total: Mapping[str, float]
    available: Mapping[str, float]
    idle_s: float
    ip: str = ""


@dataclass(frozen=True, slots=True)
class WorkerPod:
    """A worker pod as the autoscaler sees it (label ``ray.io/group``; the pod name is the
    Ray node's ``instance_id``)."""

    name: str
    group: str
    phase: PodPhase = "pending"
    replica: str | None = None


@dataclass(frozen=True, slots=True)
class GroupTarget:
    """One group's desired state: ``replicas`` and ``scaleStrategy.workersToDelete``."""

    replicas: int
    workers_to_delete: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Observation:
    """The runtime's side of one tick: the desired state in force and the pods that exist
    (pods already being deleted are left out)."""

    targets: Mapping[str, GroupTarget]
    pods: tuple[WorkerPod, ...] = ()


@dataclass(frozen=True, slots=True)
class ScaleRequest:
    """A new desired state for the groups that change (others are left as they are)."""

    targets: Mapping[str, GroupTarget]

    def __bool__(self) -> bool:
        return bool(self.targets)


@dataclass(frozen=True, slots=True)
class ScaleResult:
    """What the backend did with a request. ``applied`` False means nothing changed."""

    applied: bool
    error: str = ""
    detail: Mapping[str, object] = field(default_factory=dict)


class Backend(Protocol):
    """Where the desired state lives (the RayCluster CR, or the local store)."""

    def observe(self) -> Observation: ...

    def apply(self, request: ScaleRequest) -> ScaleResult: ...


class RayView(Protocol):
    """Ray's side: nodes and demand from GCS, and the drain RPC. Every call has a timeout."""

    def nodes_and_demand(self) -> tuple[list[RayNode], Demand]: ...

    def requested_resources(self) -> list[dict[str, float]]: ...

    def drain(self, node_id: str, reason: str) -> tuple[bool, str]: ...

    def publish_status(self, payload: bytes) -> None: ...

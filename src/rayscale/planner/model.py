"""The planner's inputs and outputs: plain, immutable data.

Everything the planner knows arrives here, and everything it decides leaves here, so the
planner can stay a pure function (no I/O, no clock, no randomness) and be replayed from a
recorded snapshot. Adapters (GCS reader, Kubernetes, the local runtime, `rayscale plan`)
translate to and from these types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from rayscale.planner.reasons import Reason

Resources = Mapping[str, float]
"""A resource vector, e.g. ``{"CPU": 1, "memory": 2**30}``. Zero entries mean "not asked"."""

HEAD_GROUP = "headgroup"
"""KubeRay's group label value for the head pod; the head is never launched or deleted."""

UpscalingMode = Literal["Default", "Aggressive", "Conservative"]
NodeStatus = Literal["running", "pending"]


class Strategy(str, Enum):
    """Ray placement-group strategies."""

    STRICT_PACK = "STRICT_PACK"
    PACK = "PACK"
    SPREAD = "SPREAD"
    STRICT_SPREAD = "STRICT_SPREAD"


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """One scalable worker group, as the spec resolved it.

    ``resources`` is the Ray resource vector of ONE host; a replica is ``num_of_hosts`` hosts.
    ``min_replicas``/``max_replicas`` count replicas, not hosts.
    """

    name: str
    resources: Resources
    min_replicas: int = 0
    max_replicas: int = 2**31 - 1
    num_of_hosts: int = 1
    idle_timeout_s: float = 60.0
    upscaling_mode: UpscalingMode = "Default"


@dataclass(frozen=True, slots=True)
class NodeView:
    """One Ray node (a pod, or a local worker process) as observed.

    ``available`` is only meaningful for running nodes; a pending node is assumed to offer its
    full ``total`` once it boots. ``idle_s`` is Ray's idle duration (0 when the node runs work).
    ``replica`` names the multi-host replica the node belongs to (None: a replica of its own).
    """

    name: str
    group: str
    status: NodeStatus
    total: Resources
    available: Resources
    idle_s: float = 0.0
    replica: str | None = None

    @property
    def is_head(self) -> bool:
        return self.group == HEAD_GROUP


@dataclass(frozen=True, slots=True)
class BundleDemand:
    """``count`` pending tasks/actors that each need ``resources``."""

    resources: Resources
    count: int = 1


@dataclass(frozen=True, slots=True)
class PlacementGroupDemand:
    """A pending placement group: its bundles must be placed together under ``strategy``."""

    strategy: Strategy
    bundles: tuple[Resources, ...]
    name: str = ""


@dataclass(frozen=True, slots=True)
class Demand:
    """Everything the cluster is asked to hold.

    ``request_resources`` bundles must fit in the cluster's *total* capacity (Ray's
    ``ray.autoscaler.sdk.request_resources`` semantics), whatever is running.
    """

    bundles: tuple[BundleDemand, ...] = ()
    placement_groups: tuple[PlacementGroupDemand, ...] = ()
    request_resources: tuple[Resources, ...] = ()


@dataclass(frozen=True, slots=True)
class PlannerInput:
    """A complete snapshot: what the planner decides from, and nothing else.

    There is no clock: time enters only as each node's ``idle_s``, measured by Ray.
    """

    groups: tuple[GroupConfig, ...]
    nodes: tuple[NodeView, ...] = ()
    demand: Demand = field(default_factory=Demand)


# ---------------------------------------------------------------------------------------------
# Output


class DemandKind(str, Enum):
    TASK = "task"
    PLACEMENT_GROUP = "placement_group"
    REQUEST_RESOURCES = "request_resources"


@dataclass(frozen=True, slots=True)
class GroupDecision:
    """The target for one group. ``replicas`` is the new desired replica count."""

    name: str
    current: int
    replicas: int
    launch: int
    delete: int
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class Deletion:
    """One node to delete. ``replica`` names the multi-host replica it belongs to (None: a
    replica of its own); the plan deletes every host of that replica, in one reason."""

    node: str
    group: str
    reason: Reason
    replica: str | None = None


@dataclass(frozen=True, slots=True)
class UnmetDemand:
    """Demand the plan does not place, and why.

    ``infeasible`` is demand no group can ever hold (a missing resource, a gang larger than the
    groups allow); otherwise it is feasible but held back this round (maxReplicas reached, or
    the Conservative rate limit).
    """

    kind: DemandKind
    index: int
    resources: Resources
    count: int
    reason: Reason
    infeasible: bool
    strategy: Strategy | None = None


@dataclass(frozen=True, slots=True)
class Placement:
    """A certificate: ``count`` copies of one demand go on ``node``.

    ``kind``/``index`` point into :class:`Demand` (``bundles``, ``placement_groups`` or
    ``request_resources``); ``bundle`` is the bundle's position inside a placement group.
    ``node`` is an existing node name or ``new:<group>:<i>`` for a node this plan launches.
    Task and placement-group demand is placed on free capacity (running nodes' ``available``,
    pending and new nodes' ``total``); request_resources on total capacity. Tests check these
    certificates independently of the planner.
    """

    kind: DemandKind
    index: int
    node: str
    count: int = 1
    bundle: int = 0


@dataclass(frozen=True, slots=True)
class Plan:
    groups: Mapping[str, GroupDecision]
    delete: tuple[Deletion, ...]
    unmet: tuple[UnmetDemand, ...]
    placements: tuple[Placement, ...] = ()
    protected: tuple[str, ...] = ()
    """Idle nodes kept because request_resources or pending demand needs them."""

    @property
    def delete_replicas(self) -> tuple[tuple[Deletion, ...], ...]:
        """``delete`` grouped by replica, in plan order: each entry is one whole replica (all
        hosts of a multi-host replica; a single node otherwise), to be removed together."""
        out: dict[tuple[str, str], list[Deletion]] = {}
        for d in self.delete:
            out.setdefault((d.group, d.replica or f"node:{d.node}"), []).append(d)
        return tuple(tuple(ds) for ds in out.values())

    @property
    def infeasible(self) -> tuple[UnmetDemand, ...]:
        return tuple(u for u in self.unmet if u.infeasible)

    @property
    def held_back(self) -> tuple[UnmetDemand, ...]:
        return tuple(u for u in self.unmet if not u.infeasible)

"""Ray 2.60's own schedulers, driven with a rayscale :class:`PlannerInput`.

Two anchors, each built once from the input (translation is not timed) and then run as often as
the benchmark wants (only the scheduler call is timed):

- :class:`V1Anchor`: ``ray.autoscaler._private.resource_demand_scheduler.ResourceDemandScheduler``
  and its ``get_nodes_to_launch(...)``, as ``StandardAutoscaler`` calls it. The v1 scheduler
  asks a NodeProvider for each node's tags and IP; :class:`FakeNodeProvider` answers from the
  snapshot (it is a fake: no cloud behind it).
- :class:`V2Anchor`: ``ray.autoscaler.v2.scheduler.ResourceDemandScheduler.schedule`` with a
  ``SchedulingRequest`` built the way ``Reconciler._scale_cluster`` builds it from GCS state.

Mapping (KubeRay-style, as KubeRay's autoscaler config does it): each worker group is a node
type with ``min_workers``/``max_workers`` = replicas x hosts; the head pod's group ``headgroup``
is the head node type (``max_workers`` 0); ``max_workers`` of the cluster is the sum of the
groups'. Placement groups become ``PlacementGroupTableData`` (v1) or ``GangResourceRequest``
(v2: STRICT_PACK as affinity, STRICT_SPREAD as anti-affinity on the label ``_PG_<id>``, as the
GCS reports them). ``request_resources`` becomes v1's ``ensure_min_cluster_size`` and v2's
``ClusterResourceConstraint``.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ray._private.gcs_utils import PlacementGroupTableData
from ray.autoscaler._private.constants import (
    AUTOSCALER_MAX_CONCURRENT_LAUNCHES,
    AUTOSCALER_UPSCALING_INITIAL_NUM_NODES,
)
from ray.autoscaler._private.node_provider_availability_tracker import NodeAvailabilitySummary
from ray.autoscaler._private.resource_demand_scheduler import (
    ResourceDemandScheduler as V1Scheduler,
)
from ray.autoscaler.node_provider import NodeProvider
from ray.autoscaler.tags import (
    NODE_KIND_HEAD,
    NODE_KIND_WORKER,
    TAG_RAY_NODE_KIND,
    TAG_RAY_USER_NODE_TYPE,
)
from ray.autoscaler.v2.instance_manager.config import NodeTypeConfig
from ray.autoscaler.v2.instance_manager.reconciler import Reconciler
from ray.autoscaler.v2.scheduler import ResourceDemandScheduler as V2Scheduler
from ray.autoscaler.v2.scheduler import SchedulingRequest
from ray.autoscaler.v2.schema import AutoscalerInstance
from ray.core.generated.autoscaler_pb2 import (  # type: ignore[attr-defined]  # no stubs
    AffinityConstraint,
    AntiAffinityConstraint,
    BundleSelector,
    ClusterResourceConstraint,
    GangResourceRequest,
    NodeState,
    NodeStatus,
    PlacementConstraint,
    ResourceRequest,
    ResourceRequestByCount,
)
from ray.core.generated.common_pb2 import (  # type: ignore[attr-defined]
    Bundle,
    PlacementStrategy,
)
from ray.core.generated.instance_manager_pb2 import (  # type: ignore[attr-defined]
    Instance,
    NodeKind,
)

from rayscale.planner.model import (
    HEAD_GROUP,
    NodeView,
    PlacementGroupDemand,
    PlannerInput,
    Resources,
    Strategy,
)

KUBERAY_DEFAULT_UPSCALING_SPEED = 1000.0
"""What KubeRay's ``upscalingMode: Default`` (and Aggressive) sets as Ray's upscaling_speed."""

_RAY_LOGGERS = (
    "ray.autoscaler._private.resource_demand_scheduler",
    "ray.autoscaler.v2.scheduler",
)


def quiet_ray_loggers(level: int = logging.ERROR) -> None:
    """Ray's schedulers log a warning per infeasible shape and an info per min-count launch."""
    for name in _RAY_LOGGERS:
        logging.getLogger(name).setLevel(level)


@dataclass
class AnchorRun:
    """One scheduler call: what it launches, how long the call took, what it could not place."""

    launch: dict[str, int]
    elapsed_ms: float
    infeasible: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def summarize_shapes(shapes: Iterable[Mapping[str, Any]]) -> list[str]:
    """``[{'CPU': 32.0}, {'CPU': 32.0}]`` -> ``["{CPU: 32, memory: 64GiB} x2"]``, stable order."""
    counts: Counter[tuple[tuple[str, float], ...]] = Counter()
    for s in shapes:
        counts[tuple(sorted((k, float(v)) for k, v in s.items() if v))] += 1
    return [f"{format_shape(dict(k))} x{n}" for k, n in sorted(counts.items())]


def format_shape(shape: Mapping[str, float]) -> str:
    parts = []
    for k, v in sorted(shape.items()):
        if k == "memory":
            parts.append(f"memory: {v / 2**30:g}GiB")
        else:
            parts.append(f"{k}: {v:g}")
    return "{" + ", ".join(parts) + "}"


def head_node(inp: PlannerInput) -> NodeView:
    """The head node of the snapshot; Ray's schedulers both need one."""
    for node in inp.nodes:
        if node.is_head:
            return node
    raise ValueError("the snapshot has no head node (group 'headgroup'); Ray needs one")


def pg_id(index: int, pg: PlacementGroupDemand) -> bytes:
    """A stable 18-byte placement-group id (Ray's PlacementGroupID size) for a demand."""
    return hashlib.sha1(f"{index}:{pg.name}".encode()).digest()[:18]


def _worker_counts(inp: PlannerInput) -> tuple[Counter[str], Counter[str]]:
    running: Counter[str] = Counter()
    pending: Counter[str] = Counter()
    for n in inp.nodes:
        if not n.is_head:
            (running if n.status == "running" else pending)[n.group] += 1
    return running, pending


# ---------------------------------------------------------------------------------------------
# v1


class FakeNodeProvider(NodeProvider):
    """The NodeProvider calls v1's scheduler makes, answered from the snapshot.

    A fake, not a provider: there is no cloud behind it. A node's "IP" is its name.
    """

    def __init__(self, nodes: Sequence[NodeView]) -> None:
        super().__init__(provider_config={}, cluster_name="bench")
        self._tags = {
            n.name: {
                TAG_RAY_NODE_KIND: NODE_KIND_HEAD if n.is_head else NODE_KIND_WORKER,
                TAG_RAY_USER_NODE_TYPE: n.group,
            }
            for n in nodes
        }

    def non_terminated_nodes(self, tag_filters: dict[str, str]) -> list[str]:
        return [
            n for n, t in self._tags.items() if all(t.get(k) == v for k, v in tag_filters.items())
        ]

    def node_tags(self, node_id: str) -> dict[str, str]:
        return self._tags[node_id]

    def internal_ip(self, node_id: str) -> str:
        return node_id


class V1Anchor:
    """Ray v1: ``ResourceDemandScheduler.get_nodes_to_launch``.

    Called with every pending bundle (the real ``LoadMetrics`` clips the demand vector to
    ``AUTOSCALER_MAX_RESOURCE_DEMAND_VECTOR_SIZE`` = 1000 waiting bundles per round; here it
    gets the same full demand as the others). ``upscaling_speed`` defaults to KubeRay's Default
    mode value (1000): v1 then lets ``max(5, 1000 x running-of-type)`` nodes per type pend.
    """

    name = "ray_v1"

    def __init__(
        self, inp: PlannerInput, upscaling_speed: float = KUBERAY_DEFAULT_UPSCALING_SPEED
    ) -> None:
        self.inp = inp
        self.upscaling_speed = upscaling_speed
        head = head_node(inp)
        self.node_types: dict[str, dict[str, Any]] = {
            HEAD_GROUP: {
                "resources": dict(head.total),
                "min_workers": 0,
                "max_workers": 0,
                "node_config": {},
            },
        }
        for g in inp.groups:
            self.node_types[g.name] = {
                "resources": dict(g.resources),
                "min_workers": g.min_replicas * g.num_of_hosts,
                "max_workers": g.max_replicas * g.num_of_hosts,
                "node_config": {},
            }
        self.max_workers = sum(t["max_workers"] for t in self.node_types.values())
        self.provider = FakeNodeProvider(inp.nodes)
        running = [n for n in inp.nodes if n.status == "running"]
        self.nodes = [n.name for n in inp.nodes]  # non-terminated: running and pending pods
        self.unused_by_ip = {n.name: dict(n.available) for n in running}
        self.max_by_ip = {n.name: dict(n.total) for n in running}
        self.demands = [dict(b.resources) for b in inp.demand.bundles for _ in range(b.count)]
        self.pgs = [_pg_table_data(i, pg) for i, pg in enumerate(inp.demand.placement_groups)]
        self.ensure_min = [dict(r) for r in inp.demand.request_resources]
        self.summary = NodeAvailabilitySummary(node_availabilities={})

    def run(self) -> AnchorRun:

        sched = V1Scheduler(
            self.provider,
            self.node_types,
            max_workers=self.max_workers,
            head_node_type=HEAD_GROUP,
            upscaling_speed=self.upscaling_speed,
        )
        args: Any = copy.deepcopy(
            (self.nodes, self.demands, self.unused_by_ip, self.max_by_ip, self.ensure_min)
        )
        nodes, demands, unused, max_by_ip, ensure_min = args
        t0 = time.perf_counter()
        to_launch, unfulfilled = sched.get_nodes_to_launch(
            nodes=nodes,
            launching_nodes={},
            resource_demands=demands,
            unused_resources_by_ip=unused,
            pending_placement_groups=list(self.pgs),
            max_resources_by_ip=max_by_ip,
            ensure_min_cluster_size=ensure_min,
            node_availability_summary=self.summary,
        )
        elapsed = (time.perf_counter() - t0) * 1000
        launch = {t: int(n) for t, n in sorted(to_launch.items()) if n}
        return AnchorRun(
            launch=launch,
            elapsed_ms=elapsed,
            infeasible=summarize_shapes(unfulfilled),
            notes=self._cap_notes(launch),
        )

    def _cap_notes(self, launch: Mapping[str, int]) -> list[str]:
        """Say when v1's upscaling_speed limit is what stopped a node type."""

        running, pending = _worker_counts(self.inp)
        notes = []
        for t, n in launch.items():
            bound = (
                max(
                    AUTOSCALER_UPSCALING_INITIAL_NUM_NODES,
                    int(self.upscaling_speed * max(running[t], 1)),
                )
                - pending[t]
            )
            if n >= bound:
                notes.append(
                    f"v1 upscaling limit reached for {t}: {n} = max(5, "
                    f"{self.upscaling_speed:g} x {running[t]} running) - pending"
                )
        return notes


def _pg_table_data(index: int, pg: PlacementGroupDemand) -> Any:

    pid = pg_id(index, pg)
    bundles = [
        Bundle(
            bundle_id=Bundle.BundleIdentifier(placement_group_id=pid, bundle_index=i),
            unit_resources=dict(b),
        )
        for i, b in enumerate(pg.bundles)
    ]
    return PlacementGroupTableData(
        placement_group_id=pid,
        name=pg.name,
        bundles=bundles,
        strategy=PlacementStrategy.Value(pg.strategy.value),
        state=PlacementGroupTableData.PENDING,
    )


# ---------------------------------------------------------------------------------------------
# v2


class V2Anchor:
    """Ray v2: ``ResourceDemandScheduler().schedule(SchedulingRequest(...))``.

    ``schedule()`` decides the whole cluster shape at once; the in-flight cap (ray 57624) lives
    downstream, in ``Reconciler._compute_to_launch``: at most
    ``AUTOSCALER_MAX_CONCURRENT_LAUNCHES`` (10) instances REQUESTED across the cluster at a
    time. The anchor runs that real function on the decision and reports the first wave
    (``extra['first_wave']``) and the number of waves, so the cap is visible, not hidden.
    """

    name = "ray_v2"

    def __init__(
        self, inp: PlannerInput, upscaling_speed: float = KUBERAY_DEFAULT_UPSCALING_SPEED
    ) -> None:
        self.inp = inp
        self.upscaling_speed = upscaling_speed
        head = head_node(inp)
        self.node_type_configs = {
            HEAD_GROUP: NodeTypeConfig(
                name=HEAD_GROUP, min_worker_nodes=0, max_worker_nodes=1, resources=dict(head.total)
            ),
        }
        for g in inp.groups:
            self.node_type_configs[g.name] = NodeTypeConfig(
                name=g.name,
                min_worker_nodes=g.min_replicas * g.num_of_hosts,
                max_worker_nodes=g.max_replicas * g.num_of_hosts,
                resources=dict(g.resources),
            )
        self.max_num_nodes = sum(c.max_worker_nodes for c in self.node_type_configs.values())
        self.instances = [_v2_instance(i, n) for i, n in enumerate(inp.nodes)]
        self.resource_requests = [_by_count(b.resources, b.count) for b in inp.demand.bundles]
        self.gangs = [_gang(i, pg) for i, pg in enumerate(inp.demand.placement_groups)]
        self.constraints = _constraints(inp.demand.request_resources)

    def request(self) -> Any:

        return SchedulingRequest(
            disable_launch_config_check=True,
            node_type_configs=copy.deepcopy(self.node_type_configs),
            max_num_nodes=self.max_num_nodes,
            resource_requests=list(self.resource_requests),
            gang_resource_requests=list(self.gangs),
            cluster_resource_constraints=list(self.constraints),
            current_instances=copy.deepcopy(self.instances),
        )

    def run(self) -> AnchorRun:

        request = self.request()
        sched = V2Scheduler(event_logger=None)
        t0 = time.perf_counter()
        reply = sched.schedule(request)
        elapsed = (time.perf_counter() - t0) * 1000
        launch: Counter[str] = Counter()
        for lr in reply.to_launch:
            launch[lr.instance_type] += lr.count
        infeasible = summarize_shapes(
            dict(r.resources_bundle) for r in reply.infeasible_resource_requests
        )
        infeasible += [f"gang {g.details}" for g in reply.infeasible_gang_resource_requests]
        infeasible += [
            "request_resources constraint" for _ in reply.infeasible_cluster_resource_constraints
        ]
        run = AnchorRun(
            launch=dict(sorted(launch.items())), elapsed_ms=elapsed, infeasible=infeasible
        )
        if reply.to_terminate:
            run.notes.append(f"v2 also terminates {len(reply.to_terminate)} node(s)")
        self._cap(run)
        return run

    def _cap(self, run: AnchorRun) -> None:
        """Apply Ray's own ``Reconciler._compute_to_launch`` to the decision (first wave)."""

        queued = _queued_instances(run.launch)
        running = [
            i.im_instance
            for i in self.instances
            if i.im_instance is not None and i.ray_node is not None
        ]
        waves = Reconciler._compute_to_launch(
            queued, [], running, self.upscaling_speed, AUTOSCALER_MAX_CONCURRENT_LAUNCHES
        )
        first = {t: len(v) for t, v in sorted(waves.items()) if v}
        total, wave = sum(run.launch.values()), sum(first.values())
        run.extra["first_wave"] = first
        run.extra["max_concurrent_launches"] = AUTOSCALER_MAX_CONCURRENT_LAUNCHES
        run.extra["waves"] = math.ceil(total / wave) if wave else 0
        if wave < total:
            run.notes.append(
                f"v2 in-flight cap bites (ray 57624): schedule() wants {total} nodes, the "
                f"reconciler requests {wave} at a time (AUTOSCALER_MAX_CONCURRENT_LAUNCHES="
                f"{AUTOSCALER_MAX_CONCURRENT_LAUNCHES}): >= {run.extra['waves']} waves of "
                "pod boots before the last node is even requested"
            )


def _node_id(index: int, node: NodeView) -> bytes:
    return hashlib.sha1(f"{index}:{node.name}".encode()).digest()[:28]


def _v2_instance(index: int, node: NodeView) -> Any:

    nid = _node_id(index, node)
    kind = NodeKind.HEAD if node.is_head else NodeKind.WORKER
    if node.status != "running":
        im = Instance(
            instance_id=f"im-{index}",
            cloud_instance_id=node.name,
            status=Instance.ALLOCATED,
            instance_type=node.group,
            node_kind=kind,
        )
        return AutoscalerInstance(cloud_instance_id=node.name, im_instance=im)
    im = Instance(
        instance_id=f"im-{index}",
        cloud_instance_id=node.name,
        node_id=nid.hex(),
        status=Instance.RAY_RUNNING,
        instance_type=node.group,
        node_kind=kind,
    )
    ray_node = NodeState(
        node_id=nid,
        instance_id=node.name,
        ray_node_type_name=node.group,
        total_resources=dict(node.total),
        available_resources={k: v for k, v in node.available.items() if v > 0},
        status=NodeStatus.IDLE if node.idle_s > 0 else NodeStatus.RUNNING,
        idle_duration_ms=int(node.idle_s * 1000),
    )
    return AutoscalerInstance(cloud_instance_id=node.name, ray_node=ray_node, im_instance=im)


def _by_count(shape: Resources, count: int) -> Any:

    return ResourceRequestByCount(
        request=ResourceRequest(resources_bundle=dict(shape)), count=count
    )


def _gang(index: int, pg: PlacementGroupDemand) -> Any:

    label = f"_PG_{pg_id(index, pg).hex()}"
    constraints = []
    if pg.strategy is Strategy.STRICT_PACK:
        constraints = [
            PlacementConstraint(affinity=AffinityConstraint(label_name=label, label_value=""))
        ]
    elif pg.strategy is Strategy.STRICT_SPREAD:
        constraints = [
            PlacementConstraint(
                anti_affinity=AntiAffinityConstraint(label_name=label, label_value="")
            )
        ]

    def requests() -> list[Any]:
        return [
            ResourceRequest(resources_bundle=dict(b), placement_constraints=constraints)
            for b in pg.bundles
        ]

    # Both the legacy ``requests`` and ``bundle_selectors``, as the GCS fills them.
    return GangResourceRequest(
        requests=requests(),
        bundle_selectors=[BundleSelector(resource_requests=requests())],
        details=f"{pg_id(index, pg).hex()}:{pg.strategy.value}|PENDING",
    )


def _constraints(requests: Sequence[Resources]) -> list[Any]:

    if not requests:
        return []
    counts: Counter[tuple[tuple[str, float], ...]] = Counter(
        tuple(sorted((k, float(v)) for k, v in r.items())) for r in requests
    )
    return [
        ClusterResourceConstraint(
            resource_requests=[_by_count(dict(k), n) for k, n in counts.items()]
        )
    ]


def _queued_instances(launch: Mapping[str, int]) -> list[Any]:

    out: list[Any] = []
    for t, n in launch.items():
        for i in range(n):
            history = [
                Instance.StatusHistory(instance_status=Instance.QUEUED, timestamp_ns=len(out) + 1)
            ]
            out.append(
                Instance(
                    instance_id=f"queued-{t}-{i}",
                    instance_type=t,
                    status=Instance.QUEUED,
                    status_history=history,
                )
            )
    return out

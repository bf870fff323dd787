"""One model of status: what the autoscaler saw and decided, for every reader.

:class:`PlanModel` (``rayscale plan -o json``) shares its parts (reasons, unmet demand).

:class:`ClusterStatus` (pydantic) is built from a :class:`~rayscale.autoscaler.loop.TickReport`
and serves ``rayscale status -o json``, the text view in ``ray status``'s layout
(:func:`format_status`), and Ray's own ``ray status`` (:func:`ray_status_payload`, the JSON
Ray's v1 monitor writes to the GCS KV key ``__autoscaling_status``). Building and formatting
are pure; the caller stores or publishes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

from rayscale.autoscaler.loop import TickReport
from rayscale.planner import HEAD_GROUP, Demand, GroupConfig, Plan, UnmetDemand
from rayscale.planner.reasons import Reason
from rayscale.planner.shapes import fmt

_RULE = "-" * 63


def _shape(resources: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(resources.items()) if v}


class ReasonModel(BaseModel):
    code: str
    params: dict[str, Any] = Field(default_factory=dict)
    text: str

    @classmethod
    def of(cls, reason: Reason) -> ReasonModel:
        return cls.model_validate(reason.to_json())


class GroupStatus(BaseModel):
    name: str
    min: int
    max: int
    desired: int
    running: int
    pending: int
    reasons: list[str] = Field(default_factory=list)
    """The reasons' text, for people (kept for existing readers)."""
    reason_codes: list[ReasonModel] = Field(default_factory=list)


class NodeModel(BaseModel):
    name: str
    group: str
    state: str  # active | idle | pending
    idle_seconds: float = 0.0
    total: dict[str, float] = Field(default_factory=dict)
    available: dict[str, float] = Field(default_factory=dict)


class BundleModel(BaseModel):
    resources: dict[str, float]
    count: int


class PlacementGroupModel(BaseModel):
    strategy: str
    bundles: list[dict[str, float]]


class DemandModel(BaseModel):
    bundles: list[BundleModel] = Field(default_factory=list)
    placement_groups: list[PlacementGroupModel] = Field(default_factory=list)
    request_resources: list[dict[str, float]] = Field(default_factory=list)

    @classmethod
    def of(cls, demand: Demand) -> DemandModel:
        return cls(
            bundles=[
                BundleModel(resources=_shape(b.resources), count=b.count) for b in demand.bundles
            ],
            placement_groups=[
                PlacementGroupModel(
                    strategy=pg.strategy.value, bundles=[_shape(b) for b in pg.bundles]
                )
                for pg in demand.placement_groups
            ],
            request_resources=[_shape(b) for b in demand.request_resources],
        )


class UnmetModel(BaseModel):
    kind: str
    resources: dict[str, float]
    count: int
    reason: str
    code: str
    params: dict[str, Any] = Field(default_factory=dict)
    strategy: str | None = None

    @classmethod
    def of(cls, unmet: UnmetDemand) -> UnmetModel:
        return cls(
            kind=unmet.kind.value,
            resources=_shape(unmet.resources),
            count=unmet.count,
            reason=unmet.reason.text(),
            code=unmet.reason.code.value,
            params=dict(unmet.reason.params),
            strategy=unmet.strategy.value if unmet.strategy is not None else None,
        )


class PlanGroupModel(BaseModel):
    replicas: int
    current: int
    launch: int
    delete: int
    reasons: list[str] = Field(default_factory=list)
    reason_codes: list[ReasonModel] = Field(default_factory=list)


class DeletionModel(BaseModel):
    node: str
    group: str
    replica: str | None = None
    reason: str
    code: str
    params: dict[str, Any] = Field(default_factory=dict)


class PlanModel(BaseModel):
    """``rayscale plan -o json``: the plan's decisions, built from the same parts as
    :class:`ClusterStatus` (reasons as text, with their code and params beside them)."""

    groups: dict[str, PlanGroupModel]
    delete: list[DeletionModel] = Field(default_factory=list)
    infeasible: list[UnmetModel] = Field(default_factory=list)
    held_back: list[UnmetModel] = Field(default_factory=list)
    protected: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, plan: Plan) -> PlanModel:
        return cls(
            groups={
                name: PlanGroupModel(
                    replicas=g.replicas,
                    current=g.current,
                    launch=g.launch,
                    delete=g.delete,
                    reasons=[r.text() for r in g.reasons],
                    reason_codes=[ReasonModel.of(r) for r in g.reasons],
                )
                for name, g in plan.groups.items()
            },
            delete=[
                DeletionModel(
                    node=d.node,
                    group=d.group,
                    replica=d.replica,
                    reason=d.reason.text(),
                    code=d.reason.code.value,
                    params=dict(d.reason.params),
                )
                for d in plan.delete
            ],
            infeasible=[UnmetModel.of(u) for u in plan.infeasible],
            held_back=[UnmetModel.of(u) for u in plan.held_back],
            protected=list(plan.protected),
        )


class ClusterStatus(BaseModel):
    """``rayscale status -o json``."""

    name: str
    address: str = ""
    updated_at: float = 0.0
    iteration_seconds: float = 0.0
    plan_seconds: float = 0.0
    loop_errors: int = 0
    errors: dict[str, int] = Field(default_factory=dict)
    """Failed actions since start, by action (drain, apply, read request_resources, ...)."""
    groups: list[GroupStatus] = Field(default_factory=list)
    nodes: list[NodeModel] = Field(default_factory=list)
    demand: DemandModel = Field(default_factory=DemandModel)
    infeasible: list[UnmetModel] = Field(default_factory=list)
    held_back: list[UnmetModel] = Field(default_factory=list)
    launched: dict[str, int] = Field(default_factory=dict)
    """Replicas added to each group's desired state by the latest decision."""
    deleted: list[str] = Field(default_factory=list)
    """Pods put on workersToDelete by the latest decision."""
    recent_failures: list[str] = Field(default_factory=list)
    failed_boots: int = 0
    """Workers whose boot failed since start (each is retried with backoff)."""


def build_status(
    name: str,
    address: str,
    groups: Sequence[GroupConfig],
    report: TickReport,
    failures: Sequence[str] = (),
    loop_errors: int = 0,
    failed_boots: int = 0,
) -> ClusterStatus:
    running: Counter[str] = Counter()
    pending: Counter[str] = Counter()
    for node in report.nodes:
        (running if node.status == "running" else pending)[node.group] += 1
    plan = report.plan
    targets = report.observation.targets
    launched: dict[str, int] = {}
    deleted: list[str] = []
    for group, target in report.request.targets.items():
        before = targets[group].replicas if group in targets else 0
        if report.applied and target.replicas > before:
            launched[group] = target.replicas - before
        if report.applied:
            deleted += [n for n in target.workers_to_delete if n not in _listed(targets, group)]
    hosts = {g.name: max(1, g.num_of_hosts) for g in groups}
    return ClusterStatus(
        name=name,
        address=address,
        updated_at=report.at,
        iteration_seconds=round(report.seconds, 4),
        plan_seconds=round(report.plan_seconds, 4),
        loop_errors=loop_errors,
        errors=dict(report.errors),
        groups=[
            GroupStatus(
                name=g.name,
                min=g.min_replicas,
                max=g.max_replicas,
                desired=_desired(report, g.name),
                running=running[g.name],
                pending=pending[g.name] + launched.get(g.name, 0) * hosts[g.name],
                reasons=[r.text() for r in plan.groups[g.name].reasons],
                reason_codes=[ReasonModel.of(r) for r in plan.groups[g.name].reasons],
            )
            for g in groups
        ],
        nodes=[
            NodeModel(
                name=n.name,
                group=n.group,
                state=_state(n.status, n.idle_s),
                idle_seconds=round(n.idle_s, 1),
                total=_shape(n.total),
                available=_shape(n.available),
            )
            for n in report.nodes
        ],
        demand=DemandModel.of(report.demand),
        infeasible=[UnmetModel.of(u) for u in plan.infeasible],
        held_back=[UnmetModel.of(u) for u in plan.held_back],
        launched=launched,
        deleted=deleted,
        recent_failures=list(failures),
        failed_boots=failed_boots,
    )


def _listed(targets: Mapping[str, Any], group: str) -> set[str]:
    return set(targets[group].workers_to_delete) if group in targets else set()


def _desired(report: TickReport, group: str) -> int:
    if report.applied and group in report.request.targets:
        return report.request.targets[group].replicas
    target = report.observation.targets.get(group)
    return target.replicas if target is not None else report.plan.groups[group].replicas


def _state(status: str, idle_s: float) -> str:
    if status == "pending":
        return "pending"
    return "idle" if idle_s > 0 else "active"


# -- text, in ray status's layout ----------------------------------------------------------


def _amount(name: str, used: float, total: float) -> str:
    if name in ("memory", "object_store_memory"):
        return f"{_bytes(used)}/{_bytes(total)} {name}"
    return f"{used:.1f}/{total:.1f} {name}"


def _bytes(value: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.2f}{unit}"
    return f"{value:.0f}B"


def _dict_text(resources: Mapping[str, float]) -> str:
    return "{" + ", ".join(f"'{k}': {v:.1f}" for k, v in sorted(resources.items())) + "}"


def _usage(status: ClusterStatus) -> tuple[dict[str, float], dict[str, float]]:
    totals: dict[str, float] = defaultdict(float)
    used: dict[str, float] = defaultdict(float)
    for node in status.nodes:
        if node.state == "pending":
            continue
        for k, v in node.total.items():
            totals[k] += v
            used[k] += v - node.available.get(k, 0.0)
    return totals, used


def format_status(status: ClusterStatus) -> str:
    """``ray status``'s layout, plus rayscale's per-group targets and reasons."""
    when = dt.datetime.fromtimestamp(status.updated_at).isoformat(sep=" ")
    lines = [f"======== Autoscaler status: {when} ========", "Node status", _RULE]
    by_state: dict[str, Counter[str]] = defaultdict(Counter)
    for node in status.nodes:
        by_state[node.state][node.group] += 1
    for title, state in (("Active", "active"), ("Idle", "idle"), ("Pending", "pending")):
        lines.append(f"{title}:")
        counts = by_state.get(state)
        lines += (
            [f" {c} {g}" for g, c in sorted(counts.items())] if counts else [f" (no {state} nodes)"]
        )
    lines.append("Recent failures:")
    lines += [f" {f}" for f in status.recent_failures] or [" (no failures)"]
    lines += ["", "Resources", _RULE, "Total Usage:"]
    totals, used = _usage(status)
    lines += [f" {_amount(k, used[k], totals[k])}" for k in sorted(totals)] or [" (none)"]
    demand = status.demand
    if demand.request_resources:
        lines.append("From request_resources:")
        counts = Counter(_dict_text(b) for b in demand.request_resources)
        lines += [f" {s}: {c} from request_resources()" for s, c in counts.items()]
    lines.append("Pending Demands:")
    pending = [
        f" {_dict_text(b.resources)}: {b.count}+ pending tasks/actors" for b in demand.bundles
    ]
    for pg in demand.placement_groups:
        shapes = Counter(_dict_text(b) for b in pg.bundles)
        text = " + ".join(f"{s} * {c}" for s, c in shapes.items())
        pending.append(f" {text} ({pg.strategy}): 1+ pending placement groups")
    lines += pending or [" (no resource demands)"]
    if status.infeasible:
        lines.append("Infeasible:")
        lines += [f" {fmt(u.resources)} × {u.count}: {u.reason}" for u in status.infeasible]
    lines += ["", "Groups (rayscale)", _RULE]
    for g in status.groups:
        lines.append(
            f" {g.name}: desired {g.desired} (min {g.min}, max {g.max}), "
            f"running {g.running}, pending {g.pending}"
        )
        lines += [f"   - {r}" for r in g.reasons]
    if not any(n.group == HEAD_GROUP for n in status.nodes):
        lines.append(" (head not reported by GCS)")
    if status.errors:
        lines.append(
            " failed actions: " + ", ".join(f"{k} {v}" for k, v in sorted(status.errors.items()))
        )
    lines.append(
        f"The autoscaler took {status.iteration_seconds:.3f} seconds to complete "
        "the update iteration."
    )
    return "\n".join(lines)


# -- Ray's own `ray status` ------------------------------------------------------------------


def _freq(shapes: Sequence[Mapping[str, float]]) -> list[list[Any]]:
    counts: dict[str, int] = {}
    first: dict[str, dict[str, float]] = {}
    for shape in shapes:
        key = json.dumps(shape, sort_keys=True)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, dict(shape))
    return [[first[k], c] for k, c in counts.items()]


def ray_status_payload(status: ClusterStatus, pending_ip: str = "127.0.0.1") -> bytes:
    """The document Ray's v1 monitor writes to ``__autoscaling_status``, in the field shapes of
    ``LoadMetricsSummary`` and ``AutoscalerSummary`` (``ray status`` renders it)."""
    totals, used = _usage(status)
    active: Counter[str] = Counter()
    idle: Counter[str] = Counter()
    pending_nodes: list[list[str]] = []
    node_shapes: list[Mapping[str, float]] = []
    for node in status.nodes:
        if node.state == "pending":
            pending_nodes.append([pending_ip, node.group, "booting"])
            continue
        (idle if node.state == "idle" else active)[node.group] += 1
        node_shapes.append(node.total)
    launching = {
        g.name: g.pending
        - sum(1 for n in status.nodes if n.group == g.name and n.state == "pending")
        for g in status.groups
    }
    load_metrics = {
        "usage": {k: [used[k], totals[k]] for k in totals},
        "resource_demand": [[b.resources, b.count] for b in status.demand.bundles],
        "pg_demand": [
            [{"bundles": _freq(pg.bundles), "strategy": pg.strategy}, 1]
            for pg in status.demand.placement_groups
        ],
        "request_demand": _freq(status.demand.request_resources),
        "node_types": _freq(node_shapes),
    }
    autoscaler = {
        "active_nodes": dict(active),
        "idle_nodes": dict(idle),
        "pending_nodes": pending_nodes,
        "pending_launches": {g: n for g, n in launching.items() if n > 0},
        "failed_nodes": [[pending_ip, f] for f in status.recent_failures],
        "node_availability_summary": {"node_availabilities": {}},
        "pending_resources": {},
    }
    payload = {
        "time": status.updated_at,
        "load_metrics_report": load_metrics,
        "autoscaler_report": autoscaler,
    }
    return json.dumps(payload).encode()

"""``rayscale plan``: load a recorded snapshot (STATE.json), run the planner, render the Plan.

The STATE.json format is the planner's input in JSON::

    {"nodes": [{"name", "group", "status": "running"|"pending", "total": {res: n},
                "available": {res: n}, "idle_seconds": s, "replica": "optional id"}],
     "demand": {"bundles": [{"resources": {res: n}, "count": k}],
                "placement_groups": [{"strategy": "STRICT_SPREAD", "bundles": [{res: n}]}],
                "request_resources": [{res: n}]}}

``available`` defaults to ``total`` (a node with nothing running); ``idle_seconds`` to 0 (busy).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rayscale.planner import (
    HEAD_GROUP,
    BundleDemand,
    Demand,
    GroupConfig,
    NodeView,
    PlacementGroupDemand,
    Plan,
    PlannerInput,
    Strategy,
    UnmetDemand,
)
from rayscale.planner.shapes import fmt


class StateError(ValueError):
    """A STATE.json problem, worded for the user (field path and fix)."""


ResourceMap = dict[str, float]


def _non_negative(value: ResourceMap) -> ResourceMap:
    bad = [k for k, v in value.items() if v < 0]
    if bad:
        raise ValueError(f"resource amounts must be >= 0, got negative {', '.join(bad)}")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StateNode(_Model):
    name: str = Field(min_length=1)
    group: str = Field(min_length=1)
    status: Literal["running", "pending"] = "running"
    total: ResourceMap
    available: ResourceMap | None = None
    idle_seconds: float = Field(default=0.0, ge=0)
    replica: str | None = None

    _check_total = field_validator("total")(_non_negative)

    @field_validator("available")
    @classmethod
    def _check_available(cls, value: ResourceMap | None) -> ResourceMap | None:
        return None if value is None else _non_negative(value)


class StateBundle(_Model):
    resources: ResourceMap
    count: int = Field(default=1, ge=1)

    _check = field_validator("resources")(_non_negative)


class StatePlacementGroup(_Model):
    strategy: Strategy
    bundles: list[ResourceMap] = Field(min_length=1)
    name: str = ""


class StateDemand(_Model):
    bundles: list[StateBundle] = []
    placement_groups: list[StatePlacementGroup] = []
    request_resources: list[ResourceMap] = []


class State(_Model):
    now: float = 0.0
    """Accepted for older recordings and not used: the planner has no clock (idle time comes
    from each node's ``idle_seconds``)."""
    nodes: list[StateNode] = []
    demand: StateDemand = StateDemand()


def _loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_state(path: Path) -> State:
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise StateError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise StateError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    try:
        return State.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: {exc.error_count()} problem(s):"]
        for err in exc.errors():
            lines.append(f"  {_loc(err['loc'])}: {err['msg']}")
        raise StateError("\n".join(lines)) from None


def to_planner_input(state: State, groups: Sequence[GroupConfig]) -> PlannerInput:
    known = {g.name for g in groups}
    problems = []
    seen: set[str] = set()
    for i, node in enumerate(state.nodes):
        if node.group not in known and node.group != HEAD_GROUP:
            problems.append(
                f"nodes[{i}].group: unknown group {node.group!r}; the cluster has "
                f"{', '.join(sorted(known)) or 'no worker groups'} "
                f"(and {HEAD_GROUP!r} for the head)"
            )
        if node.name in seen:
            problems.append(f"nodes[{i}].name: duplicate node name {node.name!r}")
        seen.add(node.name)
    if problems:
        raise StateError("STATE.json does not match the cluster:\n  " + "\n  ".join(problems))
    nodes = tuple(
        NodeView(
            name=n.name,
            group=n.group,
            status=n.status,
            total=n.total,
            available=n.total if n.available is None else n.available,
            idle_s=n.idle_seconds,
            replica=n.replica,
        )
        for n in state.nodes
    )
    demand = Demand(
        bundles=tuple(BundleDemand(b.resources, b.count) for b in state.demand.bundles),
        placement_groups=tuple(
            PlacementGroupDemand(pg.strategy, tuple(pg.bundles), pg.name)
            for pg in state.demand.placement_groups
        ),
        request_resources=tuple(state.demand.request_resources),
    )
    return PlannerInput(groups=tuple(groups), nodes=nodes, demand=demand)


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The plan as JSON (:class:`~rayscale.autoscaler.status.PlanModel`): each reason's text
    where it always was, and its code and params beside it."""
    from rayscale.autoscaler.status import PlanModel

    data: dict[str, Any] = PlanModel.of(plan).model_dump(mode="json")
    return data


def plan_to_text(plan: Plan) -> str:
    lines = ["Groups:"]
    for name, g in plan.groups.items():
        change = f"+{g.launch}" if g.launch else ""
        change += f" -{g.delete}" if g.delete else ""
        lines.append(f"  {name}: {g.current} -> {g.replicas} replicas {change}".rstrip())
        lines += [f"    - {r.text()}" for r in g.reasons]
    lines.append("Delete:")
    lines += [f"  {d.node} ({d.group}): {d.reason.text()}" for d in plan.delete] or ["  (none)"]
    lines.append("Infeasible:")
    lines += _unmet_lines(plan.infeasible)
    if plan.held_back:
        lines.append("Held back:")
        lines += _unmet_lines(plan.held_back)
    return "\n".join(lines)


def _unmet_lines(items: Sequence[UnmetDemand]) -> list[str]:
    if not items:
        return ["  (none)"]
    out = []
    for u in items:
        label = f"{u.strategy.value} placement group " if u.strategy else ""
        out.append(f"  {u.count} × {label}{fmt(u.resources)}: {u.reason.text()}")
    return out

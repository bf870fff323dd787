"""An independent checker of Plan invariants, written without the planner's code.

It replays the plan's placement certificate on plain dictionaries: if the certificate is
valid, the demand the plan claims to satisfy really fits into the capacity after the plan.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping

from rayscale.planner import (
    HEAD_GROUP,
    DemandKind,
    GroupConfig,
    NodeView,
    Plan,
    PlannerInput,
    Strategy,
)
from rayscale.planner.reasons import ReasonCode

TOL = 1e-6
_HELD = (ReasonCode.HELD_BACK, ReasonCode.WAITING_FOR_BUSY_NODES)


def _fits(cap: Mapping[str, float], need: Mapping[str, float]) -> bool:
    return all(cap.get(k, 0.0) + TOL >= v for k, v in need.items() if v > 0)


def _sum(bundles: list[Mapping[str, float]]) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for b in bundles:
        for k, v in b.items():
            out[k] += v
    return dict(out)


def _key(resources: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((k, float(v)) for k, v in resources.items() if v))


def _busy(node: NodeView) -> bool:
    if node.idle_s <= 0:
        return True
    return any(
        node.available.get(k, 0.0) + TOL < v
        for k, v in node.total.items()
        if k != "object_store_memory"
    )


def _check_reasons(plan: Plan) -> None:
    """Every reason has JSON-compatible params and renders to text."""
    reasons = [r for d in plan.groups.values() for r in d.reasons]
    reasons += [d.reason for d in plan.delete] + [u.reason for u in plan.unmet]
    for r in reasons:
        assert json.loads(json.dumps(dict(r.params))) == dict(r.params), r
        assert r.text(), r


def check_plan(inp: PlannerInput, plan: Plan) -> None:
    _check_reasons(plan)
    groups: dict[str, GroupConfig] = {g.name: g for g in inp.groups}
    nodes = {n.name: n for n in inp.nodes}

    # 1. Group targets stay within [min, max]; launches/deletions are consistent.
    for name, g in groups.items():
        d = plan.groups[name]
        assert d.replicas <= g.max_replicas, f"{name}: {d.replicas} > max {g.max_replicas}"
        if g.max_replicas >= g.min_replicas:
            assert d.replicas >= min(g.min_replicas, g.max_replicas), f"{name} below min"
        assert d.launch >= 0 and d.delete >= 0
        assert d.reasons, f"{name}: a decision without a reason"

    # 2. Deletions: never the head, never busy, never pending (unless above max), real nodes.
    deleted = set()
    for dele in plan.delete:
        node = nodes.get(dele.node)
        assert node is not None, f"deleting unknown node {dele.node}"
        assert node.group != HEAD_GROUP, "deleting the head"
        assert dele.group == node.group
        assert dele.reason
        if node.status == "running":
            assert not _busy(node), f"deleting busy node {node.name}"
        deleted.add(dele.node)
    by_group_del = Counter(nodes[n].group for n in deleted)
    for name in groups:
        if by_group_del[name]:
            assert plan.groups[name].delete >= 1

    # 3. Capacity after the plan.
    new_nodes: dict[str, str] = {}
    for p in plan.placements:
        if p.node.startswith("new:"):
            _, group, _ = p.node.split(":")
            new_nodes[p.node] = group
    per_group_new = Counter(new_nodes.values())
    for group, count in per_group_new.items():
        hosts = max(1, groups[group].num_of_hosts)
        assert count <= plan.groups[group].launch * hosts, f"{group}: more new nodes used"

    def fresh(name: str, on_total: bool) -> dict[str, float]:
        if name in new_nodes:
            return dict(groups[new_nodes[name]].resources)
        node = nodes[name]
        assert name not in deleted, f"demand placed on deleted node {name}"
        if on_total or node.status == "pending":
            return dict(node.total)
        return dict(node.available)

    free: dict[str, dict[str, float]] = {}
    room: dict[str, dict[str, float]] = {}
    demand = inp.demand
    placed = Counter()
    pg_nodes: dict[int, dict[int, str]] = defaultdict(dict)
    for p in plan.placements:
        on_total = p.kind is DemandKind.REQUEST_RESOURCES
        ledger = room if on_total else free
        cap = ledger.setdefault(p.node, fresh(p.node, on_total))
        if p.kind is DemandKind.TASK:
            need = demand.bundles[p.index].resources
        elif p.kind is DemandKind.PLACEMENT_GROUP:
            need = demand.placement_groups[p.index].bundles[p.bundle]
            assert p.bundle not in pg_nodes[p.index], "bundle placed twice"
            pg_nodes[p.index][p.bundle] = p.node
        else:
            need = demand.request_resources[p.index]
        for k, v in need.items():
            cap[k] = cap.get(k, 0.0) - v * p.count
            assert cap[k] >= -TOL, f"{p.node} over-committed on {k} by {p}"
        placed[(p.kind, p.index)] += p.count

    # 4. Every demand is either placed or reported, never both, never neither.
    unmet = Counter()
    for u in plan.unmet:
        unmet[(u.kind, u.index)] += u.count
        assert u.reason
        if u.infeasible and u.kind is not DemandKind.PLACEMENT_GROUP:
            _check_infeasible(inp, u.resources)
        if not u.infeasible:
            assert u.reason.code in _HELD, u.reason
            if u.kind is not DemandKind.PLACEMENT_GROUP:
                _check_held_back(inp, plan, u.resources)
    for i, b in enumerate(demand.bundles):
        key = (DemandKind.TASK, i)
        assert placed[key] + unmet[key] == b.count, f"bundle {i}: {placed[key]}+{unmet[key]}"
    # request_resources: identical bundles are interchangeable, so count per shape.
    asked, got = Counter(), Counter()
    for i, bundle in enumerate(demand.request_resources):
        shape = _key(bundle)
        if shape:
            asked[shape] += 1
            got[shape] += placed[(DemandKind.REQUEST_RESOURCES, i)]
    for u in plan.unmet:
        if u.kind is DemandKind.REQUEST_RESOURCES:
            got[_key(u.resources)] += u.count
    assert asked == got, f"request_resources: asked {asked}, placed or reported {got}"
    for j, pg in enumerate(demand.placement_groups):
        got = pg_nodes.get(j, {})
        key = (DemandKind.PLACEMENT_GROUP, j)
        if unmet[key]:
            assert not got, f"placement group {j} half placed"
            continue
        assert len(got) == len(pg.bundles), f"placement group {j} incomplete"
        if pg.strategy is Strategy.STRICT_PACK:
            assert len(set(got.values())) == 1, f"STRICT_PACK {j} split"
        if pg.strategy is Strategy.STRICT_SPREAD:
            assert len(set(got.values())) == len(pg.bundles), f"STRICT_SPREAD {j} shares"


def _check_infeasible(inp: PlannerInput, resources: Mapping[str, float]) -> None:
    for g in inp.groups:
        if g.max_replicas > 0:
            assert not _fits(g.resources, resources), f"{resources} fits group {g.name}"
    for n in inp.nodes:
        assert not _fits(n.total, resources), f"{resources} fits node {n.name}"


def _is_special(name: str) -> bool:
    return name not in ("CPU", "memory", "object_store_memory")


def _check_held_back(inp: PlannerInput, plan: Plan, resources: Mapping[str, float]) -> None:
    """Held-back demand: every suitable group must be at a limit (max, or Conservative)."""
    fitting = [g for g in inp.groups if g.max_replicas > 0 and _fits(g.resources, resources)]

    def extra(g: GroupConfig) -> bool:
        return any(
            v > 0 and _is_special(k) and not resources.get(k) for k, v in g.resources.items()
        )

    plain = [g for g in fitting if not extra(g)]
    suitable = plain or fitting
    if not suitable:
        assert any(_fits(n.total, resources) for n in inp.nodes), "held back but no home"
    for g in suitable:
        at_max = plan.groups[g.name].replicas >= g.max_replicas
        assert at_max or g.upscaling_mode == "Conservative", (
            f"{resources} held back though {g.name} could grow "
            f"({plan.groups[g.name].replicas} < max {g.max_replicas})"
        )


def launched_capacity(inp: PlannerInput, plan: Plan) -> dict[str, float]:
    """CPUs/GPUs the plan launches (for comparisons)."""
    out: dict[str, float] = defaultdict(float)
    for g in inp.groups:
        d = plan.groups[g.name]
        for k, v in g.resources.items():
            out[k] += v * d.launch * max(1, g.num_of_hosts)
    return dict(out)

"""Table-driven tests: one case per planner rule (see the foundation issue)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from rayscale.bench.checker import check_plan
from rayscale.planner import (
    HEAD_GROUP,
    BundleDemand,
    Deletion,
    Demand,
    DemandKind,
    GroupConfig,
    NodeView,
    PlacementGroupDemand,
    Plan,
    PlannerInput,
    Strategy,
    plan,
)
from rayscale.planner.reasons import Reason, ReasonCode

pytestmark = pytest.mark.unit

CPU1 = {"CPU": 1.0}
SMALL = GroupConfig("small-group", {"CPU": 1.0, "memory": 2.0**30}, 0, 10)


def head(cpu: float = 0.0, free: float | None = None) -> NodeView:
    avail = cpu if free is None else free
    return NodeView("head", HEAD_GROUP, "running", {"CPU": cpu}, {"CPU": avail}, idle_s=5)


def worker(
    name: str,
    group: GroupConfig = SMALL,
    status: str = "running",
    free: float | None = None,
    idle: float = 0.0,
    replica: str | None = None,
) -> NodeView:
    total = dict(group.resources)
    avail = dict(total) if free is None else {**total, "CPU": free}
    return NodeView(name, group.name, status, total, avail, idle_s=idle, replica=replica)  # type: ignore[arg-type]


def bundles(*items: tuple[dict[str, float], int]) -> Demand:
    return Demand(bundles=tuple(BundleDemand(r, c) for r, c in items))


def pgs(strategy: Strategy, *shapes: dict[str, float]) -> Demand:
    return Demand(placement_groups=(PlacementGroupDemand(strategy, tuple(shapes)),))


@dataclass
class Case:
    groups: tuple[GroupConfig, ...]
    nodes: tuple[NodeView, ...] = (head(),)
    demand: Demand = field(default_factory=Demand)
    replicas: dict[str, int] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    infeasible: int = 0
    held_back: int = 0
    reason_has: tuple[str, ...] = ()
    extra: Callable[[Plan], None] | None = None


def same_node_for_pg(p: Plan) -> None:
    assert len({x.node for x in p.placements}) == 1


def distinct_nodes_for_pg(p: Plan) -> None:
    nodes = [x.node for x in p.placements]
    assert len(nodes) == len(set(nodes)) == 3


def deletes_replicas(p: Plan, expected: set[tuple[str | None, tuple[str, ...]]]) -> None:
    """``Plan.delete_replicas`` lists each deleted replica whole, named on every deletion."""
    got = {(ds[0].replica, tuple(sorted(d.node for d in ds))) for ds in p.delete_replicas}
    assert got == expected
    assert all(d.replica == ds[0].replica for ds in p.delete_replicas for d in ds)


def placed_on(*names: str) -> Callable[[Plan], None]:
    def check(p: Plan) -> None:
        assert {x.node for x in p.placements} == set(names)

    return check


CPU4 = GroupConfig("cpu4", {"CPU": 4.0}, 0, 10)
CPU16 = GroupConfig("cpu16", {"CPU": 16.0}, 0, 10)
CPU2 = GroupConfig("cpu2", {"CPU": 2.0}, 0, 10)
GPU = GroupConfig("gpu", {"CPU": 16.0, "GPU": 4.0}, 0, 10)
CONS = dataclasses.replace(SMALL, upscaling_mode="Conservative")
AGGR = dataclasses.replace(SMALL, upscaling_mode="Aggressive")
MULTI = GroupConfig("multi", {"CPU": 1.0}, 0, 4, num_of_hosts=2)

CASES = {
    # --- existing capacity first ---
    "running-free-capacity-used-first": Case(
        (SMALL,), (head(), worker("w1")), bundles((CPU1, 1)), {"small-group": 1}
    ),
    "head-free-capacity-counts": Case(
        (SMALL,), (head(cpu=2),), bundles((CPU1, 2)), {"small-group": 0}
    ),
    "pending-node-is-not-launched-twice": Case(
        (SMALL,), (head(), worker("w1", status="pending")), bundles((CPU1, 1)), {"small-group": 1}
    ),
    "running-then-pending-then-new": Case(
        (SMALL,),
        (head(), worker("w1", status="pending"), worker("w2")),
        bundles((CPU1, 3)),
        {"small-group": 3},
        reason_has=("launch 1 small-group: 3 pending {CPU: 1} fit no free node",),
    ),
    "busy-node-capacity-is-not-free": Case(
        (SMALL,), (head(), worker("w1", free=0)), bundles((CPU1, 1)), {"small-group": 2}
    ),
    # --- new nodes: least waste, plain groups first, max respected ---
    "least-waste-group": Case((CPU4, CPU16), demand=bundles((CPU1, 3)), replicas={"cpu4": 1}),
    "fewer-nodes-when-waste-equal": Case(
        (CPU4, CPU16), demand=bundles((CPU1, 16)), replicas={"cpu16": 1, "cpu4": 0}
    ),
    "no-gpu-node-for-cpu-work": Case(
        (GPU, CPU2), demand=bundles((CPU1, 8)), replicas={"gpu": 0, "cpu2": 4}
    ),
    "gpu-group-is-the-fallback-once-every-plain-group-is-at-max": Case(
        (GPU, dataclasses.replace(CPU2, max_replicas=1)),
        demand=bundles((CPU1, 8)),
        replicas={"gpu": 1, "cpu2": 1},
        reason_has=("gpu carries {GPU: 4} that the demand does not ask for",),
        extra=lambda p: _has_code(p, "gpu", ReasonCode.FALLBACK_SPECIAL_GROUP),
    ),
    "gpu-node-for-gpu-work": Case(
        (GPU, CPU2), demand=bundles(({"CPU": 1, "GPU": 1}, 2)), replicas={"gpu": 1, "cpu2": 0}
    ),
    "gpu-node-for-cpu-work-only-when-nothing-plainer-fits": Case(
        (GPU, CPU2), demand=bundles(({"CPU": 8}, 1)), replicas={"gpu": 1, "cpu2": 0}
    ),
    "max-replicas-caps-and-reports": Case(
        (dataclasses.replace(SMALL, max_replicas=2),),
        demand=bundles((CPU1, 5)),
        replicas={"small-group": 2},
        held_back=1,
        reason_has=("maxReplicas=2",),
    ),
    "one-big-node-beats-a-capped-small-group-with-spill": Case(
        (dataclasses.replace(CPU4, max_replicas=1), CPU16),
        demand=bundles((CPU1, 6)),
        replicas={"cpu4": 0, "cpu16": 1},
    ),
    "capped-group-spills-to-next-plain-group": Case(
        (dataclasses.replace(SMALL, max_replicas=2), dataclasses.replace(CPU4, max_replicas=1)),
        demand=bundles((CPU1, 6)),
        replicas={"small-group": 2, "cpu4": 1},
    ),
    # --- placement groups ---
    "strict-pack-on-one-node": Case(
        (CPU4,),
        demand=pgs(Strategy.STRICT_PACK, CPU1, CPU1, CPU1),
        replicas={"cpu4": 1},
        extra=same_node_for_pg,
    ),
    "strict-pack-too-big-is-infeasible-and-consumes-nothing": Case(
        (CPU2,),
        demand=pgs(Strategy.STRICT_PACK, CPU1, CPU1, CPU1),
        replicas={"cpu2": 0},
        infeasible=1,
        reason_has=(),
    ),
    "strict-spread-on-distinct-nodes": Case(
        (CPU4,),
        demand=pgs(Strategy.STRICT_SPREAD, CPU1, CPU1, CPU1),
        replicas={"cpu4": 3},
        extra=distinct_nodes_for_pg,
    ),
    "strict-spread-beyond-max-is-infeasible-not-a-crash": Case(
        (dataclasses.replace(CPU4, max_replicas=2),),
        demand=pgs(Strategy.STRICT_SPREAD, CPU1, CPU1, CPU1),
        replicas={"cpu4": 0},
        infeasible=1,
    ),
    "pack-splits-when-it-cannot-pack": Case(
        (CPU2,), demand=pgs(Strategy.PACK, CPU1, CPU1, CPU1), replicas={"cpu2": 2}
    ),
    "pack-packs-when-it-can": Case(
        (CPU4,), demand=pgs(Strategy.PACK, CPU1, CPU1), replicas={"cpu4": 1}
    ),
    "spread-is-best-effort": Case(
        (CPU4,), demand=pgs(Strategy.SPREAD, CPU1, CPU1, CPU1, CPU1), replicas={"cpu4": 1}
    ),
    # --- request_resources ---
    "request-resources-counts-total-capacity": Case(
        (SMALL,),
        (head(cpu=1, free=0), worker("w1", free=0)),
        Demand(request_resources=(CPU1,) * 4),
        {"small-group": 3},
        reason_has=("request_resources 4 × {CPU: 1} exceed total capacity",),
    ),
    "request-resources-keeps-idle-nodes": Case(
        (SMALL,),
        (head(), worker("w1", idle=100), worker("w2", idle=100)),
        Demand(request_resources=(CPU1,)),
        {"small-group": 1},
        deleted={"w2"},
        reason_has=("needed by request_resources",),
    ),
    # --- min and numOfHosts ---
    "min-replicas-floor": Case(
        (dataclasses.replace(SMALL, min_replicas=2),),
        replicas={"small-group": 2},
        reason_has=("below minReplicas=2",),
    ),
    "multi-host-launches-whole-replicas": Case(
        (MULTI,), demand=bundles((CPU1, 3)), replicas={"multi": 2}
    ),
    "multi-host-deletes-whole-replicas": Case(
        (MULTI,),
        (
            head(),
            worker("a1", MULTI, idle=90, replica="a"),
            worker("a2", MULTI, idle=80, replica="a"),
            worker("b1", MULTI, idle=90, replica="b"),
            worker("b2", MULTI, free=0, replica="b"),
        ),
        replicas={"multi": 1},
        deleted={"a1", "a2"},
        extra=lambda p: deletes_replicas(p, {("a", ("a1", "a2"))}),
    ),
    # --- upscaling mode ---
    "conservative-limits-pending": Case(
        (CONS,),
        demand=bundles((CPU1, 6)),
        replicas={"small-group": 1},
        held_back=1,
        reason_has=("Conservative",),
    ),
    "conservative-allows-running-count": Case(
        (CONS,),
        (
            head(),
            worker("w1", free=0),
            worker("w2", free=0),
            worker("w3", free=0, status="pending"),
        ),
        bundles((CPU1, 6)),
        {"small-group": 4},  # pending after plan <= max(1, running=2): 1 pending + 1 new
        held_back=1,
    ),
    "aggressive-is-unlimited": Case(
        (AGGR,), demand=bundles((CPU1, 6)), replicas={"small-group": 6}
    ),
    # --- scale-down ---
    "idle-past-timeout-is-deleted": Case(
        (SMALL,),
        (head(), worker("w1", idle=61)),
        replicas={"small-group": 0},
        deleted={"w1"},
        reason_has=("idle 61 s ≥ 60 s idle timeout",),
    ),
    "idle-below-timeout-is-kept": Case(
        (SMALL,), (head(), worker("w1", idle=59)), replicas={"small-group": 1}
    ),
    "group-idle-timeout-override": Case(
        (dataclasses.replace(SMALL, idle_timeout_s=10),),
        (head(), worker("w1", idle=11)),
        replicas={"small-group": 0},
        deleted={"w1"},
    ),
    "longest-idle-goes-first-down-to-min": Case(
        (dataclasses.replace(SMALL, min_replicas=1),),
        (head(), worker("w1", idle=70), worker("w2", idle=300)),
        replicas={"small-group": 1},
        deleted={"w2"},
        reason_has=("minReplicas=1",),
    ),
    "busy-node-is-never-deleted": Case(
        (SMALL,), (head(), worker("w1", idle=500, free=0)), replicas={"small-group": 1}
    ),
    "head-is-never-deleted": Case((SMALL,), (head(),), replicas={"small-group": 0}),
    "idle-node-absorbs-demand-instead-of-dying": Case(
        (SMALL,),
        (head(), worker("w1", idle=100)),
        bundles((CPU1, 1)),
        {"small-group": 1},
        reason_has=("needed by pending demand",),
    ),
    "demand-goes-to-recently-idle-so-longest-idle-can-go": Case(
        (SMALL,),
        (head(), worker("w1", idle=100), worker("w2", idle=400)),
        bundles((CPU1, 1)),
        {"small-group": 1},
        deleted={"w2"},
    ),
    # --- infeasible ---
    "infeasible-shape-names-missing-resource": Case(
        (SMALL,),
        demand=bundles(({"CPU": 1, "GPU": 1}, 2), (CPU1, 1)),
        replicas={"small-group": 1},
        infeasible=1,
    ),
    "too-big-shape-is-infeasible": Case(
        (SMALL,), demand=bundles(({"CPU": 2}, 1)), replicas={"small-group": 0}, infeasible=1
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_rule(case: Case) -> None:
    inp = PlannerInput(case.groups, case.nodes, case.demand)
    result = plan(inp)
    check_plan(inp, result)
    for group, replicas in case.replicas.items():
        assert result.groups[group].replicas == replicas, result.groups[group]
    assert {d.node for d in result.delete} == case.deleted
    assert len(result.infeasible) == case.infeasible, result.unmet
    assert len(result.held_back) == case.held_back, result.unmet
    text = "\n".join(
        [r.text() for g in result.groups.values() for r in g.reasons]
        + [u.reason.text() for u in result.unmet]
        + [d.reason.text() for d in result.delete]
    )
    for snippet in case.reason_has:
        assert snippet in text, text
    if case.extra:
        case.extra(result)


def test_infeasible_reason_names_the_missing_resource() -> None:
    inp = PlannerInput((SMALL,), (head(),), bundles(({"CPU": 1, "GPU": 1}, 2)))
    (unmet,) = plan(inp).infeasible
    assert unmet.kind is DemandKind.TASK and unmet.count == 2
    assert unmet.reason.code is ReasonCode.MISSING_RESOURCE
    assert unmet.reason.params["missing"] == {"GPU": {"needs": 1.0, "offers": 0.0}}
    assert "GPU: no group or node has it" in unmet.reason.text()


def test_too_big_reason_names_the_largest_offer() -> None:
    inp = PlannerInput((SMALL,), (head(),), bundles(({"CPU": 3}, 1)))
    (unmet,) = plan(inp).infeasible
    assert "CPU: needs 3, largest offers 1" in unmet.reason.text()


def test_deletion_reason_and_head_untouched() -> None:
    inp = PlannerInput((SMALL,), (head(), worker("w1", idle=61)))
    (deletion,) = plan(inp).delete
    assert (deletion.node, deletion.group) == ("w1", "small-group")
    assert deletion.reason.code is ReasonCode.IDLE_TIMEOUT
    assert deletion.reason.params["idle_s"] == 61 and deletion.reason.params["timeout_s"] == 60
    assert deletion.reason.text() == "delete w1: idle 61 s ≥ 60 s idle timeout"


def _has_code(p: Plan, group: str, code: ReasonCode) -> None:
    assert code in {r.code for r in p.groups[group].reasons}, p.groups[group].reasons


# --- issue 9, part 0: the four packing bugs, built from the cases in the issue --------------
GI = 2.0**30


def _pod(cpu: float, gpu: float = 0) -> dict[str, float]:
    """A KubeRay pod's Ray resources; every pod has 4Gi."""
    return {"CPU": cpu, "memory": 4 * GI, **({"GPU": gpu} if gpu else {})}


def test_pack_is_best_effort_and_keeps_the_idle_node_it_uses() -> None:
    g = GroupConfig("g", _pod(1), 0, 5, idle_timeout_s=60)
    nodes = (
        NodeView("head", HEAD_GROUP, "running", {"CPU": 2}, {"CPU": 1}, idle_s=0),
        NodeView("w1", "g", "running", {"CPU": 1}, {"CPU": 1}, idle_s=90),
        NodeView("w2", "g", "running", {"CPU": 1}, {"CPU": 1}, idle_s=90),
    )
    inp = PlannerInput((g,), nodes, pgs(Strategy.PACK, CPU1, CPU1))
    result = plan(inp)
    check_plan(inp, result)
    assert not result.unmet
    assert {x.node for x in result.placements} == {"head", "w1"}
    assert [d.node for d in result.delete] == ["w2"]
    assert result.groups["g"].launch == 0


def test_pack_spreads_over_smaller_nodes_when_the_bigger_group_is_at_max() -> None:
    small = GroupConfig("small", _pod(1), 0, 5)
    big = GroupConfig("big", _pod(2), 0, 1)
    busy = NodeView("b1", "big", "running", _pod(2), {"CPU": 0, "memory": 0})
    inp = PlannerInput((small, big), (head(), busy), pgs(Strategy.PACK, CPU1, CPU1))
    result = plan(inp)
    check_plan(inp, result)
    assert not result.unmet
    assert (result.groups["small"].launch, result.groups["big"].launch) == (2, 0)


@pytest.mark.parametrize("max_replicas", [2, 3])
def test_memory_bound_work_does_not_fragment(max_replicas: int) -> None:
    g = GroupConfig("g", _pod(4), 0, max_replicas)
    demand = bundles(({"CPU": 2}, 2), ({"CPU": 1, "memory": 2 * GI}, 4))
    inp = PlannerInput((g,), (head(),), demand)
    result = plan(inp)
    check_plan(inp, result)
    assert not result.unmet
    assert result.groups["g"].launch == 2


def test_ranking_prefers_less_waste_over_taking_all_demand() -> None:
    small = GroupConfig("small", _pod(1, gpu=1), 0, 2)
    big = GroupConfig("big", _pod(1, gpu=4), 0, 5)
    inp = PlannerInput((small, big), (head(),), bundles(({"CPU": 1, "GPU": 1}, 3)))
    result = plan(inp)
    check_plan(inp, result)
    assert (result.groups["small"].launch, result.groups["big"].launch) == (2, 1)


def test_plain_work_falls_back_to_a_special_group_only_when_plain_groups_are_full() -> None:
    plain = GroupConfig("plain", _pod(2), 0, 2)
    gpu = GroupConfig("gpu", _pod(8, gpu=1), 0, 4)
    few = PlannerInput((plain, gpu), (head(),), bundles((CPU1, 4)))
    result = plan(few)
    check_plan(few, result)
    assert (result.groups["plain"].launch, result.groups["gpu"].launch) == (2, 0)
    many = dataclasses.replace(few, demand=bundles((CPU1, 10)))
    result = plan(many)
    check_plan(many, result)
    assert not result.unmet
    assert (result.groups["plain"].launch, result.groups["gpu"].launch) == (2, 1)
    (reason,) = result.groups["gpu"].reasons
    assert reason.code is ReasonCode.FALLBACK_SPECIAL_GROUP
    assert reason.params["resources"] == {"GPU": 1.0}
    assert "every plainer group is at its limit" in reason.text()


# --- issue 9, part 1: few nodes, no more waste ----------------------------------------------
def test_new_demand_packs_onto_few_nodes() -> None:
    """Eight different 2-CPU shapes: choosing a group shape by shape opens eight 2-CPU nodes
    (each shape alone fits one best); packing them first needs one 16-CPU node, the same
    CPUs."""
    c2 = GroupConfig("c2", {"CPU": 2, "memory": 8 * GI}, 0, 20)
    c16 = GroupConfig("c16", {"CPU": 16, "memory": 64 * GI}, 0, 20)
    demand = bundles(*(({"CPU": 2, "memory": m * GI}, 1) for m in range(1, 9)))
    inp = PlannerInput((c2, c16), (head(),), demand)
    result = plan(inp)
    check_plan(inp, result)
    assert (result.groups["c2"].launch, result.groups["c16"].launch) == (0, 1)


def test_a_large_group_that_would_waste_an_accelerator_is_not_chosen() -> None:
    g1 = GroupConfig("g1", {"CPU": 8, "GPU": 1}, 0, 10)
    g8 = GroupConfig("g8", {"CPU": 64, "GPU": 8}, 0, 10)
    inp = PlannerInput((g1, g8), (head(),), bundles(({"CPU": 1, "GPU": 1}, 1), (CPU1, 3)))
    result = plan(inp)
    check_plan(inp, result)
    assert (result.groups["g1"].launch, result.groups["g8"].launch) == (1, 0)


def test_a_node_never_shrinks_onto_an_unasked_accelerator() -> None:
    c16 = GroupConfig("c16", {"CPU": 16}, 0, 10)
    g = GroupConfig("g", {"CPU": 4, "GPU": 1}, 0, 10)
    inp = PlannerInput((c16, g), (head(),), bundles((CPU1, 3)))
    result = plan(inp)
    check_plan(inp, result)
    assert (result.groups["c16"].launch, result.groups["g"].launch) == (1, 0)


def test_a_large_node_shrinks_early_to_free_its_group_for_work_only_it_holds() -> None:
    """Found by the property test: the GPU task first opens the larger GPU group (both hold
    one copy); the 4-CPU task fits only that group, at max 1. Shrinking the GPU node to the
    small group frees it."""
    g0 = GroupConfig("g0", {"CPU": 1, "GPU": 1}, 0, 1)
    g1 = GroupConfig("g1", {"CPU": 4, "GPU": 1}, 0, 1)
    inp = PlannerInput((g0, g1), (head(),), bundles(({"CPU": 0.5, "GPU": 1}, 1), ({"CPU": 4}, 1)))
    result = plan(inp)
    check_plan(inp, result)
    assert not result.unmet
    assert (result.groups["g0"].launch, result.groups["g1"].launch) == (1, 1)


def test_memory_heavy_work_does_not_strand_a_highmem_nodes_memory() -> None:
    """A full load of {CPU: 2, 32Gi} fills a highmem node's 8 CPUs and leaves 128Gi nobody can
    use (all later work needs CPU): 1 highmem + 4 cpu16 nodes, 512Gi. Loading one copy per
    cpu16 node, whose CPUs the small work then fills, holds it all in 4 cpu16 nodes, 256Gi."""
    cpu16 = GroupConfig("cpu16", {"CPU": 16, "memory": 64 * GI}, 0, 10)
    highmem = GroupConfig("highmem", {"CPU": 8, "memory": 256 * GI}, 0, 10)
    demand = bundles(({"CPU": 2, "memory": 32 * GI}, 4), ({"CPU": 1, "memory": 2 * GI}, 56))
    inp = PlannerInput((cpu16, highmem), (head(),), demand)
    result = plan(inp)
    check_plan(inp, result)
    assert not result.unmet
    assert (result.groups["cpu16"].launch, result.groups["highmem"].launch) == (4, 0)


def test_a_node_never_shrinks_to_a_group_with_more_memory() -> None:
    """The cpu16 node holds {CPU: 6, 40Gi}: highmem (8 CPUs, 256Gi) holds it too and has fewer
    CPUs, but moving there would launch 4x the memory. A node moves only to a group no larger
    in any resource."""
    cpu16 = GroupConfig("cpu16", {"CPU": 16, "memory": 64 * GI}, 0, 10)
    highmem = GroupConfig("highmem", {"CPU": 8, "memory": 256 * GI}, 0, 10)
    demand = bundles(({"CPU": 2, "memory": 32 * GI}, 1), ({"CPU": 1, "memory": 2 * GI}, 4))
    inp = PlannerInput((cpu16, highmem), (head(),), demand)
    result = plan(inp)
    check_plan(inp, result)
    assert not result.unmet
    assert (result.groups["cpu16"].launch, result.groups["highmem"].launch) == (1, 0)


def test_a_lighter_load_is_not_taken_when_the_group_limit_binds() -> None:
    """Found by the property test: a full load of {CPU: 2} on g3 leaves its memory to the small
    work, a lighter one would need 4 g3 nodes at max 1. The planner keeps the full load (and
    never shrinks a node opened in the same step before its work is on it)."""
    mem = {"memory": 16 * GI}
    g1 = GroupConfig("g1", {"CPU": 1, **mem}, 0, 1)
    g3 = GroupConfig("g3", {"CPU": 8, **mem}, 0, 1)
    demand = bundles(({"CPU": 2}, 4), ({"CPU": 0.5, "memory": 2 * GI}, 6))
    inp = PlannerInput((g1, g3), (head(),), demand)
    result = plan(inp)
    check_plan(inp, result)
    assert [(p.node, p.count) for p in result.placements if p.index == 0] == [("new:g3:0", 4)]


def test_plans_are_deterministic() -> None:
    c2 = GroupConfig("c2", {"CPU": 2, "memory": 8 * GI}, 0, 20)
    c16 = GroupConfig("c16", {"CPU": 16, "memory": 64 * GI}, 0, 3)
    demand = bundles(*(({"CPU": c, "memory": m * GI}, 3) for c in (1, 2) for m in (1, 3, 5)))
    inp = PlannerInput((c2, c16), (head(),), demand)
    assert plan(inp) == plan(inp)


# --- the checker itself must be able to fail -----------------------------------------------
_X = Reason(ReasonCode.IDLE_TIMEOUT, {"nodes": ["x"], "idle_s": 1, "timeout_s": 1})


def _mutations() -> dict[str, Callable[[Plan], Plan]]:
    def drop_launch(p: Plan) -> Plan:
        g = p.groups["small-group"]
        groups = {**p.groups, "small-group": dataclasses.replace(g, launch=0, replicas=0)}
        return dataclasses.replace(p, groups=groups)

    def overcommit(p: Plan) -> Plan:
        first = p.placements[0]
        return dataclasses.replace(p, placements=(*p.placements, first))

    def delete_busy(p: Plan) -> Plan:
        return dataclasses.replace(p, delete=(Deletion("busy", "small-group", _X),))

    def delete_head(p: Plan) -> Plan:
        return dataclasses.replace(p, delete=(Deletion("head", HEAD_GROUP, _X),))

    def lose_demand(p: Plan) -> Plan:
        return dataclasses.replace(p, placements=p.placements[1:])

    return {
        "fewer-launches-than-used": drop_launch,
        "over-commit": overcommit,
        "delete-busy": delete_busy,
        "delete-head": delete_head,
        "lose-demand": lose_demand,
    }


@pytest.mark.parametrize("mutate", list(_mutations().values()), ids=list(_mutations()))
def test_checker_rejects_broken_plans(mutate: Callable[[Plan], Plan]) -> None:
    inp = PlannerInput((SMALL,), (head(), worker("busy", free=0, idle=0)), bundles((CPU1, 2)))
    good = plan(inp)
    check_plan(inp, good)
    with pytest.raises(AssertionError):
        check_plan(inp, mutate(good))


def test_checker_rejects_a_node_that_could_be_a_smaller_group() -> None:
    inp = PlannerInput((CPU4, CPU16), (head(),), bundles((CPU1, 3)))
    good = plan(inp)
    check_plan(inp, good)
    assert {x.node for x in good.placements} == {"new:cpu4:0"}
    groups = {
        "cpu4": dataclasses.replace(good.groups["cpu4"], launch=0, replicas=0),
        "cpu16": dataclasses.replace(good.groups["cpu16"], launch=1, replicas=1),
    }
    placements = tuple(dataclasses.replace(x, node="new:cpu16:0") for x in good.placements)
    bigger = dataclasses.replace(good, groups=groups, placements=placements)
    with pytest.raises(AssertionError, match="smaller group cpu4"):
        check_plan(inp, bigger)


def test_checker_rejects_deleting_part_of_a_replica() -> None:
    nodes = (
        head(),
        worker("a1", MULTI, idle=90, replica="a"),
        worker("a2", MULTI, idle=80, replica="a"),
    )
    inp = PlannerInput((MULTI,), nodes, Demand())
    good = plan(inp)
    check_plan(inp, good)
    assert {d.node for d in good.delete} == {"a1", "a2"}
    half = dataclasses.replace(good, delete=good.delete[:1])
    with pytest.raises(AssertionError, match="other hosts deleted"):
        check_plan(inp, half)
    unnamed = dataclasses.replace(
        good, delete=tuple(dataclasses.replace(d, replica=None) for d in good.delete)
    )
    with pytest.raises(AssertionError, match="wrong replica"):
        check_plan(inp, unnamed)

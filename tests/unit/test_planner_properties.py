"""Property tests: random snapshots, every plan checked by the independent plan_checker."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rayscale.planner import (
    HEAD_GROUP,
    BundleDemand,
    Demand,
    GroupConfig,
    NodeView,
    PlacementGroupDemand,
    PlannerInput,
    Strategy,
    plan,
)
from tests.unit.plan_checker import check_plan

pytestmark = pytest.mark.unit

GIB = float(2**30)
cpus = st.sampled_from([0.5, 1.0, 1.0, 2.0, 3.0, 4.0, 8.0])
mems = st.sampled_from([0.0, GIB, 2 * GIB, 4 * GIB])


@st.composite
def shapes(draw: st.DrawFn) -> dict[str, float]:
    shape = {"CPU": draw(cpus)}
    if draw(st.booleans()):
        shape["memory"] = draw(mems)
    if draw(st.integers(0, 5)) == 0:
        shape["GPU"] = float(draw(st.integers(1, 2)))
    if draw(st.integers(0, 12)) == 0:
        shape["TPU"] = 1.0
    return {k: v for k, v in shape.items() if v}


@st.composite
def group_configs(draw: st.DrawFn) -> tuple[GroupConfig, ...]:
    count = draw(st.integers(1, 4))
    groups = []
    for i in range(count):
        res = {"CPU": float(draw(st.sampled_from([1, 2, 4, 8, 16]))), "memory": 16 * GIB}
        if draw(st.integers(0, 3)) == 0:
            res["GPU"] = float(draw(st.sampled_from([1, 4])))
        lo = draw(st.integers(0, 2))
        hi = draw(st.integers(lo, lo + 6))
        groups.append(
            GroupConfig(
                name=f"g{i}",
                resources=res,
                min_replicas=lo,
                max_replicas=hi,
                num_of_hosts=draw(st.sampled_from([1, 1, 1, 2])),
                idle_timeout_s=float(draw(st.sampled_from([0, 30, 60]))),
                upscaling_mode=draw(st.sampled_from(["Default", "Aggressive", "Conservative"])),
            )
        )
    return tuple(groups)


@st.composite
def snapshots(draw: st.DrawFn) -> PlannerInput:
    groups = draw(group_configs())
    head_cpu = float(draw(st.sampled_from([0, 1, 2])))
    nodes = [
        NodeView(
            "head",
            HEAD_GROUP,
            "running",
            {"CPU": head_cpu, "memory": 8 * GIB},
            {"CPU": draw(st.sampled_from([0.0, head_cpu])), "memory": 8 * GIB},
            idle_s=float(draw(st.integers(0, 200))),
        )
    ]
    for i in range(draw(st.integers(0, 8))):
        g = draw(st.sampled_from(groups))
        status = draw(st.sampled_from(["running", "running", "pending"]))
        used = draw(st.sampled_from([0.0, 0.0, 0.5, 1.0]))
        total = dict(g.resources)
        avail = {k: v * (1 - used) for k, v in total.items()}
        idle = float(draw(st.integers(1, 200))) if used == 0 and status == "running" else 0.0
        nodes.append(NodeView(f"w{i}", g.name, status, total, avail, idle_s=idle))
    bundles = tuple(
        BundleDemand(draw(shapes()), draw(st.integers(1, 12)))
        for _ in range(draw(st.integers(0, 5)))
    )
    pgs = tuple(
        PlacementGroupDemand(
            draw(st.sampled_from(list(Strategy))),
            tuple(draw(shapes()) for _ in range(draw(st.integers(1, 4)))),
        )
        for _ in range(draw(st.integers(0, 3)))
    )
    rr = tuple(draw(shapes()) for _ in range(draw(st.integers(0, 6))))
    return PlannerInput(groups, tuple(nodes), Demand(bundles, pgs, rr))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_every_plan_passes_the_independent_checker(inp: PlannerInput) -> None:
    check_plan(inp, plan(inp))


@settings(max_examples=100, deadline=None)
@given(snapshots())
def test_plan_is_deterministic(inp: PlannerInput) -> None:
    assert plan(inp) == plan(inp)


@settings(max_examples=150, deadline=None)
@given(snapshots())
def test_launched_nodes_are_needed(inp: PlannerInput) -> None:
    """Every node the plan launches beyond minReplicas holds some placed demand."""
    result = plan(inp)
    used = {p.node for p in result.placements if p.node.startswith("new:")}
    for g in inp.groups:
        decision = result.groups[g.name]
        hosts = max(1, g.num_of_hosts)
        floor = max(0, g.min_replicas - decision.current)
        assert (decision.launch - floor) * hosts <= sum(
            1 for n in used if n.split(":")[1] == g.name
        ) + (hosts - 1) * decision.launch, f"{g.name} launched idle nodes"

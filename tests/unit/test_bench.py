"""``rayscale bench planner``: seeded scenarios, the Ray anchors, and the independent checker."""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Callable

import pytest

from rayscale.bench import planner_bench, scenarios, timing
from rayscale.bench.checker import check, max_launch, verify_certificate
from rayscale.bench.ray_anchors import AnchorRun, V1Anchor, V2Anchor, quiet_ray_loggers
from rayscale.bench.timing import BenchTimeout, deadline, time_isolated, time_runs
from rayscale.planner.model import (
    HEAD_GROUP,
    BundleDemand,
    Demand,
    DemandKind,
    GroupConfig,
    NodeView,
    Placement,
    PlacementGroupDemand,
    PlannerInput,
    Strategy,
)

pytestmark = pytest.mark.unit

HAS_PLANNER = importlib.util.find_spec("rayscale.planner.core") is not None
SMALL = ["S1", "S2", "S3", "S5"]  # S4's checker run at maxReplicas takes a couple of seconds


@pytest.fixture(autouse=True, scope="module")
def _quiet() -> None:
    quiet_ray_loggers()


def _head(cpu: float = 0.0) -> NodeView:
    total = (
        {"CPU": cpu, "memory": float(2 * scenarios.GiB)}
        if cpu
        else {"memory": float(2 * scenarios.GiB)}
    )
    return NodeView("h", HEAD_GROUP, "running", total, dict(total))


def _inp(
    demand: Demand, groups: tuple[GroupConfig, ...] | None = None, nodes: tuple[NodeView, ...] = ()
) -> PlannerInput:
    groups = groups or (GroupConfig("cpu1", {"CPU": 1.0}, max_replicas=10),)
    return PlannerInput(groups=groups, nodes=(_head(), *nodes), demand=demand)


# ---------------------------------------------------------------------------------------------
# Scenarios


class TestScenarios:
    @pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
    def test_same_seed_same_input(self, name: str) -> None:
        make = scenarios.SCENARIOS[name]
        assert make(7) == make(7)

    @pytest.mark.parametrize("name", ["S1", "S2", "S3", "S4"])
    def test_other_seed_other_input(self, name: str) -> None:
        make = scenarios.SCENARIOS[name]
        assert make(7).input.demand != make(8).input.demand

    @pytest.mark.parametrize(
        ("name", "bundles", "nodes", "types"),
        [
            ("S1", 1000, 1, 3),
            ("S2", 10_000, 151, 3),
            ("S3", 10_000, 1000, 20),
            ("S4", 10_000, 1000, 20),
        ],
    )
    def test_sizes(self, name: str, bundles: int, nodes: int, types: int) -> None:
        sc = scenarios.SCENARIOS[name](scenarios.DEFAULT_SEED)
        assert (sc.bundles, sc.nodes, sc.node_types) == (bundles, nodes, types)

    def test_s1_has_every_strategy_and_request_resources(self) -> None:
        d = scenarios.s1().input.demand
        assert len(d.placement_groups) == 12
        assert {pg.strategy for pg in d.placement_groups} == set(Strategy)
        assert sum(r["CPU"] for r in d.request_resources) == 64

    def test_s4_shapes_all_distinct(self) -> None:
        sc = scenarios.s4()
        assert sc.shapes == sc.bundles == 10_000

    def test_s3_has_about_twenty_shapes(self) -> None:
        assert 15 <= scenarios.s3().shapes <= 25

    @pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
    def test_one_head_in_headgroup(self, name: str) -> None:
        nodes = scenarios.SCENARIOS[name](scenarios.DEFAULT_SEED).input.nodes
        assert [n.group for n in nodes].count(HEAD_GROUP) == 1

    @pytest.mark.parametrize("name", SMALL)
    def test_feasible_demand_fits_within_max(self, name: str) -> None:
        inp = scenarios.SCENARIOS[name](scenarios.DEFAULT_SEED).input
        assert check(inp, max_launch(inp)).satisfied

    def test_only_the_deliberate_shape_is_excluded(self) -> None:
        inp = scenarios.s1().input
        assert check(inp, max_launch(inp)).excluded == ("bundles[8] x2",)

    def test_unknown_scenario_rejected(self) -> None:
        with pytest.raises(ValueError, match="S9"):
            scenarios.build(["S9"])


# ---------------------------------------------------------------------------------------------
# Adapters: 3 x {CPU: 1}, a 1-CPU group, no workers -> 3 launches


Run = Callable[[PlannerInput], AnchorRun]


def _v1(inp: PlannerInput) -> AnchorRun:
    return V1Anchor(inp).run()


def _v2(inp: PlannerInput) -> AnchorRun:
    return V2Anchor(inp).run()


def _rayscale(inp: PlannerInput) -> AnchorRun:
    return timing.rayscale_runner(inp)()


RUNS = [
    pytest.param(_v1, id="ray_v1"),
    pytest.param(_v2, id="ray_v2"),
    pytest.param(
        _rayscale,
        id="rayscale",
        marks=pytest.mark.skipif(not HAS_PLANNER, reason="planner not written yet"),
    ),
]


@pytest.mark.parametrize("run", RUNS)
class TestAdapters:
    def test_tiny_three_launches(self, run: Run) -> None:
        out = run(scenarios.tiny().input)
        assert out.launch == {"cpu1": 3}
        assert out.elapsed_ms >= 0

    def test_free_capacity_used_first(self, run: Run) -> None:
        worker = NodeView("w1", "cpu4", "running", {"CPU": 4.0}, {"CPU": 2.0})
        groups = (GroupConfig("cpu4", {"CPU": 4.0}, max_replicas=10),)
        inp = _inp(Demand(bundles=(BundleDemand({"CPU": 1.0}, 6),)), groups, (worker,))
        assert run(inp).launch == {"cpu4": 1}

    def test_strict_spread_needs_distinct_nodes(self, run: Run) -> None:
        groups = (GroupConfig("cpu4", {"CPU": 4.0}, max_replicas=10),)
        pg = PlacementGroupDemand(Strategy.STRICT_SPREAD, ({"CPU": 1.0},) * 3, "pg")
        assert run(_inp(Demand(placement_groups=(pg,)), groups)).launch == {"cpu4": 3}

    def test_strict_pack_on_one_node(self, run: Run) -> None:
        groups = (
            GroupConfig("cpu2", {"CPU": 2.0}, max_replicas=10),
            GroupConfig("cpu8", {"CPU": 8.0}, max_replicas=10),
        )
        pg = PlacementGroupDemand(Strategy.STRICT_PACK, ({"CPU": 2.0},) * 3, "pg")
        assert run(_inp(Demand(placement_groups=(pg,)), groups)).launch == {"cpu8": 1}

    def test_infeasible_shape_reported(self, run: Run) -> None:
        out = run(_inp(Demand(bundles=(BundleDemand({"CPU": 2.0}, 1),))))
        assert out.launch == {}
        assert out.infeasible

    def test_min_replicas_launched(self, run: Run) -> None:
        groups = (GroupConfig("cpu1", {"CPU": 1.0}, min_replicas=2, max_replicas=10),)
        assert run(_inp(Demand(), groups)).launch == {"cpu1": 2}

    def test_request_resources_launch(self, run: Run) -> None:
        inp = _inp(Demand(request_resources=({"CPU": 1.0},) * 4))
        assert run(inp).launch == {"cpu1": 4}


def test_v2_cap_reported_not_hidden() -> None:
    inp = _inp(
        Demand(bundles=(BundleDemand({"CPU": 1.0}, 25),)),
        (GroupConfig("cpu1", {"CPU": 1.0}, max_replicas=100),),
    )
    out = V2Anchor(inp).run()
    assert out.launch == {"cpu1": 25}
    assert out.extra["first_wave"] == {"cpu1": 10}
    assert out.extra["waves"] == 3
    assert any("57624" in n for n in out.notes)


def test_v1_demands_match_bundle_counts() -> None:
    anchor = V1Anchor(scenarios.s1().input)
    tasks = sum(b.count for b in scenarios.s1().input.demand.bundles)
    assert len(anchor.demands) == tasks
    assert len(anchor.pgs) == 12


# ---------------------------------------------------------------------------------------------
# The checker


class TestChecker:
    def test_accepts_exact_launch(self) -> None:
        r = check(scenarios.tiny().input, {"cpu1": 3})
        assert r.satisfied and r.nodes == 3 and r.cpus == 3.0 and r.gpus == 0.0
        assert r.memory_gib == 0.0

    def test_rejects_under_provisioned(self) -> None:
        r = check(scenarios.tiny().input, {"cpu1": 2})
        assert not r.satisfied
        assert r.unplaced == ("bundles[0] {CPU: 1} x1",)

    def test_uses_available_not_total_of_running_nodes(self) -> None:
        busy = NodeView("w", "cpu4", "running", {"CPU": 4.0}, {"CPU": 0.0})
        groups = (GroupConfig("cpu4", {"CPU": 4.0}, max_replicas=10),)
        inp = _inp(Demand(bundles=(BundleDemand({"CPU": 1.0}, 4),)), groups, (busy,))
        assert not check(inp, {}).satisfied
        assert check(inp, {"cpu4": 1}).satisfied

    def test_request_resources_count_total_capacity(self) -> None:
        busy = NodeView("w", "cpu4", "running", {"CPU": 4.0}, {"CPU": 0.0})
        groups = (GroupConfig("cpu4", {"CPU": 4.0}, max_replicas=10),)
        inp = _inp(Demand(request_resources=({"CPU": 1.0},) * 8), groups, (busy,))
        assert not check(inp, {}).satisfied
        assert check(inp, {"cpu4": 1}).satisfied

    def test_strict_spread_respected(self) -> None:
        pg = PlacementGroupDemand(Strategy.STRICT_SPREAD, ({"CPU": 1.0},) * 3, "pg")
        groups = (GroupConfig("cpu4", {"CPU": 4.0}, max_replicas=10),)
        inp = _inp(Demand(placement_groups=(pg,)), groups)
        assert not check(inp, {"cpu4": 2}).satisfied  # 3 CPUs fit in 2 nodes, 3 bundles do not
        assert check(inp, {"cpu4": 3}).satisfied

    def test_strict_pack_respected(self) -> None:
        pg = PlacementGroupDemand(Strategy.STRICT_PACK, ({"CPU": 2.0},) * 2, "pg")
        groups = (
            GroupConfig("cpu2", {"CPU": 2.0}, max_replicas=10),
            GroupConfig("cpu4", {"CPU": 4.0}, max_replicas=10),
        )
        inp = _inp(Demand(placement_groups=(pg,)), groups)
        assert not check(inp, {"cpu2": 2}).satisfied
        assert check(inp, {"cpu4": 1}).satisfied

    def test_infeasible_excluded_not_failed(self) -> None:
        inp = _inp(
            Demand(
                bundles=(BundleDemand({"CPU": 1.0}, 1), BundleDemand({"CPU": 1.0, "TPU": 4.0}, 2))
            )
        )
        r = check(inp, {"cpu1": 1})
        assert r.satisfied and r.excluded == ("bundles[1] x2",)

    def test_counts_gpus(self) -> None:
        inp = scenarios.s5().input
        r = check(inp, {"gpu": 2, "cpu": 49})
        assert r.gpus == 8.0 and r.cpus == 51 * 16 and r.memory_gib == 51 * 64

    def test_unknown_node_type_is_an_error(self) -> None:
        with pytest.raises(ValueError, match="nope"):
            check(scenarios.tiny().input, {"nope": 1})


class TestCertificate:
    """A planner's own placements, checked by our code when the packers find no room."""

    SPREAD = PlacementGroupDemand(Strategy.STRICT_SPREAD, ({"CPU": 1.0},) * 2, "pg")
    GROUPS = (GroupConfig("cpu2", {"CPU": 2.0}, max_replicas=10),)

    def _inp(self) -> PlannerInput:
        return _inp(
            Demand(bundles=(BundleDemand({"CPU": 1.0}, 2),), placement_groups=(self.SPREAD,)),
            self.GROUPS,
        )

    def test_valid(self) -> None:
        cert = [
            Placement(DemandKind.TASK, 0, "new:cpu2:0", 1),
            Placement(DemandKind.TASK, 0, "new:cpu2:1", 1),
            Placement(DemandKind.PLACEMENT_GROUP, 0, "new:cpu2:0", 1, 0),
            Placement(DemandKind.PLACEMENT_GROUP, 0, "new:cpu2:1", 1, 1),
        ]
        assert verify_certificate(self._inp(), {"cpu2": 2}, cert) == []

    def test_over_capacity(self) -> None:
        cert = [
            Placement(DemandKind.TASK, 0, "new:cpu2:0", 2),
            Placement(DemandKind.PLACEMENT_GROUP, 0, "new:cpu2:0", 1, 0),
            Placement(DemandKind.PLACEMENT_GROUP, 0, "new:cpu2:1", 1, 1),
        ]
        assert any("over its free" in p for p in verify_certificate(self._inp(), {"cpu2": 2}, cert))

    def test_strict_spread_shared(self) -> None:
        cert = [
            Placement(DemandKind.TASK, 0, "new:cpu2:1", 2),
            Placement(DemandKind.PLACEMENT_GROUP, 0, "new:cpu2:0", 1, 0),
            Placement(DemandKind.PLACEMENT_GROUP, 0, "new:cpu2:0", 1, 1),
        ]
        assert any("STRICT_SPREAD" in p for p in verify_certificate(self._inp(), {"cpu2": 2}, cert))

    def test_missing_and_unlaunched(self) -> None:
        cert = [
            Placement(DemandKind.TASK, 0, "new:cpu2:0", 1),
            Placement(DemandKind.PLACEMENT_GROUP, 0, "new:cpu2:1", 1, 0),
            Placement(DemandKind.PLACEMENT_GROUP, 0, "new:cpu2:2", 1, 1),
        ]
        problems = verify_certificate(self._inp(), {"cpu2": 2}, cert)
        assert "bundles[0] placed 1 of 2" in problems
        assert any("3 new cpu2 nodes" in p for p in problems)

    def test_check_falls_back_to_certificate_only_when_packers_fail(self) -> None:
        inp = scenarios.tiny().input
        cert = [Placement(DemandKind.TASK, 0, f"new:cpu1:{i}", 1) for i in range(3)]
        assert check(inp, {"cpu1": 3}, cert).method == "first-fit"
        bad = check(inp, {"cpu1": 2}, cert[:2])
        assert not bad.satisfied and bad.method == ""


# ---------------------------------------------------------------------------------------------
# Timing and output


def test_deadline_cuts_a_runaway_call_short() -> None:
    def forever() -> AnchorRun:
        while True:
            time.sleep(0.01)

    timed = time_runs(lambda: forever, repeats=3, timeout_s=0.2, budget_s=10)
    assert timed.status == "timeout"
    assert "timeout" in timed.notes[0]


def test_deadline_raises_inside_block() -> None:
    with pytest.raises(BenchTimeout), deadline(0.05):
        time.sleep(1)


def test_unavailable_runner_reported() -> None:
    def missing() -> timing.Runner:
        raise ImportError("no module named rayscale.planner.core")

    assert time_runs(missing, 1, 1, 1).status == "unavailable"


def test_isolated_timing_runs_in_a_child_and_reports_back() -> None:
    parent = os.getpid()

    def runner() -> AnchorRun:
        return AnchorRun(launch={"pid": os.getpid()}, elapsed_ms=1.0)

    timed = time_isolated(lambda: runner, repeats=2, timeout_s=5, budget_s=5)
    assert timed.status == "ok" and timed.times_ms == [1.0, 1.0]
    assert timed.run is not None and timed.run.launch["pid"] != parent


def test_isolated_timing_reports_a_crash() -> None:
    def make() -> timing.Runner:
        os._exit(3)

    timed = time_isolated(make, repeats=1, timeout_s=5, budget_s=5)
    assert timed.status == "error" and "exit 3" in timed.notes[0]


def test_rayscale_runner_checks_its_plan() -> None:
    out = timing.rayscale_runner(scenarios.s5().input)()
    assert out.extra["plan_check"] == "ok"


def test_main_json_rows(capsys: pytest.CaptureFixture[str]) -> None:
    rc = planner_bench.main(True, scenarios=["S5"])
    lines = capsys.readouterr().out.strip().splitlines()
    row = json.loads(lines[-1])
    for key in (
        "scenario",
        "bundles",
        "shapes",
        "nodes",
        "node_types",
        "rayscale_ms",
        "ray_v1_ms",
        "ray_v2_ms",
        "rayscale_launch",
        "ray_v1_launch",
        "ray_v2_launch",
        "rayscale_satisfied",
        "ray_v1_satisfied",
        "ray_v2_satisfied",
        "rayscale_cpus",
        "ray_v1_gpus",
        "speedup_vs_best_ray",
        "rayscale_launched_nodes",
        "ray_v1_launched_nodes",
        "ray_v2_launched_nodes",
        "rayscale_memory_gib",
        "ray_v2_memory_gib",
        "rayscale_plan_check",
    ):
        assert key in row
    assert row["ray_v2_satisfied"] is True
    assert rc == (0 if HAS_PLANNER and row["rayscale_satisfied"] else 1)


def test_main_unknown_scenario() -> None:
    assert planner_bench.main(True, scenarios=["S9"]) == 2


def test_s6_size() -> None:
    sc = scenarios.s6(bundles=2_000, nodes=200)
    assert (sc.bundles, sc.nodes, sc.node_types) == (2_000, 200, 50)
    assert len(sc.input.demand.placement_groups) == 4

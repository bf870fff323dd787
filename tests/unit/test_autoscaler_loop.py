"""The autoscaler loop's own logic: views, the KubeRay protocol, drains, partial failure.

Ray itself is exercised in tests/ray. Here ``FakeRayView`` (a fake, by name) stands in for GCS
so failures can be forced, and ``FakeOperator`` keeps the desired state in the real
:class:`~rayscale.local.store.DesiredStore` and makes pods with the real, pure reconciler;
only the processes are missing.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Sequence

import pytest

from rayscale.autoscaler.loop import Autoscaler, merge_views
from rayscale.autoscaler.scale import (
    BadDemandError,
    GroupTarget,
    Observation,
    RayNode,
    ScaleRequest,
    ScaleResult,
    WorkerPod,
)
from rayscale.builders.reconcile import ObservedPod, reconcile
from rayscale.local.store import DesiredStore
from rayscale.planner import BundleDemand, Demand, GroupConfig
from rayscale.planner.reasons import ReasonCode
from rayscale.spec import parse_cluster, to_group_configs
from tests.unit.conftest import _MINIMAL_CLUSTER, apply_edits

pytestmark = pytest.mark.unit

HEAD = RayNode("h" * 8, "c-head-x", "headgroup", "idle", {"memory": 1.0}, {"memory": 1.0}, 9.0)
ONE_CPU = Demand(bundles=(BundleDemand({"CPU": 1.0}, 1),))


def worker_node(
    name: str, idle: float = 0.0, status: str = "running", group: str = "small-group"
) -> RayNode:
    avail = {"CPU": 1.0} if idle else {"CPU": 0.0}
    return RayNode(f"id-{name}", name, group, status, {"CPU": 1.0}, avail, idle)  # type: ignore[arg-type]


class FakeRayView:
    """GCS stand-in: fixed nodes and demand; drains can be refused or raise per node id."""

    def __init__(
        self,
        nodes: list[RayNode],
        demand: Demand | None = None,
        *,
        fail_reads: int = 0,
        refuse: Sequence[str] = (),
        raise_on: Sequence[str] = (),
        kv: object = (),
    ) -> None:
        self.nodes, self.demand = nodes, demand or Demand()
        self.fail_reads = fail_reads
        self.refuse, self.raise_on = set(refuse), set(raise_on)
        self.kv = kv
        self.drained: list[str] = []
        self.published: list[bytes] = []

    def nodes_and_demand(self) -> tuple[list[RayNode], Demand]:
        if self.fail_reads > 0:
            self.fail_reads -= 1
            raise ConnectionError("GCS unavailable")
        return self.nodes, self.demand

    def requested_resources(self) -> list[dict[str, float]]:
        if isinstance(self.kv, Exception):
            raise self.kv
        return list(self.kv)  # type: ignore[call-overload]

    def drain(self, node_id: str, reason: str) -> tuple[bool, str]:
        self.drained.append(node_id)
        if node_id in self.raise_on:
            raise TimeoutError("drain timed out")
        return node_id not in self.refuse, "node is busy" if node_id in self.refuse else ""

    def publish_status(self, payload: bytes) -> None:
        self.published.append(payload)


class FakeOperator:
    """The desired state in a real DesiredStore, pods made by the real reconciler, no
    processes: a created pod is listed at once (pending until a test says otherwise)."""

    def __init__(
        self,
        edits: Sequence[tuple[Sequence[str | int], object]] = (),
        pods: Sequence[WorkerPod] = (),
    ) -> None:
        import copy

        self.store = DesiredStore(
            parse_cluster(apply_edits(copy.deepcopy(_MINIMAL_CLUSTER), edits))
        )
        self.pods = {p.name: p for p in pods}
        self.requests: list[ScaleRequest] = []
        self.fail_apply = False
        self._names = itertools.count(1)

    @property
    def groups(self) -> tuple[GroupConfig, ...]:
        return to_group_configs(self.store.cluster)

    def observe(self) -> Observation:
        return Observation(self.store.targets(), tuple(self.pods.values()))

    def apply(self, request: ScaleRequest) -> ScaleResult:
        if self.fail_apply:
            raise ConnectionError("apiserver unavailable")
        self.requests.append(request)
        self.store.apply(request)
        observed = [ObservedPod("c-head-x", "headgroup", "Running")] + [
            ObservedPod(p.name, p.group, "Running", p.replica) for p in self.pods.values()
        ]
        result = reconcile(self.store.cluster, observed)
        for d in result.delete:
            self.pods.pop(d.name, None)
        for group, n in result.create.items():
            for _ in range(n):
                name = f"new-{next(self._names)}"
                self.pods[name] = WorkerPod(name, group)
        return ScaleResult(applied=True)


G = ("spec", "workerGroupSpecs", 0)


def scaler(ray: FakeRayView, op: FakeOperator) -> Autoscaler:
    return Autoscaler(op.groups, ray, op, clock=lambda: 0.0)


def test_merge_views_running_pending_placeholders_and_draining() -> None:
    small = GroupConfig("small-group", {"CPU": 1.0}, 0, 10)
    pods = (
        WorkerPod("w-run", "small-group", "running"),
        WorkerPod("w-boot", "small-group", "running"),
        WorkerPod("w-drain", "small-group", "running"),
        WorkerPod("w-dead", "small-group", "failed"),
        WorkerPod("w-listed", "small-group", "running"),
    )
    obs = Observation({"small-group": GroupTarget(6, ("w-listed",))}, pods)
    ray = [HEAD, worker_node("w-run"), worker_node("w-drain", status="draining")]
    views = {v.name: v for v in merge_views([small], obs, ray)}
    assert views["c-head-x"].group == "headgroup"
    assert views["w-run"].status == "running"
    assert views["w-boot"].status == "pending" and views["w-boot"].total == {"CPU": 1.0}
    assert "w-drain" not in views and "w-dead" not in views and "w-listed" not in views
    placeholders = [v for v in views.values() if v.name.startswith("pending:")]
    assert len(placeholders) == 3  # 6 desired - 3 live pods (run, boot, drain)


def test_launch_writes_replicas_once_and_is_not_repeated() -> None:
    ray = FakeRayView([HEAD], Demand(bundles=(BundleDemand({"CPU": 1.0}, 2),)))
    op = FakeOperator()
    a = scaler(ray, op)
    report = a.tick()
    assert op.requests[-1].targets == {"small-group": GroupTarget(2)}
    assert [e.type for e in report.events] == ["launch"]
    assert report.events[0].reason.code is ReasonCode.DEMAND_FITS_NO_NODE
    a.tick()  # pods exist but are not in Ray yet: pending, so nothing more is launched
    assert len(op.requests) == 1


def test_idle_worker_drained_then_listed_in_workers_to_delete() -> None:
    op = FakeOperator([((*G, "replicas"), 1)], [WorkerPod("w1", "small-group", "running")])
    ray = FakeRayView([HEAD, worker_node("w1", idle=100.0)])
    report = scaler(ray, op).tick()
    assert ray.drained == ["id-w1"]
    assert op.requests[-1].targets == {"small-group": GroupTarget(0, ("w1",))}
    assert [e.type for e in report.events] == ["delete"]
    assert report.events[0].reason.code is ReasonCode.IDLE_TIMEOUT


def test_group_frozen_while_listed_pods_exist_then_list_cleared() -> None:
    """KubeRay's protocol: no rescale while workersToDelete pods exist; then reset to []."""
    op = FakeOperator(
        [((*G, "replicas"), 0), ((*G, "scaleStrategy"), {"workersToDelete": ["w1"]})],
        [WorkerPod("w1", "small-group", "running")],
    )
    ray = FakeRayView([HEAD], ONE_CPU)
    a = scaler(ray, op)
    report = a.tick()
    assert not op.requests and report.events[0].reason.code is ReasonCode.DELETE_PENDING
    del op.pods["w1"]
    a.tick()
    assert op.requests[-1].targets == {"small-group": GroupTarget(1, ())}


def test_drain_refused_for_one_host_keeps_the_whole_replica() -> None:
    hosts = [
        WorkerPod("a1", "small-group", "running", "A"),
        WorkerPod("a2", "small-group", "running", "A"),
    ]
    op = FakeOperator([((*G, "replicas"), 1), ((*G, "numOfHosts"), 2)], hosts)
    ray = FakeRayView(
        [HEAD, worker_node("a1", idle=100.0), worker_node("a2", idle=90.0)], refuse=["id-a2"]
    )
    report = scaler(ray, op).tick()
    assert ray.drained == ["id-a2"]  # least idle first: the refusal comes before any drain
    assert not op.requests or op.requests[-1].targets.get(
        "small-group", GroupTarget(1)
    ) == GroupTarget(1)
    assert set(op.pods) == {"a1", "a2"}
    refused = [e for e in report.events if e.type == "drain_refused"]
    assert refused and refused[0].reason.params["node"] == "a2"


def test_drain_error_on_one_node_does_not_stop_another_groups_launch() -> None:
    second = dict(_MINIMAL_CLUSTER["spec"]["workerGroupSpecs"][0])
    second.update(groupName="big-group", rayStartParams={"num-cpus": "2"})
    op = FakeOperator(
        [((*G, "replicas"), 1), (("spec", "workerGroupSpecs", 1), second)],
        [WorkerPod("w1", "small-group", "running")],
    )
    ray = FakeRayView(
        [HEAD, worker_node("w1", idle=100.0)],
        Demand(bundles=(BundleDemand({"CPU": 2.0}, 1),)),  # only big-group can hold it
        raise_on=["id-w1"],
    )
    a = scaler(ray, op)
    report = a.tick()
    assert a.errors["drain"] == 1
    assert [e.type for e in report.events].count("action_failed") == 1
    assert op.requests[-1].targets["big-group"] == GroupTarget(1)  # the launch still happened
    assert "small-group" not in op.requests[-1].targets  # w1 kept: its drain failed
    assert "w1" in op.pods


def test_apply_failure_is_counted_and_retried_next_tick() -> None:
    op = FakeOperator()
    op.fail_apply = True
    ray = FakeRayView([HEAD], ONE_CPU)
    a = scaler(ray, op)
    a.tick()
    assert a.errors["apply"] == 1 and not op.requests
    op.fail_apply = False
    a.tick()
    assert op.requests[-1].targets == {"small-group": GroupTarget(1)}


def test_bad_request_resources_is_reported_once_and_ignored(caplog) -> None:  # type: ignore[no-untyped-def]
    op = FakeOperator()
    ray = FakeRayView([HEAD], ONE_CPU, kv=BadDemandError("the KV key holds 'lots'"))
    a = scaler(ray, op)
    for _ in range(3):
        a.tick()
    assert a.errors["read request_resources"] == 1
    assert sum("ignoring request_resources" in r.message for r in caplog.records) == 1
    assert op.requests[-1].targets == {"small-group": GroupTarget(1)}


def test_request_resources_from_kv_is_planned() -> None:
    op = FakeOperator()
    ray = FakeRayView([HEAD], kv=[{"CPU": 1.0}, {"CPU": 1.0}, {"CPU": 1.0}])
    scaler(ray, op).tick()
    assert op.requests[-1].targets == {"small-group": GroupTarget(3)}


def test_loop_survives_more_than_six_failures_and_plans_after() -> None:
    """Ray v1 exits after its sixth exception; our loop logs and keeps going."""
    op = FakeOperator()
    ray = FakeRayView([HEAD], ONE_CPU, fail_reads=8)
    stop = threading.Event()
    a = Autoscaler(op.groups, ray, op, clock=lambda: 0.0, on_tick=lambda report: stop.set())
    thread = threading.Thread(target=a.run, args=(stop, 0.001, 0.01))
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    assert a.failures == 8 and op.requests[-1].targets == {"small-group": GroupTarget(1)}


def test_run_plans_on_change_not_on_every_read() -> None:
    op = FakeOperator([((*G, "replicas"), 1)], [WorkerPod("w1", "small-group", "running")])
    ray = FakeRayView([HEAD, worker_node("w1")])
    ticks: list[float] = []
    stop = threading.Event()
    a = Autoscaler(op.groups, ray, op, on_tick=lambda r: ticks.append(r.at))
    reads = 0
    original = ray.nodes_and_demand

    def counting() -> tuple[list[RayNode], Demand]:
        nonlocal reads
        reads += 1
        if reads == 40:
            stop.set()
        return original()

    ray.nodes_and_demand = counting  # type: ignore[method-assign]
    a.run(stop, read_period=0.0, plan_period=3600.0)
    assert reads >= 40 and len(ticks) == 1  # nothing changed, no timer due: planned once


def test_a_later_refusal_says_which_hosts_stay_drained() -> None:
    hosts = [
        WorkerPod("a1", "small-group", "running", "A"),
        WorkerPod("a2", "small-group", "running", "A"),
    ]
    op = FakeOperator([((*G, "replicas"), 1), ((*G, "numOfHosts"), 2)], hosts)
    ray = FakeRayView(
        [HEAD, worker_node("a1", idle=100.0), worker_node("a2", idle=90.0)], refuse=["id-a1"]
    )
    report = scaler(ray, op).tick()
    assert ray.drained == ["id-a2", "id-a1"]
    assert set(op.pods) == {"a1", "a2"}  # neither host is deleted
    refused = next(e for e in report.events if e.type == "drain_refused")
    assert refused.reason.params["cordoned"] == ["a2"]
    assert "a2 stay drained" in refused.reason.text()


def test_new_groups_from_the_source_are_planned_with_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A user raises minReplicas in the RayCluster: the next read puts the new bounds in
    force and plans at once, even though nothing Ray reports changed."""
    caplog.set_level("INFO", "rayscale.autoscaler")
    op = FakeOperator()
    ray = FakeRayView([HEAD])
    source = [op.groups]
    ticks: list[tuple[GroupConfig, ...]] = []
    stop = threading.Event()
    a = Autoscaler(
        op.groups,
        ray,
        op,
        on_tick=lambda r: ticks.append(r.groups),
        groups_source=lambda: source[0],
    )
    reads = 0
    original = ray.nodes_and_demand

    def reading() -> tuple[list[RayNode], Demand]:
        nonlocal reads
        reads += 1
        if reads == 5:  # the edit: small-group minReplicas 0 -> 2
            (small,) = source[0]
            source[0] = (dataclasses.replace(small, min_replicas=2),)
        if reads == 40:
            stop.set()
        return original()

    ray.nodes_and_demand = reading  # type: ignore[method-assign]
    a.run(stop, read_period=0.0, plan_period=3600.0)
    # planned at the edit with the new bound (then once more: the request changed the state)
    assert [g[0].min_replicas for g in ticks[:2]] == [0, 2]
    assert op.requests[-1].targets == {"small-group": GroupTarget(2)}
    assert "worker groups changed: small-group [0..10] -> [2..10]" in caplog.text


def test_set_groups_reports_change_and_refuses_duplicate_names() -> None:
    op = FakeOperator()
    a = scaler(FakeRayView([HEAD]), op)
    (small,) = op.groups
    assert not a.set_groups(op.groups)
    other = GroupConfig("gpu-group", {"CPU": 1.0, "GPU": 1.0}, 0, 2)
    assert a.set_groups((small, other)) and set(a.configs) == {"small-group", "gpu-group"}
    with pytest.raises(ValueError, match="duplicate worker group names"):
        a.set_groups((small, small))
    assert a.groups == (small, other)

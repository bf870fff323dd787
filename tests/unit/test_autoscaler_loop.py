"""The autoscaler loop's own logic: merging views, drain refusal, surviving failing ticks.

Ray itself is exercised in tests/ray; here FakeRayView and FakeBackend (fakes, by name) stand
in so that failure paths can be forced deterministically.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from rayscale.autoscaler.loop import Autoscaler, WorkerRecord, merge_views
from rayscale.planner import BundleDemand, Demand, GroupConfig
from rayscale.ray.demand import RayNode

pytestmark = pytest.mark.unit

SMALL = GroupConfig("small-group", {"CPU": 1.0}, 0, 10, idle_timeout_s=5)
HEAD = RayNode("h" * 8, "c-head-x", "headgroup", "idle", {"memory": 1.0}, {"memory": 1.0}, 9.0)


def worker_node(name: str, idle: float = 0.0, status: str = "running") -> RayNode:
    avail = {"CPU": 1.0} if idle else {"CPU": 0.0}
    return RayNode(f"id-{name}", name, "small-group", status, {"CPU": 1.0}, avail, idle)


class FakeRayView:
    def __init__(
        self, nodes: list[RayNode], demand: Demand, fail_first: int = 0, accept_drain: bool = True
    ) -> None:
        self.nodes, self.demand = nodes, demand
        self.fail_first = fail_first
        self.accept_drain = accept_drain
        self.calls = 0
        self.drained: list[str] = []

    def snapshot(self) -> tuple[list[RayNode], Demand]:
        self.calls += 1
        if self.calls <= self.fail_first:
            raise ConnectionError("GCS unavailable")
        return self.nodes, self.demand

    def drain(self, node_id: str, reason: str) -> tuple[bool, str]:
        self.drained.append(node_id)
        return self.accept_drain, "" if self.accept_drain else "node is busy"


class FakeBackend:
    def __init__(self, workers: list[WorkerRecord]) -> None:
        self.records = workers
        self.launched: list[tuple[str, int]] = []
        self.removed: list[str] = []

    def workers(self) -> list[WorkerRecord]:
        return list(self.records)

    def launch(self, group: GroupConfig, replicas: int) -> list[str]:
        self.launched.append((group.name, replicas))
        return [f"new-{i}" for i in range(replicas)]

    def remove(self, names: Sequence[str]) -> None:
        self.removed += names
        self.records = [w for w in self.records if w.name not in names]


def test_merge_views_running_pending_and_draining() -> None:
    workers = [
        WorkerRecord("w-run", "small-group", "starting"),
        WorkerRecord("w-boot", "small-group", "starting"),
        WorkerRecord("w-drain", "small-group", "starting"),
        WorkerRecord("w-dead", "small-group", "exited", exit_code=1),
    ]
    ray = [HEAD, worker_node("w-run"), worker_node("w-drain", status="draining")]
    views = {v.name: v for v in merge_views([SMALL], workers, ray)}
    assert views["c-head-x"].group == "headgroup"
    assert views["w-run"].status == "running"
    assert views["w-boot"].status == "pending" and views["w-boot"].total == {"CPU": 1.0}
    assert "w-drain" not in views and "w-dead" not in views


def test_launch_for_pending_demand() -> None:
    ray = FakeRayView([HEAD], Demand(bundles=(BundleDemand({"CPU": 1.0}, 2),)))
    backend = FakeBackend([])
    report = Autoscaler([SMALL], ray, backend, clock=lambda: 0.0).tick()
    assert backend.launched == [("small-group", 2)]
    assert report.launched == {"small-group": ["new-0", "new-1"]}


def test_idle_worker_drained_then_removed() -> None:
    ray = FakeRayView([HEAD, worker_node("w1", idle=6.0)], Demand())
    backend = FakeBackend([WorkerRecord("w1", "small-group", "starting")])
    Autoscaler([SMALL], ray, backend, clock=lambda: 0.0).tick()
    assert ray.drained == ["id-w1"] and backend.removed == ["w1"]


def test_drain_refused_keeps_the_worker() -> None:
    ray = FakeRayView([HEAD, worker_node("w1", idle=6.0)], Demand(), accept_drain=False)
    backend = FakeBackend([WorkerRecord("w1", "small-group", "starting")])
    report = Autoscaler([SMALL], ray, backend, clock=lambda: 0.0).tick()
    assert backend.removed == [] and report.drain_refused == ["w1"]


def test_exited_worker_is_reaped_and_replaced_if_needed() -> None:
    ray = FakeRayView([HEAD], Demand(bundles=(BundleDemand({"CPU": 1.0}, 1),)))
    backend = FakeBackend([WorkerRecord("w1", "small-group", "exited", exit_code=-9)])
    report = Autoscaler([SMALL], ray, backend, clock=lambda: 0.0).tick()
    assert backend.removed == ["w1"] and backend.launched == [("small-group", 1)]
    assert [w.name for w in report.exited] == ["w1"]


def test_loop_survives_more_than_six_failures() -> None:
    """Ray v1 exits after its sixth exception; our loop logs and keeps going."""
    ray = FakeRayView([HEAD], Demand(bundles=(BundleDemand({"CPU": 1.0}, 1),)), fail_first=8)
    backend = FakeBackend([])
    stop = threading.Event()
    scaler = Autoscaler([SMALL], ray, backend, clock=lambda: 0.0, on_tick=lambda report: stop.set())
    thread = threading.Thread(target=scaler.run, args=(0.001, stop))
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    assert scaler.failures == 8 and backend.launched == [("small-group", 1)]

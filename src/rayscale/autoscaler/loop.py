"""The autoscaler loop: observe -> plan -> act, once per period, for one cluster.

The loop owns no policy: :func:`rayscale.planner.plan` decides. The loop only gathers the
snapshot (Ray's view from GCS, the backend's view of its workers), applies the plan through a
backend (local processes, or the RayCluster CR on Kubernetes) and reports what it did. A
failing tick is logged and retried; it never ends the loop (unlike Ray v1, which exits after
its sixth exception).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from rayscale.planner import (
    HEAD_GROUP,
    Demand,
    GroupConfig,
    NodeView,
    Plan,
    PlannerInput,
    plan,
)
from rayscale.ray.demand import RayNode

log = logging.getLogger("rayscale.autoscaler")

WorkerPhase = Literal["starting", "running", "exited"]


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A worker the backend manages (a local process, or a pod)."""

    name: str
    group: str
    phase: WorkerPhase
    replica: str | None = None
    exit_code: int | None = None


class Backend(Protocol):
    """Where workers live. ``launch`` and ``remove`` return quickly; boots happen async."""

    def workers(self) -> list[WorkerRecord]: ...

    def launch(self, group: GroupConfig, replicas: int) -> list[str]: ...

    def remove(self, names: Sequence[str]) -> None: ...


class RayView(Protocol):
    """Ray's side: nodes and demand from GCS, and the drain RPC."""

    def snapshot(self) -> tuple[list[RayNode], Demand]: ...

    def drain(self, node_id: str, reason: str) -> tuple[bool, str]: ...


@dataclass(slots=True)
class TickReport:
    """What one iteration saw and did; the status view and metrics are built from it."""

    at: float
    nodes: list[NodeView]
    demand: Demand
    plan: Plan
    launched: dict[str, list[str]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    drain_refused: list[str] = field(default_factory=list)
    exited: list[WorkerRecord] = field(default_factory=list)
    seconds: float = 0.0


def merge_views(
    groups: Sequence[GroupConfig], workers: Sequence[WorkerRecord], ray_nodes: Sequence[RayNode]
) -> list[NodeView]:
    """One NodeView per live worker plus the head: running once Ray knows it, else pending."""
    by_instance = {n.instance_id: n for n in ray_nodes}
    resources = {g.name: g.resources for g in groups}
    views = [
        NodeView(n.instance_id or n.node_id, HEAD_GROUP, "running", n.total, n.available, n.idle_s)
        for n in ray_nodes
        if n.group == HEAD_GROUP
    ]
    known = {g.name for g in groups}
    for worker in workers:
        if worker.phase == "exited" or worker.group not in known:
            continue
        node = by_instance.get(worker.name)
        if node is None:
            total = resources[worker.group]
            views.append(
                NodeView(worker.name, worker.group, "pending", total, total, 0.0, worker.replica)
            )
        elif node.status != "draining":
            views.append(
                NodeView(
                    worker.name,
                    worker.group,
                    "running",
                    node.total,
                    node.available,
                    node.idle_s,
                    worker.replica,
                )
            )
    return views


class Autoscaler:
    def __init__(
        self,
        groups: Sequence[GroupConfig],
        ray: RayView,
        backend: Backend,
        clock: Callable[[], float] = time.time,
        on_tick: Callable[[TickReport], None] | None = None,
    ) -> None:
        self.groups = tuple(groups)
        self.ray = ray
        self.backend = backend
        self.clock = clock
        self.on_tick = on_tick
        self.failures = 0
        self._last_notes: tuple[str, ...] = ()

    # -- one iteration ------------------------------------------------------------------------
    def tick(self) -> TickReport:
        started = time.perf_counter()
        ray_nodes, demand = self.ray.snapshot()
        workers = self.backend.workers()
        exited = [w for w in workers if w.phase == "exited"]
        if exited:
            for w in exited:
                log.warning(
                    "worker %s (%s) exited with code %s; it is replaced if still needed",
                    w.name,
                    w.group,
                    w.exit_code,
                )
            self.backend.remove([w.name for w in exited])
        nodes = merge_views(self.groups, workers, ray_nodes)
        now = self.clock()
        result = plan(PlannerInput(self.groups, tuple(nodes), demand, now))
        report = TickReport(now, nodes, demand, result, exited=exited)
        self._apply_deletions(result, ray_nodes, report)
        self._apply_launches(result, report)
        self._log_notes(result)
        report.seconds = time.perf_counter() - started
        if self.on_tick is not None:
            self.on_tick(report)
        return report

    def _apply_deletions(
        self, result: Plan, ray_nodes: Sequence[RayNode], report: TickReport
    ) -> None:
        by_instance = {n.instance_id: n for n in ray_nodes}
        for deletion in result.delete:
            node = by_instance.get(deletion.node)
            if node is not None:
                accepted, message = self.ray.drain(node.node_id, deletion.reason)
                if not accepted:
                    log.info(
                        "keep %s: drain refused by Ray (%s)",
                        deletion.node,
                        message or "node became busy",
                    )
                    report.drain_refused.append(deletion.node)
                    continue
            log.info("delete %s: %s", deletion.node, deletion.reason)
            self.backend.remove([deletion.node])
            report.deleted.append(deletion.node)

    def _apply_launches(self, result: Plan, report: TickReport) -> None:
        configs = {g.name: g for g in self.groups}
        for name, decision in result.groups.items():
            if decision.launch <= 0:
                continue
            names = self.backend.launch(configs[name], decision.launch)
            report.launched[name] = names
            log.info(
                "launch %d %s: %s",
                decision.launch,
                name,
                "; ".join(r.split(": ", 1)[1] for r in decision.reasons if r.startswith("launch ")),
            )

    def _log_notes(self, result: Plan) -> None:
        """Infeasible and held-back demand, logged when it changes (not every second)."""
        notes = tuple(
            f"{'infeasible' if u.infeasible else 'held back'}: {u.count} × "
            f"{dict(u.resources)}: {u.reason}"
            for u in result.unmet
        )
        if notes != self._last_notes:
            for note in notes:
                log.info("%s", note)
            self._last_notes = notes

    # -- the loop -----------------------------------------------------------------------------
    def run(self, period: float, stop: threading.Event) -> None:
        """Tick every ``period`` seconds until ``stop`` is set; failures are logged, retried."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.tick()
            except Exception:
                self.failures += 1
                log.exception("autoscaler iteration failed (%d so far); retrying", self.failures)
            stop.wait(max(0.0, period - (time.monotonic() - started)))

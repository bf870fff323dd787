"""The autoscaler loop: observe -> plan -> desired state, for one cluster.

The loop owns no policy (:func:`rayscale.planner.plan` decides) and creates no pods (the
runtime's reconciler does). Each tick it reads Ray's state and the runtime's desired state and
pods, plans, drains the replicas it wants gone, and writes ONE :class:`ScaleRequest`.

It survives partial failure: every action (reading request_resources, each replica's drain,
applying the request) fails on its own, is logged with its cause and counted, and the rest of
the tick still happens. A failing tick is retried; it never ends the loop (Ray v1 exits after
its sixth exception).

It reacts fast without loading GCS: it reads Ray's state every ``read_period`` (cheap, under
1 ms), and plans only when what it read changed or a timer (an idle timeout) is due, or at
least every ``plan_period``.

The groups (their bounds, resources, idle timeouts) may change while it runs: a user edits
the RayCluster. ``groups_source`` (read at each observation) or :meth:`Autoscaler.set_groups`
puts new ones in force for the next plan, which follows at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from rayscale.autoscaler.scale import (
    Backend,
    BadDemandError,
    GroupTarget,
    Observation,
    RayNode,
    RayView,
    ScaleRequest,
    WorkerPod,
)
from rayscale.planner import (
    HEAD_GROUP,
    Demand,
    GroupConfig,
    NodeView,
    Plan,
    PlannerInput,
    plan,
)
from rayscale.planner.reasons import Reason, ReasonCode

log = logging.getLogger("rayscale.autoscaler")

EventType = Literal["launch", "delete", "keep", "drain_refused", "action_failed", "waiting"]
PENDING_PREFIX = "pending:"
"""Names of replicas the desired state asks for but whose pods do not exist yet."""


@dataclass(frozen=True, slots=True)
class Event:
    """One decision of a tick, for logs, ``events.jsonl``, Kubernetes Events and metrics."""

    type: EventType
    group: str
    reason: Reason
    count: int = 0
    nodes: tuple[str, ...] = ()

    def to_json(self, at: float) -> dict[str, Any]:
        return {
            "at": at,
            "type": self.type,
            "group": self.group,
            "count": self.count,
            "nodes": list(self.nodes),
            "reason": self.reason.to_json(),
        }


@dataclass(slots=True)
class TickReport:
    """What one planning iteration saw and did; status, logs and metrics are built from it."""

    at: float
    observation: Observation
    ray_nodes: list[RayNode]
    nodes: list[NodeView]
    demand: Demand
    plan: Plan
    request: ScaleRequest = field(default_factory=lambda: ScaleRequest({}))
    applied: bool = False
    events: list[Event] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    plan_seconds: float = 0.0
    groups: tuple[GroupConfig, ...] = ()
    """The groups this iteration planned with (they may change between iterations)."""


# -- the planner's view of the cluster ---------------------------------------------------------


def _pod_replicas(pods: Iterable[WorkerPod]) -> set[str]:
    return {p.replica or p.name for p in pods}


def merge_views(
    groups: Sequence[GroupConfig], observation: Observation, ray_nodes: Sequence[RayNode]
) -> list[NodeView]:
    """One NodeView per live worker pod and the head (running once Ray knows it, else
    pending), plus a pending placeholder per replica the desired state asks for whose pods do
    not exist yet: the planner counts them, so nothing is launched twice."""
    by_instance = {n.instance_id: n for n in ray_nodes}
    views = [
        NodeView(n.instance_id or n.node_id, HEAD_GROUP, "running", n.total, n.available, n.idle_s)
        for n in ray_nodes
        if n.group == HEAD_GROUP
    ]
    listed = {name for t in observation.targets.values() for name in t.workers_to_delete}
    for config in groups:
        pods = [
            p
            for p in observation.pods
            if p.group == config.name and p.phase != "failed" and p.name not in listed
        ]
        for pod in pods:
            view = _pod_view(config, pod, by_instance.get(pod.name))
            if view is not None:
                views.append(view)
        target = observation.targets.get(config.name, GroupTarget(0))
        missing = target.replicas - len(_pod_replicas(pods))
        for i in range(max(0, missing)):
            replica = f"{PENDING_PREFIX}{config.name}:{i}"
            for host in range(max(1, config.num_of_hosts)):
                name = f"{replica}:{host}"
                total = config.resources
                views.append(NodeView(name, config.name, "pending", total, total, 0.0, replica))
    return views


def _pod_view(config: GroupConfig, pod: WorkerPod, node: RayNode | None) -> NodeView | None:
    replica = pod.replica if config.num_of_hosts > 1 else None
    if node is None:
        total = config.resources
        return NodeView(pod.name, config.name, "pending", total, total, 0.0, replica)
    if node.status == "draining":
        return None  # on its way out; the planner must not count on it
    return NodeView(
        pod.name, config.name, "running", node.total, node.available, node.idle_s, replica
    )


def signature(
    observation: Observation, ray_nodes: Sequence[RayNode], demand: Demand
) -> tuple[Any, ...]:
    """What a new plan depends on, minus the idle clocks (those are handled as timers)."""
    nodes = tuple(
        sorted(
            (n.instance_id, n.status, tuple(sorted(n.available.items())), n.idle_s > 0)
            for n in ray_nodes
        )
    )
    return (observation, nodes, demand)


def next_timer(groups: Sequence[GroupConfig], ray_nodes: Sequence[RayNode]) -> float:
    """Seconds until the first idle node reaches its group's idle timeout (inf if none)."""
    timeouts = {g.name: g.idle_timeout_s for g in groups}
    due = [
        timeouts[n.group] - n.idle_s
        for n in ray_nodes
        if n.idle_s > 0 and n.group in timeouts and n.status != "draining"
    ]
    return max(0.0, min(due)) if due else float("inf")


# -- the loop -----------------------------------------------------------------------------------


class Autoscaler:
    def __init__(
        self,
        groups: Sequence[GroupConfig],
        ray: RayView,
        backend: Backend,
        clock: Callable[[], float] = time.time,
        on_tick: Callable[[TickReport], None] | None = None,
        groups_source: Callable[[], Sequence[GroupConfig]] | None = None,
    ) -> None:
        self.groups: tuple[GroupConfig, ...] = ()
        self.configs: dict[str, GroupConfig] = {}
        self.set_groups(groups)
        self.groups_source = groups_source
        self.ray = ray
        self.backend = backend
        self.clock = clock
        self.on_tick = on_tick
        self._replan = False  # the groups changed: plan at the next read
        self.failures = 0  # ticks that failed as a whole
        self.errors: Counter[str] = Counter()  # failed actions, by action
        self._bad_request: str | None = None
        self._last_unmet: tuple[str, ...] = ()

    def set_groups(self, groups: Sequence[GroupConfig]) -> bool:
        """Put ``groups`` in force from the next plan on; True if they differ from the
        current ones. Group names must be unique (the spec's validation ensures it)."""
        new = tuple(groups)
        names = [g.name for g in new]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate worker group names in {names}")
        if new == self.groups:
            return False
        if self.groups:
            log.info("worker groups changed: %s", _describe_change(self.groups, new))
        self.groups = new
        self.configs = {g.name: g for g in new}
        self._replan = True
        return True

    # -- one iteration ------------------------------------------------------------------------
    def observe(self) -> tuple[Observation, list[RayNode], Demand]:
        """Read the groups in force (if they have a source), the runtime and Ray. The
        request_resources read may fail on its own."""
        if self.groups_source is not None:
            self.set_groups(self.groups_source())
        ray_nodes, demand = self.ray.nodes_and_demand()
        observation = self.backend.observe()
        if not demand.request_resources:
            demand = replace(demand, request_resources=tuple(self._requested()))
        return observation, ray_nodes, demand

    def _requested(self) -> list[dict[str, float]]:
        try:
            bundles = self.ray.requested_resources()
        except BadDemandError as exc:
            if str(exc) != self._bad_request:
                self._count("read request_resources")
                log.warning("ignoring request_resources: %s", exc)
                self._bad_request = str(exc)
            return []
        except Exception as exc:
            self._count("read request_resources")
            log.warning("reading request_resources failed (%s); using none this tick", exc)
            return []
        self._bad_request = None
        return bundles

    def tick(self, snapshot: tuple[Observation, list[RayNode], Demand] | None = None) -> TickReport:
        started = time.perf_counter()
        observation, ray_nodes, demand = snapshot or self.observe()
        nodes = merge_views(self.groups, observation, ray_nodes)
        now = self.clock()
        t0 = time.perf_counter()
        result = plan(PlannerInput(self.groups, tuple(nodes), demand))
        report = TickReport(now, observation, ray_nodes, nodes, demand, result, groups=self.groups)
        report.plan_seconds = time.perf_counter() - t0
        targets = self._targets(report)
        if targets:
            report.request = ScaleRequest(targets)
            report.applied = self._apply(report)
        self._log(report)
        report.errors = Counter(self.errors)
        report.seconds = time.perf_counter() - started
        if self.on_tick is not None:
            self.on_tick(report)
        return report

    def _targets(self, report: TickReport) -> dict[str, GroupTarget]:
        """The new desired state of every group that changes."""
        observation = report.observation
        existing = {p.name: p for p in observation.pods}
        out: dict[str, GroupTarget] = {}
        for config in self.groups:
            current = observation.targets.get(config.name, GroupTarget(0))
            waiting = tuple(n for n in current.workers_to_delete if n in existing)
            if waiting:  # KubeRay's protocol: not again until the listed pods are gone
                reason = Reason(
                    ReasonCode.DELETE_PENDING, {"group": config.name, "nodes": list(waiting)}
                )
                report.events.append(Event("waiting", config.name, reason, nodes=waiting))
                continue
            target = self._group_target(config, current, existing, report)
            if target != current:
                out[config.name] = target
        return out

    def _group_target(
        self,
        config: GroupConfig,
        current: GroupTarget,
        existing: Mapping[str, WorkerPod],
        report: TickReport,
    ) -> GroupTarget:
        decision = report.plan.groups[config.name]
        replicas = decision.replicas
        to_delete: list[str] = []
        for nodes, reason in self._replicas_to_delete(config.name, report.plan, existing):
            pods = [n for n in nodes if n in existing]
            if self._drain_replica(config.name, pods, reason, report):
                to_delete += pods
                report.events.append(
                    Event("delete", config.name, reason, count=1, nodes=tuple(nodes))
                )
            else:
                replicas += 1
        replicas = max(0, min(replicas, config.max_replicas))
        grown = replicas - current.replicas
        if grown > 0 and decision.launch > 0:
            for reason in decision.reasons:
                if reason.code in _LAUNCH_CODES:
                    report.events.append(Event("launch", config.name, reason, count=grown))
                    break
        return GroupTarget(replicas, tuple(sorted(to_delete)))

    def _replicas_to_delete(
        self, group: str, result: Plan, existing: Mapping[str, WorkerPod]
    ) -> list[tuple[list[str], Reason]]:
        """The plan's deletions of ``group`` as whole replicas: every host of a replica goes
        together, even if the plan named only some of them."""
        hosts: dict[str, list[str]] = {}
        for pod in existing.values():
            if pod.group == group and pod.replica:
                hosts.setdefault(pod.replica, []).append(pod.name)
        out: dict[str, tuple[list[str], Reason]] = {}
        for deletion in result.delete:
            if deletion.group != group:
                continue
            found = existing.get(deletion.node)
            key = (found.replica if found else None) or deletion.node
            if key not in out:
                nodes = sorted(hosts.get(key, [deletion.node]))
                out[key] = (nodes, deletion.reason)
        return list(out.values())

    def _drain_replica(
        self, group: str, pods: Sequence[str], reason: Reason, report: TickReport
    ) -> bool:
        """Drain every host of a replica that Ray knows; all or nothing.

        Hosts go least idle first, so the one likeliest to refuse is asked first. Ray 2.60
        has no way to undo an accepted drain: if a later host refuses, the hosts already
        drained stay cordoned until the whole replica is idle and goes (the event says so).
        """
        by_instance = {n.instance_id: n for n in report.ray_nodes}
        nodes = sorted((by_instance[p] for p in pods if p in by_instance), key=lambda n: n.idle_s)
        drained: list[str] = []
        for node in nodes:
            if node.status == "draining":
                drained.append(node.instance_id)
                continue
            try:
                accepted, message = self.ray.drain(node.node_id, reason.text())
            except Exception as exc:
                self._count("drain")
                self._failed(report, group, "drain", node.instance_id, exc)
                accepted, message = False, f"drain failed: {exc}"
            if not accepted:
                params = {
                    "group": group,
                    "nodes": list(pods),
                    "node": node.instance_id,
                    "message": message,
                    "cordoned": drained,
                }
                refused = Reason(ReasonCode.DRAIN_REFUSED, params)
                report.events.append(Event("drain_refused", group, refused, nodes=tuple(pods)))
                return False
            drained.append(node.instance_id)
        return True

    def _apply(self, report: TickReport) -> bool:
        try:
            result = self.backend.apply(report.request)
        except Exception as exc:
            self._count("apply")
            self._failed(report, "", "apply", "desired state", exc)
            return False
        if not result.applied and result.error:
            self._count("apply")
            self._failed(report, "", "apply", "desired state", result.error)
        return result.applied

    def _failed(
        self, report: TickReport, group: str, action: str, target: str, error: object
    ) -> None:
        reason = Reason(
            ReasonCode.ACTION_FAILED, {"action": action, "target": target, "error": str(error)}
        )
        report.events.append(Event("action_failed", group, reason, nodes=(target,)))

    def _count(self, action: str) -> None:
        self.errors[action] += 1

    def _log(self, report: TickReport) -> None:
        for event in report.events:
            if event.type == "waiting":
                continue
            level = logging.WARNING if event.type == "action_failed" else logging.INFO
            log.log(
                level,
                "%s: %s",
                event.type,
                event.reason.text(),
                extra={"reason_code": event.reason.code.value},
            )
        unmet = tuple(u.reason.text() for u in report.plan.unmet)
        if unmet != self._last_unmet:  # logged when it changes, not every tick
            for line in unmet:
                log.info("%s", line)
            self._last_unmet = unmet

    # -- the loop -----------------------------------------------------------------------------
    def run(
        self,
        stop: threading.Event,
        read_period: float = 0.2,
        plan_period: float = 1.0,
    ) -> None:
        """Read every ``read_period``; plan when the reading changed, a timer is due, or
        ``plan_period`` passed. Failures are logged and retried."""
        last_sig: tuple[Any, ...] | None = None
        next_plan = 0.0
        last_error = ""
        while not stop.is_set():
            started = time.monotonic()
            try:
                snapshot = self.observe()
                sig = signature(*snapshot)
                if sig != last_sig or started >= next_plan or self._replan:
                    last_sig, self._replan = sig, False
                    next_plan = started + plan_period  # a failing tick retries after this
                    self.tick(snapshot)
                    next_plan = started + min(plan_period, next_timer(self.groups, snapshot[1]))
                last_error = ""
            except Exception as exc:
                self.failures += 1
                error = f"{type(exc).__name__}: {exc}"
                if error != last_error:  # the traceback once, then one line per repeat
                    log.exception(
                        "autoscaler iteration failed (%d so far); retrying", self.failures
                    )
                else:
                    log.warning("autoscaler iteration failed again (%d so far): %s",
                                self.failures, error)  # fmt: skip
                last_error = error
                stop.wait(plan_period)
            stop.wait(max(0.0, read_period - (time.monotonic() - started)))


def _describe_change(old: Sequence[GroupConfig], new: Sequence[GroupConfig]) -> str:
    """``small-group [0..10] -> [2..10]; gpu-group added [0..4]``: what a person checks."""
    before, after = {g.name: g for g in old}, {g.name: g for g in new}
    parts = []
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name), after.get(name)
        if a is None:
            parts.append(f"{name} added {_bounds(after[name])}")
        elif b is None:
            parts.append(f"{name} removed")
        elif _bounds(a) != _bounds(b):
            parts.append(f"{name} {_bounds(a)} -> {_bounds(b)}")
        elif a != b:
            parts.append(f"{name} changed")
    return "; ".join(parts)


def _bounds(group: GroupConfig) -> str:
    return f"[{group.min_replicas}..{group.max_replicas}]"


_LAUNCH_CODES = frozenset(
    {
        ReasonCode.DEMAND_FITS_NO_NODE,
        ReasonCode.BELOW_MIN,
        ReasonCode.REQUEST_RESOURCES,
        ReasonCode.FALLBACK_SPECIAL_GROUP,
    }
)

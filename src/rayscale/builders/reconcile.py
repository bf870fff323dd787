"""The operator's reconcile step: which pods to create and delete so pods match the spec.

Purely computational: (RayCluster with its desired state, observed pods) -> actions and status.
The Kubernetes operator and the local runtime both call :func:`reconcile`, so one set of rules
decides what runs everywhere. It follows KubeRay's worker reconcile:

- a suspended cluster deletes every pod and creates none;
- the head is created when no live head exists; a failed head is deleted (and replaced);
- per group: failed pods go first (with every host of their multi-host replica), then every
  pod named in ``scaleStrategy.workersToDelete``; then replicas are created up to
  ``clamp(replicas, min, max)`` (0 for a suspended group), ``numOfHosts`` pods each;
- surplus replicas are deleted only when in-tree autoscaling is OFF: with it on, the
  autoscaler alone decides which pod goes (KubeRay issue 1238: a random pick deleted busy pods).

Names are not chosen here: a creation is "one replica of group G"; the adapter names pods
(Kubernetes' generateName, or a random suffix locally).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from rayscale.planner.model import HEAD_GROUP
from rayscale.spec.models import RayCluster, WorkerGroupSpec

PodPhase = Literal["Pending", "Running", "Succeeded", "Failed"]
REPLICA_LABEL = "ray.io/worker-group-replica-name"


class DeleteCause(str, Enum):
    """Why the reconciler deletes a pod."""

    FAILED = "failed"
    REPLICA_BROKEN = "replica_broken"  # another host of its multi-host replica failed or went
    WORKERS_TO_DELETE = "workers_to_delete"
    SURPLUS = "surplus"  # above the desired count, autoscaling off
    SUSPENDED = "suspended"
    UNKNOWN_GROUP = "unknown_group"  # its group is no longer in the spec


@dataclass(frozen=True, slots=True)
class ObservedPod:
    """A pod as the reconciler needs it: identity, group, replica and phase."""

    name: str
    group: str
    phase: PodPhase = "Pending"
    replica: str | None = None
    deleting: bool = False  # deletionTimestamp set: already on its way out

    @property
    def is_head(self) -> bool:
        return self.group == HEAD_GROUP


@dataclass(frozen=True, slots=True)
class PodDeletion:
    name: str
    group: str
    cause: DeleteCause


@dataclass(frozen=True, slots=True)
class GroupState:
    """One worker group's counts, in pods (KubeRay's status counts pods, not replicas)."""

    name: str
    desired: int
    running: int
    pending: int
    min: int
    max: int


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What to do now, and what the cluster looks like after it."""

    create_head: bool
    create: Mapping[str, int]  # group -> replicas to create (numOfHosts pods each)
    delete: tuple[PodDeletion, ...]
    groups: tuple[GroupState, ...] = ()
    state: Literal["ready", "suspended", "suspending", "provisioning"] = "provisioning"
    desired_workers: int = 0
    ready_workers: int = 0

    @property
    def idle(self) -> bool:
        """True when nothing needs doing."""
        return not self.create_head and not self.delete and not any(self.create.values())


@dataclass(slots=True)
class _Replica:
    pods: list[ObservedPod] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(p.phase in ("Failed", "Succeeded") for p in self.pods)


def reconcile(cluster: RayCluster, pods: Sequence[ObservedPod]) -> Reconciliation:
    """Decide the pods to create and delete so ``pods`` match ``cluster``'s desired state."""
    live = [p for p in pods if not p.deleting]
    if cluster.spec.suspend:
        return _suspend(live, pods)
    deletions: list[PodDeletion] = []
    heads = [p for p in live if p.is_head]
    deletions += [PodDeletion(p.name, HEAD_GROUP, DeleteCause.FAILED) for p in heads if _dead(p)]
    create_head = not any(not _dead(p) for p in heads)
    groups = {g.group_name: g for g in cluster.worker_groups}
    create: dict[str, int] = {}
    states: list[GroupState] = []
    by_group: dict[str, list[ObservedPod]] = defaultdict(list)
    for pod in live:
        if not pod.is_head:
            by_group[pod.group].append(pod)
    for name, orphans in by_group.items():
        if name not in groups:
            deletions += [PodDeletion(p.name, name, DeleteCause.UNKNOWN_GROUP) for p in orphans]
    for group in cluster.worker_groups:
        gone, missing, state = _reconcile_group(
            group, by_group.get(group.group_name, []), cluster.autoscaling_enabled
        )
        deletions += gone
        create[group.group_name] = missing
        states.append(state)
    return _result(create_head, create, deletions, states, heads)


def _dead(pod: ObservedPod) -> bool:
    return pod.phase in ("Failed", "Succeeded")


def _suspend(live: Sequence[ObservedPod], pods: Sequence[ObservedPod]) -> Reconciliation:
    deletions = tuple(PodDeletion(p.name, p.group, DeleteCause.SUSPENDED) for p in live)
    return Reconciliation(
        create_head=False,
        create={},
        delete=deletions,
        state="suspended" if not pods else "suspending",
    )


def _replicas(pods: Iterable[ObservedPod]) -> dict[str, _Replica]:
    """Group pods by multi-host replica (a pod without one is a replica of its own)."""
    out: dict[str, _Replica] = defaultdict(_Replica)
    for pod in pods:
        out[pod.replica or f"pod:{pod.name}"].pods.append(pod)
    return dict(out)


def _reconcile_group(
    group: WorkerGroupSpec, pods: Sequence[ObservedPod], autoscaling: bool
) -> tuple[list[PodDeletion], int, GroupState]:
    name, hosts = group.group_name, max(1, group.num_of_hosts)
    listed = set(group.scale_strategy.workers_to_delete)
    deletions: list[PodDeletion] = []
    kept: list[_Replica] = []
    for replica in sorted(_replicas(pods).values(), key=lambda r: r.pods[0].name):
        broken = replica.failed or (hosts > 1 and len(replica.pods) < hosts)
        named = any(p.name in listed for p in replica.pods)
        if broken:
            deletions += [_broken(p, name) for p in replica.pods]
        elif named:
            deletions += [
                PodDeletion(p.name, name, DeleteCause.WORKERS_TO_DELETE)
                for p in replica.pods
                if p.name in listed
            ]
            if any(p.name not in listed for p in replica.pods):
                kept.append(_Replica([p for p in replica.pods if p.name not in listed]))
        else:
            kept.append(replica)
    desired = group.desired_replicas
    complete = [r for r in kept if len(r.pods) >= hosts]
    partial = [r for r in kept if len(r.pods) < hosts]
    deletions += [
        PodDeletion(p.name, name, DeleteCause.REPLICA_BROKEN) for r in partial for p in r.pods
    ]
    surplus = len(complete) - desired
    if surplus > 0 and not autoscaling:
        for replica in _surplus_order(complete)[:surplus]:
            deletions += [PodDeletion(p.name, name, DeleteCause.SURPLUS) for p in replica.pods]
        complete = _surplus_order(complete)[surplus:]
    missing = max(0, desired - len(complete))
    remaining = [p for r in complete for p in r.pods]
    state = GroupState(
        name=name,
        desired=desired * hosts,
        running=sum(p.phase == "Running" for p in remaining),
        pending=sum(p.phase == "Pending" for p in remaining) + missing * hosts,
        min=group.min_replicas * hosts,
        max=group.max_replicas * hosts if group.max_replicas < 2**31 - 1 else group.max_replicas,
    )
    return deletions, missing, state


def _broken(pod: ObservedPod, group: str) -> PodDeletion:
    cause = DeleteCause.FAILED if _dead(pod) else DeleteCause.REPLICA_BROKEN
    return PodDeletion(pod.name, group, cause)


def _surplus_order(replicas: Sequence[_Replica]) -> list[_Replica]:
    """Surplus goes in a fixed order: replicas still booting first, then by pod name."""
    return sorted(
        replicas,
        key=lambda r: (all(p.phase == "Running" for p in r.pods), [p.name for p in r.pods]),
    )


def _result(
    create_head: bool,
    create: dict[str, int],
    deletions: list[PodDeletion],
    states: list[GroupState],
    heads: Sequence[ObservedPod],
) -> Reconciliation:
    head_ready = any(p.phase == "Running" for p in heads)
    ready = sum(s.running for s in states)
    desired = sum(s.desired for s in states)
    settled = head_ready and not deletions and not any(create.values()) and ready == desired
    return Reconciliation(
        create_head=create_head,
        create=create,
        delete=tuple(deletions),
        groups=tuple(states),
        state="ready" if settled else "provisioning",
        desired_workers=desired,
        ready_workers=ready,
    )

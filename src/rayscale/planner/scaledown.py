"""Which idle workers may go: longest idle first, whole replicas, never below minReplicas.

Purely computational. A worker is deleted only when it has been idle for its group's idle
timeout, reports no work, and the plan placed no pending demand or request_resources on it.
The head is never a candidate. A group above maxReplicas sheds unused nodes first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rayscale.planner.capacity import Ledger
from rayscale.planner.groups import GroupTally
from rayscale.planner.model import NodeView
from rayscale.planner.reasons import Reason, ReasonCode


@dataclass(frozen=True, slots=True)
class ReplicaDeletion:
    group: str
    nodes: tuple[str, ...]
    reason: Reason
    replicas: int = 1
    replica: str | None = None
    """The multi-host replica's name (None: a single-node replica)."""


@dataclass(slots=True)
class _Replica:
    key: str
    nodes: list[NodeView]
    rows: list[int]

    @property
    def idle_s(self) -> float:
        return min(n.idle_s for n in self.nodes)

    @property
    def name(self) -> str | None:
        """The replica id its nodes report (None for a node that is its own replica)."""
        return self.nodes[0].replica

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(n.name for n in self.nodes))


def _replicas(nodes: Sequence[NodeView], rows: Sequence[int]) -> list[_Replica]:
    by_key: dict[str, _Replica] = {}
    for node, row in zip(nodes, rows, strict=True):
        key = node.replica or node.name
        rep = by_key.setdefault(key, _Replica(key, [], []))
        rep.nodes.append(node)
        rep.rows.append(row)
    return list(by_key.values())


def choose_deletions(
    nodes: Sequence[NodeView],
    tallies: Mapping[str, GroupTally],
    ledger: Ledger,
    is_busy: Callable[[NodeView], bool],
) -> tuple[list[ReplicaDeletion], dict[str, list[Reason]]]:
    """Deletions, plus notes on idle nodes that were kept and why.

    ``nodes[i]`` is ledger row ``i`` (the planner adds existing nodes first, in order).
    """
    members: dict[str, tuple[list[NodeView], list[int]]] = defaultdict(lambda: ([], []))
    for row, node in enumerate(nodes):
        if node.group in tallies and not node.is_head:
            members[node.group][0].append(node)
            members[node.group][1].append(row)
    deletions: list[ReplicaDeletion] = []
    notes: dict[str, list[Reason]] = defaultdict(list)
    for group, (group_nodes, rows) in sorted(members.items()):
        tally = tallies[group]
        chosen, kept = _group_deletions(tally, _replicas(group_nodes, rows), ledger, is_busy)
        deletions += chosen
        notes[group] += kept
    return deletions, notes


def _unused(rep: _Replica, ledger: Ledger) -> str | None:
    """Why the plan still needs this replica ("request_resources" | "pending_demand"), or None."""
    if any(ledger.room_uses[r] for r in rep.rows):
        return "request_resources"
    if any(ledger.uses[r] for r in rep.rows):
        return "pending_demand"
    return None


def _base(group: str, rep: _Replica) -> dict[str, Any]:
    return {"group": group, "nodes": list(rep.names), "idle_s": rep.idle_s}


def _group_deletions(
    tally: GroupTally,
    replicas: list[_Replica],
    ledger: Ledger,
    is_busy: Callable[[NodeView], bool],
) -> tuple[list[ReplicaDeletion], list[Reason]]:
    cfg = tally.config
    timeout = cfg.idle_timeout_s
    surplus = tally.existing - cfg.max_replicas
    may_remove = tally.existing - cfg.min_replicas
    chosen: list[ReplicaDeletion] = []
    kept: list[Reason] = []
    # Longest idle first; pending replicas (idle 0) come last and only go when above max.
    for rep in sorted(replicas, key=lambda r: (-r.idle_s, r.key)):
        running = all(n.status == "running" for n in rep.nodes)
        idle = running and not any(is_busy(n) for n in rep.nodes)
        no_work = idle or not running
        if not no_work:
            continue  # a busy replica is never a candidate
        needed = _unused(rep, ledger)
        if surplus > len(chosen) and needed is None:
            params = {
                **_base(cfg.name, rep),
                "max": cfg.max_replicas,
                "state": "idle" if idle else "pending",
            }
            chosen.append(
                ReplicaDeletion(
                    cfg.name, rep.names, Reason(ReasonCode.ABOVE_MAX, params), replica=rep.name
                )
            )
            continue
        if not idle or rep.idle_s < timeout:
            continue
        base = _base(cfg.name, rep)
        if needed is not None:
            kept.append(Reason(ReasonCode.KEEP_NEEDED, {**base, "need": needed}))
        elif len(chosen) >= may_remove:
            kept.append(Reason(ReasonCode.KEEP_AT_MIN, {**base, "min": cfg.min_replicas}))
        else:
            params = {**base, "timeout_s": timeout}
            chosen.append(
                ReplicaDeletion(
                    cfg.name, rep.names, Reason(ReasonCode.IDLE_TIMEOUT, params), replica=rep.name
                )
            )
    return chosen, kept

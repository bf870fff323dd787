"""Which idle workers may go: longest idle first, whole replicas, never below minReplicas.

Purely computational. A worker is deleted only when it has been idle for its group's idle
timeout, reports no work, and the plan placed no pending demand or request_resources on it.
The head is never a candidate. A group above maxReplicas sheds unused nodes first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rayscale.planner.capacity import Ledger
from rayscale.planner.groups import GroupTally
from rayscale.planner.model import NodeView


@dataclass(frozen=True, slots=True)
class ReplicaDeletion:
    group: str
    nodes: tuple[str, ...]
    reason: str
    replicas: int = 1

    def reason_line(self) -> str:
        return f"delete {', '.join(self.nodes)}: {self.reason}"


@dataclass(slots=True)
class _Replica:
    key: str
    nodes: list[NodeView]
    rows: list[int]

    @property
    def idle_s(self) -> float:
        return min(n.idle_s for n in self.nodes)

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
) -> tuple[list[ReplicaDeletion], dict[str, list[str]]]:
    """Deletions, plus notes on idle nodes that were kept and why.

    ``nodes[i]`` is ledger row ``i`` (the planner adds existing nodes first, in order).
    """
    members: dict[str, tuple[list[NodeView], list[int]]] = defaultdict(lambda: ([], []))
    for row, node in enumerate(nodes):
        if node.group in tallies and not node.is_head:
            members[node.group][0].append(node)
            members[node.group][1].append(row)
    deletions: list[ReplicaDeletion] = []
    notes: dict[str, list[str]] = defaultdict(list)
    for group, (group_nodes, rows) in sorted(members.items()):
        tally = tallies[group]
        chosen, kept = _group_deletions(tally, _replicas(group_nodes, rows), ledger, is_busy)
        deletions += chosen
        notes[group] += kept
    return deletions, notes


def _unused(rep: _Replica, ledger: Ledger) -> str | None:
    """Why the plan still needs this replica, or None."""
    if any(ledger.room_uses[r] for r in rep.rows):
        return "needed by request_resources"
    if any(ledger.uses[r] for r in rep.rows):
        return "needed by pending demand"
    return None


def _group_deletions(
    tally: GroupTally,
    replicas: list[_Replica],
    ledger: Ledger,
    is_busy: Callable[[NodeView], bool],
) -> tuple[list[ReplicaDeletion], list[str]]:
    cfg = tally.config
    timeout = cfg.idle_timeout_s
    surplus = tally.existing - cfg.max_replicas
    may_remove = tally.existing - cfg.min_replicas
    chosen: list[ReplicaDeletion] = []
    kept: list[str] = []
    # Longest idle first; pending replicas (idle 0) come last and only go when above max.
    for rep in sorted(replicas, key=lambda r: (-r.idle_s, r.key)):
        running = all(n.status == "running" for n in rep.nodes)
        idle = running and not any(is_busy(n) for n in rep.nodes)
        needed = _unused(rep, ledger)
        no_work = idle or not running
        if surplus > len(chosen) and no_work and needed is None:
            state = f"idle {rep.idle_s:.0f} s" if idle else "not yet running"
            chosen.append(
                ReplicaDeletion(
                    cfg.name,
                    rep.names,
                    f"{state}, group is above maxReplicas={cfg.max_replicas}",
                )
            )
            continue
        if not idle or rep.idle_s < timeout:
            continue
        label = ", ".join(rep.names)
        if needed is not None:
            kept.append(f"keep {label}: idle {rep.idle_s:.0f} s but {needed}")
        elif len(chosen) >= may_remove:
            kept.append(
                f"keep {label}: idle {rep.idle_s:.0f} s but group is at "
                f"minReplicas={cfg.min_replicas}"
            )
        else:
            chosen.append(
                ReplicaDeletion(
                    cfg.name, rep.names, f"idle {rep.idle_s:.0f} s ≥ {timeout:g} s idle timeout"
                )
            )
    return chosen, kept

"""``plan()``: decide launches and deletions for one snapshot, with a reason for each.

Purely computational: no I/O, no clock, no randomness; the same input always gives the same
Plan. The recipe, in order:

1. launch up to each group's minReplicas;
2. make the cluster's total capacity hold the request_resources bundles;
3. place placement groups (all-or-nothing gangs), then pending task/actor shapes, largest
   first, into free capacity of running nodes, then pending nodes, then new nodes of the
   least-wasteful suitable group;
4. delete idle workers nobody needs, longest idle first, never below minReplicas.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rayscale.planner.capacity import (
    NEW,
    PENDING,
    RUNNING,
    Checkpoint,
    Ledger,
    Shape,
    prepare,
)
from rayscale.planner.explain import MAX_EXAMPLES, Cause, held_back, infeasible, launch_reasons
from rayscale.planner.groups import GroupTable, GroupTally, count_replicas
from rayscale.planner.model import (
    BundleDemand,
    Deletion,
    DemandKind,
    GroupDecision,
    NodeView,
    Placement,
    PlacementGroupDemand,
    Plan,
    PlannerInput,
    Strategy,
    UnmetDemand,
)
from rayscale.planner.reasons import Reason, ReasonCode
from rayscale.planner.scaledown import choose_deletions
from rayscale.planner.shapes import EPS, ResourceIndex, add, clean, fits_count, sort_key

Limit = tuple[str, str]
"""(group, "max" | "conservative"): a limit that held demand back."""


def plan(inp: PlannerInput) -> Plan:
    """Decide the target replicas, the nodes to delete and the unmet demand for ``inp``."""
    state = _Round(inp)
    state.launch_min_floor()
    state.place_request_resources()
    state.place_placement_groups()
    state.place_bundles()
    return state.finish()


def resource_names(inp: PlannerInput) -> set[str]:
    """Every resource named anywhere in the snapshot (CPU always)."""
    names: set[str] = {"CPU"}
    for g in inp.groups:
        names.update(g.resources)
    for n in inp.nodes:
        names.update(n.total)
        names.update(n.available)
    d = inp.demand
    for b in d.bundles:
        names.update(b.resources)
    for pg in d.placement_groups:
        for bundle in pg.bundles:
            names.update(bundle)
    for rr in d.request_resources:
        names.update(rr)
    return names


@dataclass(frozen=True, slots=True)
class _Launch:
    group: str
    replicas: int
    cause: Cause
    fallback: Mapping[str, float] | None = None
    """The unasked special resources, when a special group takes plain work."""


@dataclass(frozen=True, slots=True)
class _Mark:
    ledger: Checkpoint
    tallies: tuple[int, ...]
    launches: int
    placements: int


def _is_busy(node: NodeView) -> bool:
    if node.idle_s <= 0:
        return True
    return any(
        node.available.get(k, 0.0) < v - EPS
        for k, v in node.total.items()
        if k != "object_store_memory"
    )


def _preference(node: NodeView) -> tuple[int, float, str]:
    """Busy running nodes first, then idle ones from the most recently idle, then pending."""
    if node.status == "pending":
        return (2, 0.0, node.name)
    if _is_busy(node):
        return (0, 0.0, node.name)
    return (1, node.idle_s, node.name)


class _Round:
    def __init__(self, inp: PlannerInput) -> None:
        self.inp = inp
        self.index = ResourceIndex(resource_names(inp))
        self.tallies = {g.name: GroupTally(g) for g in inp.groups}
        self._count_existing()
        self.table = GroupTable(self.index, list(self.tallies.values()))
        self.nodes = sorted(inp.nodes, key=_preference)
        self.ledger = Ledger(self.index, len(self.nodes) + 64)
        for node in self.nodes:
            total = self.index.vector(node.total)
            kind = RUNNING if node.status == "running" else PENDING
            free = self.index.vector(node.available) if kind == RUNNING else total
            self.ledger.add_row(node.name, node.group, kind, free, total)
        self.launches: list[_Launch] = []
        self.placements: list[Placement] = []
        self.unmet: list[UnmetDemand] = []
        self._seq: dict[str, int] = {}

    # -- setup --------------------------------------------------------------------------------
    def _count_existing(self) -> None:
        by_group: dict[str, list[NodeView]] = defaultdict(list)
        for node in self.inp.nodes:
            if node.group in self.tallies:
                by_group[node.group].append(node)
        for name, nodes in by_group.items():
            tally = self.tallies[name]
            tally.running_nodes = sum(1 for n in nodes if n.status == "running")
            tally.pending_nodes = len(nodes) - tally.running_nodes
            tally.existing = count_replicas(nodes, tally.hosts)

    # -- launching ----------------------------------------------------------------------------
    def _open(
        self,
        tally: GroupTally,
        replicas: int,
        cause: Cause,
        fallback: Mapping[str, float] | None = None,
    ) -> list[int]:
        """Add ``replicas`` new replicas of ``tally``'s group to the ledger."""
        vec = self.index.vector(tally.config.resources)
        rows = []
        for _ in range(replicas * tally.hosts):
            name = f"new:{tally.config.name}:{self._new_seq(tally)}"
            rows.append(self.ledger.add_row(name, tally.config.name, NEW, vec.copy(), vec.copy()))
        tally.new += replicas
        self.launches.append(_Launch(tally.config.name, replicas, cause, fallback))
        return rows

    def _new_seq(self, tally: GroupTally) -> int:
        seq = self._seq.get(tally.config.name, 0)
        self._seq[tally.config.name] = seq + 1
        return seq

    def launch_min_floor(self) -> None:
        for tally in self.tallies.values():
            floor = tally.config.min_replicas
            missing = floor - tally.existing
            if missing > 0 and tally.config.max_replicas > 0:
                missing = min(missing, tally.config.max_replicas - tally.existing)
                self._open(tally, missing, Cause("min", floor=floor))

    def _launch_for(
        self, shape: Shape, count: int, cause: Cause
    ) -> tuple[list[int], list[int], set[Limit]]:
        """Launch nodes for ``count`` copies that fit nowhere yet.

        Returns the new rows, how many copies each new row is meant to take, and the limits
        that held back the rest.
        """
        rows: list[int] = []
        takes: list[int] = []
        limits: set[Limit] = set()
        for tally, per_node in self.table.ranked(shape, count):
            if count <= 0:
                break
            room, limit = tally.headroom()
            wanted = math.ceil(math.ceil(count / per_node) / tally.hosts)
            if room < wanted:
                limits.add((tally.config.name, limit))
            replicas = min(room, wanted)
            if replicas <= 0:
                continue
            new_rows = self._open(tally, replicas, cause)
            for row in new_rows:
                take = min(per_node, count)
                if take <= 0:
                    break
                rows.append(row)
                takes.append(take)
                count -= take
        return rows, takes, limits

    # -- placing ------------------------------------------------------------------------------
    def _place(
        self,
        shape: Shape,
        count: int,
        cause: Cause,
        on_room: bool = False,
        exclude: set[int] | None = None,
    ) -> tuple[list[tuple[int, int]], set[Limit]]:
        """Place up to ``count`` copies: existing capacity first, then new nodes."""
        placed, count = self._place_existing(shape, count, on_room, exclude)
        if count == 0 or (exclude is not None and placed):
            return placed, set()
        more, limits = self._place_new(shape, count, cause, on_room, exclude)
        return placed + more, limits

    def _place_existing(
        self, shape: Shape, count: int, on_room: bool, exclude: set[int] | None = None
    ) -> tuple[list[tuple[int, int]], int]:
        """First-fit into rows already in the ledger; returns placements and the remainder."""
        placed: list[tuple[int, int]] = []
        for row, fit in self.ledger.fit_rows(shape, count, on_room, exclude):
            take = min(fit, count)
            self.ledger.take(row, shape, take, on_room)
            placed.append((row, take))
            count -= take
            if count == 0 or exclude is not None:
                break
        return placed, count

    def _place_new(
        self,
        shape: Shape,
        count: int,
        cause: Cause,
        on_room: bool,
        exclude: set[int] | None,
    ) -> tuple[list[tuple[int, int]], set[Limit]]:
        """Launch nodes for ``count`` copies and place them there."""
        placed: list[tuple[int, int]] = []
        rows, takes, limits = self._launch_for(shape, count, cause)
        for row, take in zip(rows, takes, strict=True):
            if exclude is not None and row in exclude:
                continue
            self.ledger.take(row, shape, take, on_room)
            placed.append((row, take))
            if exclude is not None:
                break
        return placed, limits

    def _checkpoint(self) -> _Mark:
        return _Mark(
            self.ledger.checkpoint(),
            tuple(t.new for t in self.tallies.values()),
            len(self.launches),
            len(self.placements),
        )

    def _rollback(self, mark: _Mark) -> None:
        self.ledger.rollback(mark.ledger)
        for tally, new in zip(self.tallies.values(), mark.tallies, strict=True):
            tally.new = new
        del self.launches[mark.launches :]
        del self.placements[mark.placements :]

    def place_request_resources(self) -> None:
        by_shape: dict[tuple[tuple[str, float], ...], list[int]] = defaultdict(list)
        for i, bundle in enumerate(self.inp.demand.request_resources):
            if clean(bundle):
                by_shape[tuple(sorted(clean(bundle).items()))].append(i)
        for key in sorted(by_shape, key=lambda k: sort_key(dict(k))):
            resources = dict(key)
            indices = by_shape[key]
            n = len(indices)
            cause = Cause("request_resources", n, resources)
            placed = self._place_many(resources, n, cause, on_room=True)
            self._record(DemandKind.REQUEST_RESOURCES, indices, resources, placed)

    def place_bundles(self) -> None:
        order = sorted(
            range(len(self.inp.demand.bundles)),
            key=lambda i: sort_key(self.inp.demand.bundles[i].resources),
        )
        for i in order:
            bundle: BundleDemand = self.inp.demand.bundles[i]
            resources = clean(bundle.resources)
            if bundle.count <= 0 or not resources:
                continue
            cause = Cause("task", bundle.count, resources)
            placed = self._place_many(resources, bundle.count, cause)
            self._record(DemandKind.TASK, [i] * bundle.count, resources, placed)

    def _place_many(
        self,
        resources: Mapping[str, float],
        count: int,
        cause: Cause,
        on_room: bool = False,
    ) -> tuple[list[tuple[int, int]], Reason | None, bool]:
        """Place ``count`` copies; returns placements, why the rest is unmet, infeasible?"""
        shape = prepare(self.index, resources)
        placed, remaining = self._place_existing(shape, count, on_room)
        if remaining == 0:
            return placed, None, False
        if not placed:  # a shape that fits some node's free capacity is feasible
            why = self._infeasible(shape, resources)
            if why is not None:
                return [], why, True
        more, limits = self._place_new(shape, remaining, cause, on_room, None)
        placed += more
        done = sum(t for _, t in placed)
        if done < count:
            return placed, self._held_back(limits, resources, count - done), False
        return placed, None, False

    def _record(
        self,
        kind: DemandKind,
        indices: Sequence[int],
        resources: Mapping[str, float],
        outcome: tuple[list[tuple[int, int]], Reason | None, bool],
    ) -> None:
        placed, why, infeasible = outcome
        if kind is DemandKind.TASK:
            for row, take in placed:
                self.placements.append(Placement(kind, indices[0], self.ledger.names[row], take))
            done = sum(t for _, t in placed)
        else:
            it = iter(indices)
            done = 0
            for row, take in placed:
                for _ in range(take):
                    self.placements.append(Placement(kind, next(it), self.ledger.names[row]))
                    done += 1
        missing = len(indices) - done
        if missing > 0:
            assert why is not None, "unplaced demand without a reason"
            self.unmet.append(
                UnmetDemand(
                    kind,
                    indices[done] if kind is not DemandKind.TASK else indices[0],
                    dict(resources),
                    missing,
                    why,
                    infeasible,
                )
            )

    # -- placement groups ---------------------------------------------------------------------
    def place_placement_groups(self) -> None:
        pgs = self.inp.demand.placement_groups
        order = sorted(
            range(len(pgs)),
            key=lambda j: (
                pgs[j].strategy is not Strategy.STRICT_SPREAD,
                sort_key(add(pgs[j].bundles)),
            ),
        )
        for j in order:
            self._place_gang(j, pgs[j])

    def _place_gang(self, j: int, pg: PlacementGroupDemand) -> None:
        bundles = [clean(b) for b in pg.bundles]
        combined = add(bundles)
        if not bundles:
            return
        mark = self._checkpoint()
        strategy = pg.strategy
        packed = strategy is Strategy.STRICT_PACK or (
            strategy is Strategy.PACK
            and self._infeasible(prepare(self.index, combined), combined) is None
        )
        cause = Cause("placement_group", 1, combined, strategy.value, tuple(bundles))

        if packed:
            why, infeasible = self._gang_packed(j, bundles, combined, cause)
        else:
            why, infeasible = self._gang_spread(j, bundles, cause, strategy)
        if why is None:
            return
        self._rollback(mark)
        self.unmet.append(
            UnmetDemand(DemandKind.PLACEMENT_GROUP, j, combined, 1, why, infeasible, strategy)
        )

    def _gang_packed(
        self, j: int, bundles: list[dict[str, float]], combined: dict[str, float], cause: Cause
    ) -> tuple[Reason | None, bool]:
        shape = prepare(self.index, combined)
        why = self._infeasible(shape, combined, Strategy.STRICT_PACK.value)
        if why is not None:
            return why, True
        placed, limits = self._place(shape, 1, cause)
        if not placed:
            return self._held_back(limits, combined, 1), False
        node = self.ledger.names[placed[0][0]]
        for k in range(len(bundles)):
            self.placements.append(Placement(DemandKind.PLACEMENT_GROUP, j, node, 1, k))
        return None, False

    def _gang_spread(
        self, j: int, bundles: list[dict[str, float]], cause: Cause, strategy: Strategy
    ) -> tuple[Reason | None, bool]:
        strict = strategy is Strategy.STRICT_SPREAD
        used: set[int] = set()
        order = sorted(range(len(bundles)), key=lambda k: sort_key(bundles[k]))
        for k in order:
            shape = prepare(self.index, bundles[k])
            why = self._infeasible(shape, bundles[k])
            if why is not None:
                return why, True
            placed, limits = self._place(shape, 1, cause, exclude=used if strict else None)
            if not placed:
                impossible = self._spread_impossible(bundles) if strict else None
                if impossible is not None:
                    return impossible, True
                return self._held_back(limits, bundles[k], 1), False
            row = placed[0][0]
            used.add(row)
            self.placements.append(
                Placement(DemandKind.PLACEMENT_GROUP, j, self.ledger.names[row], 1, k)
            )
        return None, False

    def _spread_impossible(self, bundles: Sequence[Mapping[str, float]]) -> Reason | None:
        """Why a STRICT_SPREAD gang can never get enough distinct nodes, if it cannot."""
        hosts = 0
        for node in self.nodes:
            if any(fits_count(node.total, b) for b in bundles):
                hosts += 1
        for tally in self.tallies.values():
            if any(fits_count(tally.config.resources, b) for b in bundles):
                cap = tally.config.max_replicas * tally.hosts
                hosts += max(0, cap - tally.running_nodes - tally.pending_nodes)
        if hosts >= len(bundles):
            return None
        return Reason(ReasonCode.SPREAD_TOO_WIDE, {"bundles": len(bundles), "hosts": hosts})

    # -- why not ------------------------------------------------------------------------------
    def _infeasible(
        self, shape: Shape, resources: Mapping[str, float], gang: str | None = None
    ) -> Reason | None:
        """Why no group and no existing node can ever hold ``resources``, or None."""
        if (self.table.per_node(shape)[self.table.usable] >= 1).any():
            return None
        if any(fits_count(n.total, resources) for n in self.nodes):
            return None
        sources = [t.config.resources for t in self.tallies.values() if t.config.max_replicas > 0]
        sources += [n.total for n in self.nodes]
        return infeasible(resources, sources, gang)

    def _held_back(self, limits: set[Limit], resources: Mapping[str, float], count: int) -> Reason:
        reasons = [self.tallies[g].limit_reason(kind) for g, kind in sorted(limits)]
        return held_back(reasons, resources, count)

    # -- result -------------------------------------------------------------------------------
    def finish(self) -> Plan:
        deletions, keep_notes = choose_deletions(self.nodes, self.tallies, self.ledger, _is_busy)
        deleted_replicas: dict[str, int] = defaultdict(int)
        for d in deletions:
            deleted_replicas[d.group] += d.replicas
        launches: dict[str, list[_Launch]] = defaultdict(list)
        for launch in self.launches:
            launches[launch.group].append(launch)
        held = self._held_by_group()
        groups: dict[str, GroupDecision] = {}
        for name, tally in self.tallies.items():
            replicas = tally.existing + tally.new - deleted_replicas[name]
            replicas = min(replicas, tally.config.max_replicas)
            reasons = launch_reasons(
                name, ((x.cause, x.replicas, x.fallback) for x in launches.get(name, ()))
            )
            reasons += [d.reason for d in deletions if d.group == name]
            reasons += keep_notes.get(name, [])
            reasons += held.get(name, [])[:MAX_EXAMPLES]
            if not reasons:
                params = {"group": name, "replicas": tally.existing}
                reasons.append(Reason(ReasonCode.NO_CHANGE, params))
            groups[name] = GroupDecision(
                name, tally.existing, replicas, tally.new, deleted_replicas[name], tuple(reasons)
            )
        protected = tuple(
            self.ledger.names[r]
            for r in range(self.ledger.n)
            if self.ledger.kinds[r] != NEW and self.ledger.uses[r] > 0
        )
        return Plan(
            groups=groups,
            delete=tuple(Deletion(n, d.group, d.reason) for d in deletions for n in d.nodes),
            unmet=tuple(self.unmet),
            placements=tuple(self.placements),
            protected=protected,
        )

    def _held_by_group(self) -> dict[str, list[Reason]]:
        """Each group's HOLD lines: held-back demand one of whose limits is that group's."""
        out: dict[str, list[Reason]] = defaultdict(list)
        for u in self.unmet:
            if u.infeasible or u.reason.code is not ReasonCode.HELD_BACK:
                continue
            for limit in u.reason.params["limits"]:
                group = limit["params"]["group"]
                if len(out[group]) < MAX_EXAMPLES:
                    params = {**u.reason.params, "group": group, "count": u.count}
                    out[group].append(Reason(ReasonCode.HOLD, params))
        return out

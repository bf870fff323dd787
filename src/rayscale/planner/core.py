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

import numpy as np
import numpy.typing as npt

from rayscale.planner.balance import best_load, strands
from rayscale.planner.capacity import (
    NEW,
    PENDING,
    RUNNING,
    Checkpoint,
    Ledger,
    Shape,
    prepare,
    prepare_vector,
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
from rayscale.planner.shapes import (
    EPS,
    ResourceIndex,
    add,
    clean,
    fits_count,
    is_special,
    sort_key,
)
from rayscale.planner.shrink import shrink

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


@dataclass(slots=True)
class _NewRow:
    """A node this round launches: its ledger row, what for, and from which group."""

    row: int
    cause: Cause
    group: int
    """Index into the group table; changes when the node is shrunk."""
    fallback: bool
    """A group with an unasked special resource, taken because plain groups were full."""
    first_of_replica: bool


_Placed = tuple[DemandKind, int, int, int, int]
"""(kind, index, ledger row, count, bundle): a Placement before new nodes get their names."""


@dataclass(frozen=True, slots=True)
class _Mark:
    ledger: Checkpoint
    new_rows: int
    placements: int


def _bundle_order(
    matrix: npt.NDArray[np.float64], index: ResourceIndex, scale: npt.NDArray[np.float64]
) -> list[int]:
    """Rows of ``matrix`` (one demand shape each), biggest first: special resources first
    (more kinds, then more of them); then the largest size, the sum of the shape's shares of
    the groups' largest capacity per resource (memory counts as much as CPU, so memory-bound
    work is not packed after CPU-bound work of the same weight and stranded); then shapes
    asking for more kinds of resource, so the flexible CPU-only ones come last and fill what
    the others leave; then CPU, memory, and the input order."""
    n = matrix.shape[0]
    if n == 0:
        return []
    special = matrix[:, index.special_mask]
    zero = np.zeros(n)
    cpu = matrix[:, index.column["CPU"]] if "CPU" in index.column else zero
    mem = matrix[:, index.column["memory"]] if "memory" in index.column else zero
    keys = (
        np.arange(n),
        -mem,
        -cpu,
        -(matrix > 0).sum(axis=1),
        -np.round((matrix / scale).sum(axis=1), 9),
        -special.sum(axis=1),
        -(special > 0).sum(axis=1),
    )
    order: list[int] = np.lexsort(keys).tolist()
    return order


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
        totals = self.index.matrix([n.total for n in self.nodes])
        free = self.index.matrix(
            [n.available if n.status == "running" else n.total for n in self.nodes]
        )
        kinds = [RUNNING if n.status == "running" else PENDING for n in self.nodes]
        self.ledger.add_block(
            [n.name for n in self.nodes], [n.group for n in self.nodes], kinds, free, totals
        )
        self.new_rows: list[_NewRow] = []
        self.placements: list[_Placed] = []
        self.unmet: list[UnmetDemand] = []
        self.group_index = {t.config.name: i for i, t in enumerate(self.table.tallies)}
        self._rest: npt.NDArray[np.float64] | None = None
        """While task shapes are placed: the demand placed after the current one."""

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
        self, tally: GroupTally, replicas: int, cause: Cause, fallback: bool = False
    ) -> list[int]:
        """Add ``replicas`` new replicas of ``tally``'s group to the ledger (named at the end,
        once each node has its final group)."""
        name = tally.config.name
        group = self.group_index[name]
        rows = self.ledger.add_rows(replicas * tally.hosts, name, NEW, self.table.caps[group])
        hosts = tally.hosts
        self.new_rows += [
            _NewRow(row, cause, group, fallback, k % hosts == 0) for k, row in enumerate(rows)
        ]
        tally.new += replicas
        return list(rows)

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
        candidates = self.table.openable(shape, count)
        if (
            self._rest is not None
            and candidates
            and strands(self.table, shape, count, self._rest, candidates[0])
        ):
            chosen = best_load(self.table, shape, count, self._left_over_demand(), candidates)
            if chosen is not None:
                pos, load = chosen
                tally, _, fallback = candidates[pos]
                # Only when the group has room for it all: a limit binding mid-way would make
                # the lighter load open more nodes than a full one.
                if tally.headroom()[0] >= math.ceil(math.ceil(count / load) / tally.hosts):
                    rest = [c for c in candidates if c[0] is not tally]
                    candidates = [(tally, load, fallback), *rest]
        for tally, per_node, fallback in candidates:
            if count <= 0:
                break
            room, limit = tally.headroom()
            wanted = math.ceil(math.ceil(count / per_node) / tally.hosts)
            if room < wanted and self._shrink_nodes(tally):
                room, limit = tally.headroom()
            if room < wanted:
                limits.add((tally.config.name, limit))
            replicas = min(room, wanted)
            if replicas <= 0:
                continue
            new_rows = self._open(tally, replicas, cause, fallback)
            for row in new_rows:
                take = min(per_node, count)
                if take <= 0:
                    break
                rows.append(row)
                takes.append(take)
                count -= take
        return rows, takes, limits

    def _left_over_demand(self) -> npt.NDArray[np.float64]:
        """The demand still to come (``self._rest``), less the share that the free capacity
        already in the ledger holds in the same mix: what a new node's leftover could get."""
        rest = self._rest
        assert rest is not None
        asked = (rest > 0).nonzero()[0]
        if asked.size == 0:
            return rest
        free = self.ledger.free[: self.ledger.n][:, asked]
        held = float((free / rest[asked]).min(axis=1).sum())
        return rest * max(0.0, 1.0 - held)

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
            placed.append((row, take))
            count -= take
            if count == 0 or exclude is not None:
                break
        if len(placed) == 1:
            self.ledger.take(placed[0][0], shape, placed[0][1], on_room)
        elif placed:
            rows, takes = zip(*placed, strict=True)
            self.ledger.take_many(rows, shape, takes, on_room)
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
        rows, takes, limits = self._launch_for(shape, count, cause)
        if exclude is None:
            if rows:
                self.ledger.take_many(rows, shape, takes, on_room)
            return list(zip(rows, takes, strict=True)), limits
        placed: list[tuple[int, int]] = []
        for row, take in zip(rows, takes, strict=True):
            if row in exclude:
                continue
            self.ledger.take(row, shape, take, on_room)
            placed.append((row, take))
            break
        return placed, limits

    def _checkpoint(self) -> _Mark:
        return _Mark(
            self.ledger.checkpoint(),
            len(self.new_rows),
            len(self.placements),
        )

    def _rollback(self, mark: _Mark) -> None:
        self.ledger.rollback(mark.ledger)
        del self.new_rows[mark.new_rows :]
        del self.placements[mark.placements :]
        # A node shrunk since the mark keeps its smaller group, so count from the rows.
        for tally in self.tallies.values():
            tally.new = 0
        for nr in self.new_rows:
            if nr.first_of_replica:
                self.table.tallies[nr.group].new += 1

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
        bundles = self.inp.demand.bundles
        matrix = self.index.matrix([b.resources for b in bundles])
        order = _bundle_order(matrix, self.index, self.table.scale)
        counts = np.array([max(0, b.count) for b in bundles], dtype=np.float64)
        weighted = matrix[order] * counts[order][:, None] if order else matrix
        after = weighted[::-1].cumsum(axis=0)[::-1] - weighted  # demand placed later
        for pos, i in enumerate(order):
            self._rest = after[pos]
            bundle: BundleDemand = bundles[i]
            shape = prepare_vector(self.index, matrix[i])
            if bundle.count <= 0 or not shape.col_list:
                continue  # asks for nothing: nothing to place
            cause = Cause("task", bundle.count, bundle.resources)
            placed, why, infeasible = self._place_many(
                bundle.resources, bundle.count, cause, shape=shape
            )
            done = 0
            for row, take in placed:
                self.placements.append((DemandKind.TASK, i, row, take, 0))
                done += take
            if done < bundle.count:
                assert why is not None, "unplaced demand without a reason"
                resources = clean(bundle.resources)
                missing = bundle.count - done
                self.unmet.append(
                    UnmetDemand(DemandKind.TASK, i, resources, missing, why, infeasible)
                )
        self._rest = None

    def _place_many(
        self,
        resources: Mapping[str, float],
        count: int,
        cause: Cause,
        on_room: bool = False,
        shape: Shape | None = None,
    ) -> tuple[list[tuple[int, int]], Reason | None, bool]:
        """Place ``count`` copies; returns placements, why the rest is unmet, infeasible?"""
        shape = shape or prepare(self.index, resources)
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
                self.placements.append((kind, indices[0], row, take, 0))
            done = sum(t for _, t in placed)
        else:
            it = iter(indices)
            done = 0
            for row, take in placed:
                for _ in range(take):
                    self.placements.append((kind, next(it), row, 1, 0))
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

        why: Reason | None = None
        infeasible = False
        if packed:
            why, infeasible = self._gang_packed(j, bundles, combined, cause)
        if why is not None and strategy is Strategy.PACK:
            # PACK is best effort: bundles that fit no one node go wherever they fit.
            self._rollback(mark)
        if not packed or (why is not None and strategy is Strategy.PACK):
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
        row = placed[0][0]
        for k in range(len(bundles)):
            self.placements.append((DemandKind.PLACEMENT_GROUP, j, row, 1, k))
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
            self.placements.append((DemandKind.PLACEMENT_GROUP, j, row, 1, k))
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
        launches = self._shrink_and_name()
        held = self._held_by_group()
        groups: dict[str, GroupDecision] = {}
        for name, tally in self.tallies.items():
            replicas = tally.existing + tally.new - deleted_replicas[name]
            replicas = min(replicas, tally.config.max_replicas)
            reasons = launch_reasons(name, launches.get(name, ()))
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
            delete=tuple(
                Deletion(n, d.group, d.reason, d.replica) for d in deletions for n in d.nodes
            ),
            unmet=tuple(self.unmet),
            placements=tuple(
                Placement(kind, index, self.ledger.names[row], count, bundle)
                for kind, index, row, count, bundle in self.placements
            ),
            protected=protected,
        )

    def _shrink_nodes(self, tally: GroupTally | None = None) -> bool:
        """Shrink this round's new nodes (of ``tally``'s group only, when given) to their
        smallest suitable group; True when one moved. Run at the end, and early when a
        group's limit binds: a node opened large may free the room another shape needs."""
        only = None if tally is None else self.group_index[tally.config.name]
        movable = [
            nr
            for nr in self.new_rows
            if nr.cause.kind != "min"
            and self.table.single[nr.group]
            and (only is None or nr.group == only)
        ]
        if not movable:
            return False
        groups = [nr.group for nr in movable]
        shrink(self.table, self.ledger, [nr.row for nr in movable], groups)
        moved = False
        for nr, g in zip(movable, groups, strict=True):
            moved = moved or g != nr.group
            nr.group = g
        return moved

    def _shrink_and_name(
        self,
    ) -> dict[str, list[tuple[Cause, int, Mapping[str, float] | None]]]:
        """Shrink the new nodes, name them ``new:<group>:<i>``, and list each group's launches
        as (cause, replicas, unasked special resources of a fallback)."""
        self._shrink_nodes()
        seq: dict[str, int] = defaultdict(int)
        out: dict[str, list[tuple[Cause, int, Mapping[str, float] | None]]] = defaultdict(list)
        for nr in self.new_rows:
            tally = self.table.tallies[nr.group]
            name = tally.config.name
            self.ledger.names[nr.row] = f"new:{name}:{seq[name]}"
            seq[name] += 1
            if not nr.first_of_replica:
                continue
            extras = None
            if nr.fallback:
                asked = nr.cause.resources
                extras = {
                    k: float(v)
                    for k, v in tally.config.resources.items()
                    if v and is_special(k) and not asked.get(k)
                }
            out[name].append((nr.cause, 1, extras))
        return out

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

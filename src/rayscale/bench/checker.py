"""One independent plan checker, shared by the property tests and ``rayscale bench planner``.

Written without the planner's code, on plain dictionaries and its own packing, so that it can
disagree with the planner. Two questions:

- :func:`check_plan`: is a rayscale :class:`Plan` sound? min/max kept, no busy node or head
  deleted, its placement certificate replays without over-commit, every demand placed or
  reported (never both), held-back demand only when every suitable group is at a limit, and
  no launched node could move to a smaller suitable group and still hold what was placed on
  it. A violation raises :class:`PlanViolation` (an AssertionError).
- :func:`check`: does any scheduler's launch set (rayscale's or Ray's), added to the cluster,
  hold all feasible demand? It packs first-fit decreasing (and two other heuristics) and,
  for rayscale, falls back to replaying the plan's own certificate
  (:func:`verify_certificate`). A "yes" is a certificate; a "no" means no packing was found.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rayscale.planner.core import resource_names
from rayscale.planner.model import (
    HEAD_GROUP,
    DemandKind,
    GroupConfig,
    NodeView,
    Placement,
    Plan,
    PlannerInput,
    Resources,
    Strategy,
)
from rayscale.planner.reasons import ReasonCode
from rayscale.planner.shapes import fmt as format_shape

_EPS = 1e-9
_GIB = float(2**30)


class PlanViolation(AssertionError):
    """A plan breaks an invariant (the message says which and where)."""


def _require(ok: object, message: str) -> None:
    if not ok:
        raise PlanViolation(message)


# ---------------------------------------------------------------------------------------------
# Does a launch set hold all feasible demand?


@dataclass(frozen=True)
class CheckResult:
    """Whether a launch set, added to the cluster, holds all feasible demand."""

    satisfied: bool
    method: str
    """Which packing found room for everything ("" when none did)."""
    unplaced: tuple[str, ...]
    excluded: tuple[str, ...]
    nodes: int
    cpus: float
    gpus: float
    memory_gib: float


@dataclass
class _Item:
    vec: np.ndarray
    count: int
    label: str


class _Packer:
    """Places resource vectors on a capacity matrix (rows = nodes, columns = resources).

    Rows are reordered once: nodes with fewer scarce resource kinds (anything but CPU and
    memory, e.g. GPU) come first, so first-fit puts CPU work on CPU nodes before GPU nodes.
    """

    def __init__(self, cap: np.ndarray, dims: Sequence[str]) -> None:
        scarce = [i for i, d in enumerate(dims) if d not in ("CPU", "memory")]
        self.scarce = np.array(scarce, dtype=int)
        kinds = (cap[:, self.scarce] > 0).sum(axis=1) if scarce else np.zeros(len(cap))
        self.cap = cap[np.argsort(kinds, kind="stable")].copy()
        self._has = self.cap[:, self.scarce] > 0 if scarce else np.zeros((len(cap), 0), bool)

    def place(self, vec: np.ndarray, count: int) -> int:
        """First fit: up to ``count`` copies, filling nodes in row order; returns how many."""
        need = np.flatnonzero(vec > 0)
        if len(need) == 0:
            return count
        if len(self.cap) == 0:
            return 0
        return self._first_fit(vec, need, count, np.arange(len(self.cap)))

    def place_complement(self, vec: np.ndarray, count: int, scale: np.ndarray) -> int:
        """First fit over nodes ordered by how little they have left of what the item does
        NOT use: CPU-only work goes first to nodes whose memory is gone, where nothing else
        could use the CPUs."""
        need = np.flatnonzero(vec > 0)
        if len(need) == 0:
            return count
        if len(self.cap) == 0:
            return 0
        unused = np.flatnonzero(vec <= 0)
        spare = (self.cap[:, unused] / scale[unused]).sum(axis=1)
        return self._first_fit(vec, need, count, np.argsort(spare, kind="stable"))

    def _first_fit(self, vec: np.ndarray, need: np.ndarray, count: int, order: np.ndarray) -> int:
        sub = self.cap[order][:, need]
        fit = np.floor(sub / vec[need] + _EPS).min(axis=1).clip(min=0)
        before = np.cumsum(fit) - fit
        take = np.clip(count - before, 0, fit)
        hit = np.flatnonzero(take)
        self.cap[np.ix_(order[hit], need)] -= np.outer(take[hit], vec[need])
        return int(take.sum())

    def place_aligned(self, vec: np.ndarray, count: int, scale: np.ndarray) -> int:
        """Place copies one by one on the fitting node whose free capacity best lines up with
        the item (largest dot product of scaled vectors; the "dot product" heuristic for
        vector bin packing). Spreads memory-heavy work instead of stranding CPUs. Nodes with
        a scarce resource the item does not ask for are used only when nothing else fits."""
        need = np.flatnonzero(vec > 0)
        if len(need) == 0:
            return count
        weights = (vec / scale)[need]
        unused = [k for k, i in enumerate(self.scarce) if vec[i] <= 0]
        penalized = self._has[:, unused].any(axis=1)
        placed = 0
        for _ in range(count):
            sub = self.cap[:, need]
            ok = np.all(sub + _EPS >= vec[need], axis=1)
            if not ok.any():
                break
            preferred = ok & ~penalized
            allowed = preferred if preferred.any() else ok
            score = np.where(allowed, (sub / scale[need]) @ weights, -np.inf)
            best = int(np.argmax(score))
            self.cap[best, need] -= vec[need]
            placed += 1
        return placed

    def place_spread(self, vecs: Sequence[np.ndarray]) -> bool:
        """Each vector on its own node (STRICT_SPREAD), first fit; all or nothing."""
        trial = self.cap.copy()
        used = np.zeros(len(trial), dtype=bool)
        for vec in vecs:
            ok = np.flatnonzero(np.all(trial + _EPS >= vec, axis=1) & ~used)
            if len(ok) == 0:
                return False
            used[ok[0]] = True
            trial[ok[0]] -= vec
        self.cap = trial
        return True


def _group_resources(inp: PlannerInput) -> dict[str, Resources]:
    out: dict[str, Resources] = {g.name: g.resources for g in inp.groups}
    for n in inp.nodes:
        if n.is_head:
            out.setdefault(HEAD_GROUP, n.total)
    return out


def _new_nodes(inp: PlannerInput, launch: Mapping[str, int]) -> list[Resources]:
    types = _group_resources(inp)
    unknown = sorted(set(launch) - set(types))
    if unknown:
        raise ValueError(f"launch names unknown node types {unknown}")
    return [types[t] for t, n in sorted(launch.items()) for _ in range(max(0, n))]


def _matrix(rows: Sequence[Resources], dims: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(rows), len(dims)))
    index = {d: i for i, d in enumerate(dims)}
    for r, row in enumerate(rows):
        for k, v in row.items():
            out[r, index[k]] = v
    return out


class _Feasibility:
    """Can a shape ever be held: by some group (max > 0) or some existing node's total?"""

    def __init__(self, inp: PlannerInput, dims: Sequence[str]) -> None:
        self.dims = dims
        hosts = [g.resources for g in inp.groups if g.max_replicas > 0]
        self.caps = _matrix([*hosts, *(n.total for n in inp.nodes)], dims)
        self.host_limits = [
            g.max_replicas * g.num_of_hosts for g in inp.groups if g.max_replicas > 0
        ] + [1] * len(inp.nodes)

    def fits(self, vec: np.ndarray) -> bool:
        return bool(np.any(np.all(self.caps + _EPS >= vec, axis=1)))

    def spread_fits(self, vecs: Sequence[np.ndarray]) -> bool:
        if not all(self.fits(v) for v in vecs):
            return False
        hosts = sum(
            lim
            for cap, lim in zip(self.caps, self.host_limits, strict=True)
            if any(np.all(cap + _EPS >= v) for v in vecs)
        )
        return hosts >= len(vecs)


def _sort_key(
    vec: np.ndarray, scale: np.ndarray, scarce: np.ndarray, kinds_first: bool = False
) -> tuple[Any, ...]:
    """Decreasing: scarce-resource bundles first, then by dominant share. ``kinds_first``
    puts bundles asking for more resource kinds first, so the flexible ones (CPU only) come
    last and fill what the others strand."""
    share = float(np.max(vec / scale)) if len(vec) else 0.0
    uses_scarce = bool(len(scarce) and np.any(vec[scarce] > 0))
    kinds = int(np.count_nonzero(vec)) if kinds_first else 0
    return (not uses_scarce, -kinds, -share, tuple(-vec))


@dataclass
class _Demand:
    """The checker's view of the demand: what to pack, and what was left out as infeasible."""

    dims: list[str]
    items: list[_Item] = field(default_factory=list)
    spreads: list[tuple[str, list[np.ndarray]]] = field(default_factory=list)
    requests: list[_Item] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)


def _demand(inp: PlannerInput, dims: list[str], feas: _Feasibility) -> _Demand:
    out = _Demand(dims)
    d = inp.demand

    def vec(r: Resources) -> np.ndarray:
        row: np.ndarray = _matrix([r], dims)[0]
        return row

    for i, b in enumerate(d.bundles):
        _add(out.items, out.excluded, feas, vec(b.resources), b.count, f"bundles[{i}]")
    for i, pg in enumerate(d.placement_groups):
        label = f"placement_groups[{i}] {pg.name} {pg.strategy.value}"
        vecs = [vec(r) for r in pg.bundles]
        if pg.strategy is Strategy.STRICT_SPREAD:
            if feas.spread_fits(vecs):
                out.spreads.append((label, vecs))
            else:
                out.excluded.append(label)
        elif pg.strategy is Strategy.STRICT_PACK:
            _add(out.items, out.excluded, feas, np.sum(vecs, axis=0), 1, label)
        else:
            for j, v in enumerate(vecs):
                _add(out.items, out.excluded, feas, v, 1, f"{label} bundle {j}")
    for i, r in enumerate(d.request_resources):
        _add(out.requests, out.excluded, feas, vec(r), 1, f"request_resources[{i}]")
    return out


PACKINGS = ("first-fit", "complement-first-fit", "dot-product")


def _pack(
    dem: _Demand, free: _Packer, totals: _Packer, scale: np.ndarray, method: str
) -> list[str]:
    """Pack the demand (decreasing order) with one of :data:`PACKINGS`; returns what did not
    fit."""
    dims = dem.dims
    scarce = free.scarce
    unplaced: list[str] = []
    kinds = method == "complement-first-fit"

    def key(v: np.ndarray) -> tuple[Any, ...]:
        return _sort_key(v, scale, scarce, kinds)

    def put(packer: _Packer, it: _Item) -> int:
        if method == "dot-product":
            return packer.place_aligned(it.vec, it.count, scale)
        if method == "complement-first-fit":
            return packer.place_complement(it.vec, it.count, scale)
        return packer.place(it.vec, it.count)

    for label, vecs in sorted(dem.spreads, key=lambda s: -len(s[1])):
        ordered = sorted(vecs, key=key)
        if not free.place_spread(ordered):
            unplaced.append(label)
    for it in sorted(dem.items, key=lambda it: key(it.vec)):
        placed = put(free, it)
        if placed < it.count:
            unplaced.append(f"{it.label} {_fmt(dims, it.vec)} x{it.count - placed}")
    for it in sorted(dem.requests, key=lambda it: key(it.vec)):
        if put(totals, it) < it.count:
            unplaced.append(f"{it.label} {_fmt(dims, it.vec)}")
    return unplaced


def verify_certificate(
    inp: PlannerInput, launch: Mapping[str, int], placements: Sequence[Placement]
) -> list[str]:
    """Check a planner's own placements (``Plan.placements``) with our code; returns problems.

    Every feasible task bundle, placement-group bundle and request_resources bundle must be
    placed (the infeasible ones, as :func:`check` defines them, may be missing); STRICT_PACK
    bundles on one node, STRICT_SPREAD bundles on distinct nodes; no node over its free
    capacity (tasks and placement groups) or its total (request_resources); new nodes named
    ``new:<group>:<i>``, no more per group than ``launch`` says.
    """
    d = inp.demand
    free: dict[str, dict[str, float]] = {}
    total: dict[str, dict[str, float]] = {}
    for n in inp.nodes:
        free[n.name] = dict(n.available if n.status == "running" else n.total)
        total[n.name] = dict(n.total)
    types = _group_resources(inp)
    problems: list[str] = []
    new_per_group: dict[str, set[str]] = {}
    tasks = [0] * len(d.bundles)
    pg_nodes: dict[int, dict[int, str]] = {}
    rr = [0] * len(d.request_resources)
    for pl in placements:
        if pl.node not in free:
            parts = pl.node.split(":")
            if len(parts) != 3 or parts[0] != "new" or parts[1] not in types:
                problems.append(f"placement on unknown node {pl.node}")
                continue
            free[pl.node] = dict(types[parts[1]])
            total[pl.node] = dict(types[parts[1]])
            new_per_group.setdefault(parts[1], set()).add(pl.node)
        if pl.kind is DemandKind.TASK:
            need, pool = d.bundles[pl.index].resources, free
            tasks[pl.index] += pl.count
        elif pl.kind is DemandKind.PLACEMENT_GROUP:
            need, pool = d.placement_groups[pl.index].bundles[pl.bundle], free
            if pl.bundle in pg_nodes.setdefault(pl.index, {}):
                problems.append(f"placement_groups[{pl.index}] bundle {pl.bundle} placed twice")
            pg_nodes[pl.index][pl.bundle] = pl.node
        else:
            need, pool = d.request_resources[pl.index], total
            rr[pl.index] += pl.count
        for k, v in need.items():
            pool[pl.node][k] = pool[pl.node].get(k, 0.0) - v * pl.count
    for group, names in sorted(new_per_group.items()):
        if len(names) > launch.get(group, 0):
            problems.append(
                f"{len(names)} new {group} nodes placed on, {launch.get(group, 0)} launched"
            )
    for pool_name, pool in (("free", free), ("total", total)):
        for node, left in pool.items():
            over = {k: v for k, v in left.items() if v < -_EPS * max(1.0, abs(v))}
            if over:
                problems.append(f"{node} over its {pool_name} capacity by {over}")
    dims = sorted(resource_names(inp))
    feas = _Feasibility(inp, dims)

    def fits(r: Resources) -> bool:
        return feas.fits(_matrix([r], dims)[0])

    for i, b in enumerate(d.bundles):
        if tasks[i] < b.count and fits(b.resources):
            problems.append(f"bundles[{i}] placed {tasks[i]} of {b.count}")
    for i, pg in enumerate(d.placement_groups):
        got = pg_nodes.get(i, {})
        if len(got) < len(pg.bundles):
            problems.append(
                f"placement_groups[{i}] {pg.name}: {len(got)} of {len(pg.bundles)} bundles placed"
            )
        elif pg.strategy is Strategy.STRICT_PACK and len(set(got.values())) != 1:
            problems.append(f"placement_groups[{i}] STRICT_PACK split over nodes")
        elif pg.strategy is Strategy.STRICT_SPREAD and len(set(got.values())) != len(got):
            problems.append(f"placement_groups[{i}] STRICT_SPREAD shares a node")
    for i, r in enumerate(d.request_resources):
        if rr[i] < 1 and fits(r):
            problems.append(f"request_resources[{i}] not placed")
    return problems


def check(
    inp: PlannerInput, launch: Mapping[str, int], placements: Sequence[Placement] | None = None
) -> CheckResult:
    """Pack all feasible demand into the cluster plus ``launch`` (node type -> new nodes).

    Up to three packings are tried in turn (:data:`PACKINGS`), and the first that fits
    everything is the certificate (``method``): first-fit decreasing (vectorized, fast);
    first-fit with bundles asking for more resource kinds first and nodes ordered per bundle
    by how little they keep of what the bundle does not use (so CPU-only work comes last and
    goes first to memory-exhausted nodes); a dot-product best fit that
    spreads memory-heavy bundles. ``unplaced`` reports the first-fit leftovers. These are
    heuristics, so a tight but valid launch set can fail all three; when the scheduler handed
    over placements (rayscale's ``Plan.placements``), :func:`verify_certificate` then checks
    those instead (``method`` "certificate").
    """
    dims = sorted(resource_names(inp))
    new = _new_nodes(inp, launch)
    free_rows = [n.available if n.status == "running" else n.total for n in inp.nodes]
    free_cap = _matrix([*free_rows, *new], dims)
    total_cap = _matrix([*(n.total for n in inp.nodes), *new], dims)
    feas = _Feasibility(inp, dims)
    scale = np.maximum(np.vstack([total_cap, feas.caps, np.ones((1, len(dims)))]).max(axis=0), _EPS)
    dem = _demand(inp, dims, feas)
    unplaced: list[str] = []
    method = ""
    for method in PACKINGS:
        left = _pack(dem, _Packer(free_cap, dims), _Packer(total_cap, dims), scale, method)
        unplaced = unplaced or left
        if not left:
            unplaced = []
            break
    if unplaced and placements is not None and not verify_certificate(inp, launch, placements):
        method, unplaced = "certificate", []
    return CheckResult(
        satisfied=not unplaced,
        method=method if not unplaced else "",
        unplaced=tuple(unplaced),
        excluded=tuple(dem.excluded),
        nodes=len(new),
        cpus=float(sum(r.get("CPU", 0.0) for r in new)),
        gpus=float(sum(r.get("GPU", 0.0) for r in new)),
        memory_gib=float(sum(r.get("memory", 0.0) for r in new)) / _GIB,
    )


def _add(
    items: list[_Item],
    excluded: list[str],
    feas: _Feasibility,
    v: np.ndarray,
    count: int,
    label: str,
) -> None:
    if count <= 0:
        return
    if feas.fits(v):
        items.append(_Item(v, count, label))
    else:
        excluded.append(f"{label} x{count}")


def _fmt(dims: Sequence[str], v: np.ndarray) -> str:
    return format_shape({d: float(x) for d, x in zip(dims, v, strict=True) if x})


def max_launch(inp: PlannerInput) -> dict[str, int]:
    """Every group at maxReplicas: the largest launch set the groups allow."""
    existing: dict[str, int] = {}
    for n in inp.nodes:
        existing[n.group] = existing.get(n.group, 0) + 1
    return {
        g.name: max(0, g.max_replicas * g.num_of_hosts - existing.get(g.name, 0))
        for g in inp.groups
    }


# ---------------------------------------------------------------------------------------------
# Is a rayscale Plan sound?

TOL = 1e-6
_HELD = (ReasonCode.HELD_BACK, ReasonCode.WAITING_FOR_BUSY_NODES)


def _fits(cap: Mapping[str, float], need: Mapping[str, float]) -> bool:
    return all(cap.get(k, 0.0) + TOL >= v for k, v in need.items() if v > 0)


def _key(resources: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((k, float(v)) for k, v in resources.items() if v))


def _busy(node: NodeView) -> bool:
    if node.idle_s <= 0:
        return True
    return any(
        node.available.get(k, 0.0) + TOL < v
        for k, v in node.total.items()
        if k != "object_store_memory"
    )


def _is_special(name: str) -> bool:
    return name not in ("CPU", "memory", "object_store_memory")


def _specials(resources: Mapping[str, float]) -> set[str]:
    return {k for k, v in resources.items() if v > 0 and _is_special(k)}


def _check_reasons(plan: Plan) -> None:
    """Every reason has JSON-compatible params and renders to text."""
    reasons = [r for d in plan.groups.values() for r in d.reasons]
    reasons += [d.reason for d in plan.delete] + [u.reason for u in plan.unmet]
    for r in reasons:
        _require(json.loads(json.dumps(dict(r.params))) == dict(r.params), f"params of {r}")
        _require(r.text(), f"{r} renders empty")


def check_plan(inp: PlannerInput, plan: Plan) -> None:
    """Raise :class:`PlanViolation` unless ``plan`` is a sound plan for ``inp``."""
    _check_reasons(plan)
    groups: dict[str, GroupConfig] = {g.name: g for g in inp.groups}
    nodes = {n.name: n for n in inp.nodes}

    # 1. Group targets stay within [min, max]; launches/deletions are consistent.
    for name, g in groups.items():
        d = plan.groups[name]
        _require(d.replicas <= g.max_replicas, f"{name}: {d.replicas} > max {g.max_replicas}")
        if g.max_replicas >= g.min_replicas:
            _require(d.replicas >= min(g.min_replicas, g.max_replicas), f"{name} below min")
        _require(d.launch >= 0 and d.delete >= 0, f"{name}: negative launch or delete")
        _require(d.reasons, f"{name}: a decision without a reason")

    # 2. Deletions: never the head, never busy, never pending (unless above max), real nodes.
    deleted = set()
    for dele in plan.delete:
        node = nodes.get(dele.node)
        _require(node is not None, f"deleting unknown node {dele.node}")
        assert node is not None
        _require(node.group != HEAD_GROUP, "deleting the head")
        _require(dele.group == node.group, f"{dele.node}: deletion names the wrong group")
        if node.status == "running":
            _require(not _busy(node), f"deleting busy node {node.name}")
        _require(dele.replica == node.replica, f"{dele.node}: deletion names the wrong replica")
        deleted.add(dele.node)
    # Whole replicas only: every host of a deleted multi-host replica is deleted with it.
    for node in nodes.values():
        if node.replica is None or node.name in deleted:
            continue
        members = [n for n in nodes.values() if (n.group, n.replica) == (node.group, node.replica)]
        _require(
            not any(n.name in deleted for n in members),
            f"replica {node.replica} of {node.group}: {node.name} kept, other hosts deleted",
        )
    by_group_del = Counter(nodes[n].group for n in deleted)
    for name in groups:
        if by_group_del[name]:
            _require(plan.groups[name].delete >= 1, f"{name}: deletions not counted")

    # 3. Capacity after the plan.
    new_nodes: dict[str, str] = {}
    for p in plan.placements:
        if p.node.startswith("new:"):
            _, group, _ = p.node.split(":")
            new_nodes[p.node] = group
    per_group_new = Counter(new_nodes.values())
    for group, count in per_group_new.items():
        hosts = max(1, groups[group].num_of_hosts)
        _require(count <= plan.groups[group].launch * hosts, f"{group}: more new nodes used")

    def fresh(name: str, on_total: bool) -> dict[str, float]:
        if name in new_nodes:
            return dict(groups[new_nodes[name]].resources)
        node = nodes[name]
        _require(name not in deleted, f"demand placed on deleted node {name}")
        if on_total or node.status == "pending":
            return dict(node.total)
        return dict(node.available)

    free: dict[str, dict[str, float]] = {}
    room: dict[str, dict[str, float]] = {}
    demand = inp.demand
    placed: Counter[tuple[DemandKind, int]] = Counter()
    pg_nodes: dict[int, dict[int, str]] = defaultdict(dict)
    for p in plan.placements:
        on_total = p.kind is DemandKind.REQUEST_RESOURCES
        ledger = room if on_total else free
        cap = ledger.setdefault(p.node, fresh(p.node, on_total))
        if p.kind is DemandKind.TASK:
            need = demand.bundles[p.index].resources
        elif p.kind is DemandKind.PLACEMENT_GROUP:
            need = demand.placement_groups[p.index].bundles[p.bundle]
            _require(p.bundle not in pg_nodes[p.index], "bundle placed twice")
            pg_nodes[p.index][p.bundle] = p.node
        else:
            need = demand.request_resources[p.index]
        for k, v in need.items():
            cap[k] = cap.get(k, 0.0) - v * p.count
            _require(cap[k] >= -TOL, f"{p.node} over-committed on {k} by {p}")
        placed[(p.kind, p.index)] += p.count

    # 4. Every demand is either placed or reported, never both, never neither.
    unmet: Counter[tuple[DemandKind, int]] = Counter()
    for u in plan.unmet:
        unmet[(u.kind, u.index)] += u.count
        if u.infeasible and u.kind is not DemandKind.PLACEMENT_GROUP:
            _check_infeasible(inp, u.resources)
        if not u.infeasible:
            _require(u.reason.code in _HELD, f"held back with {u.reason}")
            if u.kind is not DemandKind.PLACEMENT_GROUP:
                _check_held_back(inp, plan, u.resources)
    for i, b in enumerate(demand.bundles):
        key = (DemandKind.TASK, i)
        _require(placed[key] + unmet[key] == b.count, f"bundle {i}: {placed[key]}+{unmet[key]}")
    # request_resources: identical bundles are interchangeable, so count per shape.
    asked: Counter[tuple[tuple[str, float], ...]] = Counter()
    got: Counter[tuple[tuple[str, float], ...]] = Counter()
    for i, bundle in enumerate(demand.request_resources):
        shape = _key(bundle)
        if shape:
            asked[shape] += 1
            got[shape] += placed[(DemandKind.REQUEST_RESOURCES, i)]
    for u in plan.unmet:
        if u.kind is DemandKind.REQUEST_RESOURCES:
            got[_key(u.resources)] += u.count
    _require(asked == got, f"request_resources: asked {asked}, placed or reported {got}")
    for j, pg in enumerate(demand.placement_groups):
        where = pg_nodes.get(j, {})
        key = (DemandKind.PLACEMENT_GROUP, j)
        if unmet[key]:
            _require(not where, f"placement group {j} half placed")
            continue
        _require(len(where) == len(pg.bundles), f"placement group {j} incomplete")
        if pg.strategy is Strategy.STRICT_PACK:
            _require(len(set(where.values())) == 1, f"STRICT_PACK {j} split")
        if pg.strategy is Strategy.STRICT_SPREAD:
            _require(len(set(where.values())) == len(pg.bundles), f"STRICT_SPREAD {j} shares")

    # 5. No launched node could be a smaller suitable group and still hold what it got.
    _check_smallest(inp, plan, new_nodes, free, room)


def _check_infeasible(inp: PlannerInput, resources: Mapping[str, float]) -> None:
    for g in inp.groups:
        if g.max_replicas > 0:
            _require(not _fits(g.resources, resources), f"{resources} fits group {g.name}")
    for n in inp.nodes:
        _require(not _fits(n.total, resources), f"{resources} fits node {n.name}")


def _check_held_back(inp: PlannerInput, plan: Plan, resources: Mapping[str, float]) -> None:
    """Held-back demand: every group that can hold it is at a limit (max, or Conservative):
    plain groups first, and a group with an unasked accelerator as the fallback."""
    fitting = [g for g in inp.groups if g.max_replicas > 0 and _fits(g.resources, resources)]
    if not fitting:
        _require(any(_fits(n.total, resources) for n in inp.nodes), "held back but no home")
    for g in fitting:
        at_max = plan.groups[g.name].replicas >= g.max_replicas
        _require(
            at_max or g.upscaling_mode == "Conservative",
            f"{resources} held back though {g.name} could grow "
            f"({plan.groups[g.name].replicas} < max {g.max_replicas})",
        )


def _smaller(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    """``a`` is no larger than ``b`` in every resource, and smaller in one."""
    names = set(a) | set(b)
    le = all(a.get(k, 0.0) <= b.get(k, 0.0) + TOL for k in names)
    return le and any(a.get(k, 0.0) < b.get(k, 0.0) - TOL for k in names)


def _check_smallest(
    inp: PlannerInput,
    plan: Plan,
    new_nodes: Mapping[str, str],
    free: Mapping[str, Mapping[str, float]],
    room: Mapping[str, Mapping[str, float]],
) -> None:
    """A new node of a single-host group that got demand could not be of a smaller group
    (no larger in any resource, smaller in one) that holds the same, carries no special
    resource its own group lacks, and still has room. Groups launched for minReplicas are
    left out (their nodes are there for the floor, not for what they hold)."""
    groups = {g.name: g for g in inp.groups}
    existing = Counter(n.group for n in inp.nodes)
    for node, name in new_nodes.items():
        g = groups[name]
        if g.num_of_hosts > 1 or existing[name] < g.min_replicas:
            continue
        used: dict[str, float] = defaultdict(float)
        for left in (free.get(node), room.get(node)):
            if left is None:
                continue
            for k, v in g.resources.items():
                used[k] = max(used[k], v - left.get(k, 0.0))
        for h in inp.groups:
            if h.name == name or h.num_of_hosts > 1 or h.upscaling_mode == "Conservative":
                continue
            if plan.groups[h.name].replicas >= h.max_replicas:
                continue
            if not _specials(h.resources) <= _specials(g.resources):
                continue
            _require(
                not (_smaller(h.resources, g.resources) and _fits(h.resources, used)),
                f"{node} holds {format_shape(used)}: smaller group {h.name} "
                f"{format_shape(h.resources)} has room and holds it",
            )

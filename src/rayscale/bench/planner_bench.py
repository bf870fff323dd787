"""``rayscale bench planner``: the rayscale planner against Ray 2.60's v1 and v2 schedulers.

For each seeded scenario (:mod:`rayscale.bench.scenarios`) the same :class:`PlannerInput` goes
through rayscale's ``plan()`` and through Ray's two schedulers (:mod:`rayscale.bench.ray_anchors`),
all in this one process. Only the scheduler call is timed (translating the input is not);
each is repeated and the median reported with min/max, because the machine is shared.

One independent checker (:func:`check`, our own code, not the planner's) then asks of every
launch set: with the launched nodes added, does all feasible demand fit? It packs first-fit
decreasing: task and placement-group bundles into running nodes' ``available`` plus pending
and new nodes' ``total``, STRICT_PACK groups as one combined bundle, STRICT_SPREAD bundles on
distinct nodes; ``request_resources`` bundles separately into every node's ``total``. Demand
no group can ever hold is left out (and listed). First-fit is a heuristic: a "no" means the
checker found no packing, which for a sensible launch set is rare; a "yes" is a certificate.

Knobs (arguments of :func:`main`, or environment):
``RAYSCALE_BENCH_QUICK=1`` (fewer repeats, shorter timeout), ``RAYSCALE_BENCH_TIMEOUT_S``
(per call; a call cut short is reported as ``timeout``, never dropped),
``RAYSCALE_BENCH_BUDGET_S`` (stop repeating a scheduler once its runs took this long),
``RAYSCALE_BENCH_SEED``, ``RAYSCALE_BENCH_UPSCALING_SPEED`` (Ray's; KubeRay Default = 1000).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import numpy as np

from rayscale.bench.ray_anchors import (
    KUBERAY_DEFAULT_UPSCALING_SPEED,
    AnchorRun,
    V1Anchor,
    V2Anchor,
    format_shape,
    quiet_ray_loggers,
)
from rayscale.bench.scenarios import DEFAULT_SEED, Scenario, build
from rayscale.planner.core import resource_names
from rayscale.planner.model import (
    HEAD_GROUP,
    DemandKind,
    Placement,
    PlannerInput,
    Resources,
    Strategy,
)

SCHEDULERS = ("rayscale", "ray_v1", "ray_v2")
RAY_SCHEDULERS = ("ray_v1", "ray_v2")
_EPS = 1e-9


# ---------------------------------------------------------------------------------------------
# The independent checker


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
# Timing


class BenchTimeout(BaseException):
    """Raised inside a scheduler call that ran past its timeout (BaseException: Ray code that
    catches Exception cannot swallow it)."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Interrupt the block after ``seconds`` (SIGALRM; main thread only, else no limit)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expire(signum: int, frame: FrameType | None) -> None:
        raise BenchTimeout()

    previous = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Timed:
    """All runs of one scheduler on one scenario."""

    status: str  # ok | timeout | error | unavailable
    run: AnchorRun | None = None
    times_ms: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.times_ms) if self.times_ms else None


def time_runs(
    make: Callable[[], Callable[[], AnchorRun]],
    repeats: int,
    timeout_s: float,
    budget_s: float,
) -> Timed:
    """Build the runner once, then call it up to ``repeats`` times under a per-call timeout."""
    try:
        runner = make()
    except ImportError as exc:
        return Timed(status="unavailable", notes=[f"not importable: {exc}"])
    out = Timed(status="ok")
    for i in range(repeats):
        try:
            with deadline(timeout_s):
                run = runner()
        except BenchTimeout:
            out.notes.append(f"run {i + 1} cut short at the {timeout_s:g} s timeout")
            if out.run is None:
                out.status = "timeout"
            break
        except Exception as exc:  # report a crashing scheduler, keep benchmarking the rest
            out.status = "error" if out.run is None else out.status
            out.notes.append(f"run {i + 1} raised {type(exc).__name__}: {exc}")
            break
        if out.run is None:
            out.run = run
        elif run.launch != out.run.launch:
            out.notes.append(f"run {i + 1} launched {run.launch}, run 1 {out.run.launch}")
        out.times_ms.append(run.elapsed_ms)
        if sum(out.times_ms) / 1000 > budget_s and i + 1 < repeats:
            out.notes.append(f"stopped after {i + 1} of {repeats} runs ({budget_s:g} s budget)")
            break
    return out


def rayscale_runner(inp: PlannerInput) -> Callable[[], AnchorRun]:
    """``rayscale.planner.core.plan``; launches reported in hosts (replicas x numOfHosts)."""
    from rayscale.planner.core import plan

    hosts = {g.name: g.num_of_hosts for g in inp.groups}

    def run() -> AnchorRun:
        t0 = time.perf_counter()
        result = plan(inp)
        elapsed = (time.perf_counter() - t0) * 1000
        launch = {
            name: d.launch * hosts.get(name, 1)
            for name, d in sorted(result.groups.items())
            if d.launch > 0
        }
        infeasible = [
            f"{u.kind.value}[{u.index}] {format_shape(u.resources)} x{u.count}: {u.reason.text()}"
            for u in result.infeasible
        ]
        notes = [
            f"held back: {u.kind.value}[{u.index}] {format_shape(u.resources)} "
            f"x{u.count}: {u.reason.text()}"
            for u in result.held_back
        ]
        return AnchorRun(
            launch=launch,
            elapsed_ms=elapsed,
            infeasible=infeasible,
            notes=notes,
            extra={"placements": result.placements},
        )

    return run


# ---------------------------------------------------------------------------------------------
# The benchmark


@dataclass(frozen=True)
class BenchConfig:
    repeats: Mapping[str, int]
    timeout_s: float
    budget_s: float
    seed: int = DEFAULT_SEED
    upscaling_speed: float = KUBERAY_DEFAULT_UPSCALING_SPEED

    @staticmethod
    def make(quick: bool) -> BenchConfig:
        quick = quick or os.environ.get("RAYSCALE_BENCH_QUICK", "") not in ("", "0")
        env = os.environ.get
        return BenchConfig(
            repeats={"rayscale": 2, "ray_v1": 1, "ray_v2": 1}
            if quick
            else {"rayscale": 5, "ray_v1": 3, "ray_v2": 3},
            timeout_s=float(env("RAYSCALE_BENCH_TIMEOUT_S", "120" if quick else "600")),
            budget_s=float(env("RAYSCALE_BENCH_BUDGET_S", "20" if quick else "90")),
            seed=int(env("RAYSCALE_BENCH_SEED", str(DEFAULT_SEED))),
            upscaling_speed=float(
                env("RAYSCALE_BENCH_UPSCALING_SPEED", str(KUBERAY_DEFAULT_UPSCALING_SPEED))
            ),
        )


Runner = Callable[[], AnchorRun]


def _runners(inp: PlannerInput, cfg: BenchConfig) -> dict[str, Callable[[], Runner]]:
    return {
        "rayscale": lambda: rayscale_runner(inp),
        "ray_v1": lambda: V1Anchor(inp, cfg.upscaling_speed).run,
        "ray_v2": lambda: V2Anchor(inp, cfg.upscaling_speed).run,
    }


def bench_scenario(
    sc: Scenario, cfg: BenchConfig, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Time and check every scheduler on one scenario; one JSON-ready row."""
    row: dict[str, Any] = {
        "scenario": sc.name,
        "title": sc.title,
        "seed": sc.seed,
        "bundles": sc.bundles,
        "shapes": sc.shapes,
        "nodes": sc.nodes,
        "node_types": sc.node_types,
        "request_resources": len(sc.input.demand.request_resources),
    }
    excluded: tuple[str, ...] = ()
    for name, make in _runners(sc.input, cfg).items():
        if progress:
            progress(f"{sc.name}: {name} ...")
        timed = time_runs(make, cfg.repeats[name], cfg.timeout_s, cfg.budget_s)
        excluded = _fill(row, name, timed, sc.input, cfg) or excluded
    row["excluded_infeasible"] = list(excluded)
    _compare(row, cfg)
    return row


def _fill(
    row: dict[str, Any], name: str, timed: Timed, inp: PlannerInput, cfg: BenchConfig
) -> tuple[str, ...]:
    run = timed.run
    times = timed.times_ms
    row[f"{name}_status"] = timed.status
    row[f"{name}_ms"] = _r(timed.median_ms)
    row[f"{name}_ms_min"] = _r(min(times)) if times else None
    row[f"{name}_ms_max"] = _r(max(times)) if times else None
    row[f"{name}_runs"] = len(times)
    row[f"{name}_launch"] = dict(run.launch) if run else None
    notes = list(timed.notes) + (list(run.notes) if run else [])
    if timed.status == "timeout":
        row[f"{name}_ms_lower_bound"] = cfg.timeout_s * 1000
    if run is None:
        row.update(
            {
                f"{name}_satisfied": None,
                f"{name}_cpus": None,
                f"{name}_gpus": None,
                f"{name}_launched_nodes": None,
                f"{name}_unplaced": None,
                f"{name}_infeasible": None,
                f"{name}_notes": notes,
            }
        )
        return ()
    extra = dict(run.extra)
    placements = extra.pop("placements", None)
    result = check(inp, run.launch, placements)
    if result.method == "certificate":
        notes.append(
            "the checker's packings found no room; the planner's own placements "
            "were verified instead (capacity, coverage, STRICT_PACK/SPREAD)"
        )
    row[f"{name}_satisfied"] = result.satisfied
    row[f"{name}_check"] = result.method
    row[f"{name}_launched_nodes"] = result.nodes
    row[f"{name}_cpus"] = result.cpus
    row[f"{name}_gpus"] = result.gpus
    row[f"{name}_unplaced"] = _clip(list(result.unplaced))
    row[f"{name}_infeasible"] = _clip(run.infeasible)
    row[f"{name}_notes"] = notes
    for k, v in extra.items():
        row[f"{name}_{k}"] = v
    return result.excluded


def _compare(row: dict[str, Any], cfg: BenchConfig) -> None:
    """``speedup_vs_best_ray`` and the plain list of where rayscale loses."""
    ray_ms = [row[f"{s}_ms"] for s in RAY_SCHEDULERS if row[f"{s}_ms"] is not None]
    bounds = [
        row[f"{s}_ms_lower_bound"]
        for s in RAY_SCHEDULERS
        if row.get(f"{s}_ms_lower_bound") is not None
    ]
    ours = row["rayscale_ms"]
    row["speedup_vs_best_ray"] = None
    row["speedup_is_lower_bound"] = False
    if ours:
        if ray_ms:
            row["speedup_vs_best_ray"] = _r(min(ray_ms) / ours, 2)
        elif bounds:
            row["speedup_vs_best_ray"] = _r(min(bounds) / ours, 2)
            row["speedup_is_lower_bound"] = True
    losses: list[str] = []
    sc = row["scenario"]
    if row["rayscale_status"] != "ok":
        losses.append(f"{sc}: rayscale did not run ({row['rayscale_status']})")
    elif not row["rayscale_satisfied"]:
        losses.append(f"{sc}: rayscale leaves feasible demand unplaced: {row['rayscale_unplaced']}")
    else:
        for s in RAY_SCHEDULERS:
            if not row.get(f"{s}_satisfied"):
                continue
            for res in ("cpus", "gpus"):
                if row[f"rayscale_{res}"] > row[f"{s}_{res}"] + _EPS:
                    losses.append(
                        f"{sc}: rayscale launches {row[f'rayscale_{res}']:g} "
                        f"{res.upper()[:-1]}s, {s} {row[f'{s}_{res}']:g} (both "
                        "satisfy all feasible demand)"
                    )
    if ours and ray_ms and ours > min(ray_ms):
        losses.append(
            f"{sc}: rayscale is slower ({ours:g} ms) than the best Ray "
            f"scheduler ({min(ray_ms):g} ms)"
        )
    row["rayscale_losses"] = losses


def _r(x: float | None, digits: int = 3) -> float | None:
    return None if x is None or math.isnan(x) else round(x, digits)


def _clip(items: list[str], n: int = 8) -> list[str]:
    return items if len(items) <= n else [*items[:n], f"... and {len(items) - n} more"]


# ---------------------------------------------------------------------------------------------
# Output


def _launch_text(launch: Mapping[str, int] | None) -> str:
    if launch is None:
        return "-"
    return ", ".join(f"{t} {n}" for t, n in launch.items()) or "(none)"


def _ms_text(row: Mapping[str, Any], s: str) -> str:
    if row[f"{s}_status"] == "timeout":
        return f">{row[f'{s}_ms_lower_bound'] / 1000:g} s (timeout)"
    if row[f"{s}_ms"] is None:
        return str(row[f"{s}_status"])
    return (
        f"{row[f'{s}_ms']:.1f} ({row[f'{s}_ms_min']:.1f}-{row[f'{s}_ms_max']:.1f}, "
        f"n={row[f'{s}_runs']})"
    )


def print_table(rows: Sequence[Mapping[str, Any]], cfg: BenchConfig) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(
        title="rayscale plan() vs Ray 2.60 schedulers (same input, one process)", show_lines=True
    )
    for col in (
        "scenario",
        "scheduler",
        "ms median (min-max, n)",
        "launched",
        "nodes",
        "CPUs",
        "GPUs",
        "all feasible demand fits (how)",
    ):
        table.add_column(col, overflow="fold")
    for row in rows:
        size = (
            f"{row['scenario']}\n{row['bundles']} bundles, {row['shapes']} shapes\n"
            f"{row['nodes']} nodes, {row['node_types']} types\n"
            f"speedup vs best Ray: {_speed(row)}"
        )
        for i, s in enumerate(SCHEDULERS):
            sat = row[f"{s}_satisfied"]
            table.add_row(
                size if i == 0 else "",
                s,
                _ms_text(row, s),
                _launch_text(row[f"{s}_launch"]),
                _num(row[f"{s}_launched_nodes"]),
                _num(row[f"{s}_cpus"]),
                _num(row[f"{s}_gpus"]),
                "-" if sat is None else (f"yes ({row[f'{s}_check']})" if sat else "[red]NO[/red]"),
            )
    console.print(table)
    console.print(
        f"timing: median of up to {dict(cfg.repeats)} runs per scheduler; only the "
        "scheduler call is timed; machine shared, so min-max shows the noise."
    )
    for row in rows:
        for line in _row_notes(row):
            console.print(f"- {row['scenario']}: {line}", markup=False, highlight=False)


def _speed(row: Mapping[str, Any]) -> str:
    x = row["speedup_vs_best_ray"]
    if x is None:
        return "-"
    return f">={x:g}x" if row["speedup_is_lower_bound"] else f"{x:g}x"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


def _row_notes(row: Mapping[str, Any]) -> list[str]:
    out = (
        [f"excluded as infeasible (fits no group): {row['excluded_infeasible']}"]
        if row["excluded_infeasible"]
        else []
    )
    for s in SCHEDULERS:
        out += [f"{s}: {n}" for n in row[f"{s}_notes"]]
        if row[f"{s}_infeasible"]:
            out.append(f"{s} reports unplaceable: {row[f'{s}_infeasible']}")
        if row[f"{s}_unplaced"]:
            out.append(f"{s} leaves unplaced (checker): {row[f'{s}_unplaced']}")
    out += [f"LOSS {x}" for x in row["rayscale_losses"]]
    return out


def main(json_output: bool, quick: bool = False, scenarios: list[str] | None = None) -> int:
    """Run the benchmark; print JSON lines or a table.

    Returns 0 when rayscale ran and held all feasible demand in every scenario, else 1
    (2 for an unknown scenario name).
    """
    cfg = BenchConfig.make(quick)
    try:
        chosen = build(scenarios, cfg.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    quiet_ray_loggers()
    rows = []
    for sc in chosen:
        row = bench_scenario(sc, cfg, progress=lambda m: print(m, file=sys.stderr, flush=True))
        rows.append(row)
        if json_output:
            print(json.dumps(row, sort_keys=False), flush=True)
    if not json_output:
        print_table(rows, cfg)
    ok = all(r["rayscale_status"] == "ok" and r["rayscale_satisfied"] for r in rows)
    return 0 if ok else 1


def _cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rayscale bench planner",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per scenario")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 120 s timeout")
    parser.add_argument("--scenario", action="append", help="S1..S5 (repeatable)")
    parser.add_argument(
        "--table-from",
        metavar="FILE",
        help="render the table from a saved --json run instead of running",
    )
    args = parser.parse_args(argv)
    if args.table_from:
        with open(args.table_from) as f:
            rows = [json.loads(line) for line in f if line.startswith("{")]
        print_table(rows, BenchConfig.make(args.quick))
        return 0
    return main(args.json, args.quick, args.scenario)


if __name__ == "__main__":
    raise SystemExit(_cli())

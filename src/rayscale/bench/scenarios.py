"""Seeded synthetic planner inputs for ``rayscale bench planner``.

Every scenario is a rayscale :class:`~rayscale.planner.model.PlannerInput` built from one
``random.Random(seed)``, so the same seed gives the same input, byte for byte. The Ray adapters
(:mod:`rayscale.bench.ray_anchors`) translate that one input into Ray's own v1 and v2 scheduler
inputs, so all three schedulers see the same cluster and the same demand.

Shapes follow KubeRay pods: ``memory`` in bytes, ``CPU``/``GPU`` as Ray counts them (a GPU task
carries its implicit ``CPU: 1``). The head pod is a node of group ``headgroup``. Every
scenario's demand fits within the groups' ``maxReplicas``, except shapes a scenario adds on
purpose to be infeasible (they fit no group); the checker leaves those out.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from rayscale.planner.model import (
    HEAD_GROUP,
    BundleDemand,
    Demand,
    GroupConfig,
    NodeView,
    PlacementGroupDemand,
    PlannerInput,
    Resources,
    Strategy,
)

GiB = 2**30
MiB = 2**20
CLUSTER = "bench"
DEFAULT_SEED = 20260
STRATEGY_CYCLE = (Strategy.STRICT_PACK, Strategy.PACK, Strategy.SPREAD, Strategy.STRICT_SPREAD)


@dataclass(frozen=True)
class Scenario:
    """One named benchmark input."""

    name: str
    title: str
    seed: int
    input: PlannerInput

    @property
    def bundles(self) -> int:
        """Pending task bundles plus placement-group bundles (request_resources not counted)."""
        demand = self.input.demand
        tasks = sum(b.count for b in demand.bundles)
        return tasks + sum(len(pg.bundles) for pg in demand.placement_groups)

    @property
    def shapes(self) -> int:
        """Distinct resource shapes among task and placement-group bundles."""
        demand = self.input.demand
        keys = {shape_key(b.resources) for b in demand.bundles}
        keys.update(shape_key(r) for pg in demand.placement_groups for r in pg.bundles)
        return len(keys)

    @property
    def nodes(self) -> int:
        return len(self.input.nodes)

    @property
    def node_types(self) -> int:
        return len(self.input.groups)


def shape_key(resources: Resources) -> tuple[tuple[str, float], ...]:
    """A hashable, order-free key for a resource vector (zero entries dropped)."""
    return tuple(sorted((k, float(v)) for k, v in resources.items() if v))


def res(cpu: float, mem_gib: float = 0, gpu: float = 0) -> dict[str, float]:
    """A Ray resource vector; memory given in GiB, stored in bytes."""
    out = {"CPU": float(cpu)}
    if mem_gib:
        out["memory"] = float(int(mem_gib * GiB))
    if gpu:
        out["GPU"] = float(gpu)
    return out


# ---------------------------------------------------------------------------------------------
# Building blocks


def _suffix(rng: random.Random) -> str:
    return "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))


def _fits(avail: Mapping[str, float], need: Mapping[str, float]) -> bool:
    return all(avail.get(k, 0.0) >= v for k, v in need.items())


def _used_node(
    rng: random.Random,
    name: str,
    group: str,
    total: Resources,
    shapes: Sequence[Resources],
    fill: float,
) -> NodeView:
    """A running node whose ``available`` is ``total`` minus randomly placed shapes."""
    avail = dict(total)
    target = fill * total.get("CPU", 0.0)
    used_cpu = 0.0
    for _ in range(64):
        if used_cpu >= target:
            break
        shape = rng.choice(shapes)
        if _fits(avail, shape):
            for k, v in shape.items():
                avail[k] -= v
            used_cpu += shape.get("CPU", 0.0)
    return NodeView(name=name, group=group, status="running", total=dict(total), available=avail)


def _workers(
    rng: random.Random,
    groups: Mapping[str, Resources],
    counts: Mapping[str, int],
    shapes: Sequence[Resources],
    fill: tuple[float, float],
) -> list[NodeView]:
    """``counts[g]`` running workers of each group, each ``fill`` (a range) busy."""
    names: set[str] = set()
    out: list[NodeView] = []
    for group, n in counts.items():
        for _ in range(n):
            name = f"{CLUSTER}-{group}-worker-{_suffix(rng)}"
            while name in names:
                name = f"{CLUSTER}-{group}-worker-{_suffix(rng)}"
            names.add(name)
            usable = [s for s in shapes if _fits(groups[group], s)]
            out.append(_used_node(rng, name, group, groups[group], usable, rng.uniform(*fill)))
    return out


def _head(rng: random.Random, total: Resources, busy_cpu: float) -> NodeView:
    avail = dict(total)
    avail["CPU"] = max(0.0, avail["CPU"] - busy_cpu)
    if "memory" in avail:
        avail["memory"] = max(0.0, avail["memory"] - busy_cpu * 2 * GiB)
    name = f"{CLUSTER}-head-{_suffix(rng)}"
    return NodeView(
        name=name, group=HEAD_GROUP, status="running", total=dict(total), available=avail
    )


def _tasks(
    rng: random.Random, weighted: Sequence[tuple[Resources, float]], n: int
) -> list[BundleDemand]:
    """``n`` task bundles drawn from weighted shapes, aggregated per shape (first-seen order)."""
    shapes = [dict(s) for s, _ in weighted]
    drawn = rng.choices(range(len(shapes)), weights=[w for _, w in weighted], k=n)
    counts = Counter(drawn)
    return [BundleDemand(resources=shapes[i], count=counts[i]) for i in sorted(counts)]


def _combined(bundles: Iterable[Resources]) -> dict[str, float]:
    out: dict[str, float] = {}
    for b in bundles:
        for k, v in b.items():
            out[k] = out.get(k, 0.0) + v
    return out


def _pgs(
    rng: random.Random,
    n: int,
    pool: Sequence[Resources],
    groups: Sequence[GroupConfig],
    sizes: tuple[int, int] = (2, 8),
) -> list[PlacementGroupDemand]:
    """``n`` placement groups cycling through the four strategies.

    A STRICT_PACK group is trimmed until its combined bundle fits one node of some group.
    """
    out: list[PlacementGroupDemand] = []
    for i in range(n):
        strategy = STRATEGY_CYCLE[i % len(STRATEGY_CYCLE)]
        shape = rng.choice(pool)
        bundles = [dict(shape) for _ in range(rng.randint(*sizes))]
        if strategy is Strategy.STRICT_PACK:
            while len(bundles) > 1 and not any(
                _fits(g.resources, _combined(bundles)) for g in groups
            ):
                bundles.pop()
        name = f"pg-{i:02d}-{strategy.value.lower().replace('_', '-')}"
        out.append(PlacementGroupDemand(strategy=strategy, bundles=tuple(bundles), name=name))
    return out


def _requests(shape: Resources, n: int) -> tuple[Resources, ...]:
    return tuple(dict(shape) for _ in range(n))


# ---------------------------------------------------------------------------------------------
# The three-type cluster of S1/S2

S1_TYPES = {
    "cpu16": res(16, 64),
    "gpu4": res(16, 64, gpu=4),
    "highmem": res(8, 256),
}
HEAD_RESOURCES = res(4, 16)

S1_SHAPES: tuple[tuple[Resources, float], ...] = (
    (res(1, 2), 30),
    (res(2, 4), 20),
    (res(4, 8), 15),
    (res(0.5, 1), 10),
    (res(1, gpu=1), 8),  # @ray.remote(num_gpus=1): GPU plus its implicit CPU
    (res(4, 16, gpu=1), 4),
    (res(2, 32), 8),  # memory-heavy: 2 per cpu16, 8 per highmem
    (res(4, 128), 3),  # fits highmem only
)
S1_PG_POOL = (res(1, 2), res(2, 4), res(4, 8), res(1, gpu=1))
INFEASIBLE_S1 = res(32, 64)  # no group has 32 CPUs: deliberately infeasible


def _s1_groups(scale: int) -> tuple[GroupConfig, ...]:
    return (
        GroupConfig("cpu16", S1_TYPES["cpu16"], min_replicas=0, max_replicas=300 * scale),
        GroupConfig("gpu4", S1_TYPES["gpu4"], min_replicas=0, max_replicas=100 * scale),
        GroupConfig("highmem", S1_TYPES["highmem"], min_replicas=1, max_replicas=60 * scale),
    )


def s1(seed: int = DEFAULT_SEED) -> Scenario:
    """1k bundles, 3 node types, 12 placement groups, request_resources(64 CPUs), no workers."""
    rng = random.Random(seed)
    groups = _s1_groups(1)
    pgs = _pgs(rng, 12, S1_PG_POOL, groups)
    n_pg = sum(len(p.bundles) for p in pgs)
    tasks = _tasks(rng, S1_SHAPES, 1000 - n_pg - 2)
    tasks.append(BundleDemand(resources=INFEASIBLE_S1, count=2))
    demand = Demand(
        bundles=tuple(tasks),
        placement_groups=tuple(pgs),
        request_resources=_requests(res(1), 64),
    )
    head = _head(rng, HEAD_RESOURCES, busy_cpu=0)
    inp = PlannerInput(groups=groups, nodes=(head,), demand=demand)
    return Scenario(
        "S1", "1k bundles, 3 types, 12 PGs, request_resources 64 CPU, no workers", seed, inp
    )


def s2(seed: int = DEFAULT_SEED) -> Scenario:
    """10k bundles on the S1 types with 150 running, partly used workers."""
    rng = random.Random(seed + 2)
    groups = _s1_groups(10)
    shapes = [s for s, _ in S1_SHAPES]
    workers = _workers(rng, S1_TYPES, {"cpu16": 100, "gpu4": 30, "highmem": 20}, shapes, (0.2, 1.0))
    pgs = _pgs(rng, 8, S1_PG_POOL, groups)
    n_pg = sum(len(p.bundles) for p in pgs)
    demand = Demand(
        bundles=tuple(_tasks(rng, S1_SHAPES, 10_000 - n_pg)),
        placement_groups=tuple(pgs),
        request_resources=_requests(res(1), 128),
    )
    head = _head(rng, HEAD_RESOURCES, busy_cpu=3)
    inp = PlannerInput(groups=groups, nodes=(head, *workers), demand=demand)
    return Scenario("S2", "10k bundles, 3 types, 150 running workers (partly used)", seed, inp)


# ---------------------------------------------------------------------------------------------
# Twenty node types for S3/S4

_WIDE_TYPES: tuple[tuple[str, dict[str, float]], ...] = (
    ("c2-m8", res(2, 8)),
    ("c4-m16", res(4, 16)),
    ("c4-m32", res(4, 32)),
    ("c8-m32", res(8, 32)),
    ("c8-m64", res(8, 64)),
    ("c16-m64", res(16, 64)),
    ("c16-m128", res(16, 128)),
    ("c32-m128", res(32, 128)),
    ("c32-m256", res(32, 256)),
    ("c48-m192", res(48, 192)),
    ("c64-m256", res(64, 256)),
    ("c64-m512", res(64, 512)),
    ("c96-m384", res(96, 384)),
    ("c8-m64-g1", res(8, 64, gpu=1)),
    ("c16-m64-g1", res(16, 64, gpu=1)),
    ("c16-m128-g2", res(16, 128, gpu=2)),
    ("c32-m128-g4", res(32, 128, gpu=4)),
    ("c48-m384-g4", res(48, 384, gpu=4)),
    ("c64-m512-g8", res(64, 512, gpu=8)),
    ("c96-m768-g8", res(96, 768, gpu=8)),
)
WIDE_TYPES = dict(_WIDE_TYPES)

S3_SHAPES: tuple[tuple[Resources, float], ...] = (
    (res(0.5, 0.5), 8),
    (res(1), 10),
    (res(1, 1), 12),
    (res(1, 2), 12),
    (res(1, 4), 6),
    (res(2, 4), 10),
    (res(2, 8), 8),
    (res(2, 16), 3),
    (res(4, 8), 6),
    (res(4, 16), 5),
    (res(4, 64), 1),
    (res(8, 16), 3),
    (res(8, 32), 3),
    (res(16, 64), 1),
    (res(32, 128), 0.3),
    (res(1, gpu=1), 4),
    (res(4, 16, gpu=1), 2),
    (res(8, 64, gpu=2), 1),
    (res(16, 128, gpu=4), 0.4),
    (res(0.25, 0.25), 4),
)
WIDE_PG_POOL = (res(1, 2), res(2, 8), res(4, 16), res(1, gpu=1), res(8, 32))


def _wide_groups(existing: Mapping[str, int]) -> tuple[GroupConfig, ...]:
    return tuple(
        GroupConfig(name, r, min_replicas=0, max_replicas=existing.get(name, 0) + 400)
        for name, r in _WIDE_TYPES
    )


def _wide_cluster(
    rng: random.Random, n_workers: int, shapes: Sequence[Resources]
) -> tuple[tuple[GroupConfig, ...], list[NodeView]]:
    names = [n for n, _ in _WIDE_TYPES]
    weights = [3.0 if "g" in n.rsplit("-", 1)[-1] else 5.0 for n in names]
    counts = Counter(rng.choices(names, weights=weights, k=n_workers - 1))
    counts = Counter({n: counts[n] for n in names if counts[n]})
    workers = _workers(rng, WIDE_TYPES, counts, shapes, (0.3, 1.0))
    head = _head(rng, HEAD_RESOURCES, busy_cpu=2)
    return _wide_groups(counts), [head, *workers]


def s3(seed: int = DEFAULT_SEED) -> Scenario:
    """10k bundles in 20 shapes, 1,000 running nodes, 20 node types."""
    rng = random.Random(seed + 3)
    shapes = [s for s, _ in S3_SHAPES]
    groups, nodes = _wide_cluster(rng, 1000, shapes)
    pgs = _pgs(rng, 8, WIDE_PG_POOL, groups)
    n_pg = sum(len(p.bundles) for p in pgs)
    demand = Demand(
        bundles=tuple(_tasks(rng, S3_SHAPES, 10_000 - n_pg)),
        placement_groups=tuple(pgs),
    )
    inp = PlannerInput(groups=groups, nodes=tuple(nodes), demand=demand)
    return Scenario("S3", "10k bundles in ~20 shapes, 1,000 running nodes, 20 types", seed, inp)


def _distinct_shapes(rng: random.Random, n: int) -> list[dict[str, float]]:
    """``n`` pairwise-distinct shapes: CPU from a ladder, memory in MiB, a few with GPUs."""
    seen: set[tuple[tuple[str, float], ...]] = set()
    out: list[dict[str, float]] = []
    while len(out) < n:
        cpu = rng.choice((0.25, 0.5, 1, 1, 1, 2, 2, 3, 4, 6, 8))
        mem = float(rng.randint(128, int(cpu * 6 * 1024) + 512) * MiB)
        shape = {"CPU": float(cpu), "memory": mem}
        if rng.random() < 0.04:
            shape["GPU"] = float(rng.choice((1, 1, 2)))
        key = shape_key(shape)
        if key not in seen:
            seen.add(key)
            out.append(shape)
    return out


def s4(seed: int = DEFAULT_SEED) -> Scenario:
    """10k task bundles, every one a distinct shape, 1,000 running nodes, 20 node types.

    No placement groups here (S3 has them at this size), so the shapes stay all distinct.
    """
    rng = random.Random(seed + 4)
    groups, nodes = _wide_cluster(rng, 1000, [s for s, _ in S3_SHAPES])
    shapes = _distinct_shapes(rng, 10_000)
    demand = Demand(bundles=tuple(BundleDemand(resources=s, count=1) for s in shapes))
    inp = PlannerInput(groups=groups, nodes=tuple(nodes), demand=demand)
    return Scenario(
        "S4", "10k bundles, all distinct shapes, 1,000 running nodes, 20 types", seed, inp
    )


# ---------------------------------------------------------------------------------------------
# S5: the CPU/GPU mix


def s5(seed: int = DEFAULT_SEED) -> Scenario:
    """CPU-only and GPU work; a CPU group and a GPU group can both hold the CPU work.

    Eight idle GPU nodes already run; 40 GPU tasks need 40 GPUs (2 more GPU nodes at the
    least). CPU-only work should go to the GPU nodes' spare CPUs and to CPU nodes, not to
    extra GPU nodes.
    """
    rng = random.Random(seed + 5)
    types = {"cpu": res(16, 64), "gpu": res(16, 64, gpu=4)}
    groups = (
        GroupConfig("cpu", types["cpu"], min_replicas=0, max_replicas=200),
        GroupConfig("gpu", types["gpu"], min_replicas=0, max_replicas=50),
    )
    gpu_nodes = _workers(rng, types, {"gpu": 8}, [res(1, 2)], (0.0, 0.0))
    busy_cpu = _workers(rng, types, {"cpu": 4}, [res(4, 8)], (1.0, 1.0))
    tasks = [
        BundleDemand(resources=res(4, 8), count=200),
        BundleDemand(resources=res(1, 2), count=100),
        BundleDemand(resources=res(1, gpu=1), count=40),
    ]
    head = _head(rng, HEAD_RESOURCES, busy_cpu=4)
    inp = PlannerInput(
        groups=groups,
        nodes=(head, *gpu_nodes, *busy_cpu),
        demand=Demand(bundles=tuple(tasks)),
    )
    return Scenario("S5", "CPU/GPU mix: idle GPU nodes, CPU work that could waste GPUs", seed, inp)


# ---------------------------------------------------------------------------------------------
# S6: scale


def _s6_types() -> dict[str, dict[str, float]]:
    """50 node types: 40 CPU types (CPU x memory-per-CPU) and 10 GPU types."""
    out: dict[str, dict[str, float]] = {}
    for cpu in (2, 4, 8, 16, 24, 32, 48, 64, 96, 128):
        for per_cpu in (2, 4, 8, 16):
            out[f"c{cpu}-m{cpu * per_cpu}"] = res(cpu, cpu * per_cpu)
    for cpu, gpu in (
        (8, 1),
        (16, 1),
        (16, 2),
        (32, 2),
        (32, 4),
        (48, 4),
        (64, 4),
        (64, 8),
        (96, 8),
        (128, 8),
    ):
        out[f"c{cpu}-m{cpu * 8}-g{gpu}"] = res(cpu, cpu * 8, gpu=gpu)
    return out


S6_TYPES = _s6_types()
S6_PG_POOL = (res(1, 2), res(2, 8), res(4, 16), res(1, gpu=1), res(8, 32), res(16, 64))


def s6(seed: int = DEFAULT_SEED, bundles: int = 100_000, nodes: int = 5_000) -> Scenario:
    """100k bundles in ~200 shapes, 5,000 running nodes, 50 node types, 200 placement groups.

    ``bundles``/``nodes`` shrink it for the planner's growth curve (same types and shapes).
    """
    rng = random.Random(seed + 6)
    shapes = _distinct_shapes(rng, 200)
    weights = [rng.choice((1.0, 2.0, 5.0, 10.0)) for _ in shapes]
    names = list(S6_TYPES)
    counts = Counter(rng.choices(names, k=nodes - 1))
    counts = Counter({n: counts[n] for n in names if counts[n]})
    workers = _workers(rng, S6_TYPES, counts, shapes, (0.3, 1.0))
    groups = tuple(
        GroupConfig(name, r, min_replicas=0, max_replicas=counts.get(name, 0) + 2_000)
        for name, r in S6_TYPES.items()
    )
    n_pgs = max(1, round(200 * bundles / 100_000))
    pgs = _pgs(rng, n_pgs, S6_PG_POOL, groups)
    n_pg = sum(len(p.bundles) for p in pgs)
    demand = Demand(
        bundles=tuple(_tasks(rng, list(zip(shapes, weights, strict=True)), bundles - n_pg)),
        placement_groups=tuple(pgs),
    )
    head = _head(rng, HEAD_RESOURCES, busy_cpu=2)
    inp = PlannerInput(groups=groups, nodes=(head, *workers), demand=demand)
    title = f"{bundles:,} bundles in ~200 shapes, {nodes:,} running nodes, 50 types, {n_pgs} PGs"
    return Scenario("S6", title, seed, inp)


def tiny(seed: int = DEFAULT_SEED) -> Scenario:
    """3 x {CPU: 1}, one 1-CPU group, no workers: 3 launches, by hand.

    KubeRay always has a head; this one runs with ``num-cpus: 0`` (so it holds no CPU work).
    """
    del seed
    groups = (GroupConfig("cpu1", {"CPU": 1.0}, min_replicas=0, max_replicas=10),)
    head_total = {"memory": float(2 * GiB)}
    head = NodeView(
        name=f"{CLUSTER}-head-tiny0",
        group=HEAD_GROUP,
        status="running",
        total=head_total,
        available=dict(head_total),
    )
    demand = Demand(bundles=(BundleDemand(resources={"CPU": 1.0}, count=3),))
    return Scenario(
        "tiny",
        "3 x {CPU: 1}, one 1-CPU group, a 0-CPU head, no workers",
        0,
        PlannerInput(groups=groups, nodes=(head,), demand=demand),
    )


SCENARIOS: dict[str, Callable[[int], Scenario]] = {
    "S1": s1,
    "S2": s2,
    "S3": s3,
    "S4": s4,
    "S5": s5,
    "S6": s6,
}


def build(names: Sequence[str] | None = None, seed: int = DEFAULT_SEED) -> list[Scenario]:
    """The named scenarios (all of them when ``names`` is None), built from ``seed``."""
    chosen = list(SCENARIOS) if not names else [n.upper() for n in names]
    unknown = [n for n in chosen if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; known: {sorted(SCENARIOS)}")
    return [SCENARIOS[n](seed) for n in chosen]

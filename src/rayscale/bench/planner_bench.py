"""``rayscale bench planner``: the rayscale planner against Ray 2.60's v1 and v2 schedulers.

For each seeded scenario (:mod:`rayscale.bench.scenarios`) the same :class:`PlannerInput` goes
through rayscale's ``plan()`` and through Ray's two schedulers (:mod:`rayscale.bench.ray_anchors`),
each in a fresh process with a clean heap (:mod:`rayscale.bench.timing`). The one shared
checker (:mod:`rayscale.bench.checker`) then asks of every launch set whether all feasible
demand fits, and checks rayscale's plan itself (``rayscale_plan_check``). The table is
:mod:`rayscale.bench.report`.

With no flags the run takes a few minutes: Ray's calls are cut at a short timeout and then
reported as lower bounds. ``--full`` gives every call 600 s and repeats more.
Environment: ``RAYSCALE_BENCH_TIMEOUT_S`` (per call), ``RAYSCALE_BENCH_BUDGET_S`` (stop
repeating a scheduler once its runs took this long), ``RAYSCALE_BENCH_SEED``,
``RAYSCALE_BENCH_UPSCALING_SPEED`` (Ray's; KubeRay Default = 1000).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rayscale.bench.checker import check
from rayscale.bench.ray_anchors import (
    KUBERAY_DEFAULT_UPSCALING_SPEED,
    V1Anchor,
    V2Anchor,
    quiet_ray_loggers,
)
from rayscale.bench.report import print_table
from rayscale.bench.scenarios import DEFAULT_SEED, Scenario, build, s6
from rayscale.bench.timing import Runner, Timed, rayscale_runner, time_isolated
from rayscale.planner.model import PlannerInput

RAY_SCHEDULERS = ("ray_v1", "ray_v2")
SCALE_BUNDLES = (1_000, 10_000, 100_000)
"""Pending bundles at which S6's cluster times the planner alone (its growth curve)."""
_COMPARED = (
    ("launched_nodes", "nodes"),
    ("cpus", "CPUs"),
    ("gpus", "GPUs"),
    ("memory_gib", "GiB of memory"),
)
_EPS = 1e-9


@dataclass(frozen=True)
class BenchConfig:
    repeats: Mapping[str, int]
    timeout_s: float
    budget_s: float
    seed: int = DEFAULT_SEED
    upscaling_speed: float = KUBERAY_DEFAULT_UPSCALING_SPEED

    @staticmethod
    def make(full: bool = False) -> BenchConfig:
        """Default: a few minutes in all (Ray cut at 15 s a call). ``full``: 600 s a call."""
        env = os.environ.get
        return BenchConfig(
            repeats={"rayscale": 7, "ray_v1": 3, "ray_v2": 3}
            if full
            else {"rayscale": 5, "ray_v1": 1, "ray_v2": 1},
            timeout_s=float(env("RAYSCALE_BENCH_TIMEOUT_S", "600" if full else "15")),
            budget_s=float(env("RAYSCALE_BENCH_BUDGET_S", "90" if full else "10")),
            seed=int(env("RAYSCALE_BENCH_SEED", str(DEFAULT_SEED))),
            upscaling_speed=float(
                env("RAYSCALE_BENCH_UPSCALING_SPEED", str(KUBERAY_DEFAULT_UPSCALING_SPEED))
            ),
        )


def _runners(inp: PlannerInput, cfg: BenchConfig) -> dict[str, Callable[[], Runner]]:
    return {
        "rayscale": lambda: rayscale_runner(inp),
        "ray_v1": lambda: V1Anchor(inp, cfg.upscaling_speed).run,
        "ray_v2": lambda: V2Anchor(inp, cfg.upscaling_speed).run,
    }


def _planner_only(inp: PlannerInput) -> Callable[[], Runner]:
    return lambda: rayscale_runner(inp, plan_check=False)


def planner_scale(cfg: BenchConfig, sizes: Sequence[int] = SCALE_BUNDLES) -> dict[str, float]:
    """The planner's median time on S6's cluster (5,000 nodes, 50 types) at each number of
    pending bundles, each in a fresh process with a clean heap."""
    out: dict[str, float] = {}
    for n in sizes:
        inp = s6(cfg.seed, bundles=n).input
        timed = time_isolated(_planner_only(inp), 5, cfg.timeout_s, 60.0)
        if timed.times_ms:
            out[str(n)] = round(statistics.median(timed.times_ms), 1)
    return out


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
        timed = time_isolated(make, cfg.repeats[name], cfg.timeout_s, cfg.budget_s)
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
                f"{name}_memory_gib": None,
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
    row[f"{name}_memory_gib"] = _r(result.memory_gib, 1)
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
    elif row.get("rayscale_plan_check") not in (None, "ok"):
        losses.append(f"{sc}: rayscale's plan fails the plan check")
    else:
        for s in RAY_SCHEDULERS:
            if not row.get(f"{s}_satisfied"):
                continue
            for res, label in _COMPARED:
                if row[f"rayscale_{res}"] > row[f"{s}_{res}"] + _EPS:
                    losses.append(
                        f"{sc}: rayscale launches {row[f'rayscale_{res}']:g} {label}, "
                        f"{s} {row[f'{s}_{res}']:g} (both satisfy all feasible demand)"
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


def main(
    json_output: bool,
    full: bool = False,
    scenarios: list[str] | None = None,
    table_from: str | None = None,
) -> int:
    """Run the benchmark; print JSON lines or a table (or render a saved ``--json`` run).

    Returns 0 when rayscale ran and held all feasible demand in every scenario, else 1
    (2 for an unknown scenario name or an unreadable saved run).
    """
    cfg = BenchConfig.make(full)
    if table_from:
        try:
            with open(table_from) as f:
                rows = [json.loads(line) for line in f if line.startswith("{")]
        except (OSError, json.JSONDecodeError) as exc:
            print(f"error: --table-from {table_from}: {exc}", file=sys.stderr)
            return 2
        print_table(rows, cfg.repeats)
        return 0
    try:
        chosen = build(scenarios, cfg.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    quiet_ray_loggers()
    rows = []
    for sc in chosen:
        row = bench_scenario(sc, cfg, progress=lambda m: print(m, file=sys.stderr, flush=True))
        if sc.name == "S6":
            print("S6: rayscale at 1k/10k/100k bundles ...", file=sys.stderr, flush=True)
            row["rayscale_ms_at_bundles"] = planner_scale(cfg)
        rows.append(row)
        if json_output:
            print(json.dumps(row, sort_keys=False), flush=True)
    if not json_output:
        print_table(rows, cfg.repeats)
    ok = all(
        r["rayscale_status"] == "ok"
        and r["rayscale_satisfied"]
        and r.get("rayscale_plan_check") in (None, "ok")
        for r in rows
    )
    return 0 if ok else 1

"""Boot bursts at the node level: N ``start_worker`` calls at once, then who joined and when.

This is the evidence for "does the machine need a bound on workers booting at once?": no
autoscaler, no supervisor, just :mod:`rayscale.local.raynodes` starting N one-CPU workers in
the same instant against a head with 0 CPUs (the KubeRay sample's shape). For each N it reports
the time until all N are alive in GCS (or the run gave up), the failed boots with their first
error line, and the RSS of each worker by process kind (``ray start``, raylet, agents, ...).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import psutil

from rayscale import processes
from rayscale.local import raynodes
from rayscale.local.raynodes import LocalRayCluster, NodeResources, RayNode

# Substring of a command line -> the kind reported in the per-process RSS table.
PROCESS_KINDS = (
    ("core/src/ray/raylet/raylet", "raylet"),
    ("core/src/ray/gcs/gcs_server", "gcs_server"),
    ("DashboardAgent", "dashboard agent"),
    ("RuntimeEnvAgent", "runtime-env agent"),
    ("default_worker.py", "idle Python worker"),
    ("ray::IDLE", "idle Python worker"),
    ("ray::hold", "Ray worker (task)"),
    ("log_monitor.py", "log monitor"),
    ("dashboard/dashboard.py", "API server"),
    ("ray.util.client.server", "ray client server"),
    ("nodekeeper.py", "node keeper"),
    ("agentstub.py", "dashboard agent stub"),
    ("runtimeenvstub.py", "runtime-env agent stub"),
    ("raystart.py", "ray start launcher"),
    (" start ", "ray start CLI"),
)


def process_kind(cmdline: str) -> str:
    """A short name for one Ray process, from its command line."""
    return next((kind for hint, kind in PROCESS_KINDS if hint in cmdline), cmdline[:40])


def rss_by_kind(pgid: int) -> dict[str, float]:
    """MB of RSS per process kind in one node's process group."""
    out: dict[str, float] = {}
    for proc in processes.group_members(pgid):
        try:
            kind = process_kind(" ".join(proc.cmdline()))
            out[kind] = out.get(kind, 0.0) + proc.memory_info().rss / 2**20
        except psutil.Error:
            continue
    return out


def _alive(cluster: LocalRayCluster) -> set[str]:
    try:
        state = cluster.resource_state()
    except Exception:
        return set()
    return {n.instance_id for n in state.node_states if n.status != 2}  # 2 = DEAD


def burst(
    cluster: LocalRayCluster, n: int, tag: str, timeout: float = 120.0, bound: int | None = None
) -> dict[str, Any]:
    """Start ``n`` one-CPU workers (at once, or at most ``bound`` booting at a time); wait
    until each joined or exited; measure; stop them."""
    names = [f"{tag}-w{i}" for i in range(n)]
    queue = list(names)
    nodes: list[RayNode] = []
    joined: dict[str, float] = {}
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        booting = [x for x in nodes if x.name not in joined and x.process.is_running()]
        while queue and (bound is None or len(booting) < bound):
            node = cluster.start_worker(
                queue.pop(0), "small-group", NodeResources(num_cpus=1), wait=False
            )
            nodes.append(node)
            booting.append(node)
        alive = _alive(cluster)
        for node in nodes:
            if node.name in alive and node.name not in joined:
                joined[node.name] = time.monotonic() - t0
        if not queue and not [x for x in booting if x.name not in joined]:
            break
        time.sleep(0.1)
    failed = [x for x in nodes if x.name not in joined]
    time.sleep(1.0)  # let the agents finish starting before measuring memory
    rss = [rss_by_kind(x.pgid) for x in nodes if x.name in joined and x.process.is_running()]
    result: dict[str, Any] = {
        "n": n,
        "bound": bound,
        "all_joined_s": round(max(joined.values()), 2) if not failed and joined else None,
        "first_joined_s": round(min(joined.values()), 2) if joined else None,
        "failed_boots": len(failed) + len(queue),
        "failures": {x.name: _failure_line(x) for x in failed},
        "rss_per_worker_mb": round(statistics.median(sum(r.values()) for r in rss), 1)
        if rss
        else None,
        "rss_by_kind_mb": _median_by_kind(rss),
    }
    for node in nodes:
        if node.name in cluster.workers:
            cluster.stop_worker(node.name)
    return result


def _failure_line(node: RayNode) -> str:
    finder: Callable[[RayNode], str | None] | None = getattr(raynodes, "boot_failure_line", None)
    line = finder(node) if finder else None
    if line:
        return line
    return f"exit code {node.process.returncode}" if not node.process.is_running() else "timeout"


def _median_by_kind(rss: Sequence[dict[str, float]]) -> dict[str, float]:
    kinds = sorted({k for r in rss for k in r})
    return {k: round(statistics.median(r.get(k, 0.0) for r in rss), 1) for k in kinds}


def run(
    sizes: Sequence[int], out: Callable[[str], None], bound: int | None = None
) -> list[dict[str, Any]]:
    """One head (0 CPUs), then a burst of each size in turn, each fully stopped before the next."""
    cluster = raynodes.start_head("boot-burst", NodeResources(num_cpus=0))
    rows: list[dict[str, Any]] = []
    try:
        out(
            f"head ready in {cluster.head.ready_seconds:.1f}s; head RSS by kind (MB): "
            f"{rss_by_kind(cluster.head.pgid)}"
        )
        for n in sizes:
            row = burst(cluster, n, f"b{n}", bound=bound)
            out(str(row))
            rows.append(row)
    finally:
        left = cluster.stop()
        if left:
            out(f"LEFTOVERS: {[p.describe() for p in left]}")
        cluster.remove_dir()
    return rows


if __name__ == "__main__":
    import json
    import sys

    # python -m rayscale.bench.boots [SIZES [BOUND]]: e.g. 1,3,6,10 2
    sizes = [int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "1,3,6,10").split(",")]
    rows = run(sizes, print, int(sys.argv[2]) if len(sys.argv) > 2 else None)
    print(json.dumps(rows))

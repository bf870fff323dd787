"""``rayscale bench e2e``: end-to-end latencies and memory of the real local autoscaler.

It starts the KubeRay sample with ``rayscale up --detach`` (the real supervisor process), then:

**Single-worker trials.** Each starts at a random phase of the autoscaler loop (a uniform
delay in ``[0, period)``, so the figures are not phase-locked to the loop), creates a 1-CPU
detached actor, and measures
- demand visible in GCS -> the supervisor's launch decision, and -> the worker joined GCS;
then kills the actor and measures
- idle-timeout expiry (idle start, from GCS's idle_duration_ms, + timeout) -> the
  supervisor's delete decision, and -> the node gone from GCS.

**Bursts.** For each N (default 1, 3, 6, 10): a driver submits N one-CPU tasks at once (the
head has 0 CPUs, so each needs its own worker); measured: demand visible in GCS -> N workers
alive in GCS, the failed boots on the way, and the RSS of each worker's process group, by
process kind. Then the driver is stopped and the cluster must return to 0 workers.

Decisions are read from ``$RAYSCALE_HOME/clusters/<name>/events.jsonl`` (one JSON object per
decision: ``{"at", "type", "group", "count", "nodes", "reason"}``). Without that file the
decision figures are reported as None and failed boots are counted from the
``recent_failures`` of the supervisor's status. The supervisor's RSS is sampled throughout.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil
import yaml

from rayscale.bench.boots import rss_by_kind
from rayscale.local import registry
from rayscale.local.raynodes import client_auth
from rayscale.protocol import INSTANCE_ID_ENV
from rayscale.spec import sample_path

NAME = "rayscale-bench"
GROUP = "small-group"
DEAD = 2  # autoscaler_pb2.NodeStatus.DEAD
IDLE = 3  # autoscaler_pb2.NodeStatus.IDLE
DEFAULT_BURSTS = (1, 3, 6, 10)
BURST_TIMEOUT_S = 240.0
_ACTOR = """
import ray, sys
@ray.remote(num_cpus=1)
class A:
    pass
ray.init(namespace="bench")
if sys.argv[1] == "make":
    A.options(name=sys.argv[2], lifetime="detached").remote()
else:
    ray.kill(ray.get_actor(sys.argv[2]))
"""
_BURST = """
import ray, sys, time
@ray.remote(num_cpus=1)
def hold():
    time.sleep(600)
ray.init()
refs = [hold.remote() for _ in range(int(sys.argv[1]))]
print("SUBMITTED", flush=True)
ray.get(refs)
"""

Say = Callable[[str], None]


def _spec(idle_timeout: int, root: Path) -> Path:
    docs = list(yaml.safe_load_all(sample_path("autoscaler").read_text()))
    cluster = next(d for d in docs if d.get("kind") == "RayCluster")
    cluster["metadata"]["name"] = NAME
    cluster["spec"]["autoscalerOptions"]["idleTimeoutSeconds"] = idle_timeout
    path = root / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


class Events:
    """The supervisor's decisions, from ``events.jsonl`` (None when the file does not exist)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def available(self) -> bool:
        return self.path.exists()

    def since(self, t: float, kind: str | None = None) -> list[dict[str, Any]]:
        return [
            event
            for event in registry.read_jsonl(self.path)
            if float(event.get("at", 0)) >= t and kind in (None, event.get("type"))
        ]

    def first(self, t: float, kind: str, node: str | None = None) -> float | None:
        for event in self.since(t, kind):
            if node is None or node in event.get("nodes", []):
                return float(event["at"])
        return None

    def await_first(
        self, t: float, kind: str, node: str | None = None, timeout: float = 15.0
    ) -> float | None:
        """:meth:`first`, waiting up to ``timeout`` for it to be written (None without the file
        or if it does not come)."""
        deadline = time.monotonic() + timeout
        while self.available and time.monotonic() < deadline:
            found = self.first(t, kind, node)
            if found is not None:
                return found
            time.sleep(0.1)
        return self.first(t, kind, node)


def _wait(pred: Callable[[], Any], timeout: float, what: str, step: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


class _Probe:
    """Polls GCS from the benchmark process (never from the process being measured)."""

    def __init__(self, address: str) -> None:
        import importlib

        self.client = importlib.import_module("ray._raylet").GcsClient(address=address)

    def state(self) -> Any:
        from ray.autoscaler.v2.sdk import get_cluster_resource_state

        return get_cluster_resource_state(self.client)

    def pending(self) -> bool:
        return len(self.state().pending_resource_requests) > 0

    def workers(self) -> dict[str, Any]:
        return {
            n.instance_id: n
            for n in self.state().node_states
            if n.ray_node_type_name == GROUP and n.status != DEAD
        }


class _Bench:
    def __init__(self, work: Path, idle_timeout: int, period: float, say: Say) -> None:
        self.work, self.idle_timeout, self.period, self.say = work, idle_timeout, period, say
        self.env = {**os.environ, "RAYSCALE_HOME": str(work / "home")}
        self.rayscale = [sys.executable, "-m", "rayscale.cli"]
        self.rng = random.Random()
        self.rss: list[int] = []

    def up(self) -> None:
        spec = _spec(self.idle_timeout, self.work)
        argv = [*self.rayscale, "up", str(spec), "--detach", "--period", str(self.period)]
        up = subprocess.run(argv, env=self.env, capture_output=True, text=True)
        if up.returncode != 0:
            raise RuntimeError(f"rayscale up failed ({up.returncode}):\n{up.stderr[-3000:]}")
        os.environ["RAYSCALE_HOME"] = self.env["RAYSCALE_HOME"]
        record = registry.read(NAME)
        if record is None:
            raise RuntimeError("rayscale up returned but wrote no cluster record")
        self.record = record
        self.events = Events(registry.cluster_dir(NAME) / registry.EVENTS_FILE)
        self.supervisor = psutil.Process(record.pid)
        self.client_env = record.client_environ()
        for name, code in (("actor.py", _ACTOR), ("burst.py", _BURST)):
            (self.work / name).write_text(code)

    def down(self) -> None:
        subprocess.run([*self.rayscale, "down", NAME], env=self.env, capture_output=True)

    def sample_rss(self) -> None:
        self.rss.append(self.supervisor.memory_info().rss)

    def random_phase(self) -> None:
        time.sleep(self.rng.uniform(0.0, self.period))

    def driver(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, *args],
            env=self.client_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.work,
        )

    # -- single-worker trials --

    def trial(self, i: int, probe: _Probe) -> dict[str, float | None]:
        before = set(probe.workers())
        self.random_phase()
        driver = self.driver("actor.py", "make", f"a{i}")
        _wait(probe.pending, 30, "pending demand in GCS", step=0.005)
        visible = time.time()
        if driver.wait(60) != 0:
            raise RuntimeError(f"the driver creating actor a{i} failed ({driver.returncode})")
        new = _wait(lambda: set(probe.workers()) - before, 120, "the new worker to join")
        joined = time.time()
        worker = next(iter(new))
        launch = self.events.await_first(visible - self.period, "launch")
        self.sample_rss()
        subprocess.run(
            [sys.executable, "actor.py", "kill", f"a{i}"],
            env=self.client_env,
            check=True,
            capture_output=True,
            cwd=self.work,
        )

        def idle_start() -> float | None:
            node = probe.workers().get(worker)
            if node is not None and node.status == IDLE and node.idle_duration_ms > 0:
                return time.time() - float(node.idle_duration_ms) / 1000.0
            return None

        expiry = _wait(idle_start, 60, "the worker to become idle") + self.idle_timeout
        _wait(lambda: worker not in probe.workers(), self.idle_timeout + 60, "the worker to go")
        gone = time.time()
        delete = self.events.await_first(expiry - self.idle_timeout, "delete", worker)
        self.sample_rss()
        return {
            "demand_to_launch_decision_s": None if launch is None else launch - visible,
            "launch_to_joined_s": None if launch is None else joined - launch,
            "demand_to_joined_s": joined - visible,
            "idle_expiry_to_delete_decision_s": None if delete is None else delete - expiry,
            "idle_expiry_to_removed_s": gone - expiry,
        }

    # -- bursts --

    def burst(self, n: int, probe: _Probe) -> dict[str, Any]:
        _wait(lambda: not probe.workers(), self.idle_timeout + 120, "0 workers before a burst")
        failures_before = self._failures()
        self.random_phase()
        start = time.time()
        driver = self.driver("burst.py", str(n))
        try:
            _wait(probe.pending, 60, "pending demand in GCS", step=0.005)
            visible = time.time()
            try:
                workers = _wait(
                    lambda: w if len(w := probe.workers()) >= n else None,
                    BURST_TIMEOUT_S,
                    f"{n} workers",
                    step=0.05,
                )
                all_up: float | None = time.time() - visible
            except TimeoutError:
                workers, all_up = probe.workers(), None
            time.sleep(1.0)  # the tasks' Python workers have started; agents are up
            rss = [_worker_rss(name) for name in workers]
            self.sample_rss()
        finally:
            driver.kill()
            driver.wait()
        failed = self._failed_boots(start, set(workers), failures_before)
        return {
            "n": n,
            "demand_to_n_workers_s": None if all_up is None else round(all_up, 2),
            "failed_boots": failed,
            "rss_per_worker_mb": _median([sum(r.values()) for r in rss]),
            "rss_per_worker_without_tasks_mb": _median(
                [sum(v for k, v in r.items() if k != "Ray worker (task)") for r in rss]
            ),
            "rss_by_kind_mb": {
                k: _median([r.get(k, 0.0) for r in rss])
                for k in sorted({k for r in rss for k in r})
            },
        }

    def _failures(self) -> set[str]:
        status = registry.read_status(NAME) or {}
        return set(status.get("recent_failures", []))

    def _failed_boots(self, start: float, joined: set[str], before: set[str]) -> int:
        if self.events.available:
            launched = {n for e in self.events.since(start, "launch") for n in e.get("nodes", [])}
            return len(launched - joined)
        return len(self._failures() - before)


def _worker_rss(name: str) -> dict[str, float]:
    """MB of RSS per process kind in the process group of the worker named ``name``."""
    for proc in psutil.process_iter():
        try:
            if proc.pid == os.getpgid(proc.pid) and proc.environ().get(INSTANCE_ID_ENV) == name:
                return rss_by_kind(proc.pid)
        except (psutil.Error, ProcessLookupError):
            continue
    return {}


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def run(
    trials: int, idle_timeout: int, period: float, bursts: Sequence[int], say: Say
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="rs-bench-"))
    bench = _Bench(work, idle_timeout, period, say)
    bench.up()
    rows: list[dict[str, float | None]] = []
    burst_rows: list[dict[str, Any]] = []
    try:
        with client_auth(Path(bench.record.token_path)):
            probe = _Probe(bench.record.address)
            bench.sample_rss()
            for i in range(trials):
                rows.append(bench.trial(i, probe))
                say(
                    f"trial {i + 1}/{trials}: " + ", ".join(_fmt(k, v) for k, v in rows[-1].items())
                )
            for n in bursts:
                burst_rows.append(bench.burst(n, probe))
                say(f"burst {n}: {json.dumps(burst_rows[-1])}")
    finally:
        bench.down()
    if not bench.events.available:
        say("note: no events.jsonl from the supervisor; decision times are not measured")
    return {"trials": rows, "bursts": burst_rows, "rss_bytes": bench.rss}


def _fmt(key: str, value: float | None) -> str:
    return f"{key} {'n/a' if value is None else f'{value:.2f}s'}"


def summarize(result: dict[str, Any], period: float, idle_timeout: int) -> dict[str, Any]:
    rows: list[dict[str, float | None]] = result["trials"]
    summary: dict[str, Any] = {
        "trials": len(rows),
        "period_s": period,
        "idle_timeout_s": idle_timeout,
    }
    for key in rows[0] if rows else {}:
        values = [v for r in rows if (v := r[key]) is not None]
        summary[key] = (
            {
                "median": round(statistics.median(values), 3),
                "max": round(max(values), 3),
                "min": round(min(values), 3),
            }
            if values
            else None
        )
    summary["bursts"] = result["bursts"]
    single = next((b["demand_to_n_workers_s"] for b in result["bursts"] if b["n"] == 1), None)
    for burst in result["bursts"]:
        t = burst["demand_to_n_workers_s"]
        burst["x_single_worker"] = round(t / single, 2) if t and single else None
    summary["supervisor_rss_mb"] = {
        "max": round(max(result["rss_bytes"]) / 2**20, 1),
        "median": round(statistics.median(result["rss_bytes"]) / 2**20, 1),
    }
    return summary


def burst_table(bursts: Sequence[dict[str, Any]]) -> list[str]:
    """The burst figures as a small text table."""
    lines = ["   N  to N workers (s)  x single  failed boots  RSS/worker MB (w/o task)"]
    for b in bursts:
        t = b["demand_to_n_workers_s"]
        lines.append(
            f"{b['n']:>4}  {'not reached' if t is None else f'{t:.2f}':>16}"
            f"  {b.get('x_single_worker') or '-':>8}  {b['failed_boots']:>12}"
            f"  {b['rss_per_worker_mb']} ({b['rss_per_worker_without_tasks_mb']})"
        )
    return lines


def main(
    json_output: bool,
    trials: int = 5,
    idle_timeout: int = 5,
    period: float = 1.0,
    bursts: Sequence[int] = DEFAULT_BURSTS,
) -> int:
    say: Say = (lambda s: print(s, file=sys.stderr)) if json_output else print
    try:
        result = run(trials, idle_timeout, period, bursts, say)
    except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as exc:
        print(f"error: e2e benchmark failed: {exc}", file=sys.stderr)
        return 1
    summary = summarize(result, period, idle_timeout)
    if json_output:
        print(json.dumps(summary))
        return 0
    for key, value in summary.items():
        if key != "bursts":
            print(f"{key}: {value}")
    for line in burst_table(summary["bursts"]):
        print(line)
    for b in summary["bursts"]:
        print(f"N={b['n']} RSS by process kind (MB, median per worker): {b['rss_by_kind_mb']}")
    return 0

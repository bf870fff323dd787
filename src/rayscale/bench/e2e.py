"""``rayscale bench e2e``: end-to-end latencies and memory of the real local autoscaler.

It starts the KubeRay sample with ``rayscale up --detach`` (the real supervisor process), then
for each trial: creates a 1-CPU detached actor, and measures
- demand visible in GCS -> the supervisor's launch decision (its log timestamp);
- launch decision -> the new worker registered in GCS;
then kills the actor and measures
- idle-timeout expiry (idle start, from GCS's idle_duration_ms, + timeout) -> the
  supervisor's delete decision, and -> the node gone from GCS.
It samples the supervisor process's RSS throughout (the autoscaler loop runs in it).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import yaml

from rayscale.local import registry
from rayscale.local.raynodes import client_auth
from rayscale.spec import sample_path

NAME = "rayscale-bench"
_LOG = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO rayscale\.autoscaler: (\w+) (.*)$")
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


def _spec(idle_timeout: int, root: Path) -> Path:
    docs = list(yaml.safe_load_all(sample_path("autoscaler").read_text()))
    cluster = next(d for d in docs if d.get("kind") == "RayCluster")
    cluster["metadata"]["name"] = NAME
    cluster["spec"]["autoscalerOptions"]["idleTimeoutSeconds"] = idle_timeout
    path = root / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def _log_events(path: Path) -> list[tuple[float, str, str]]:
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        m = _LOG.match(line)
        if m:
            when = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            out.append((when, m.group(2), m.group(3)))
    return out


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
            if n.ray_node_type_name == "small-group" and n.status != 2  # not DEAD
        }


def run_trials(
    trials: int, idle_timeout: int, period: float, out: Callable[[str], None]
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="rs-bench-"))
    env = {**os.environ, "RAYSCALE_HOME": str(work / "home")}
    rayscale = [sys.executable, "-m", "rayscale.cli"]
    spec = _spec(idle_timeout, work)
    up = subprocess.run(
        [*rayscale, "up", str(spec), "--detach", "--period", str(period)],
        env=env,
        capture_output=True,
        text=True,
    )
    if up.returncode != 0:
        raise RuntimeError(f"rayscale up failed ({up.returncode}):\n{up.stderr[-3000:]}")
    os.environ["RAYSCALE_HOME"] = env["RAYSCALE_HOME"]
    record = registry.read(NAME)
    assert record is not None
    log_path = registry.cluster_dir(NAME) / "supervisor.log"
    supervisor = psutil.Process(record.pid)
    rss: list[int] = []
    rows: list[dict[str, float]] = []
    script = work / "actor.py"
    script.write_text(_ACTOR)
    client_env = record.client_environ()
    try:
        with client_auth(Path(record.token_path)):
            probe = _Probe(record.address)
            for i in range(trials):
                rss.append(supervisor.memory_info().rss)
                rows.append(
                    _trial(i, probe, script, client_env, log_path, idle_timeout, rss, supervisor)
                )
                out(
                    f"trial {i + 1}/{trials}: "
                    + ", ".join(f"{k} {v:.2f}s" for k, v in rows[-1].items())
                )
    finally:
        subprocess.run([*rayscale, "down", NAME], env=env, capture_output=True)
    return {"trials": rows, "rss_bytes": rss}


def _trial(
    i: int,
    probe: _Probe,
    script: Path,
    env: dict[str, str],
    log_path: Path,
    idle_timeout: int,
    rss: list[int],
    supervisor: psutil.Process,
) -> dict[str, float]:
    before = {n for n in probe.workers()}
    seen_events = len(_log_events(log_path))
    # Poll while the driver runs: the demand appears in GCS before the driver exits.
    driver = subprocess.Popen(
        [sys.executable, str(script), "make", f"a{i}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait(probe.pending, 30, "pending demand in GCS", step=0.005)
    visible = time.time()
    if driver.wait(60) != 0:
        raise RuntimeError(f"the driver creating actor a{i} failed ({driver.returncode})")
    launch = _wait(
        lambda: next((e for e in _log_events(log_path)[seen_events:] if e[1] == "launch"), None),
        60,
        "a launch decision",
    )
    new = _wait(lambda: set(probe.workers()) - before, 120, "the new worker to join")
    joined = time.time()
    worker = next(iter(new))
    rss.append(supervisor.memory_info().rss)
    subprocess.run(
        [sys.executable, str(script), "kill", f"a{i}"], env=env, check=True, capture_output=True
    )

    def idle_start() -> float | None:
        node = probe.workers().get(worker)
        if node is not None and node.status == 3 and node.idle_duration_ms > 0:  # IDLE
            return time.time() - float(node.idle_duration_ms) / 1000.0
        return None

    started_idle = _wait(idle_start, 60, "the worker to become idle")
    expiry = started_idle + idle_timeout
    delete = _wait(
        lambda: next(
            (e for e in _log_events(log_path) if e[1] == "delete" and worker in e[2]), None
        ),
        idle_timeout + 60,
        "the delete decision",
    )
    _wait(lambda: worker not in probe.workers(), 60, "the worker to leave GCS")
    gone = time.time()
    rss.append(supervisor.memory_info().rss)
    return {
        "demand_to_launch_decision_s": launch[0] - visible,
        "launch_to_joined_s": joined - launch[0],
        "idle_expiry_to_delete_decision_s": delete[0] - expiry,
        "idle_expiry_to_removed_s": gone - expiry,
    }


def main(json_output: bool, trials: int = 5, idle_timeout: int = 5, period: float = 1.0) -> int:
    say: Callable[[str], None] = (lambda s: print(s, file=sys.stderr)) if json_output else print
    try:
        result = run_trials(trials, idle_timeout, period, say)
    except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as exc:
        print(f"error: e2e benchmark failed: {exc}", file=sys.stderr)
        return 1
    rows = result["trials"]
    summary: dict[str, Any] = {
        "trials": len(rows),
        "period_s": period,
        "idle_timeout_s": idle_timeout,
    }
    for key in rows[0]:
        values = [r[key] for r in rows]
        summary[key] = {
            "median": round(statistics.median(values), 3),
            "max": round(max(values), 3),
            "min": round(min(values), 3),
        }
    summary["supervisor_rss_mb"] = {
        "max": round(max(result["rss_bytes"]) / 2**20, 1),
        "median": round(statistics.median(result["rss_bytes"]) / 2**20, 1),
    }
    if json_output:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
    return 0

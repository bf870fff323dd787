"""``rayscale demo``: KubeRay's detached-actor autoscaling walkthrough, locally, with a timeline.

KubeRay's sample cluster (head with 0 CPUs, ``small-group`` of 1-CPU workers, 0..10) runs
locally with a short idle timeout; the walkthrough's four steps run through the same scripts
from the sample's ConfigMap, and after each one the demo waits for the worker count the
walkthrough documents. Every scaling decision is printed with its reason as it happens. It
exits 0 only if every step came out as the walkthrough says.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable

import yaml

from rayscale.autoscaler.loop import TickReport
from rayscale.local.kubelet import rewrite_paths
from rayscale.local.supervisor import Supervisor
from rayscale.spec import load_text, sample_path
from rayscale.waiting import WaitTimeoutError, wait_until

DEMO_NAME = "rayscale-demo"
STEPS = (
    ("detached_actor.py", "actor1", 1, "a 1-CPU detached actor: the head has 0 CPUs, so 1 worker"),
    ("detached_actor.py", "actor2", 2, "a second actor: a second worker"),
    ("terminate_detached_actor.py", "actor1", 1, "kill actor1: its worker goes when idle"),
    ("terminate_detached_actor.py", "actor2", 0, "kill actor2: back to 0 workers"),
)


def demo_spec_text(idle_timeout: int) -> str:
    """The KubeRay sample, renamed and with a shorter idle timeout (the only changes)."""
    docs = list(yaml.safe_load_all(sample_path("autoscaler").read_text()))
    for doc in docs:
        if doc.get("kind") == "RayCluster":
            doc["metadata"]["name"] = DEMO_NAME
            doc["spec"]["autoscalerOptions"]["idleTimeoutSeconds"] = idle_timeout
    return yaml.safe_dump_all(docs, sort_keys=False)


class Timeline:
    def __init__(self, out: Callable[[str], None]) -> None:
        self.t0 = time.monotonic()
        self.out = out

    def say(self, text: str) -> None:
        self.out(f"[{time.monotonic() - self.t0:6.1f}s] {text}")


def _workers(sup: Supervisor) -> tuple[int, int]:
    groups = sup.last.groups if sup.last is not None else []
    group = next((g for g in groups if g.name == "small-group"), None)
    return (group.running, group.pending) if group is not None else (0, 0)


def _wait_for(sup: Supervisor, running: int, timeout: float) -> bool:
    try:
        wait_until(lambda: _workers(sup) == (running, 0), timeout, f"{running} workers")
    except WaitTimeoutError:
        return False
    return True


def _decisions(line: Timeline) -> Callable[[TickReport], None]:
    """Print each scaling decision with its reason, as the autoscaler makes it."""

    def show(report: TickReport) -> None:
        for event in report.events:
            if event.type != "waiting":
                line.say(f"  autoscaler: {event.reason.text()}")

    return show


def _run_script(sup: Supervisor, script: str, arg: str) -> int:
    ray = sup.runtime.ray
    assert ray is not None
    argv = rewrite_paths([sys.executable, f"/home/ray/samples/{script}", arg], sup.runtime.mounts)
    env = ray.client_environ()
    return subprocess.call(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run(idle_timeout: int = 10, period: float = 0.5, out: Callable[[str], None] = print) -> int:
    spec = load_text(demo_spec_text(idle_timeout), source="demo")
    sup = Supervisor(spec, "(demo)", period)
    sup.handle_signals()
    line = Timeline(out)
    sup.listeners.append(_decisions(line))
    line.say(
        f"starting {DEMO_NAME}: KubeRay's ray-cluster.autoscaler.yaml, idle timeout "
        f"{idle_timeout}s, autoscaler period {period}s"
    )
    sup.start()
    ray = sup.runtime.ray
    assert ray is not None
    line.say(f"head ready at {ray.gcs_address} (0 CPUs); small-group 0..10 × 1 CPU")
    ready = threading.Event()
    thread = threading.Thread(target=sup.run, kwargs={"on_ready": ready.set}, daemon=True)
    thread.start()
    ok = ready.wait(60) and _wait_for(sup, 0, 30)
    try:
        for script, actor, expect, what in STEPS:
            if not ok or sup.stop.is_set():
                break
            started = time.monotonic()
            code = _run_script(sup, script, actor)
            line.say(f"python /home/ray/samples/{script} {actor} (exit {code}): {what}")
            limit = 120 + (idle_timeout if expect < 2 else 0)
            ok = code == 0 and _wait_for(sup, expect, limit)
            took = time.monotonic() - started
            mark = "ok" if ok else "FAILED"
            line.say(
                f"  small-group workers: {_workers(sup)[0]} (the walkthrough expects {expect}) "
                f"after {took:.1f}s  {mark}"
            )
    finally:
        sup.stop.set()
        thread.join(120)
        line.say(
            "cluster stopped; no process left"
            if not ray.leftovers()
            else "cluster stopped, but processes were left (see logs)"
        )
    line.say(
        "demo passed: the cluster scaled as KubeRay's walkthrough describes"
        if ok
        else "demo FAILED"
    )
    return 0 if ok else 1

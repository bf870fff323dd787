"""Seed 002 on the embedded runtime, driven through the CLI as the walkthrough drives kubectl.

KubeRay's sample cluster (head ``num-cpus: "0"``, ``small-group`` 0..10 workers of 1 CPU, the
``ray-example`` ConfigMap mounted at /home/ray/samples) with a 5 s idle timeout:
``rayscale exec NAME -- python3 /home/ray/samples/detached_actor.py actor1`` gives one worker,
actor2 a second one; terminating actor1 removes one worker (the idle one, after the idle
timeout) and terminating actor2 brings the group back to 0.
"""

from __future__ import annotations

import time

import pytest

from tests.ray.runtime_helpers import RuntimeFactory, counts, runtime_fixture, workers  # noqa: F401

pytestmark = pytest.mark.ray

IDLE_TIMEOUT_S = 5
SAMPLES = "/home/ray/samples"


def cpu(resources: dict[str, float]) -> float:
    return float(resources.get("CPU", 0.0))


def test_seed_002_detached_actors_scale_the_group_up_and_down(runtime: RuntimeFactory) -> None:
    cluster = runtime("autoscaler", "seed002", idle_timeout=IDLE_TIMEOUT_S)
    cluster.up()
    status = cluster.wait_workers(0, timeout=60)
    head = [n for n in status["nodes"] if n["group"] == "headgroup"]
    assert len(head) == 1, status["nodes"]
    assert cpu(head[0]["total"]) == 0, "the head must offer no CPU (rayStartParams num-cpus 0)"
    assert status["loop_errors"] == 0

    # Step 5.1: a 1-CPU detached actor cannot run on the head: one worker.
    cluster.exec("python3", f"{SAMPLES}/detached_actor.py", "actor1")
    status = cluster.wait_workers(1)
    first = workers(status)
    assert len(first) == 1 and cpu(first[0]["total"]) == 1, first

    # Step 5.3: a second one: a second worker (the first has no CPU left).
    cluster.exec("python3", f"{SAMPLES}/detached_actor.py", "actor2")
    status = cluster.wait_status(
        lambda s: counts(s) == (2, 0) and all(cpu(w["available"]) == 0 for w in workers(s)),
        "2 workers, both holding an actor",
    )
    assert {w["name"] for w in first} <= {w["name"] for w in workers(status)}
    assert group_desired(status) == 2

    # Step 6.1: kill actor1: its worker goes once idle for idleTimeoutSeconds, the busy one stays.
    cluster.exec("python3", f"{SAMPLES}/terminate_detached_actor.py", "actor1")
    killed_at = time.monotonic()
    status = cluster.wait_workers(1, timeout=IDLE_TIMEOUT_S + 120)
    waited = time.monotonic() - killed_at
    left = workers(status)
    assert len(left) == 1
    assert cpu(left[0]["available"]) == 0, f"the worker holding actor2 must stay: {left}"
    # The actor died before `exec` returned, so the node was idle for at most that much longer.
    assert waited >= IDLE_TIMEOUT_S - 3, f"worker removed {waited:.1f}s after it became idle"

    # Step 6.3: kill actor2: back to the head alone.
    cluster.exec("python3", f"{SAMPLES}/terminate_detached_actor.py", "actor2")
    status = cluster.wait_workers(0, timeout=IDLE_TIMEOUT_S + 120)
    assert [n["group"] for n in status["nodes"]] == ["headgroup"], status["nodes"]
    assert group_desired(status) == 0
    assert status["loop_errors"] == 0
    assert status["recent_failures"] == [], "removing idle workers is not a failure"


def group_desired(status: dict) -> int:  # type: ignore[type-arg]
    return int(next(g for g in status["groups"] if g["name"] == "small-group")["desired"])

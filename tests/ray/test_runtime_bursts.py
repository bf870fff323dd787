"""Bursts on the embedded runtime: many workers booting at once all boot the first time.

KubeRay's sample cluster (head 0 CPUs, ``small-group`` 0..10 × 1 CPU), as a new user runs it
on a small machine: a request_resources(num_cpus=3), and a driver with 6 one-CPU tasks.
"Zero failed boots" is read from the supervisor's own counters and decision record.
"""

from __future__ import annotations

import time

import pytest

from tests.ray.runtime_helpers import RuntimeFactory, counts, runtime_fixture  # noqa: F401

pytestmark = pytest.mark.ray

IDLE_S = 5


def request(cpus: int) -> str:
    return f"import ray; ray.init(); ray.autoscaler.sdk.request_resources(num_cpus={cpus})"


SIX_TASKS = """
import ray, time

ray.init()

@ray.remote(num_cpus=1)
def hold(i):
    time.sleep(30)
    return i

print("DONE", sorted(ray.get([hold.remote(i) for i in range(6)])), flush=True)
"""


def no_failed_boots(cluster, status) -> None:  # type: ignore[no-untyped-def]
    assert status["failed_boots"] == 0, status["recent_failures"]
    failed = [e for e in cluster.records("events.jsonl") if e["reason"]["code"] == "boot_failed"]
    assert not failed, failed


def test_request_resources_three_workers_boot_together(runtime: RuntimeFactory) -> None:
    cluster = runtime("autoscaler", "burst3", idle_timeout=IDLE_S)
    cluster.up()
    cluster.wait_workers(0, timeout=60)

    cluster.exec("python3", "-c", request(3))
    status = cluster.wait_workers(3, timeout=120)
    no_failed_boots(cluster, status)
    launches = [e for e in cluster.records("events.jsonl") if e["type"] == "launch"]
    assert sum(e["count"] for e in launches) == 3, launches  # launched once, not relaunched

    time.sleep(IDLE_S + 3)  # past the idle timeout: the standing request keeps all three
    status = cluster.status()
    assert counts(status) == (3, 0), status["groups"]

    cluster.exec("python3", "-c", request(1))  # lower the request: two may go, one stays
    status = cluster.wait_workers(1, timeout=60)
    no_failed_boots(cluster, status)
    assert status["loop_errors"] == 0


def test_six_tasks_six_workers_at_once(runtime: RuntimeFactory) -> None:
    cluster = runtime("autoscaler", "burst6", idle_timeout=IDLE_S)
    cluster.up()
    cluster.wait_workers(0, timeout=60)

    driver = cluster.exec_background(SIX_TASKS)
    status = cluster.wait_workers(6, timeout=120)
    no_failed_boots(cluster, status)
    assert driver.wait(180) == 0, cluster.background_log(driver)
    assert "DONE [0, 1, 2, 3, 4, 5]" in cluster.background_log(driver)

    status = cluster.wait_workers(0, timeout=90)
    no_failed_boots(cluster, status)
    assert status["loop_errors"] == 0

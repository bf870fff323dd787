"""Seeds 000/003 on the embedded runtime: ``request_resources(num_cpus=4)`` via ``rayscale exec``.

The min1 sample: head 1 CPU, ``small-group`` min 1 worker of 1 CPU. Asking for 4 CPUs adds two
workers to the head and the first worker: 3 workers in total, and no more while the request
stands (Ray v1 semantics: the request lives in GCS KV ``autoscaler_resource_request``).
"""

from __future__ import annotations

import time

import pytest

from tests.ray.runtime_helpers import RuntimeFactory, counts, runtime_fixture, workers  # noqa: F401

pytestmark = pytest.mark.ray

REQUEST = "import ray; ray.init(); ray.autoscaler.sdk.request_resources(num_cpus=4)"


def test_seed_003_request_resources_scales_to_three_workers(runtime: RuntimeFactory) -> None:
    cluster = runtime("autoscaler-min1", "seed003")
    cluster.up()
    status = cluster.wait_workers(1, timeout=180)  # minReplicas 1
    head = [n for n in status["nodes"] if n["group"] == "headgroup"]
    assert len(head) == 1 and head[0]["total"].get("CPU") == 1, head

    cluster.exec("python3", "-c", REQUEST)
    status = cluster.wait_workers(3, timeout=240)
    assert len(workers(status)) == 3
    total_cpu = sum(n["total"].get("CPU", 0) for n in status["nodes"])
    assert total_cpu == 4, status["nodes"]
    assert status["demand"]["request_resources"] == [{"CPU": 1.0}] * 4

    # The standing request keeps the cluster at 4 CPUs: no overshoot over several iterations.
    seen = set()
    until = time.monotonic() + 4
    while time.monotonic() < until:
        status = cluster.status()
        seen.add(counts(status))
        time.sleep(0.5)
    assert seen == {(3, 0)}, seen
    assert status["loop_errors"] == 0

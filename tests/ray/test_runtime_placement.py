"""Placement groups and infeasible demand on the embedded runtime.

On KubeRay's sample cluster (head 0 CPU, 1-CPU workers): a task needing a GPU that no group
offers shows as infeasible, with a reason naming GPU, and the loop keeps working: a detached
STRICT_SPREAD placement group of 3 x {CPU: 1} then gets 3 workers, one bundle on each.
(An infeasible STRICT_SPREAD group once crashed Ray's autoscaler sidecar: kuberay 2385.)
"""

from __future__ import annotations

import time

import pytest

from tests.ray.runtime_helpers import RuntimeFactory, counts, runtime_fixture, workers  # noqa: F401

pytestmark = pytest.mark.ray

GPU_DRIVER = """
import time
import ray

ray.init(namespace="rayscale-tests")

@ray.remote(num_gpus=1)
def needs_gpu():
    return 1

ref = needs_gpu.remote()
print("SUBMITTED", flush=True)
time.sleep(900)
"""

CREATE_PG = """
import ray
from ray.util.placement_group import placement_group

ray.init(namespace="rayscale-tests")
pg = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD", name="spread3",
                     lifetime="detached")
ray.util.get_placement_group("spread3")  # registered in GCS before this driver exits
print("CREATED", pg.id.hex(), flush=True)
"""

CHECK_PG = """
import ray
from ray.util.placement_group import placement_group_table

ray.init(namespace="rayscale-tests")
pg = ray.util.get_placement_group("spread3")
ray.get(pg.ready(), timeout=120)
nodes = placement_group_table(pg)["bundles_to_node_id"]
print("NODES", len(nodes), len(set(nodes.values())), flush=True)
ray.util.remove_placement_group(pg)
"""


def gpu_infeasible(status: dict) -> list[dict]:  # type: ignore[type-arg]
    return [u for u in status.get("infeasible", []) if u["resources"].get("GPU")]


def test_strict_spread_gets_three_workers_next_to_infeasible_gpu_task(
    runtime: RuntimeFactory,
) -> None:
    cluster = runtime("autoscaler", "spread")
    cluster.up()
    cluster.wait_workers(0, timeout=60)

    driver = cluster.exec_background(GPU_DRIVER)
    try:
        status = cluster.wait_status(lambda s: bool(gpu_infeasible(s)), "the GPU task infeasible")
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- GPU driver ---\n{cluster.background_log(driver)}") from e
    (unmet,) = gpu_infeasible(status)
    assert "GPU" in unmet["reason"] and "infeasible" in unmet["reason"], unmet
    assert unmet["resources"] == {"CPU": 1.0, "GPU": 1.0}, "a GPU task also needs 1 CPU"
    assert counts(status) == (0, 0), "no worker can run it, so none is launched"
    assert status["loop_errors"] == 0

    # The loop keeps running and scaling next to the infeasible task.
    out = cluster.exec_script(CREATE_PG).stdout
    assert "CREATED" in out, out
    status = cluster.wait_workers(3, timeout=240)
    assert len({w["name"] for w in workers(status)}) == 3
    assert gpu_infeasible(status), "the GPU task is still infeasible"
    assert status["loop_errors"] == 0
    assert status["supervisor"]["alive"] is True

    out = cluster.exec_script(CHECK_PG).stdout
    assert "NODES 3 3" in out, f"STRICT_SPREAD bundles must be on 3 distinct nodes: {out}"

    # Several more iterations: still 3 workers, no loop error, the GPU task still listed.
    until = time.monotonic() + 3
    while time.monotonic() < until:
        status = cluster.status()
        assert status["loop_errors"] == 0
        assert counts(status)[0] == 3
        time.sleep(0.5)
    assert driver.poll() is None, cluster.background_log(driver)

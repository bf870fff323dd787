"""upscalingMode Conservative on the embedded runtime: pending workers are rate-limited.

KubeRay's documentation: "the number of pending worker pods is at most the number of worker
pods connected to the Ray cluster" (rayscale: at most max(1, running) per group). Six pending
1-CPU detached actors on a cluster with no workers must reach 6 workers in several rounds.

The bound is checked on the supervisor's own record of ticks (``ticks.jsonl``: each group's
running/pending counts, a line whenever they change), so no iteration can slip between polls.
"""

from __future__ import annotations

import pytest

from tests.ray.runtime_helpers import RuntimeFactory, counts, runtime_fixture  # noqa: F401

pytestmark = pytest.mark.ray

ACTORS = 6

SIX_ACTORS = f"""
import ray

ray.init(namespace="rayscale-tests")

@ray.remote(num_cpus=1)
class Holder:
    pass

for i in range({ACTORS}):
    Holder.options(name=f"holder{{i}}", lifetime="detached").remote()
for i in range({ACTORS}):
    ray.get_actor(f"holder{{i}}")  # registered in GCS before this driver exits
print("CREATED", flush=True)
"""


def test_conservative_mode_limits_pending_workers(runtime: RuntimeFactory) -> None:
    cluster = runtime("autoscaler", "conservative", upscaling_mode="Conservative")
    cluster.up()
    cluster.wait_workers(0, timeout=60)

    out = cluster.exec_script(SIX_ACTORS).stdout
    assert "CREATED" in out, out
    final = cluster.wait_workers(ACTORS, timeout=420)

    ticks = [t["groups"]["small-group"] for t in cluster.records("ticks.jsonl")]
    trajectory = [(t["running"], t["pending"]) for t in ticks]
    violations = [(r, p) for r, p in trajectory if p > max(1, r)]
    assert not violations, f"pending > max(1, running): {violations}; {trajectory}"
    assert max(p for _, p in trajectory) >= 1 and len(trajectory) >= 4, trajectory
    launches = [e for e in cluster.records("events.jsonl") if e["type"] == "launch"]
    assert len(launches) >= 3, f"Conservative should scale in several rounds: {launches}"
    assert counts(final) == (ACTORS, 0)
    assert final["loop_errors"] == 0
    print(f"\n(running, pending) over {len(trajectory)} recorded changes: {trajectory}")

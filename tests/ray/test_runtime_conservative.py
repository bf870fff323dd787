"""upscalingMode Conservative on the embedded runtime: pending workers are rate-limited.

KubeRay's documentation: "the number of pending worker pods is at most the number of worker
pods connected to the Ray cluster" (rayscale: at most max(1, running) per group). Six pending
1-CPU detached actors on a cluster with no workers must reach 6 workers in several rounds, and
no autoscaler iteration may show more pending workers than that bound.

Each status.json is one iteration's consistent snapshot (pending includes the workers that
iteration launched), so the bound is checked on every distinct iteration observed; the file is
polled every 0.1 s (the loop period is 0.5 s), ``rayscale status -o json`` every few polls.
"""

from __future__ import annotations

import time
from typing import Any

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

    seen: dict[float, tuple[int, int]] = {}  # iteration time -> (running, pending)
    violations: list[str] = []
    held_back_conservative = 0
    polls = 0
    deadline = time.monotonic() + 420
    while True:
        polls += 1
        status: dict[str, Any] | None = (
            cluster.status() if polls % 10 == 0 else cluster.status_file()
        )
        if status and status.get("groups") and status["updated_at"] not in seen:
            running, pending = counts(status)
            seen[status["updated_at"]] = (running, pending)
            if pending > max(1, running):
                violations.append(f"running {running}, pending {pending}")
            held = " ".join(u["reason"] for u in status.get("held_back", []))
            if "Conservative" in held:
                held_back_conservative += 1
            if (running, pending) == (ACTORS, 0):
                break
        assert time.monotonic() < deadline, (
            f"no {ACTORS} workers in time; iterations seen: {sorted(seen.items())}\n"
            f"{cluster.log_tail()}"
        )
        time.sleep(0.1)

    trajectory = [rp for _, rp in sorted(seen.items())]
    assert not violations, f"pending > max(1, running): {violations}; {trajectory}"
    assert held_back_conservative > 0, "the Conservative limit never held demand back"
    final = cluster.status()
    assert counts(final) == (ACTORS, 0)
    assert final["loop_errors"] == 0
    print(f"\n(running, pending) over {len(trajectory)} iterations: {trajectory}")

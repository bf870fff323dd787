"""Ray's own ``ray status`` against a rayscale cluster (KubeRay's walkthrough runs it in the
head pod). The supervisor publishes the document Ray's v1 monitor writes to GCS
(``__autoscaling_status``), so Ray's CLI renders rayscale's nodes and demand unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rayscale.waiting import wait_until
from tests.ray.runtime_helpers import RuntimeFactory, runtime_fixture  # noqa: F401

pytestmark = pytest.mark.ray

RAY = str(Path(sys.executable).with_name("ray"))

ACTORS = """
import ray

ray.init(namespace="rayscale-tests")

@ray.remote(num_cpus=1)
class Holder:
    pass

for i in range(4):
    Holder.options(name=f"h{i}", lifetime="detached").remote()
for i in range(4):
    ray.get_actor(f"h{i}")
print("CREATED", flush=True)
"""


def section(text: str, title: str) -> list[str]:
    """The indented lines under ``title:`` in ray status's output."""
    lines = text.splitlines()
    start = lines.index(f"{title}:") + 1
    out = []
    for line in lines[start:]:
        if not line.startswith(" "):
            break
        out.append(line.strip())
    return out


def test_ray_status_shows_running_and_pending_workers_and_demand(runtime: RuntimeFactory) -> None:
    # Conservative mode scales in rounds, so running workers, pending workers and pending
    # demand coexist for a while: one `ray status` output can show all three.
    cluster = runtime("autoscaler", "raystatus", upscaling_mode="Conservative")
    cluster.up()
    cluster.wait_workers(0, timeout=60)
    before = cluster.exec(RAY, "status").stdout
    assert "(no pending nodes)" in before and "Active:" in before, before

    assert "CREATED" in cluster.exec_script(ACTORS).stdout
    seen: list[str] = []

    def all_three() -> str | None:
        out = cluster.exec(RAY, "status", check=False).stdout
        seen.append(out)
        if "Node status" not in out:
            return None
        active = [x for x in section(out, "Active") if x.endswith("small-group")]
        pending = [x for x in section(out, "Pending") if "small-group" in x]
        demand = [x for x in section(out, "Pending Demands") if "'CPU': 1.0" in x]
        return out if active and pending and demand else None

    out = wait_until(all_three, 240, "ray status with running + pending workers + demand",
                     interval=0.2, detail=lambda: seen[-1] if seen else "")  # fmt: skip
    print(out)

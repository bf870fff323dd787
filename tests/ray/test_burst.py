"""Workers booting at once (real Ray 2.60 processes, node level, no autoscaler).

Before OS-assigned ports and per-node socket/log names, three workers started together lost two
of them to ``bind: Address already in use`` (two raylets picked the same plasma socket name) and
``ray start`` timed out after 30 s. Here six start at once on one cluster while a second
cluster boots beside it; every node must join, and nothing may be left after stopping.
The time it takes is printed by ``rayscale bench e2e`` (and ``python -m rayscale.bench.boots``),
never asserted.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from rayscale.local import raynodes
from rayscale.local.raynodes import LocalRayCluster, NodeResources, RayNode

pytestmark = pytest.mark.ray

ONE_CPU = NodeResources(num_cpus=1)


def _start(cluster: LocalRayCluster, prefix: str, count: int) -> list[RayNode]:
    return [
        cluster.start_worker(f"{prefix}-{i}", "small-group", ONE_CPU, wait=False)
        for i in range(count)
    ]


def test_six_workers_at_once_beside_a_second_cluster(
    ray_cluster: Callable[..., LocalRayCluster],
) -> None:
    first = ray_cluster(name="burst-a")
    second = ray_cluster(name="burst-b")
    nodes = _start(first, "a", 6) + _start(second, "b", 2)

    failures = {}
    for node in nodes:
        cluster = first if node.name.startswith("a-") else second
        try:
            cluster.wait_joined(node, timeout=240)
        except raynodes.RayNodesError as exc:
            failures[node.name] = raynodes.boot_failure_line(node) or str(exc)[:300]
    assert failures == {}, failures

    for cluster, count in ((first, 6), (second, 2)):
        alive = {
            n.instance_id
            for n in cluster.resource_state().node_states
            if n.ray_node_type_name == "small-group" and n.status != 2  # not DEAD
        }
        assert alive == set(cluster.workers), (alive, set(cluster.workers))
        assert len(alive) == count
    # Each node's Ray logs carry its own tag, so each failure can be traced to its node.
    tags = {node.tag for node in nodes if node in first.workers.values()}
    assert len(tags) == 6
    for tag in tags:
        assert list(first.temp_dir.glob(f"session_*/logs/raylet.{tag}.out")), tag
    # Teardown (the ray_cluster fixture) stops both clusters and fails on any leftover.


def test_boot_failure_line_names_the_cause(ray_cluster: Callable[..., LocalRayCluster]) -> None:
    cluster = ray_cluster(name="burst-fail")

    # A flag `ray start` does not know: the cause is in the node's own output.
    bad_flag = cluster.start_worker("bad-flag", "g", ONE_CPU, wait=False, extra_args=["--bogus"])
    with pytest.raises(raynodes.RayNodeExitedError) as exited:
        cluster.wait_joined(bad_flag, timeout=120)
    line = raynodes.boot_failure_line(bad_flag)
    assert line is not None and "No such option '--bogus'" in line, line
    assert exited.value.failure_line == line

    # A port taken before the raylet binds it (the failure the burst race produced): the cause
    # is in the raylet's own log, which only this node writes (raylet.<tag>.out).
    with socket.socket() as squatter:
        squatter.bind(("", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        taken = cluster.start_worker(
            "port-taken", "g", ONE_CPU, wait=False, extra_args=[f"--node-manager-port={port}"]
        )
        with pytest.raises(raynodes.RayNodesError):
            cluster.wait_joined(taken, timeout=120)
    line = raynodes.boot_failure_line(taken)
    assert line is not None and line.startswith("raylet: "), line
    assert str(port) in line or "in use" in line.lower(), line

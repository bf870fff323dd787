"""Failures on the embedded runtime: a worker or the supervisor killed outright (SIGKILL).

- A worker's ``ray start`` process group is killed under a detached actor that may restart:
  the loop records the exit, launches a replacement and the actor comes back on it.
- The supervisor of ``rayscale up --detach`` is killed: the Ray processes keep running;
  ``rayscale down`` stops all of them, and so does the next ``rayscale up`` of the same file,
  which then starts exactly one new set.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from rayscale import processes
from tests.ray.runtime_helpers import (
    RuntimeFactory,
    counts,
    describe,
    head_start_processes,
    node_processes,
    ray_start_leader,
    run_dirs_with_processes,
    runtime_fixture,  # noqa: F401
    wait_until,
    workers,
)

pytestmark = pytest.mark.ray

PHOENIX = """
import sys
import time
import ray

ray.init(namespace="rayscale-tests")

@ray.remote(num_cpus=1, max_restarts=-1)
class Phoenix:
    def node(self):
        return ray.get_runtime_context().get_node_id()

if sys.argv[1] == "create":
    Phoenix.options(name="phoenix", lifetime="detached").remote()
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        actor = ray.get_actor("phoenix")
        print("NODE", ray.get(actor.node.remote(), timeout=15), flush=True)
        break
    except Exception as e:  # restarting, not placed yet, ...
        if time.monotonic() > deadline:
            raise
        print("retry:", type(e).__name__, flush=True)
        time.sleep(1)
"""


def node_of(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("NODE ")]
    assert lines, output
    return lines[-1].split()[1]


def test_killed_worker_is_replaced_and_its_actor_restarts(runtime: RuntimeFactory) -> None:
    cluster = runtime("autoscaler", "workerkill")
    cluster.up()
    cluster.wait_workers(0, timeout=60)

    first_node = node_of(cluster.exec_script(PHOENIX, "create", "240").stdout)
    status = cluster.wait_workers(1)
    (victim,) = [w["name"] for w in workers(status)]
    run_dir = cluster.run_dir

    leader = ray_start_leader(run_dir, victim)
    os.killpg(leader, signal.SIGKILL)
    wait_until(lambda: not processes.group_members(leader), 30, f"group {leader} gone")

    status = cluster.wait_status(
        lambda s: counts(s) == (1, 0) and victim not in {w["name"] for w in workers(s)},
        "a replacement worker",
        timeout=300,
    )
    (replacement,) = [w["name"] for w in workers(status)]
    assert replacement != victim
    assert any(victim in f for f in status["recent_failures"]), status["recent_failures"]
    assert status["loop_errors"] == 0
    # Ray's worker processes run in their own process groups (Ray 2.60); they exit once they
    # notice their raylet is gone.
    wait_until(lambda: victim not in node_processes(run_dir), 60, "nothing of the killed worker")

    second_node = node_of(cluster.exec_script(PHOENIX, "get", "240").stdout)
    assert second_node != first_node, "the actor must have restarted on the new worker"


def test_down_stops_everything_after_the_supervisor_was_killed(runtime: RuntimeFactory) -> None:
    cluster = runtime("autoscaler-min1", "supkill")
    cluster.up()
    status = cluster.wait_workers(1)
    run_dir = cluster.run_dir
    names = {n["name"] for n in status["nodes"]}
    assert len(names) == 2, names

    cluster.kill_supervisor()
    survivors = node_processes(run_dir)
    assert set(survivors) == names, "the Ray nodes outlive their supervisor"
    # The teardown's leak check sees every one of them.
    seen = {info.pid for info in cluster.leftovers()}
    assert {p.pid for procs in survivors.values() for p in procs} <= seen
    assert cluster.status()["supervisor"]["alive"] is False

    started = time.monotonic()
    result = cluster.down()
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "stopped" in result.stderr
    assert processes.find_leftovers(markers=[run_dir]) == []
    assert not Path(run_dir).exists()
    assert cluster.state() is None
    assert took < 60, f"down took {took:.1f}s"


def test_up_after_the_supervisor_was_killed_replaces_the_old_processes(
    runtime: RuntimeFactory,
) -> None:
    cluster = runtime("autoscaler-min1", "reup")
    cluster.up()
    status = cluster.wait_workers(1)
    old_dir = cluster.run_dir
    old_names = {n["name"] for n in status["nodes"]}
    cluster.kill_supervisor()
    assert set(node_processes(old_dir)) == old_names

    cluster.up()  # the same file
    new_dir = cluster.run_dir
    assert new_dir != old_dir
    assert processes.find_leftovers(markers=[old_dir]) == [], "the old processes must be gone"
    assert not Path(old_dir).exists()
    assert run_dirs_with_processes(cluster.prefix) == {new_dir}
    heads = head_start_processes(cluster.prefix)
    assert len(heads) == 1, [h.pid for h in heads]

    status = cluster.wait_workers(1)
    assert not old_names & {n["name"] for n in status["nodes"]}
    assert run_dirs_with_processes(cluster.prefix) == {new_dir}
    assert len(head_start_processes(cluster.prefix)) == 1
    log = (cluster.cluster_dir / "supervisor.log").read_text()
    assert "left by a dead supervisor" in log, log[-2000:]


def test_corrupt_state_file_is_a_clear_error_and_down_still_stops_everything(
    runtime: RuntimeFactory,
) -> None:
    cluster = runtime("autoscaler", "corrupt")
    cluster.up()
    cluster.wait_workers(0, timeout=60)
    cluster._remember()
    assert node_processes(cluster.run_dir), "the head runs"
    (cluster.cluster_dir / "state.json").write_text("{not json")

    status = cluster.cli.run("status", cluster.name)
    assert status.returncode == 2, describe(status)
    assert "unreadable" in status.stderr and f"rayscale down {cluster.name}" in status.stderr
    assert "Traceback" not in status.stderr

    down = cluster.down()
    assert down.returncode == 0, describe(down)
    wait_until(lambda: not cluster.leftovers(), 30, "every process of the cluster to stop")

"""The harness itself: LocalKube starts and stops through rayscale.processes and leaves
nothing behind, fails clearly when a component dies or never gets ready, and its processes
die with a killed parent (spawn's die_with_parent)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

import rayscale
from rayscale import processes
from rayscale.testing.kube import KubeBinaries, KubeStartError, LocalKube
from rayscale.waiting import wait_until

pytestmark = pytest.mark.k8s


def test_stop_leaves_no_process_of_the_control_plane(
    kube_binaries: KubeBinaries, tmp_path: Path
) -> None:
    with LocalKube(tmp_path, kube_binaries) as cluster:
        pgids = [p.pgid for p in cluster.processes]
        assert [p.name for p in cluster.processes] == ["etcd", "kube-apiserver"]
        assert all(processes.group_members(pgid) for pgid in pgids)
    assert cluster.processes == []
    leftovers = processes.find_leftovers(pgids=pgids, markers=[str(tmp_path)])
    assert leftovers == [], [i.describe() for i in leftovers]


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        pytest.param("exit 3", "etcd exited with code 3 before it was ready", id="dies"),
        pytest.param(
            "exec sleep 600", "timed out after 1s waiting for etcd to be ready", id="never-ready"
        ),
    ],
)
def test_a_component_that_is_not_ready_fails_the_start_clearly(
    tmp_path: Path, script: str, expected: str
) -> None:
    fake_etcd = tmp_path / "fake-etcd"
    # `--help` answers at once: LocalKube asks it which optional flags this etcd knows.
    fake_etcd.write_text(
        f'#!/bin/sh\n[ "$1" = --help ] && exit 0\necho fake etcd says hello\n{script}\n'
    )
    fake_etcd.chmod(0o755)
    binaries = KubeBinaries(apiserver=Path("/nonexistent/kube-apiserver"), etcd=fake_etcd)
    cluster = LocalKube(tmp_path / "work", binaries, ready_timeout=1.0, stop_timeout=5.0)
    with pytest.raises(KubeStartError) as info:
        cluster.start()
    message = str(info.value)
    assert expected in message
    assert "fake etcd says hello" in message  # the log tail comes with the error
    assert cluster.processes == []
    leftovers = processes.find_leftovers(markers=[str(tmp_path)])
    assert leftovers == [], [i.describe() for i in leftovers]


_PARENT = """
import sys, time
from pathlib import Path
from rayscale import processes
child = processes.spawn(
    ["sleep", "600"], log_path=Path(sys.argv[1]), die_with_parent=sys.argv[2] == "yes"
)
print(f"child {child.pid}", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("die_with_parent", [True, False])
def test_a_child_spawned_with_die_with_parent_dies_with_a_killed_parent(
    tmp_path: Path, die_with_parent: bool
) -> None:
    parent_log = tmp_path / "parent.log"
    env = dict(os.environ, PYTHONPATH=str(Path(rayscale.__file__).parents[1]))
    flag = "yes" if die_with_parent else "no"
    argv = [sys.executable, "-c", _PARENT, str(tmp_path / "child.log"), flag]
    parent = processes.spawn(argv, log_path=parent_log, name="parent", env=env)
    child = 0
    try:

        def child_pid() -> int:
            if not parent.is_running():
                raise AssertionError(f"parent exited early:\n{parent.log_tail()}")
            lines = [ln for ln in parent_log.read_text().splitlines() if ln.startswith("child ")]
            return int(lines[0].split()[1]) if lines else 0

        child = wait_until(child_pid, 30, "the parent to report its child's pid")
        assert processes.group_members(child)
        parent.send_signal(signal.SIGKILL)  # no clean-up: only the kernel can stop the child
        assert parent.wait(10) == -signal.SIGKILL
        if die_with_parent:
            wait_until(lambda: not processes.group_members(child), 10, f"child {child} gone")
        else:
            assert processes.group_members(child), "the child died without die_with_parent"
    finally:
        parent.stop(5)
        if child and processes.group_members(child):
            os.killpg(child, signal.SIGKILL)

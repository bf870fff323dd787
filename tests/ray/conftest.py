"""Harness for the Ray tier: real Ray clusters as local processes, and a leak check.

``ray_cluster(...)`` (function-scoped factory) starts a head, optionally workers, and returns a
:class:`rayscale.local.raynodes.LocalRayCluster` (``gcs_address``, ``client_env()``,
``start_python()`` for drivers, ``resource_state()``). On teardown every cluster the test made
is stopped through its own process groups, and anything left behind (a process in one of its
groups, or whose cmdline/env mentions its directory) fails the test with a ``RAY PROCESS
LEAK`` error. An autouse check also fails a test that leaves behind a Ray-looking child
process that the harness never knew about.

Leaked processes are then killed by pid, unless ``RAYSCALE_KEEP_LEAKS=1`` (used by
``test_leak_check.py`` to prove the leak is real and to clean it up itself). Set
``RAYSCALE_KEEP_DIRS=1`` to keep cluster directories (logs) after the test.

Never use ``ray.init()`` inside the pytest process: run drivers as subprocesses
(``cluster.start_python(code)``) with the cluster's client environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psutil
import pytest

from rayscale import processes
from rayscale.local import raynodes
from rayscale.local.raynodes import LocalRayCluster, NodeResources
from rayscale.processes import ProcessInfo

LEAK_MESSAGE = "RAY PROCESS LEAK"
KEEP_LEAKS_ENV = "RAYSCALE_KEEP_LEAKS"
KEEP_DIRS_ENV = "RAYSCALE_KEEP_DIRS"
# Substrings of the command line of Ray's processes (for the autouse descendant check).
RAY_PROCESS_HINTS = (
    "ray/core/src/ray/raylet",
    "ray/core/src/ray/gcs",
    "ray/_private/workers/default_worker.py",
    "ray start",
    "raystart.py",
    "nodekeeper.py",
    "agentstub.py",
    "runtimeenvstub.py",
    "ray/_private/runtime_env/agent/main.py",
    "ray::",
    "ray/dashboard/",
    "ray/_private/log_monitor.py",
)

WorkerSpec = tuple[str, str, NodeResources]  # (instance id / pod name, group, resources)
ClusterFactory = Callable[..., LocalRayCluster]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ray: tests that start real Ray processes")


# pids already reported by ``ray_cluster`` in this test, so the autouse check does not repeat.
_REPORTED: set[int] = set()


def _leak_report(where: str, leaks: Sequence[ProcessInfo]) -> str:
    lines = "\n".join(f"  {info.describe()}" for info in leaks)
    return f"{LEAK_MESSAGE}: {len(leaks)} process(es) left behind by {where}:\n{lines}"


def _dispose(leaks: Sequence[ProcessInfo]) -> None:
    if leaks and os.environ.get(KEEP_LEAKS_ENV) != "1":
        processes.kill_processes(leaks)


@pytest.fixture
def ray_cluster(request: pytest.FixtureRequest) -> Iterator[ClusterFactory]:
    """Factory: ``ray_cluster(head=NodeResources(...), workers=[(name, group, res)], **kw)``.

    Extra keywords go to :func:`rayscale.local.raynodes.start_head`. The cluster name defaults
    to a slug of the test name.
    """
    clusters: list[LocalRayCluster] = []

    def make(
        head: NodeResources | None = None,
        workers: Sequence[WorkerSpec] = (),
        name: str | None = None,
        **kwargs: Any,
    ) -> LocalRayCluster:
        cluster = raynodes.start_head(
            name or request.node.name, head or NodeResources(num_cpus=0), **kwargs
        )
        clusters.append(cluster)
        for worker_name, group, resources in workers:
            cluster.start_worker(worker_name, group, resources)
        return cluster

    yield make

    leaks: list[ProcessInfo] = []
    for cluster in clusters:
        leaks.extend(cluster.stop())
    _REPORTED.update(info.pid for info in leaks)
    _dispose(leaks)
    if os.environ.get(KEEP_DIRS_ENV) != "1":
        for cluster in clusters:
            cluster.remove_dir()
    if leaks:
        pytest.fail(_leak_report(f"test {request.node.nodeid}", leaks), pytrace=False)


def _ray_descendants() -> dict[int, ProcessInfo]:
    found: dict[int, ProcessInfo] = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(proc.cmdline())
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if any(hint in cmdline for hint in RAY_PROCESS_HINTS):
                found[proc.pid] = ProcessInfo(
                    proc.pid, os.getpgid(proc.pid), proc.create_time(), cmdline, "descendant"
                )
        except (ProcessLookupError, psutil.Error):
            continue
    return found


@pytest.fixture(autouse=True)
def _no_stray_ray_children(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a Ray process among this pytest process's descendants.

    Autouse fixtures are set up first and torn down last, so this runs after ``ray_cluster``
    has stopped its clusters and catches Ray processes started outside the harness.
    """
    _REPORTED.clear()
    before = set(_ray_descendants())
    yield
    seen = before | _REPORTED
    leaks = [info for pid, info in _ray_descendants().items() if pid not in seen]
    _dispose(leaks)
    if leaks:
        pytest.fail(
            _leak_report(f"test {request.node.nodeid} (outside the harness)", leaks), pytrace=False
        )

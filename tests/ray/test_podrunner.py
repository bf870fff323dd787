"""The process kubelet against a real Ray head: bounded concurrent boots, failed boots.

Worker pods are the real manifests of KubeRay's sample (``rayscale.builders.pods``); the
kubelet runs them as real ``ray start`` processes.
"""

from __future__ import annotations

from typing import Any

import pytest

from rayscale.builders.pods import worker_pod
from rayscale.local.podrunner import ProcessKubelet
from rayscale.local.raynodes import LocalRayCluster
from rayscale.planner.reasons import ReasonCode
from rayscale.protocol import NodeStatus
from rayscale.spec import load_file, sample_path
from rayscale.waiting import wait_until
from tests.ray.conftest import ClusterFactory

pytestmark = pytest.mark.ray


def registered(cluster: LocalRayCluster) -> set[str]:
    state = cluster.resource_state()
    return {n.instance_id for n in state.node_states if n.status != NodeStatus.DEAD}


def manifest(name: str, bad: bool = False) -> dict[str, Any]:
    spec = load_file(sample_path("autoscaler")).cluster
    group = spec.worker_group("small-group")
    if bad:  # a flag `ray start` rejects: the container exits at once
        group = group.model_copy(
            update={"ray_start_params": {**group.ray_start_params, "no-such-flag": "1"}}
        )
    return worker_pod(spec, group, name)


def test_bursts_boot_at_most_max_booting_at_once(ray_cluster: ClusterFactory) -> None:
    cluster = ray_cluster()
    kubelet = ProcessKubelet(cluster, cluster.gcs_address, max_booting=2)
    try:
        for i in range(4):
            kubelet.create(manifest(f"w-{i}"))
        most = 0

        def all_joined() -> bool:
            nonlocal most
            kubelet.sync(registered(cluster))
            booting = [p for p in kubelet.pods.values() if p.phase == "Running" and not p.joined]
            most = max(most, len(booting))
            return all(p.joined for p in kubelet.pods.values())

        wait_until(all_joined, 180, "4 workers joined", interval=0.1)
        assert most <= 2, most
        assert kubelet.failed_boots == 0, list(kubelet.failures)
    finally:
        for name in list(kubelet.pods):
            kubelet.delete(name)
        kubelet.shutdown()


def test_failed_boot_reports_first_error_line_and_backs_off(ray_cluster: ClusterFactory) -> None:
    cluster = ray_cluster()
    kubelet = ProcessKubelet(cluster, cluster.gcs_address)
    try:
        kubelet.create(manifest("w-bad", bad=True))

        def failed() -> bool:
            kubelet.sync(registered(cluster))
            return kubelet.pods["w-bad"].phase == "Failed"

        wait_until(failed, 60, "the bad worker to fail")
        assert kubelet.failed_boots == 1
        reason = kubelet.failures[-1]
        assert reason.code is ReasonCode.BOOT_FAILED
        assert (
            "no-such-flag" in reason.params["line"]
            or "no such option" in reason.params["line"].lower()
        ), reason.params
        assert reason.params["retry_in_s"] == 1.0
        # A replacement in the same group waits for the backoff before it starts.
        kubelet.delete("w-bad")
        kubelet.create(manifest("w-next"))
        kubelet.sync(registered(cluster))
        assert kubelet.pods["w-next"].phase == "Pending"
    finally:
        for name in list(kubelet.pods):
            kubelet.delete(name)
        kubelet.shutdown()

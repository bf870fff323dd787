"""The sidecar backend's pure parts: the JSON patch of a ScaleRequest, the desired state read
from a stored RayCluster, and which pods count."""

from __future__ import annotations

import pytest

from rayscale.autoscaler.scale import GroupTarget, ScaleRequest, WorkerPod
from rayscale.kube.backend import UnknownGroupError, observed_targets, scale_patch, worker_pods
from rayscale.kube.cache import PodRecord, newer

pytestmark = pytest.mark.unit

SPEC = {
    "workerGroupSpecs": [
        {"groupName": "a", "replicas": 1, "minReplicas": 0, "maxReplicas": 3,
         "scaleStrategy": {"workersToDelete": ["a-1"]}},
        {"groupName": "b", "replicas": 0, "minReplicas": 2, "maxReplicas": 5},
        {"groupName": "c", "replicas": 4, "minReplicas": 3, "maxReplicas": 1},
        {"groupName": "d", "replicas": 4, "suspend": True},
    ]
}  # fmt: skip


def test_patch_replaces_replicas_and_the_whole_scale_strategy_in_spec_order() -> None:
    request = ScaleRequest({"b": GroupTarget(9), "a": GroupTarget(2, ("a-2", "a-3"))})
    assert scale_patch(SPEC, request) == [
        {"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 2},
        {
            "op": "replace",
            "path": "/spec/workerGroupSpecs/0/scaleStrategy",
            "value": {"workersToDelete": ["a-2", "a-3"]},
        },
        {"op": "replace", "path": "/spec/workerGroupSpecs/1/replicas", "value": 5},  # capped
        {
            "op": "replace",
            "path": "/spec/workerGroupSpecs/1/scaleStrategy",
            "value": {"workersToDelete": []},
        },
    ]


def test_an_unknown_group_is_an_error_not_a_patch() -> None:
    with pytest.raises(UnknownGroupError, match="gpu"):
        scale_patch(SPEC, ScaleRequest({"gpu": GroupTarget(1)}))


def test_observed_targets_clamp_as_the_operator_does() -> None:
    assert observed_targets(SPEC) == {
        "a": GroupTarget(1, ("a-1",)),
        "b": GroupTarget(2),  # below min
        "c": GroupTarget(1),  # min > max: max wins
        "d": GroupTarget(0),  # suspended
    }


def test_worker_pods_leave_out_the_head_and_pods_being_deleted() -> None:
    def pod(name: str, kind: str, **kw: object) -> PodRecord:
        labels = {"ray.io/node-type": kind, "ray.io/group": "a"}
        return PodRecord(name, labels, **kw)  # type: ignore[arg-type]

    pods = [
        pod("h", "head", phase="Running"),
        pod("w2", "worker", phase="Failed"),
        pod("w1", "worker", phase="Running"),
        pod("w3", "worker", deleting=True),
        pod("w4", "worker", phase="Unknown"),
    ]
    assert worker_pods(pods) == (
        WorkerPod("w1", "a", "running"),
        WorkerPod("w2", "a", "failed"),
        WorkerPod("w4", "a", "pending"),
    )


def test_a_late_watch_event_never_overwrites_a_newer_patch_response() -> None:
    assert newer("12", "11") and newer("12", "12") and not newer("9", "12")
    assert newer("opaque", "12")  # not comparable: take it

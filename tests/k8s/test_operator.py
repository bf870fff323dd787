"""`rayscale operator` (kopf + the pure reconciler) against a real kube-apiserver.

No kubelet runs in this tier, so pods stay Pending unless a test sets their phase through the
status subresource: every create/delete decision of the operator is observable in the API.
Waits poll the API (no timed asserts).
"""

from __future__ import annotations

import copy
import shlex
import uuid
from typing import Any

import kopf
import pytest
from lightkube import ApiError
from lightkube.codecs import from_dict
from lightkube.resources.core_v1 import Event, Pod, Secret, Service, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding
from lightkube.types import PatchType

from rayscale.kube.resources import RayCluster
from rayscale.testing.kube import KubeSession
from rayscale.testing.kube_ray import retry_not_found, sample_cluster
from rayscale.waiting import wait_until
from tests.k8s.ray_fixtures import ns, operator, ray_crds

__all__ = ["ns", "operator", "ray_crds"]

pytestmark = pytest.mark.k8s

NAME = "raycluster-autoscaler"
GROUP = "small-group"
WAIT = 30.0


def _apply(kube: KubeSession, doc: dict[str, Any], ns: str) -> dict[str, Any]:
    created = retry_not_found(lambda: kube.client.create(from_dict(doc), namespace=ns))
    out: dict[str, Any] = created.to_dict()
    return out


def _pods(kube: KubeSession, ns: str, name: str = NAME, group: str | None = None) -> list[Any]:
    labels = {"ray.io/cluster": name}
    if group:
        labels["ray.io/group"] = group
    return [
        p
        for p in kube.client.list(Pod, namespace=ns, labels=labels)
        if p.metadata.deletionTimestamp is None
    ]


def _status(kube: KubeSession, ns: str, name: str = NAME) -> dict[str, Any]:
    got: dict[str, Any] = kube.client.get(RayCluster, name, namespace=ns).status or {}
    return got


def _patch(kube: KubeSession, ns: str, patch: Any, name: str = NAME) -> int:
    patched = kube.client.patch(
        RayCluster, name, patch, namespace=ns,
        patch_type=PatchType.JSON if isinstance(patch, list) else PatchType.MERGE,
    )  # fmt: skip
    generation: int = patched.metadata.generation
    return generation


def _observed(kube: KubeSession, ns: str, generation: int, name: str = NAME) -> dict[str, Any]:
    """Wait until the operator has reconciled `generation` (it writes observedGeneration)."""
    return wait_until(
        lambda: (s := _status(kube, ns, name)).get("observedGeneration", 0) >= generation and s,
        WAIT,
        f"status.observedGeneration >= {generation}",
        detail=lambda: str(_status(kube, ns, name)),
    )


def _workers(kube: KubeSession, ns: str, count: int, name: str = NAME) -> list[Any]:
    """Wait until `name` has exactly `count` live worker pods (count > 0)."""

    def check() -> list[Any] | None:
        pods = _pods(kube, ns, name, GROUP)
        return pods if len(pods) == count else None

    return wait_until(
        check,
        WAIT,
        f"{count} worker pods of {name}",
        detail=lambda: str([p.metadata.name for p in _pods(kube, ns, name)]),
    )


def test_the_walkthrough_cluster_gets_head_service_rbac_and_token(
    kube: KubeSession, ns: str, operator: kopf.Memo
) -> None:
    created = _apply(kube, sample_cluster("autoscaler"), ns)
    uid = created["metadata"]["uid"]
    head = wait_until(lambda: _pods(kube, ns, group="headgroup"), WAIT, "the head pod")[0]
    assert head.metadata.name.startswith(f"{NAME}-head-")
    assert [c.name for c in head.spec.containers] == ["ray-head", "autoscaler"]
    owner = head.metadata.ownerReferences[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller) == ("RayCluster", NAME, uid, True)
    labels = head.metadata.labels
    assert labels["ray.io/node-type"] == "head" and labels["ray.io/is-ray-node"] == "yes"
    assert head.spec.serviceAccountName == NAME
    svc = kube.client.get(Service, f"{NAME}-head-svc", namespace=ns)
    assert {p.name: p.port for p in svc.spec.ports} == {
        "gcs-server": 6379, "dashboard": 8265, "client": 10001, "metrics": 8080, "serve": 8000,
    }  # fmt: skip
    for kind in (ServiceAccount, Role, RoleBinding):
        obj = kube.client.get(kind, NAME, namespace=ns)
        assert obj.metadata.ownerReferences[0].uid == uid
    secret = kube.client.get(Secret, f"{NAME}-ray-token", namespace=ns)
    assert secret.data and secret.data["auth_token"]
    for container in head.spec.containers:
        env = {e.name: e.value for e in container.env or []}
        assert env["RAY_AUTH_MODE"] == "token"
        assert env["RAY_AUTH_TOKEN_PATH"] == "/etc/ray/auth/auth_token"
        mounts = {m.mountPath for m in container.volumeMounts or []}
        assert {"/etc/ray/auth", "/tmp/ray"} <= mounts
    sidecar = head.spec.containers[1]
    assert sidecar.resources.requests == {"cpu": "500m", "memory": "512Mi"}
    status = _observed(kube, ns, created["metadata"]["generation"])
    assert status["desiredWorkerReplicas"] == 0
    assert (status["desiredCPU"], status["desiredMemory"], status["desiredGPU"]) == (
        "1", "2G", "0"
    )  # fmt: skip
    assert status["head"]["podName"] == head.metadata.name
    assert status["head"]["serviceName"] == f"{NAME}-head-svc"
    assert status["endpoints"]["dashboard"] == "8265"
    assert "state" not in status  # the head is Pending: not ready
    # The token is generated once: another pass keeps it.
    _observed(kube, ns, _patch(kube, ns, {"spec": {"rayVersion": "2.60.0 "}}))
    again = kube.client.get(Secret, f"{NAME}-ray-token", namespace=ns)
    assert again.data == secret.data


def test_replicas_workers_to_delete_and_no_random_surplus_deletion(
    kube: KubeSession, ns: str, operator: kopf.Memo
) -> None:
    _apply(kube, sample_cluster("autoscaler"), ns)
    _patch(kube, ns, [{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 2}])
    first, second = sorted(p.metadata.name for p in _workers(kube, ns, 2))
    assert first.startswith(f"{NAME}-{GROUP}-worker-")
    status = _observed(kube, ns, 2)
    assert status["desiredWorkerReplicas"] == 2
    assert status["desiredCPU"] == "3"  # head 1 + 2 workers of 1

    # The autoscaler's patch: replicas 1 and the pod to go.
    generation = _patch(
        kube,
        ns,
        [
            {"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 1},
            {
                "op": "replace",
                "path": "/spec/workerGroupSpecs/0/scaleStrategy",
                "value": {"workersToDelete": [first]},
            },
        ],
    )
    _observed(kube, ns, generation)
    assert [p.metadata.name for p in _workers(kube, ns, 1)] == [second]

    # Autoscaling on: replicas 0 without naming a pod deletes nothing (KubeRay issue 1238).
    generation = _patch(
        kube, ns, [{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 0}]
    )
    _observed(kube, ns, generation)
    assert [p.metadata.name for p in _pods(kube, ns, group=GROUP)] == [second]


def test_without_autoscaling_the_operator_deletes_surplus_and_replaces_failed_pods(
    kube: KubeSession, ns: str, operator: kopf.Memo
) -> None:
    doc = sample_cluster("autoscaler")
    doc["spec"]["enableInTreeAutoscaling"] = False
    doc["spec"]["workerGroupSpecs"][0].update(replicas=2, minReplicas=0, maxReplicas=5)
    _apply(kube, doc, ns)
    head = wait_until(lambda: _pods(kube, ns, group="headgroup"), WAIT, "the head pod")[0]
    assert [c.name for c in head.spec.containers] == ["ray-head"]  # no sidecar
    workers = _workers(kube, ns, 2)
    with pytest.raises(ApiError):
        kube.client.get(ServiceAccount, NAME, namespace=ns)

    failed = workers[0].metadata.name
    kube.client.patch(
        Pod.Status, failed, {"status": {"phase": "Failed"}}, namespace=ns,
        patch_type=PatchType.MERGE,
    )  # fmt: skip
    wait_until(
        lambda: (
            (names := {p.metadata.name for p in _pods(kube, ns, group=GROUP)})
            and failed not in names
            and len(names) == 2
        ),
        WAIT,
        "the failed worker replaced",
    )
    _patch(kube, ns, {"spec": {"workerGroupSpecs": [{**doc["spec"]["workerGroupSpecs"][0],
                                                      "replicas": 1}]}})  # fmt: skip
    _workers(kube, ns, 1)


def test_suspend_deletes_every_pod(kube: KubeSession, ns: str, operator: kopf.Memo) -> None:
    doc = sample_cluster("autoscaler")
    doc["spec"]["workerGroupSpecs"][0]["replicas"] = 1
    _apply(kube, doc, ns)
    _workers(kube, ns, 1)
    generation = _patch(kube, ns, {"spec": {"suspend": True}})
    wait_until(lambda: not _pods(kube, ns), WAIT, "every pod gone")
    status = wait_until(
        lambda: (s := _status(kube, ns)).get("state") == "suspended" and s, WAIT, "suspended"
    )
    assert status["observedGeneration"] >= generation
    _patch(kube, ns, {"spec": {"suspend": False}})
    _workers(kube, ns, 1)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        pytest.param(
            lambda d: d["spec"]["workerGroupSpecs"][0].update(minReplicas=5, maxReplicas=2),
            "spec.workerGroupSpecs[0].minReplicas",
            id="min-greater-than-max",
        ),
        pytest.param(
            lambda d: d["spec"]["workerGroupSpecs"].append(
                copy.deepcopy(d["spec"]["workerGroupSpecs"][0])
            ),
            "spec.workerGroupSpecs[1].groupName",
            id="duplicate-group",
        ),
    ],
)
def test_an_invalid_spec_gets_a_warning_event_and_no_pods(
    kube: KubeSession, ns: str, operator: kopf.Memo, edit: Any, field: str
) -> None:
    doc = sample_cluster("autoscaler")
    edit(doc)
    created = _apply(kube, doc, ns)
    event = wait_until(
        lambda: [
            e
            for e in kube.client.list(Event, namespace=ns)
            if e.involvedObject.uid == created["metadata"]["uid"]
        ],
        WAIT,
        "a Warning Event",
    )[0]
    assert event.type == "Warning" and event.reason == "InvalidRayClusterSpec"
    assert field in event.message and "fix:" in event.message
    status = _observed(kube, ns, 1)
    assert field in status["reason"]
    assert _pods(kube, ns) == []
    with pytest.raises(ApiError):
        kube.client.get(Service, f"{NAME}-head-svc", namespace=ns)


def test_a_shell_metacharacter_in_ray_start_params_is_quoted_not_run(
    kube: KubeSession, ns: str, operator: kopf.Memo
) -> None:
    doc = sample_cluster("autoscaler")
    doc["spec"]["headGroupSpec"]["rayStartParams"]["temp-dir"] = "/tmp/x; rm -rf /"
    _apply(kube, doc, ns)
    head = wait_until(lambda: _pods(kube, ns, group="headgroup"), WAIT, "the head pod")[0]
    script = head.spec.containers[0].args[0]
    assert "'--temp-dir=/tmp/x; rm -rf /'" in script
    argv = shlex.split(script.split(";", 1)[1])  # what bash runs after `ulimit -n 65536;`
    assert "--temp-dir=/tmp/x; rm -rf /" in argv and "rm" not in argv


def test_many_clusters_reconcile_concurrently(
    kube: KubeSession, ns: str, operator: kopf.Memo
) -> None:
    names = [f"c{i}-{uuid.uuid4().hex[:4]}" for i in range(6)]
    for name in names:
        doc = sample_cluster("autoscaler")
        doc["metadata"]["name"] = name
        doc["spec"]["workerGroupSpecs"][0]["replicas"] = 2
        _apply(kube, doc, ns)
    for name in names:
        _workers(kube, ns, 2, name)
        # The head's POST runs beside the workers' and may land a moment after them.
        heads = wait_until(lambda n=name: _pods(kube, ns, n, "headgroup"), WAIT, "the head")
        assert len(heads) == 1


def test_status_is_ready_when_every_pod_runs_and_is_ready(
    kube: KubeSession, ns: str, operator: kopf.Memo
) -> None:
    doc = sample_cluster("autoscaler")
    doc["spec"]["workerGroupSpecs"][0]["replicas"] = 1
    _apply(kube, doc, ns)
    head = wait_until(lambda: _pods(kube, ns, group="headgroup"), WAIT, "the head pod")[0]
    worker = _workers(kube, ns, 1)[0]
    for pod, ip in ((head, "10.1.0.5"), (worker, "10.1.0.6")):
        kube.client.patch(
            Pod.Status,
            pod.metadata.name,
            {
                "status": {
                    "phase": "Running",
                    "podIP": ip,
                    "podIPs": [{"ip": ip}],
                    "conditions": [{"type": "Ready", "status": "True"}],
                }
            },
            namespace=ns,
            patch_type=PatchType.MERGE,
        )
    status = wait_until(
        lambda: (s := _status(kube, ns)).get("state") == "ready" and s,
        WAIT,
        "state ready",
        detail=lambda: str(_status(kube, ns)),
    )
    assert status["availableWorkerReplicas"] == status["readyWorkerReplicas"] == 1
    assert status["head"]["podIP"] == "10.1.0.5"
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["HeadPodReady"] == conditions["RayClusterProvisioned"] == "True"
    assert conditions["ReplicaFailure"] == "False"


def test_a_multi_host_replica_is_created_whole(
    kube: KubeSession, ns: str, operator: kopf.Memo
) -> None:
    doc = sample_cluster("autoscaler")
    doc["spec"]["workerGroupSpecs"][0].update(replicas=2, numOfHosts=3)
    _apply(kube, doc, ns)
    pods = _workers(kube, ns, 6)
    replicas: dict[str, int] = {}
    for pod in pods:
        replica = pod.metadata.labels["ray.io/worker-group-replica-name"]
        replicas[replica] = replicas.get(replica, 0) + 1
    assert sorted(replicas.values()) == [3, 3]
    status = _observed(kube, ns, 1)
    assert status["desiredWorkerReplicas"] == 6  # pods, as KubeRay counts them

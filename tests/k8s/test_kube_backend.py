"""The autoscaler sidecar's Kubernetes backend against a real kube-apiserver.

observe() comes from a watch-fed cache (no request per tick); apply() sends ONE
application/json-patch+json PATCH of replace ops, the exact body of KubeRay's protocol
(reference section 3), including the clearing of workersToDelete; 409/5xx are retried.
The last test drives the real autoscaler loop over the CR with a stand-in for Ray's GCS
(no Ray runs in this tier); the pods the operator would create are created by the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from lightkube import Client
from lightkube.codecs import from_dict
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from rayscale.autoscaler.loop import Autoscaler
from rayscale.autoscaler.scale import GroupTarget, ScaleRequest, WorkerPod
from rayscale.builders.pods import head_pod, worker_pod
from rayscale.kube.backend import KubeBackend
from rayscale.kube.cache import ClusterCache
from rayscale.kube.resources import RayCluster
from rayscale.planner import BundleDemand, Demand
from rayscale.spec import parse_cluster, to_group_configs
from rayscale.spec.models import RayCluster as ClusterSpec
from rayscale.testing.kube import KubeSession
from rayscale.testing.kube_ray import (
    RecordingTransport,
    recording_client,
    retry_not_found,
    sample_cluster,
)
from tests.k8s.ray_fixtures import FakeGcs, ns, ray_crds

__all__ = ["ns", "ray_crds"]

pytestmark = pytest.mark.k8s

NAME = "raycluster-autoscaler"
GROUP = "small-group"
HOLD = "rayscale.io/test-hold"


@pytest.fixture
def stored(kube: KubeSession, ns: str) -> dict[str, Any]:
    """The walkthrough's RayCluster, plus a second group, created in `ns`."""
    doc = sample_cluster("autoscaler")
    other = {**doc["spec"]["workerGroupSpecs"][0], "groupName": "big-group", "maxReplicas": 4}
    doc["spec"]["workerGroupSpecs"].append(other)
    created = retry_not_found(lambda: kube.client.create(from_dict(doc), namespace=ns))
    out: dict[str, Any] = created.to_dict()
    return out


@pytest.fixture
def cache(kube: KubeSession, ns: str, stored: dict[str, Any]) -> Iterator[ClusterCache]:
    with ClusterCache(kube.config(), NAME, ns) as started:
        yield started


@pytest.fixture
def recorded(kube: KubeSession) -> Iterator[tuple[Client, RecordingTransport]]:
    client, transport = recording_client(kube.kubeconfig)
    yield client, transport
    client.close()


@pytest.fixture
def backend(cache: ClusterCache, recorded: tuple[Client, RecordingTransport]) -> KubeBackend:
    return KubeBackend(recorded[0], cache, sleep=lambda s: SLEPT.append(s))


SLEPT: list[float] = []


def _spec(stored: dict[str, Any], ns: str) -> ClusterSpec:
    doc = {**stored, "metadata": {"name": NAME, "namespace": ns, "uid": stored["metadata"]["uid"]}}
    doc.pop("status", None)
    return parse_cluster(doc)


def _create_pod(kube: KubeSession, manifest: dict[str, Any], ns: str, phase: str = "") -> str:
    created = kube.client.create(from_dict(manifest), namespace=ns)
    name: str = created.metadata.name
    if phase:
        kube.client.patch(
            Pod.Status, name, {"status": {"phase": phase}}, namespace=ns,
            patch_type=PatchType.MERGE,
        )  # fmt: skip
    return name


def _worker(cluster: ClusterSpec, name: str, group: str = GROUP) -> dict[str, Any]:
    uid = cluster.metadata.model_extra["uid"] if cluster.metadata.model_extra else None
    return worker_pod(cluster, cluster.worker_group(group), name, uid=uid)


def _patches(transport: RecordingTransport) -> list[Any]:
    sent = transport.requests("PATCH")
    assert all(s.content_type == "application/json-patch+json" for s in sent)
    return [s.json() for s in sent]


def _replace(i: int, replicas: int, to_delete: list[str]) -> list[dict[str, Any]]:
    return [
        {"op": "replace", "path": f"/spec/workerGroupSpecs/{i}/replicas", "value": replicas},
        {
            "op": "replace",
            "path": f"/spec/workerGroupSpecs/{i}/scaleStrategy",
            "value": {"workersToDelete": to_delete},
        },
    ]


def test_observe_reads_the_cr_and_pods_from_the_watch_not_per_tick(
    kube: KubeSession,
    ns: str,
    stored: dict[str, Any],
    cache: ClusterCache,
    backend: KubeBackend,
    recorded: tuple[Client, RecordingTransport],
) -> None:
    cluster = _spec(stored, ns)
    head = head_pod(cluster, f"{NAME}-head-aaaaa", uid=stored["metadata"]["uid"])
    _create_pod(kube, head, ns, "Running")
    running = _create_pod(kube, _worker(cluster, f"{NAME}-{GROUP}-worker-run01"), ns, "Running")
    pending = _create_pod(kube, _worker(cluster, f"{NAME}-{GROUP}-worker-pen01"), ns)
    held = _worker(cluster, f"{NAME}-{GROUP}-worker-del01")
    held["metadata"]["finalizers"] = [HOLD]
    going = _create_pod(kube, held, ns, "Running")
    kube.client.delete(Pod, going, namespace=ns)  # stays, with a deletionTimestamp
    kube.client.patch(
        RayCluster,
        NAME,
        [{"op": "replace", "path": "/spec/workerGroupSpecs/1/replicas", "value": 9}],
        namespace=ns,
        patch_type=PatchType.JSON,
    )

    def settled(c: ClusterCache) -> bool:
        pods = {p.name: p for p in c.pods()}
        spec = (c.cluster() or {}).get("spec", {})
        return (
            len(pods) == 4
            and pods[going].deleting
            and pods[running].phase == "Running"
            and spec["workerGroupSpecs"][1]["replicas"] == 9
        )

    assert cache.wait_for(settled, timeout=30), cache.pods()
    lists = cache.lists
    observations = [backend.observe() for _ in range(200)]
    assert cache.lists == lists  # no LIST per tick ...
    assert recorded[1].sent == []  # ... and no request at all
    observation = observations[-1]
    assert observation.targets == {
        GROUP: GroupTarget(0, ()),
        "big-group": GroupTarget(4, ()),  # replicas 9 clamped to maxReplicas, as KubeRay does
    }
    assert observation.pods == (
        WorkerPod(pending, GROUP, "pending"),
        WorkerPod(running, GROUP, "running"),
    )  # the head and the pod being deleted are left out
    kube.client.patch(
        Pod, going, {"metadata": {"finalizers": None}}, namespace=ns, patch_type=PatchType.MERGE
    )
    assert cache.wait_for(lambda c: going not in {p.name for p in c.pods()}, timeout=30)


def test_apply_is_one_json_patch_of_replace_ops(
    kube: KubeSession,
    ns: str,
    backend: KubeBackend,
    recorded: tuple[Client, RecordingTransport],
) -> None:
    pod = f"{NAME}-{GROUP}-worker-abcde"
    result = backend.apply(ScaleRequest({GROUP: GroupTarget(3, (pod,))}))
    assert result.applied, result.error
    assert _patches(recorded[1]) == [_replace(0, 3, [pod])]
    got = kube.client.get(RayCluster, NAME, namespace=ns).spec["workerGroupSpecs"][0]
    assert (got["replicas"], got["scaleStrategy"]) == (3, {"workersToDelete": [pod]})
    assert backend.observe().targets[GROUP] == GroupTarget(3, (pod,))  # from the response

    # Clearing the list, and two groups in one patch (capped at maxReplicas: 4).
    both = ScaleRequest({"big-group": GroupTarget(50), GROUP: GroupTarget(2)})
    assert backend.apply(both).applied
    assert _patches(recorded[1])[1] == _replace(0, 2, []) + _replace(1, 4, [])
    groups = kube.client.get(RayCluster, NAME, namespace=ns).spec["workerGroupSpecs"]
    assert [(g["replicas"], g["scaleStrategy"]) for g in groups] == [
        (2, {"workersToDelete": []}),
        (4, {"workersToDelete": []}),
    ]
    assert len(recorded[1].requests("PATCH")) == 2
    assert [s.method for s in recorded[1].sent] == ["PATCH", "PATCH"]  # no GET before a PATCH

    unknown = backend.apply(ScaleRequest({"gpu-group": GroupTarget(1)}))
    assert not unknown.applied and "gpu-group" in unknown.error
    assert len(recorded[1].requests("PATCH")) == 2


def test_409_and_5xx_are_retried_with_backoff(
    kube: KubeSession,
    ns: str,
    backend: KubeBackend,
    recorded: tuple[Client, RecordingTransport],
) -> None:
    transport = recorded[1]
    SLEPT.clear()
    transport.fail_next("PATCH", 409)
    transport.fail_next("PATCH", 503)
    result = backend.apply(ScaleRequest({GROUP: GroupTarget(1)}))
    assert result.applied, result.error
    assert result.detail["attempts"] == 3
    assert SLEPT == [0.05, 0.1]
    assert [s.json() for s in transport.faked] == [_replace(0, 1, [])] * 2  # same body again
    assert _patches(transport) == [_replace(0, 1, [])]
    assert (
        kube.client.get(RayCluster, NAME, namespace=ns).spec["workerGroupSpecs"][0]["replicas"] == 1
    )

    SLEPT.clear()
    transport.fail_next("PATCH", 409, times=5)
    gave_up = backend.apply(ScaleRequest({GROUP: GroupTarget(2)}))
    assert not gave_up.applied
    assert "409" in gave_up.error and "gave up after 5 attempts" in gave_up.error
    assert SLEPT == [0.05, 0.1, 0.2, 0.4]

    SLEPT.clear()
    transport.fail_next("PATCH", 403)
    denied = backend.apply(ScaleRequest({GROUP: GroupTarget(2)}))
    assert not denied.applied and "403" in denied.error
    assert SLEPT == []  # not retried


def test_the_loop_scales_up_lists_waits_and_clears_through_the_cr(
    kube: KubeSession,
    ns: str,
    stored: dict[str, Any],
    cache: ClusterCache,
    backend: KubeBackend,
    recorded: tuple[Client, RecordingTransport],
) -> None:
    cluster = _spec(stored, ns)
    gcs = FakeGcs(f"{NAME}-head-aaaaa", GROUP)
    # big-group is small-group's twin: the planner could pick either; size small-group only.
    groups = [g for g in to_group_configs(cluster) if g.name == GROUP]
    loop = Autoscaler(groups, gcs, backend)
    transport = recorded[1]

    gcs.demand = Demand(bundles=(BundleDemand({"CPU": 1.0}, 2),))  # two 1-CPU actors
    loop.tick()
    assert _patches(transport) == [_replace(0, 2, [])]

    # The operator's part: two worker pods appear; Ray sees them busy.
    pods = [
        _create_pod(kube, _worker(cluster, f"{NAME}-{GROUP}-worker-{s}"), ns, "Running")
        for s in ("aaaaa", "bbbbb")
    ]
    assert cache.wait_for(lambda c: len(c.pods()) == 2, timeout=30)
    gcs.demand = Demand()
    gcs.nodes += [gcs.worker(p) for p in pods]
    loop.tick()
    assert len(_patches(transport)) == 1  # nothing to change

    # One actor ends: its worker is idle past the timeout -> drained, listed, replicas 1.
    gcs.nodes[1] = gcs.worker(pods[0], idle_s=120.0)
    loop.tick()
    assert gcs.drained == [f"id-{pods[0]}"]
    assert _patches(transport)[1] == _replace(0, 1, [pods[0]])

    loop.tick()  # the listed pod still exists: wait, do not scale the group again
    assert len(_patches(transport)) == 2

    # The operator deletes the listed pod; Ray forgets the node; the list is cleared.
    kube.client.delete(Pod, pods[0], namespace=ns)
    assert cache.wait_for(lambda c: pods[0] not in {p.name for p in c.pods()}, timeout=30)
    del gcs.nodes[1]
    loop.tick()
    assert _patches(transport)[2] == _replace(0, 1, [])
    loop.tick()
    assert len(_patches(transport)) == 3
    got = kube.client.get(RayCluster, NAME, namespace=ns).spec["workerGroupSpecs"][0]
    assert (got["replicas"], got["scaleStrategy"]) == (1, {"workersToDelete": []})

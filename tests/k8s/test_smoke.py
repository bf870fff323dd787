"""Smoke tests of the Kubernetes tier: the API semantics rayscale relies on, against a real
kube-apiserver.

The CRD mimics the part of RayCluster the autoscaler touches (workerGroupSpecs[].replicas and
scaleStrategy.workersToDelete) so the JSON patch below has the autoscaler's exact shape.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from lightkube import ApiError, Client
from lightkube.codecs import from_dict
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Namespace, Pod
from lightkube.types import PatchType

from rayscale.testing.kube import KubeSession
from rayscale.waiting import wait_until

pytestmark = pytest.mark.k8s

GROUP = "smoke.rayscale.io"
SmokeCluster = create_namespaced_resource(GROUP, "v1", "SmokeCluster", "smokeclusters")

_GROUP_SCHEMA = {
    "type": "object",
    "required": ["groupName"],
    "properties": {
        "groupName": {"type": "string"},
        "replicas": {"type": "integer", "minimum": 0},
        "maxReplicas": {"type": "integer", "minimum": 0},
        "scaleStrategy": {
            "type": "object",
            "properties": {"workersToDelete": {"type": "array", "items": {"type": "string"}}},
        },
    },
}
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"smokeclusters.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "plural": "smokeclusters",
            "singular": "smokecluster",
            "kind": "SmokeCluster",
            "listKind": "SmokeClusterList",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["workerGroupSpecs"],
                                "properties": {
                                    "suspend": {"type": "boolean"},
                                    "workerGroupSpecs": {"type": "array", "items": _GROUP_SCHEMA},
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "state": {"type": "string", "enum": ["ready", "suspended"]},
                                    "desiredWorkerReplicas": {"type": "integer"},
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def crd(kube: KubeSession) -> CustomResourceDefinition:
    kube.client.apply(from_dict(CRD), field_manager="rayscale-tests")
    last: CustomResourceDefinition | None = None

    def established() -> CustomResourceDefinition | None:
        nonlocal last
        last = kube.client.get(CustomResourceDefinition, CRD["metadata"]["name"])
        conditions = last.status.conditions if last.status else None
        if any(c.type == "Established" and c.status == "True" for c in conditions or []):
            return last
        return None

    # Client.wait() has no timeout: poll instead.
    return wait_until(
        established,
        60,
        "the CRD to be Established",
        detail=lambda: f"last status: {last.status if last else None}",
    )


@pytest.fixture
def namespace(kube: KubeSession) -> Iterator[str]:
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    kube.client.create(Namespace(metadata=ObjectMeta(name=name)))
    yield name
    # No namespace controller runs, so the namespace stays Terminating: fine for a test cluster.
    kube.client.delete(Namespace, name)


def _smoke_cluster(name: str, replicas: int = 1) -> Any:
    return SmokeCluster(
        metadata=ObjectMeta(name=name),
        spec={
            "workerGroupSpecs": [
                {
                    "groupName": "cpu",
                    "replicas": replicas,
                    "maxReplicas": 4,
                    "scaleStrategy": {"workersToDelete": []},
                }
            ]
        },
    )


def _create_when_served(client: Client, obj: Any, namespace: str) -> Any:
    """Create `obj`; retry the short 404 window between Established and the handler serving."""
    created: list[Any] = []  # the object itself may be falsy (an empty dict subclass)
    last_404 = ""

    def create() -> bool:
        nonlocal last_404
        try:
            created.append(client.create(obj, namespace=namespace))
        except ApiError as err:
            if err.status.code != 404:
                raise
            last_404 = err.status.message or ""
            return False
        return True

    wait_until(
        create,
        30,
        f"the API to serve {type(obj).__name__}",
        detail=lambda: f"last 404: {last_404}",
    )
    return created[0]


def test_namespace_is_created_and_active(kube: KubeSession, namespace: str) -> None:
    ns = kube.client.get(Namespace, namespace)
    assert ns.status is not None
    assert ns.status.phase == "Active"


def test_crd_is_established_with_schema_and_status_subresource(
    crd: CustomResourceDefinition,
) -> None:
    assert crd.status is not None
    conditions = {c.type: c.status for c in crd.status.conditions or []}
    assert conditions.get("Established") == "True"
    version = crd.spec.versions[0]
    assert version.subresources is not None and version.subresources.status is not None
    assert version.schema is not None and version.schema.openAPIV3Schema is not None


def test_json_patch_with_the_autoscaler_shape(
    kube: KubeSession, crd: CustomResourceDefinition, namespace: str
) -> None:
    _create_when_served(kube.client, _smoke_cluster("jp"), namespace)
    patch = [
        {"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 3},
        {
            "op": "replace",
            "path": "/spec/workerGroupSpecs/0/scaleStrategy",
            "value": {"workersToDelete": ["jp-cpu-worker-abcde"]},
        },
    ]
    patched = kube.client.patch(
        SmokeCluster, "jp", patch, namespace=namespace, patch_type=PatchType.JSON
    )
    group = patched.spec["workerGroupSpecs"][0]
    assert group["replicas"] == 3
    assert group["scaleStrategy"] == {"workersToDelete": ["jp-cpu-worker-abcde"]}
    assert patched.metadata.generation == 2


def test_status_subresource_updates_status_only(
    kube: KubeSession, crd: CustomResourceDefinition, namespace: str
) -> None:
    created = _create_when_served(kube.client, _smoke_cluster("st"), namespace)
    updated = kube.client.patch(
        SmokeCluster.Status,
        "st",
        {
            "status": {"state": "ready", "desiredWorkerReplicas": 1},
            "spec": {"suspend": True},
        },  # the status endpoint must ignore spec changes
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    assert updated.status == {"state": "ready", "desiredWorkerReplicas": 1}
    assert "suspend" not in updated.spec
    assert updated.metadata.generation == created.metadata.generation  # status bumps no gen
    # ... and the main endpoint ignores status changes.
    again = kube.client.patch(
        SmokeCluster,
        "st",
        {"status": {"state": "suspended"}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    assert again.status["state"] == "ready"


async def test_watch_sees_the_status_change(
    kube: KubeSession, crd: CustomResourceDefinition, namespace: str
) -> None:
    created = _create_when_served(kube.client, _smoke_cluster("w"), namespace)
    client = kube.async_client()
    events: list[tuple[str, Any]] = []

    async def until_ready() -> Any:
        async for op, obj in client.watch(
            SmokeCluster,
            namespace=namespace,
            fields={"metadata.name": "w"},
            resource_version=created.metadata.resourceVersion,
        ):
            events.append((op, obj.status))
            if op == "MODIFIED" and (obj.status or {}).get("state") == "ready":
                return obj
        return None

    try:
        watcher = asyncio.create_task(until_ready())
        await asyncio.sleep(0.3)  # let the watch connect (it starts from `created` anyway)
        await client.patch(
            SmokeCluster.Status,
            "w",
            {"status": {"state": "ready"}},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )
        seen = await asyncio.wait_for(watcher, timeout=30)
    finally:
        await client.close()
    assert seen is not None
    assert events[-1] == ("MODIFIED", {"state": "ready"})


def test_pod_stays_pending_without_a_kubelet(kube: KubeSession, namespace: str) -> None:
    pod = from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "lonely", "labels": {"ray.io/cluster": "smoke"}},
            "spec": {"containers": [{"name": "ray", "image": "rayproject/ray:2.60.0"}]},
        }
    )
    kube.client.create(pod, namespace=namespace)
    time.sleep(2)
    got = kube.client.get(Pod, "lonely", namespace=namespace)
    assert got.status is not None
    assert got.status.phase == "Pending"
    assert got.spec is not None and got.spec.nodeName is None


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        pytest.param(
            {"workerGroupSpecs": [{"groupName": "cpu", "replicas": -1}]},
            "spec.workerGroupSpecs[0].replicas",
            id="negative-replicas",
        ),
        pytest.param(
            {"workerGroupSpecs": [{"replicas": 1}]},
            "spec.workerGroupSpecs[0].groupName",
            id="missing-group-name",
        ),
        pytest.param({"workerGroupSpecs": "many"}, "spec.workerGroupSpecs", id="wrong-type"),
    ],
)
def test_schema_violation_is_rejected_with_422(
    kube: KubeSession,
    crd: CustomResourceDefinition,
    namespace: str,
    spec: dict[str, Any],
    field: str,
) -> None:
    bad = SmokeCluster(metadata=ObjectMeta(name="bad"), spec=spec)
    with pytest.raises(ApiError) as info:
        _create_when_served(kube.client, bad, namespace)
    assert info.value.status.code == 422
    assert info.value.status.reason == "Invalid"
    assert field in (info.value.status.message or "")


def test_stale_update_conflicts_with_409(
    kube: KubeSession, crd: CustomResourceDefinition, namespace: str
) -> None:
    stale = _create_when_served(kube.client, _smoke_cluster("cf"), namespace)
    kube.client.patch(
        SmokeCluster,
        "cf",
        [{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 2}],
        namespace=namespace,
        patch_type=PatchType.JSON,
    )
    stale.spec["workerGroupSpecs"][0]["replicas"] = 0
    with pytest.raises(ApiError) as info:
        kube.client.replace(stale, namespace=namespace)
    assert info.value.status.code == 409
    assert info.value.status.reason == "Conflict"
    current = kube.client.get(SmokeCluster, "cf", namespace=namespace)
    assert current.spec["workerGroupSpecs"][0]["replicas"] == 2

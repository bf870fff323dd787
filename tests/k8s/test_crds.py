"""The ray.io/v1 CRDs from rayscale.builders.crds, served by a real kube-apiserver.

KubeRay's samples are accepted unchanged and nothing of them is pruned; stored worker groups
always carry replicas and scaleStrategy (schema defaults); bad types and values KubeRay's CRD
rejects get 422 naming the field; status goes through the status subresource and shows in the
printer columns.
"""

from __future__ import annotations

import copy
import subprocess
from typing import Any

import pytest
from lightkube import ApiError
from lightkube.codecs import from_dict
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.types import PatchType

from rayscale.kube.resources import RayCluster, RayJob
from rayscale.spec.models import INT32_MAX
from rayscale.testing.kube import KubeSession
from rayscale.testing.kube_ray import kubectl_from_env, raw_http, retry_not_found, sample_cluster
from tests.k8s.ray_fixtures import ns, ray_crds

__all__ = ["ns", "ray_crds"]

pytestmark = pytest.mark.k8s


def _create(kube: KubeSession, doc: dict[str, Any], namespace: str) -> Any:
    return retry_not_found(lambda: kube.client.create(from_dict(doc), namespace=namespace))


def _missing(original: Any, stored: Any, path: str = "") -> list[str]:
    """Paths of `original` that `stored` lacks or changed (defaults may add keys)."""
    if isinstance(original, dict):
        if not isinstance(stored, dict):
            return [path]
        out: list[str] = []
        for key, value in original.items():
            if key not in stored:
                out.append(f"{path}.{key}")
            else:
                out += _missing(value, stored[key], f"{path}.{key}")
        return out
    if isinstance(original, list):
        if not isinstance(stored, list) or len(stored) != len(original):
            return [path]
        return [p for i, v in enumerate(original) for p in _missing(v, stored[i], f"{path}[{i}]")]
    return [] if original == stored else [path]


def test_crds_are_established_with_status_and_printer_columns(
    kube: KubeSession, ray_crds: None
) -> None:
    crd = kube.client.get(CustomResourceDefinition, "rayclusters.ray.io")
    version = crd.spec.versions[0]
    assert version.name == "v1"
    assert version.subresources is not None and version.subresources.status is not None
    columns = [c.name for c in version.additionalPrinterColumns or []]
    assert columns == [
        "desired workers",
        "available workers",
        "cpus",
        "memory",
        "gpus",
        "status",
        "age",
    ]
    job = kube.client.get(CustomResourceDefinition, "rayjobs.ray.io")
    assert job.spec.names.kind == "RayJob"


@pytest.mark.parametrize("sample", ["autoscaler", "autoscaler-min1"])
def test_samples_are_accepted_unchanged(kube: KubeSession, ns: str, sample: str) -> None:
    doc = sample_cluster(sample)
    created = _create(kube, copy.deepcopy(doc), ns)
    stored = kube.client.get(RayCluster, created.metadata.name, namespace=ns)
    assert _missing(doc["spec"], stored.spec) == []  # nothing pruned or altered
    for group in stored.spec["workerGroupSpecs"]:
        assert "replicas" in group
        assert group["scaleStrategy"] == {"workersToDelete": []}


def test_stored_groups_always_carry_replicas_and_scale_strategy(kube: KubeSession, ns: str) -> None:
    doc = sample_cluster("autoscaler")
    group = doc["spec"]["workerGroupSpecs"][0]
    for key in ("replicas", "minReplicas", "maxReplicas"):
        del group[key]
    second = copy.deepcopy(group)
    second["groupName"] = "other"
    second["scaleStrategy"] = {}
    doc["spec"]["workerGroupSpecs"].append(second)
    _create(kube, doc, ns)
    stored = kube.client.get(RayCluster, doc["metadata"]["name"], namespace=ns)
    for got in stored.spec["workerGroupSpecs"]:
        assert got["replicas"] == 0
        assert got["minReplicas"] == 0
        assert got["maxReplicas"] == INT32_MAX
        assert got["numOfHosts"] == 1
        assert got["scaleStrategy"] == {"workersToDelete": []}
    assert stored.spec["autoscalerOptions"]["idleTimeoutSeconds"] == 60


def _edit(doc: dict[str, Any], path: list[str | int], value: Any) -> None:
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()
_GROUP: list[str | int] = ["spec", "workerGroupSpecs", 0]


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        pytest.param(
            ["spec", "autoscalerOptions", "upscalingMode"],
            "Fast",
            "spec.autoscalerOptions.upscalingMode",
            id="upscaling-mode",
        ),
        pytest.param(
            ["spec", "autoscalerOptions", "version"],
            "v3",
            "spec.autoscalerOptions.version",
            id="autoscaler-version",
        ),
        pytest.param([*_GROUP, "groupName"], _DELETE, "groupName", id="no-group-name"),
        pytest.param([*_GROUP, "template"], _DELETE, "template", id="no-template"),
        pytest.param(["spec", "headGroupSpec"], _DELETE, "spec.headGroupSpec", id="no-head"),
        pytest.param(
            [*_GROUP, "replicas"], "two", "spec.workerGroupSpecs[0].replicas", id="replicas-type"
        ),
        pytest.param(
            [*_GROUP, "rayStartParams"],
            {"num-cpus": 1},
            "spec.workerGroupSpecs[0].rayStartParams.num-cpus",
            id="start-param-not-string",
        ),
        pytest.param(
            [*_GROUP, "template", "spec", "containers", 0, "resources", "limits", "cpu"],
            "lots",
            "resources.limits.cpu",
            id="bad-quantity",
        ),
        pytest.param(
            [*_GROUP, "template", "spec", "containers"],
            _DELETE,
            "spec.workerGroupSpecs[0].template.spec.containers",
            id="no-containers",
        ),
        pytest.param(
            [*_GROUP, "scaleStrategy"],
            {"workersToDelete": "pod-a"},
            "spec.workerGroupSpecs[0].scaleStrategy.workersToDelete",
            id="workers-to-delete-not-list",
        ),
    ],
)
def test_what_kuberay_rejects_is_rejected_with_422(
    kube: KubeSession, ns: str, path: list[str | int], value: Any, field: str
) -> None:
    doc = sample_cluster("autoscaler")
    _edit(doc, path, value)
    with pytest.raises(ApiError) as info:
        _create(kube, doc, ns)
    assert info.value.status.code == 422
    assert field in (info.value.status.message or "")


def test_managed_by_is_immutable(kube: KubeSession, ns: str) -> None:
    doc = sample_cluster("autoscaler")
    doc["spec"]["managedBy"] = "ray.io/kuberay-operator"
    _create(kube, doc, ns)
    with pytest.raises(ApiError) as info:
        kube.client.patch(
            RayCluster,
            doc["metadata"]["name"],
            {"spec": {"managedBy": "kueue.x-k8s.io/multikueue"}},
            namespace=ns,
            patch_type=PatchType.MERGE,
        )
    assert info.value.status.code == 422
    assert "managedBy is immutable" in (info.value.status.message or "")


def test_status_subresource_and_printer_columns(kube: KubeSession, ns: str) -> None:
    doc = sample_cluster("autoscaler")
    name = doc["metadata"]["name"]
    created = _create(kube, doc, ns)
    status = {
        "state": "ready",
        "desiredWorkerReplicas": 2,
        "availableWorkerReplicas": 1,
        "desiredCPU": "3",
        "desiredMemory": "4G",
        "desiredGPU": "0",
        "head": {"podIP": "10.1.0.5", "serviceIP": "None"},
        "conditions": [
            {"type": "HeadPodReady", "status": "True", "reason": "HeadPodRunningAndReady"}
        ],
    }
    patched = kube.client.patch(
        RayCluster.Status,
        name,
        {"status": status, "spec": {"suspend": True}},
        namespace=ns,
        patch_type=PatchType.MERGE,
    )
    assert patched.status == status
    assert "suspend" not in patched.spec  # the status endpoint ignores spec
    assert patched.metadata.generation == created.metadata.generation
    with raw_http(kube.kubeconfig) as http:
        resp = http.get(
            f"/apis/ray.io/v1/namespaces/{ns}/rayclusters/{name}",
            headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        )
    resp.raise_for_status()
    table = resp.json()
    names = [c["name"] for c in table["columnDefinitions"]]
    row = dict(zip(names, table["rows"][0]["cells"], strict=True))
    assert row["desired workers"] == 2
    assert row["available workers"] == 1
    assert (row["cpus"], row["memory"], row["gpus"], row["status"]) == ("3", "4G", "0", "ready")


def test_rayjob_with_the_sample_cluster_spec(kube: KubeSession, ns: str) -> None:
    cluster = sample_cluster("autoscaler")
    job = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": "job"},
        "spec": {
            "entrypoint": "python -c 'import ray; ray.init()'",
            "shutdownAfterJobFinishes": True,
            "rayClusterSpec": cluster["spec"],
        },
    }
    retry_not_found(lambda: kube.client.create(from_dict(job), namespace=ns))
    stored = kube.client.get(RayJob, "job", namespace=ns)
    assert _missing(job["spec"], stored.spec) == []
    group = stored.spec["rayClusterSpec"]["workerGroupSpecs"][0]
    assert group["scaleStrategy"] == {"workersToDelete": []}
    bad = {**job, "metadata": {"name": "bad"}, "spec": {**job["spec"], "submissionMode": "Now"}}
    with pytest.raises(ApiError) as info:
        kube.client.create(from_dict(bad), namespace=ns)
    assert info.value.status.code == 422
    assert "spec.submissionMode" in (info.value.status.message or "")


def test_kubectl_get_raycluster_prints_the_columns(kube: KubeSession, ns: str) -> None:
    """The walkthrough's `kubectl get raycluster`, with the kubectl built from the same module."""
    kubectl = kubectl_from_env()
    doc = sample_cluster("autoscaler")
    name = doc["metadata"]["name"]
    _create(kube, doc, ns)
    kube.client.patch(
        RayCluster.Status,
        name,
        {"status": {"state": "ready", "desiredWorkerReplicas": 1, "availableWorkerReplicas": 1,
                    "desiredCPU": "2", "desiredMemory": "3G", "desiredGPU": "0"}},
        namespace=ns,
        patch_type=PatchType.MERGE,
    )  # fmt: skip
    out = subprocess.run(
        [str(kubectl), "--kubeconfig", str(kube.kubeconfig), "get", "raycluster", "-n", ns],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert out[0].split() == [
        "NAME", "DESIRED", "WORKERS", "AVAILABLE", "WORKERS", "CPUS", "MEMORY", "GPUS", "STATUS",
        "AGE",
    ]  # fmt: skip
    assert out[1].split()[:7] == [name, "1", "1", "2", "3G", "0", "ready"]

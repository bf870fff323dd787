"""Pure builders of what the operator creates: generateName pods with the Ray token, RBAC,
v2 env, and the status' desired resources."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from rayscale.builders.operator import (
    autoscaler_rbac,
    desired_resources,
    format_bytes,
    format_cpu,
    operator_head_pod,
    operator_worker_pod,
    token_secret,
)
from rayscale.spec import parse_cluster

pytestmark = pytest.mark.unit


@pytest.fixture
def cluster(spec_doc: dict[str, Any]) -> Any:
    spec_doc["metadata"]["namespace"] = "ns"
    return parse_cluster(spec_doc)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in container["env"]}


def test_pods_are_generated_names_with_the_token_on_every_container(cluster: Any) -> None:
    head = operator_head_pod(cluster, "uid-1")
    assert "name" not in head["metadata"]
    assert head["metadata"]["generateName"] == f"{cluster.name}-head-"
    assert [c["name"] for c in head["spec"]["containers"]][1] == "autoscaler"
    group = cluster.worker_groups[0]
    worker = operator_worker_pod(cluster, group, "uid-1")
    assert worker["metadata"]["generateName"] == f"{cluster.name}-{group.group_name}-worker-"
    for pod in (head, worker):
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["ray-auth-token"]["secret"]["secretName"] == f"{cluster.name}-ray-token"
        for container in pod["spec"]["containers"]:
            env = _env(container)
            assert env["RAY_AUTH_MODE"] == "token"
            assert env["RAY_AUTH_TOKEN_PATH"] == "/etc/ray/auth/auth_token"
    assert token_secret(cluster, "abc", "uid-1")["data"] == {"auth_token": "YWJj"}


def test_autoscaler_v2_sets_what_kuberay_sets(spec_doc: dict[str, Any]) -> None:
    spec_doc["spec"]["autoscalerOptions"] = {"version": "v2"}
    cluster = parse_cluster(spec_doc)
    ray = operator_head_pod(cluster, None)["spec"]["containers"][0]
    assert _env(ray)["RAY_enable_autoscaler_v2"] == "1"
    assert "--no-monitor" in ray["args"][0]
    worker = operator_worker_pod(cluster, cluster.worker_groups[0], None)
    assert "RAY_enable_autoscaler_v2" not in _env(worker["spec"]["containers"][0])
    names = {e["name"] for e in worker["spec"]["containers"][0]["env"]}
    assert {"RAY_CLOUD_INSTANCE_ID", "RAY_NODE_TYPE_NAME"} <= names


def test_rbac_is_kuberays(cluster: Any) -> None:
    sa, role, binding = autoscaler_rbac(cluster, "uid-1")
    assert (sa["kind"], role["kind"], binding["kind"]) == ("ServiceAccount", "Role", "RoleBinding")
    rules = {(r["apiGroups"][0], r["resources"][0]): set(r["verbs"]) for r in role["rules"]}
    assert rules[("", "pods")] >= {"get", "list", "watch", "patch"}
    assert rules[("", "pods/resize")] == {"patch"}
    assert rules[("ray.io", "rayclusters")] >= {"get", "patch"}
    assert binding["subjects"][0]["name"] == cluster.name


def test_desired_resources_count_the_head_and_desired_workers(spec_doc: dict[str, Any]) -> None:
    group = spec_doc["spec"]["workerGroupSpecs"][0]
    group.update(replicas=3, minReplicas=0, maxReplicas=10)
    container = group["template"]["spec"]["containers"][0]
    container["resources"] = {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"},
    }
    head = spec_doc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    head["resources"] = {"requests": {"cpu": "1", "memory": "2Gi"}}
    got = desired_resources(parse_cluster(spec_doc))
    assert got == {"desiredCPU": "2500m", "desiredMemory": "5Gi", "desiredGPU": "3"}


@pytest.mark.parametrize(
    ("amount", "cpu", "memory"),
    [("0", "0", "0"), ("1.5", "1500m", "2"), ("2000000000", "2000000000", "2G")],
)
def test_quantity_formats(amount: str, cpu: str, memory: str) -> None:
    assert format_cpu(Decimal(amount)) == cpu
    assert format_bytes(Decimal(amount)) == memory

"""Pure pod builders: KubeRay's labels, env, start command and autoscaler sidecar."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from rayscale.builders.pods import head_pod, head_service, ray_start_argv, worker_pod
from rayscale.spec import load_file

pytestmark = pytest.mark.unit

SAMPLE = Path(__file__).resolve().parents[2] / "src/rayscale/samples/ray-cluster.autoscaler.yaml"


@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    return load_file(SAMPLE).cluster


def argv_of(pod: dict) -> list[str]:  # type: ignore[type-arg]
    script = pod["spec"]["containers"][0]["args"][0]
    return shlex.split(script.split(";", 1)[1])


def test_start_argv_sorted_with_bare_flags() -> None:
    assert ray_start_argv({"num-cpus": "1", "block": "true", "address": "h:6379"}, False) == [
        "ray",
        "start",
        "--address=h:6379",
        "--block",
        "--num-cpus=1",
    ]


def test_head_pod(cluster) -> None:  # type: ignore[no-untyped-def]
    pod = head_pod(cluster, "raycluster-autoscaler-head-abcde", uid="u1")
    labels = pod["metadata"]["labels"]
    assert labels["ray.io/node-type"] == "head" and labels["ray.io/group"] == "headgroup"
    assert labels["ray.io/identifier"] == "raycluster-autoscaler-head"
    assert pod["metadata"]["ownerReferences"][0]["controller"] is True
    argv = argv_of(pod)
    assert argv[:3] == ["ray", "start", "--head"]
    for flag in (
        "--no-monitor",
        "--num-cpus=0",
        "--block",
        "--dashboard-host=0.0.0.0",
        "--metrics-export-port=8080",
        "--dashboard-agent-listen-port=52365",
    ):
        assert flag in argv
    names = [c["name"] for c in pod["spec"]["containers"]]
    assert names == ["ray-head", "autoscaler"]
    sidecar = pod["spec"]["containers"][1]
    env = {e["name"] for e in sidecar["env"]}
    assert {
        "RAY_CLUSTER_NAME",
        "RAY_CLUSTER_NAMESPACE",
        "RAY_HEAD_POD_NAME",
        "KUBERAY_CRD_VER",
    } <= env
    assert sidecar["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}
    assert {"name": "ray-logs", "mountPath": "/tmp/ray"} in sidecar["volumeMounts"]
    assert {"name": "ray-logs", "emptyDir": {}} in pod["spec"]["volumes"]


def test_worker_pod(cluster) -> None:  # type: ignore[no-untyped-def]
    group = cluster.worker_groups[0]
    pod = worker_pod(cluster, group, "raycluster-autoscaler-small-group-worker-xyz12")
    argv = argv_of(pod)
    assert "--address=raycluster-autoscaler-head-svc.default.svc.cluster.local:6379" in argv
    assert "--num-cpus=1" in argv and "--head" not in argv
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["RAY_NODE_TYPE_NAME"]["value"] == "small-group"
    assert env["RAY_CLOUD_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert pod["metadata"]["labels"]["ray.io/group"] == "small-group"


def test_head_service(cluster) -> None:  # type: ignore[no-untyped-def]
    svc = head_service(cluster)
    assert svc["metadata"]["name"] == "raycluster-autoscaler-head-svc"
    assert svc["spec"]["clusterIP"] == "None"
    ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    assert ports == {
        "gcs-server": 6379,
        "dashboard": 8265,
        "client": 10001,
        "metrics": 8080,
        "serve": 8000,
    }

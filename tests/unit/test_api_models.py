"""API wire models and their mapping to the RayCluster CR (as KubeRay's API server maps them)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from rayscale.apiserver import mapping, walkthrough
from rayscale.apiserver.backends.local import read_events
from rayscale.apiserver.models import Cluster, ComputeTemplate, Job
from rayscale.builders.pods import head_pod, worker_pod
from rayscale.local.kubelet import config_map_mounts, local_pod
from rayscale.spec import parse_cluster

pytestmark = pytest.mark.unit

TEMPLATES = {"default-template": ComputeTemplate.model_validate(walkthrough.TEMPLATE)}


def seed_cr() -> dict[str, Any]:
    cluster = Cluster.model_validate(walkthrough.CLUSTER)
    return mapping.ray_cluster(cluster, "default", TEMPLATES)


def test_template_sets_requests_equal_to_limits_on_every_ray_container() -> None:
    cr = seed_cr()
    head = cr["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    worker = cr["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    for container in (head, worker):
        assert container["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"}
        assert container["resources"]["limits"] == container["resources"]["requests"]


def test_gpu_goes_under_the_accelerator_and_extended_resources_pass_through() -> None:
    template = ComputeTemplate(name="g", cpu=4, memory=16, gpu=1, extended_resources={"x/y": 2})
    assert mapping.template_resources(template) == {
        "cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1", "x/y": "2"
    }  # fmt: skip
    other = template.model_copy(update={"gpu_accelerator": "amd.com/gpu"})
    assert mapping.template_resources(other)["amd.com/gpu"] == "1"


def test_template_config_map_is_labelled_as_kuberay_labels_it() -> None:
    cm = mapping.template_config_map(TEMPLATES["default-template"], "default")
    assert cm["metadata"]["labels"] == {
        "ray.io/config-type": "compute-template",
        "ray.io/compute-template": "default-template",
    }


def test_configmap_volumes_mount_the_source_with_its_items() -> None:
    cr = seed_cr()
    pod = cr["spec"]["headGroupSpec"]["template"]["spec"]
    assert pod["volumes"] == [
        {
            "name": "code-sample",
            "configMap": {
                "name": "ray-example",
                "items": [
                    {"key": "detached_actor.py", "path": "detached_actor.py"},
                    {"key": "terminate_detached_actor.py", "path": "terminate_detached_actor.py"},
                ],
            },
        }
    ]
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "code-sample", "mountPath": "/home/ray/samples"}
    ]
    # The local kubelet reads the mount back from the pod the operator would create.
    cluster = parse_cluster(cr)
    mounts = config_map_mounts(head_pod(cluster, "test-cluster-head"))
    assert mounts["/home/ray/samples"][0] == "ray-example"


def test_autoscaler_options_map_to_the_cr() -> None:
    cr = seed_cr()
    assert cr["spec"]["enableInTreeAutoscaling"] is True
    assert cr["spec"]["autoscalerOptions"] == {
        "upscalingMode": "Default",
        "idleTimeoutSeconds": 30,
        "resources": {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"cpu": "500m", "memory": "512Mi"},
        },
    }
    body = copy.deepcopy(walkthrough.CLUSTER)
    body["clusterSpec"]["autoscalerOptions"].update(
        image="my/autoscaler:1", imagePullPolicy="Always",
        envs={
            "values": {"A": "1"},
            "valuesFrom": {"B": {"source": "FIELD", "key": "metadata.name"}},
        },
        volumes=[{"name": "extra", "mountPath": "/x", "volumeType": "EMPTY_DIR"}],
    )  # fmt: skip
    cr = mapping.ray_cluster(Cluster.model_validate(body), "default", TEMPLATES)
    options = cr["spec"]["autoscalerOptions"]
    assert options["image"] == "my/autoscaler:1" and options["imagePullPolicy"] == "Always"
    assert options["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    assert options["volumeMounts"] == [{"name": "extra", "mountPath": "/x"}]
    head_volumes = cr["spec"]["headGroupSpec"]["template"]["spec"]["volumes"]
    assert {"name": "extra", "emptyDir": {}} in head_volumes
    assert parse_cluster(cr).spec.autoscaler_options.idle_timeout_seconds == 30


def test_ray_start_params_pass_through_and_my_pod_ip_is_defined() -> None:
    cr = seed_cr()
    worker_group = cr["spec"]["workerGroupSpecs"][0]
    assert worker_group["rayStartParams"] == {"node-ip-address": "$MY_POD_IP"}
    assert cr["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    env = worker_group["template"]["spec"]["containers"][0]["env"]
    assert {"name": "MY_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in env
    cluster = parse_cluster(cr)
    pod = worker_pod(cluster, cluster.spec.worker_group_specs[0], "test-cluster-small-wg-worker-x")
    assert "--node-ip-address=$MY_POD_IP" in " ".join(pod["spec"]["containers"][0]["args"])
    local = local_pod(pod, "127.0.0.1:6379")  # the local runtime owns the node's address
    assert local.resources.num_cpus == 2 and local.resources.memory == 4 * 2**30
    assert local.env["MY_POD_IP"] == "127.0.0.1"


def test_cr_labels_and_replicas() -> None:
    cr = seed_cr()
    labels = cr["metadata"]["labels"]
    assert labels["ray.io/user"] == "boris"
    assert labels["app.kubernetes.io/managed-by"] == "kuberay-apiserver"
    group = cr["spec"]["workerGroupSpecs"][0]
    assert (group["groupName"], group["replicas"], group["minReplicas"], group["maxReplicas"]) == (
        "small-wg", 0, 0, 5
    )  # fmt: skip


def test_snake_case_is_accepted_and_camel_case_comes_out() -> None:
    t = ComputeTemplate.model_validate({"name": "t", "cpu": 1, "memory": 2, "gpu_accelerator": "x"})
    out = t.model_dump(by_alias=True)
    assert out["gpuAccelerator"] == "x" and "gpu_accelerator" not in out
    job = Job.model_validate({"name": "j", "entrypoint": "python x.py",
                              "cluster_selector": {"ray.io/cluster": "c"}})  # fmt: skip
    assert job.cluster_selector == {"ray.io/cluster": "c"}
    body = copy.deepcopy(walkthrough.CLUSTER)
    spec = body.pop("clusterSpec")
    spec["worker_group_spec"] = spec.pop("workerGroupSpec")
    spec["worker_group_spec"][0]["min_replicas"] = spec["worker_group_spec"][0].pop("minReplicas")
    body["cluster_spec"] = spec
    assert Cluster.model_validate(body).cluster_spec.worker_group_spec[0].max_replicas == 5


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "t", "cpu": 0, "memory": 4}, "cpu"),
        ({"name": "t", "cpu": 1, "memory": 0}, "memory"),
        ({"name": "T_bad", "cpu": 1, "memory": 1}, "name"),
        ({"name": "t", "cpu": 1, "memory": 1, "cpus": 2}, "cpus"),
    ],
)
def test_bad_templates_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ComputeTemplate.model_validate(body)
    assert [e["loc"][-1] for e in info.value.errors()] == [field]


def test_a_configmap_volume_needs_a_source() -> None:
    body = copy.deepcopy(walkthrough.CLUSTER)
    del body["clusterSpec"]["headGroupSpec"]["volumes"][0]["source"]
    with pytest.raises(ValidationError, match="needs source"):
        Cluster.model_validate(body)


def test_events_jsonl_becomes_kuberay_events(tmp_path: Any) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"at": 100.0, "type": "launch", "group": "small-wg", "count": 1, "nodes": ["w1"],'
        ' "reason": {"code": "pending_demand", "params": {"count": 1}, "text": "1 pending"}}\n'
        '{"at": 200.0, "type": "drain_refused", "group": "small-wg", "count": 1, "nodes": ["w1"],'
        ' "reason": {"code": "node_busy", "params": {}, "text": "busy"}}\n'
        '{"at": 300.0, "type": "delete", "gro'  # a torn last line is skipped
    )
    events = read_events(path, "test-cluster")
    assert [(e.action, e.type, e.reason) for e in events] == [
        ("launch", "Normal", "pending_demand"), ("drain_refused", "Warning", "node_busy")
    ]  # fmt: skip
    assert events[0].message == "launch 1 in small-wg: 1 pending"
    assert events[0].params == {"count": 1} and events[0].nodes == ["w1"]
    assert events[0].created_at == "1970-01-01T00:01:40Z"
    assert [e.action for e in read_events(path, "c", since=150)] == ["drain_refused"]
    assert read_events(tmp_path / "missing.jsonl", "c") == []

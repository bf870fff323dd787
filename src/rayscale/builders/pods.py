"""RayCluster -> head/worker pod manifests and the head service, as KubeRay builds them.

Pure functions: no I/O, no clock, no randomness (pod names are arguments). The operator
applies these manifests to Kubernetes; the local runtime executes the very same manifests as
local processes, so both runtimes run one pod spec.
"""

from __future__ import annotations

import copy
import json
import shlex
from collections.abc import Mapping
from typing import Any

from rayscale.planner.model import HEAD_GROUP
from rayscale.protocol import GROUP_LABEL, INSTANCE_ID_ENV, NODE_TYPE_ENV, REPLICA_LABEL
from rayscale.spec import RayCluster, WorkerGroupSpec, group_resources, head_resources
from rayscale.spec.models import GroupSpec

CREATED_BY = "rayscale"
GCS_PORT = 6379
HEAD_PORTS = {
    "gcs-server": 6379,
    "dashboard": 8265,
    "client": 10001,
    "metrics": 8080,
    "serve": 8000,
}
DEFAULT_METRICS_PORT = "8080"
DEFAULT_AGENT_PORT = "52365"
RAY_CONTAINER_ENV = (
    "RAY_CLUSTER_NAME",
    "RAY_CLUSTER_NAMESPACE",
    INSTANCE_ID_ENV,
    NODE_TYPE_ENV,
    "RAY_ADDRESS",
)
Manifest = dict[str, Any]


def head_service_name(cluster: RayCluster) -> str:
    return f"{cluster.name}-head-svc"


def head_address(cluster: RayCluster) -> str:
    """Where workers reach the head's GCS inside Kubernetes."""
    return f"{head_service_name(cluster)}.{cluster.namespace}.svc.cluster.local:{GCS_PORT}"


def head_pod_prefix(cluster: RayCluster) -> str:
    return f"{cluster.name}-head-"


def worker_pod_prefix(cluster: RayCluster, group: str) -> str:
    return f"{cluster.name}-{group}-worker-"


def pod_labels(cluster: RayCluster, group: str) -> dict[str, str]:
    node_type = "head" if group == HEAD_GROUP else "worker"
    return {
        "ray.io/is-ray-node": "yes",
        "ray.io/cluster": cluster.name,
        "ray.io/node-type": node_type,
        GROUP_LABEL: group,
        "ray.io/identifier": f"{cluster.name}-{node_type}",
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": CREATED_BY,
    }


def owner_reference(cluster: RayCluster, uid: str | None) -> dict[str, Any]:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "name": cluster.name,
        "uid": uid or "",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _fmt_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def start_params(
    cluster: RayCluster, spec: GroupSpec, resources: Mapping[str, float], head: bool
) -> dict[str, str]:
    """The rayStartParams KubeRay passes to ``ray start``, defaults and resources filled in.

    Resources are written out explicitly (num-cpus, num-gpus, memory, resources) from the
    resolved vector, so the Ray node advertises exactly what the planner plans with.
    """
    params = dict(spec.ray_start_params)
    params.setdefault("metrics-export-port", DEFAULT_METRICS_PORT)
    params.setdefault("dashboard-agent-listen-port", DEFAULT_AGENT_PORT)
    params["block"] = "true"
    if head:
        params.setdefault("dashboard-host", "0.0.0.0")
        if cluster.autoscaling_enabled:
            params["no-monitor"] = "true"
    else:
        params["address"] = head_address(cluster)
    params["num-cpus"] = _fmt_number(resources.get("CPU", 0.0))
    if resources.get("GPU"):
        params["num-gpus"] = _fmt_number(resources["GPU"])
    if resources.get("memory"):
        params["memory"] = _fmt_number(resources["memory"])
    custom = {k: v for k, v in resources.items() if k not in ("CPU", "GPU", "memory")}
    if custom:
        params["resources"] = json.dumps(custom, sort_keys=True)
    else:
        params.pop("resources", None)
    return params


def ray_start_argv(params: Mapping[str, str], head: bool) -> list[str]:
    """``ray start [--head] --k=v ...``: keys sorted, ``"true"`` becomes a bare flag."""
    argv = ["ray", "start"] + (["--head"] if head else [])
    for key in sorted(params):
        value = params[key]
        argv.append(f"--{key}" if value.lower() == "true" else f"--{key}={value}")
    return argv


def _env(cluster: RayCluster, group: str, head: bool) -> list[dict[str, Any]]:
    address = f"127.0.0.1:{GCS_PORT}" if head else head_address(cluster)
    return [
        {"name": "RAY_CLUSTER_NAME", "value": cluster.name},
        {"name": "RAY_CLUSTER_NAMESPACE", "value": cluster.namespace},
        {
            "name": INSTANCE_ID_ENV,
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
        },
        {"name": NODE_TYPE_ENV, "value": group},
        {"name": "RAY_ADDRESS", "value": address},
    ]


def _ray_container(
    cluster: RayCluster, spec: GroupSpec, group: str, resources: Mapping[str, float], head: bool
) -> dict[str, Any]:
    raw = spec.template.to_dict()
    containers = raw.get("spec", {}).get("containers") or [{"name": "ray"}]
    container: dict[str, Any] = copy.deepcopy(containers[0])
    argv = ray_start_argv(start_params(cluster, spec, resources, head), head)
    container["command"] = ["/bin/bash", "-lc", "--"]
    container["args"] = [f"ulimit -n 65536; {shlex.join(argv)}"]
    user_env = [e for e in container.get("env", []) if e.get("name") not in RAY_CONTAINER_ENV]
    container["env"] = _env(cluster, group, head) + user_env
    return container


def _pod(
    cluster: RayCluster,
    spec: GroupSpec,
    group: str,
    name: str,
    resources: Mapping[str, float],
    uid: str | None,
    extra_labels: Mapping[str, str] | None = None,
) -> Manifest:
    head = group == HEAD_GROUP
    template = spec.template.to_dict()
    pod_spec: dict[str, Any] = copy.deepcopy(template.get("spec", {}))
    containers = list(pod_spec.get("containers") or [])
    ray = _ray_container(cluster, spec, group, resources, head)
    pod_spec["containers"] = [ray, *copy.deepcopy(containers[1:])]
    pod_spec.setdefault("restartPolicy", "Always")
    meta = template.get("metadata", {})
    labels = {**meta.get("labels", {}), **pod_labels(cluster, group), **(extra_labels or {})}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": cluster.namespace,
            "labels": labels,
            "annotations": dict(meta.get("annotations", {})),
            "ownerReferences": [owner_reference(cluster, uid)],
        },
        "spec": pod_spec,
    }


def head_pod(cluster: RayCluster, name: str, uid: str | None = None) -> Manifest:
    """The head pod; with in-tree autoscaling it gets the ``autoscaler`` sidecar."""
    pod = _pod(cluster, cluster.head_group, HEAD_GROUP, name, head_resources(cluster), uid)
    if cluster.autoscaling_enabled:
        _add_autoscaler(cluster, pod)
    return pod


def worker_pod(
    cluster: RayCluster,
    group: WorkerGroupSpec,
    name: str,
    uid: str | None = None,
    replica: str | None = None,
) -> Manifest:
    """A worker pod of ``group``; ``replica`` names its multi-host replica (numOfHosts > 1)."""
    labels = {REPLICA_LABEL: replica} if replica else None
    return _pod(cluster, group, group.group_name, name, group_resources(group), uid, labels)


def _add_autoscaler(cluster: RayCluster, pod: Manifest) -> None:
    options = cluster.spec.autoscaler_options
    ray = pod["spec"]["containers"][0]
    resources = (
        options.resources.to_dict()
        if options.resources is not None
        else {
            "limits": {"cpu": "500m", "memory": "512Mi"},
            "requests": {"cpu": "500m", "memory": "512Mi"},
        }
    )
    env = [
        {"name": "RAY_CLUSTER_NAME", "value": cluster.name},
        {"name": "RAY_CLUSTER_NAMESPACE", "value": cluster.namespace},
        {"name": "RAY_HEAD_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "KUBERAY_CRD_VER", "value": "v1"},
        *[e.to_dict() for e in options.env],
    ]
    logs = {"name": "ray-logs", "mountPath": "/tmp/ray"}
    sidecar: dict[str, Any] = {
        "name": "autoscaler",
        "image": options.image or ray.get("image"),
        "imagePullPolicy": options.image_pull_policy,
        "command": options.command or ["rayscale", "autoscaler"],
        "args": options.args or ["--cluster", cluster.name, "--namespace", cluster.namespace],
        "env": env,
        "resources": resources,
        "volumeMounts": [logs, *[m.to_dict() for m in options.volume_mounts]],
    }
    if options.env_from:
        sidecar["envFrom"] = list(options.env_from)
    if options.security_context is not None:
        sidecar["securityContext"] = options.security_context
    ray.setdefault("volumeMounts", []).append(dict(logs))
    pod["spec"].setdefault("volumes", []).append({"name": "ray-logs", "emptyDir": {}})
    pod["spec"]["containers"].append(sidecar)
    pod["spec"]["serviceAccountName"] = cluster.name


def head_service(cluster: RayCluster, uid: str | None = None) -> Manifest:
    """The head service: headless by default, with KubeRay's named ports."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": head_service_name(cluster),
            "namespace": cluster.namespace,
            "labels": pod_labels(cluster, HEAD_GROUP),
            "annotations": dict(cluster.spec.head_service_annotations),
            "ownerReferences": [owner_reference(cluster, uid)],
        },
        "spec": {
            "clusterIP": "None",
            "selector": {"ray.io/cluster": cluster.name, "ray.io/node-type": "head"},
            "ports": [{"name": n, "port": p, "targetPort": p} for n, p in HEAD_PORTS.items()],
        },
    }

"""What the Kubernetes operator creates besides what :mod:`rayscale.builders.pods` builds:
pods named by ``generateName`` and given the cluster's Ray token, the token Secret, the
autoscaler's ServiceAccount/Role/RoleBinding, and the RayCluster's status.

Pure (no I/O, no clock, no randomness): the token and the time are arguments.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from rayscale.builders.pods import (
    HEAD_PORTS,
    Manifest,
    head_pod,
    head_pod_prefix,
    head_service_name,
    owner_reference,
    pod_labels,
    worker_pod,
    worker_pod_prefix,
)
from rayscale.builders.reconcile import Reconciliation
from rayscale.planner.model import HEAD_GROUP
from rayscale.protocol import AUTH_MODE_ENV, AUTH_TOKEN_PATH_ENV, GROUP_LABEL, REPLICA_LABEL
from rayscale.spec import RayCluster, WorkerGroupSpec, is_gpu_resource_key, parse_quantity
from rayscale.spec.models import RAY_ENABLE_AUTOSCALER_V2, GroupSpec

TOKEN_KEY = "auth_token"
TOKEN_DIR = "/etc/ray/auth"
TOKEN_VOLUME = "ray-auth-token"
AUTOSCALER_CONTAINER = "autoscaler"


def token_secret_name(cluster: RayCluster | str) -> str:
    """The token Secret of a cluster (given as its spec or its name)."""
    name = cluster if isinstance(cluster, str) else cluster.name
    return f"{name}-ray-token"


def token_secret(cluster: RayCluster, token: str, uid: str | None) -> Manifest:
    """The Secret holding the cluster's Ray auth token (generated once by the operator)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": token_secret_name(cluster),
            "namespace": cluster.namespace,
            "labels": {"ray.io/cluster": cluster.name},
            "ownerReferences": [owner_reference(cluster, uid)],
        },
        "data": {TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }


def _with_token(pod: Manifest, cluster: RayCluster) -> Manifest:
    """Mount the token Secret and set Ray's token-auth env on every container of the pod
    (the Ray container and the autoscaler sidecar both talk to GCS)."""
    return with_token(pod, token_secret_name(cluster))


def with_token(pod: Manifest, secret_name: str) -> Manifest:
    """Mount Secret ``secret_name`` (a cluster's token) and set Ray's token-auth env on every
    container of ``pod`` (a pod or a pod template: anything with a ``spec``)."""
    spec = pod["spec"]
    spec.setdefault("volumes", []).append(
        {"name": TOKEN_VOLUME, "secret": {"secretName": secret_name, "defaultMode": 0o400}}
    )
    env = [
        {"name": AUTH_MODE_ENV, "value": "token"},
        {"name": AUTH_TOKEN_PATH_ENV, "value": f"{TOKEN_DIR}/{TOKEN_KEY}"},
    ]
    for container in spec["containers"]:
        kept = [e for e in container.get("env", []) if e.get("name") not in _TOKEN_ENV]
        container["env"] = kept + [dict(e) for e in env]
        container.setdefault("volumeMounts", []).append(
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True}
        )
    return pod


_TOKEN_ENV = (AUTH_MODE_ENV, AUTH_TOKEN_PATH_ENV)


def _generated(pod: Manifest, prefix: str) -> Manifest:
    pod["metadata"].pop("name", None)
    pod["metadata"]["generateName"] = prefix
    return pod


def operator_head_pod(cluster: RayCluster, uid: str | None) -> Manifest:
    """The head pod as the operator creates it: generateName ``<cluster>-head-``, the token,
    and for autoscaler v2 ``RAY_enable_autoscaler_v2=1`` on the Ray container."""
    pod = head_pod(cluster, "", uid)
    if cluster.autoscaling_enabled and cluster.spec.autoscaler_options.version == "v2":
        ray = pod["spec"]["containers"][0]
        env = [e for e in ray["env"] if e.get("name") != RAY_ENABLE_AUTOSCALER_V2]
        ray["env"] = [*env, {"name": RAY_ENABLE_AUTOSCALER_V2, "value": "1"}]
    return _with_token(_generated(pod, head_pod_prefix(cluster)), cluster)


def operator_worker_pod(
    cluster: RayCluster, group: WorkerGroupSpec, uid: str | None, replica: str | None = None
) -> Manifest:
    """A worker pod with generateName ``<cluster>-<group>-worker-`` and the token."""
    pod = worker_pod(cluster, group, "", uid, replica)
    return _with_token(_generated(pod, worker_pod_prefix(cluster, group.group_name)), cluster)


def autoscaler_rbac(cluster: RayCluster, uid: str | None) -> list[Manifest]:
    """ServiceAccount, Role and RoleBinding named after the cluster, for the sidecar:
    pods get/list/watch/patch, pods/resize patch, rayclusters get/patch (KubeRay's rules)."""
    meta = {
        "name": cluster.name,
        "namespace": cluster.namespace,
        "labels": {"ray.io/cluster": cluster.name},
        "ownerReferences": [owner_reference(cluster, uid)],
    }
    rules = [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": [""], "resources": ["pods/resize"], "verbs": ["patch"]},
        {
            "apiGroups": ["ray.io"],
            "resources": ["rayclusters"],
            "verbs": ["get", "list", "watch", "patch"],
        },
    ]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": dict(meta)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": dict(meta),
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": dict(meta),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": cluster.name,
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": cluster.name, "namespace": cluster.namespace}
            ],
        },
    ]


def replica_name(cluster: RayCluster, group: str, suffix: str) -> str:
    """The label value tying the hosts of one multi-host replica together."""
    return f"{cluster.name}-{group}-{suffix}"


# -- status -------------------------------------------------------------------------------------


def _container_totals(spec: GroupSpec) -> dict[str, Decimal]:
    """cpu, memory and gpu of a group's Ray container: requests, else limits (KubeRay sums
    the pod's requests for desiredCPU/Memory; GPUs are limits)."""
    container = spec.ray_container
    if container is None:
        return {}
    requests, limits = container.resources.requests, container.resources.limits
    out: dict[str, Decimal] = {}
    for key in ("cpu", "memory"):
        value = requests.get(key, limits.get(key))
        if value is not None:
            out[key] = parse_quantity(value)
    gpus = [parse_quantity(v) for k, v in limits.items() if is_gpu_resource_key(k)]
    if gpus:
        out["gpu"] = gpus[0]
    return out


def desired_resources(cluster: RayCluster) -> dict[str, str]:
    """desiredCPU / desiredMemory / desiredGPU: the head plus every desired worker pod."""
    total: dict[str, Decimal] = {"cpu": Decimal(0), "memory": Decimal(0), "gpu": Decimal(0)}
    for key, value in _container_totals(cluster.head_group).items():
        total[key] += value
    for group in cluster.worker_groups:
        for key, value in _container_totals(group).items():
            total[key] += value * group.desired_pods
    return {
        "desiredCPU": format_cpu(total["cpu"]),
        "desiredMemory": format_bytes(total["memory"]),
        "desiredGPU": format_cpu(total["gpu"]),
    }


def format_cpu(amount: Decimal) -> str:
    if amount == amount.to_integral_value():
        return str(int(amount))
    return f"{int((amount * 1000).to_integral_value())}m"


def format_bytes(amount: Decimal) -> str:
    value = int(amount.to_integral_value(rounding="ROUND_CEILING"))
    if value == 0:
        return "0"
    for suffix, size in (("Gi", 1024**3), ("G", 10**9), ("Mi", 1024**2), ("M", 10**6)):
        if value % size == 0:
            return f"{value // size}{suffix}"
    return str(value)


def _condition(kind: str, ok: bool, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": "True" if ok else "False", "reason": reason, "message": message}


def cluster_status(
    cluster: RayCluster,
    result: Reconciliation,
    pods: Sequence[Mapping[str, Any]],
    *,
    generation: int,
    service_ip: str = "",
    failure: str = "",
) -> dict[str, Any]:
    """The RayCluster's status after a reconcile pass (without timestamps: the caller adds
    ``lastUpdateTime`` and ``lastTransitionTime`` only when something changed).

    ``pods`` are the cluster's live pods as mappings with ``name``, ``group``, ``phase``,
    ``ready`` and ``ip``.
    """
    heads = [p for p in pods if p["group"] == HEAD_GROUP]
    workers = [p for p in pods if p["group"] != HEAD_GROUP]
    head = next((p for p in heads if p["phase"] == "Running"), heads[0] if heads else None)
    head_ready = head is not None and head["phase"] == "Running" and bool(head["ready"])
    status: dict[str, Any] = {
        "desiredWorkerReplicas": sum(g.desired for g in result.groups),
        "minWorkerReplicas": sum(g.min for g in result.groups),
        "maxWorkerReplicas": min(sum(g.max for g in result.groups), 2**31 - 1),
        "availableWorkerReplicas": sum(p["phase"] == "Running" for p in workers),
        "readyWorkerReplicas": sum(p["phase"] == "Running" and bool(p["ready"]) for p in workers),
        **desired_resources(cluster),
        "observedGeneration": generation,
        "endpoints": {name: str(port) for name, port in HEAD_PORTS.items()},
        "head": {
            "podName": head["name"] if head else "",
            "podIP": head["ip"] if head else "",
            "serviceName": head_service_name(cluster),
            "serviceIP": service_ip or (head["ip"] if head else ""),
        },
    }
    suspended = result.state == "suspended"
    ready = (
        result.state == "ready"
        and head_ready
        and status["readyWorkerReplicas"] == (status["desiredWorkerReplicas"])
    )
    if suspended:
        status["state"] = "suspended"
    elif ready:
        status["state"] = "ready"
    conditions = [
        _condition("HeadPodReady", head_ready, _head_reason(head, head_ready)),
        _condition(
            "RayClusterProvisioned",
            ready,
            "AllPodRunningAndReadyFirstTime" if ready else "RayClusterPodsProvisioning",
        ),
        _condition("ReplicaFailure", bool(failure), "FailedReconcile" if failure else "", failure),
        _condition("RayClusterSuspended", suspended, "Suspended" if suspended else "", ""),
    ]
    status["conditions"] = conditions
    return status


def _head_reason(head: Mapping[str, Any] | None, ready: bool) -> str:
    if head is None:
        return "HeadPodNotFound"
    return "HeadPodRunningAndReady" if ready else "HeadPodNotReady"


def observed_pod_fields(pod_labels_: Mapping[str, str]) -> tuple[str, str | None]:
    """(group, replica) of a pod from its labels."""
    return pod_labels_.get(GROUP_LABEL, ""), pod_labels_.get(REPLICA_LABEL)


__all__ = [
    "AUTOSCALER_CONTAINER",
    "TOKEN_KEY",
    "autoscaler_rbac",
    "cluster_status",
    "desired_resources",
    "observed_pod_fields",
    "operator_head_pod",
    "operator_worker_pod",
    "pod_labels",
    "replica_name",
    "token_secret",
    "token_secret_name",
    "with_token",
]

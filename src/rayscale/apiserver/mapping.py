"""API objects -> Kubernetes objects, as KubeRay's API server builds them. Pure.

- A compute template sets requests = limits on the Ray container (cpu, memory in its unit,
  gpu under ``gpuAccelerator`` (default ``nvidia.com/gpu``), extended resources) and its
  tolerations on the pod; as a ConfigMap it is labelled ``ray.io/config-type=compute-template``.
- ``volumeType: CONFIGMAP`` mounts ConfigMap ``source`` (``items``: key -> path), as the
  autoscaling walkthrough mounts ``ray-example`` at /home/ray/samples.
- ``rayStartParams`` pass through unchanged (``node-ip-address: $MY_POD_IP`` included: every
  Ray container gets ``MY_POD_IP`` from the pod's IP, as KubeRay's API server does).
- ``autoscalerOptions`` become the CR's ``autoscalerOptions`` (cpu/memory as the autoscaler
  container's requests = limits; ``envs`` as env; ``volumes`` as its volume mounts).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from rayscale.apiserver.models import (
    AutoscalerOptions,
    Cluster,
    ComputeTemplate,
    EnvironmentVariables,
    HeadGroupSpec,
    Job,
    Volume,
    VolumeType,
    WorkerGroupSpec,
    _GroupSpec,
)

MANAGED_BY = "kuberay-apiserver"
APP_NAME = "kuberay"
DEFAULT_IMAGE = "rayproject/ray:2.60.0"
DEFAULT_GPU_ACCELERATOR = "nvidia.com/gpu"
HEAD_PORTS = (("gcs", 6379), ("dashboard", 8265), ("client", 10001), ("metrics", 8080))

Manifest = dict[str, Any]


TEMPLATE_LABELS = {"ray.io/config-type": "compute-template"}
TEMPLATE_NAME_LABEL = "ray.io/compute-template"


def template_config_map(template: ComputeTemplate, namespace: str) -> Manifest:
    """The ConfigMap KubeRay stores a compute template as (``tolerations`` and
    ``extended_resources`` as JSON when set; ``memory_unit`` only when not the default Gi)."""
    data = {
        "name": template.name,
        "namespace": namespace,
        "cpu": str(template.cpu),
        "memory": str(template.memory),
        "gpu": str(template.gpu),
        "gpu_accelerator": template.gpu_accelerator,
    }
    if template.extended_resources:
        data["extended_resources"] = json.dumps(template.extended_resources, sort_keys=True)
    if template.tolerations:
        data["tolerations"] = json.dumps(
            [t.model_dump(by_alias=True, exclude_defaults=True) for t in template.tolerations]
        )
    if template.memory_unit != "Gi":
        data["memory_unit"] = template.memory_unit
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": template.name,
            "namespace": namespace,
            "labels": {**TEMPLATE_LABELS, TEMPLATE_NAME_LABEL: template.name},
        },
        "data": data,
    }


def template_from_config_map(name: str, namespace: str, data: Mapping[str, str]) -> ComputeTemplate:
    """A compute template read back from its ConfigMap; ValueError naming the bad data key."""
    body: dict[str, Any] = {"name": name, "namespace": namespace}
    for key in ("cpu", "memory", "gpu"):
        if key in data:
            body[key] = data[key]
    for key, field in (("gpu_accelerator", "gpuAccelerator"), ("memory_unit", "memoryUnit")):
        if data.get(key):
            body[field] = data[key]
    for key, field in (("extended_resources", "extendedResources"), ("tolerations", "tolerations")):
        if data.get(key):
            try:
                body[field] = json.loads(data[key])
            except ValueError as exc:
                raise ValueError(f"data.{key}: not JSON ({exc})") from None
    try:
        return ComputeTemplate.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ValueError(f"data.{where}: {first.get('msg', 'invalid')}") from None


def template_resources(template: ComputeTemplate) -> dict[str, str]:
    out = {"cpu": str(template.cpu), "memory": f"{template.memory}{template.memory_unit}"}
    if template.gpu:
        out[template.gpu_accelerator or DEFAULT_GPU_ACCELERATOR] = str(template.gpu)
    for key, value in template.extended_resources.items():
        out[key] = str(value)
    return out


def _env(env: EnvironmentVariables | None) -> list[dict[str, Any]]:
    if env is None:
        return []
    out: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in env.values.items()]
    for name, ref in env.values_from.items():
        if ref.source == "CONFIGMAP":
            value_from: dict[str, Any] = {"configMapKeyRef": {"name": ref.name, "key": ref.key}}
        elif ref.source == "SECRET":
            value_from = {"secretKeyRef": {"name": ref.name, "key": ref.key}}
        elif ref.source == "RESOURCEFIELD":
            value_from = {"resourceFieldRef": {"containerName": ref.name, "resource": ref.key}}
        else:
            value_from = {"fieldRef": {"fieldPath": ref.key}}
        out.append({"name": name, "valueFrom": value_from})
    return out


def _volume(volume: Volume) -> Manifest:
    kind = volume.volume_type
    if kind is VolumeType.CONFIGMAP:
        cm: dict[str, Any] = {"name": volume.source}
        if volume.items:
            cm["items"] = [{"key": k, "path": p} for k, p in volume.items.items()]
        return {"name": volume.name, "configMap": cm}
    if kind is VolumeType.SECRET:
        secret: dict[str, Any] = {"secretName": volume.source}
        if volume.items:
            secret["items"] = [{"key": k, "path": p} for k, p in volume.items.items()]
        return {"name": volume.name, "secret": secret}
    if kind is VolumeType.HOST_PATH:
        path_type = "Directory" if volume.host_path_type == "DIRECTORY" else "File"
        return {"name": volume.name, "hostPath": {"path": volume.source, "type": path_type}}
    if kind is VolumeType.EMPTY_DIR:
        empty: dict[str, Any] = {"sizeLimit": volume.storage} if volume.storage else {}
        return {"name": volume.name, "emptyDir": empty}
    if kind is VolumeType.EPHEMERAL:
        access = {"RWO": "ReadWriteOnce", "ROX": "ReadOnlyMany", "RWX": "ReadWriteMany"}
        claim: dict[str, Any] = {
            "accessModes": [access.get(volume.access_mode, "ReadWriteOnce")],
            "resources": {"requests": {"storage": volume.storage or "5Gi"}},
        }
        if volume.storage_class_name:
            claim["storageClassName"] = volume.storage_class_name
        return {
            "name": volume.name,
            "ephemeral": {"volumeClaimTemplate": {"spec": claim}},
        }
    return {
        "name": volume.name,
        "persistentVolumeClaim": {"claimName": volume.source, "readOnly": volume.read_only},
    }


def _mount(volume: Volume) -> Manifest:
    mount: Manifest = {"name": volume.name, "mountPath": volume.mount_path}
    if volume.read_only:
        mount["readOnly"] = True
    propagation = {"HOSTTOCONTAINER": "HostToContainer", "BIDIRECTIONAL": "Bidirectional"}
    if volume.mount_propagation_mode in propagation:
        mount["mountPropagation"] = propagation[volume.mount_propagation_mode]
    return mount


def _pod_template(
    group: _GroupSpec, template: ComputeTemplate, container: str, head: bool
) -> Manifest:
    resources = template_resources(template)
    ray: Manifest = {
        "name": container,
        "image": group.image or DEFAULT_IMAGE,
        "env": [
            {"name": "MY_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            *_env(group.environment),
        ],
        "resources": {"requests": dict(resources), "limits": dict(resources)},
    }
    if group.image_pull_policy:
        ray["imagePullPolicy"] = group.image_pull_policy
    if head:
        ray["ports"] = [{"name": n, "containerPort": p} for n, p in HEAD_PORTS]
    if group.volumes:
        ray["volumeMounts"] = [_mount(v) for v in group.volumes]
    spec: Manifest = {"containers": [ray]}
    if group.volumes:
        spec["volumes"] = [_volume(v) for v in group.volumes]
    if template.tolerations:
        spec["tolerations"] = [
            t.model_dump(by_alias=True, exclude_defaults=True) for t in template.tolerations
        ]
    if group.service_account:
        spec["serviceAccountName"] = group.service_account
    if group.image_pull_secret:
        spec["imagePullSecrets"] = [{"name": group.image_pull_secret}]
    metadata: Manifest = {}
    if group.annotations:
        metadata["annotations"] = dict(group.annotations)
    if group.labels:
        metadata["labels"] = dict(group.labels)
    return {"metadata": metadata, "spec": spec} if metadata else {"spec": spec}


def _autoscaler_options(options: AutoscalerOptions) -> tuple[Manifest, list[Volume]]:
    out: Manifest = {}
    if options.upscaling_mode is not None:
        out["upscalingMode"] = options.upscaling_mode
    if options.idle_timeout_seconds is not None:
        out["idleTimeoutSeconds"] = options.idle_timeout_seconds
    if options.image:
        out["image"] = options.image
    if options.image_pull_policy:
        out["imagePullPolicy"] = options.image_pull_policy
    resources = {k: v for k, v in (("cpu", options.cpu), ("memory", options.memory)) if v}
    if resources:
        out["resources"] = {"requests": dict(resources), "limits": dict(resources)}
    env = _env(options.envs)
    if env:
        out["env"] = env
    if options.volumes:
        out["volumeMounts"] = [_mount(v) for v in options.volumes]
    return out, list(options.volumes)


def cluster_labels(cluster: Cluster) -> dict[str, str]:
    return {
        "ray.io/cluster-name": cluster.name,
        "ray.io/user": cluster.user,
        "ray.io/version": cluster.version,
        "ray.io/environment": cluster.environment,
        "app.kubernetes.io/name": APP_NAME,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def ray_cluster(
    cluster: Cluster,
    namespace: str,
    templates: Mapping[str, ComputeTemplate],
    *,
    name: str | None = None,
) -> Manifest:
    """The RayCluster CR for ``cluster``. ``templates`` must hold every template it names
    (see :func:`template_names`). ``name`` overrides ``metadata.name`` (the local runtime
    keys clusters by name alone)."""
    spec = cluster.cluster_spec
    head: HeadGroupSpec = spec.head_group_spec
    head_group: Manifest = {
        "rayStartParams": dict(head.ray_start_params),
        "template": _pod_template(head, templates[head.compute_template], "ray-head", True),
    }
    if head.service_type:
        head_group["serviceType"] = head.service_type
    if head.enable_ingress:
        head_group["enableIngress"] = True
    workers = [_worker_group(g, templates[g.compute_template]) for g in spec.worker_group_spec]
    cr_spec: Manifest = {
        "enableInTreeAutoscaling": spec.enable_in_tree_autoscaling,
        "headGroupSpec": head_group,
        "workerGroupSpecs": workers,
    }
    if spec.autoscaler_options is not None:
        options, volumes = _autoscaler_options(spec.autoscaler_options)
        cr_spec["autoscalerOptions"] = options
        pod_volumes = head_group["template"]["spec"].setdefault("volumes", [])
        known = {v["name"] for v in pod_volumes}
        pod_volumes.extend(_volume(v) for v in volumes if v.name not in known)
    metadata: Manifest = {
        "name": name or cluster.name,
        "namespace": namespace,
        "labels": cluster_labels(cluster),
    }
    if cluster.annotations:
        metadata["annotations"] = dict(cluster.annotations)
    return {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": metadata, "spec": cr_spec}


def _worker_group(group: WorkerGroupSpec, template: ComputeTemplate) -> Manifest:
    return {
        "groupName": group.group_name,
        "replicas": group.replicas,
        "minReplicas": group.min_replicas,
        "maxReplicas": group.max_replicas,
        "rayStartParams": dict(group.ray_start_params),
        "template": _pod_template(group, template, "ray-worker", False),
    }


def template_names(cluster: Cluster) -> list[tuple[str, str]]:
    """(field path, template name) for every compute template the cluster names."""
    spec = cluster.cluster_spec
    out = [("clusterSpec.headGroupSpec.computeTemplate", spec.head_group_spec.compute_template)]
    out += [
        (f"clusterSpec.workerGroupSpec[{i}].computeTemplate", g.compute_template)
        for i, g in enumerate(spec.worker_group_spec)
    ]
    return out


def config_map_sources(cluster: Cluster) -> list[tuple[str, str]]:
    """(field path, ConfigMap name) for every CONFIGMAP volume of the cluster."""
    spec = cluster.cluster_spec
    groups: list[tuple[str, list[Volume]]] = [
        ("clusterSpec.headGroupSpec", spec.head_group_spec.volumes)
    ]
    groups += [
        (f"clusterSpec.workerGroupSpec[{i}]", g.volumes)
        for i, g in enumerate(spec.worker_group_spec)
    ]
    if spec.autoscaler_options is not None:
        groups.append(("clusterSpec.autoscalerOptions", spec.autoscaler_options.volumes))
    return [
        (f"{path}.volumes[{j}].source", v.source)
        for path, volumes in groups
        for j, v in enumerate(volumes)
        if v.volume_type is VolumeType.CONFIGMAP
    ]


def config_map_manifest(name: str, namespace: str, data: Mapping[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": dict(data),
    }


def ray_job(job: Job, namespace: str) -> Manifest:
    """The RayJob CR of a job with ``clusterSelector``, as KubeRay's API server builds it
    (labels ``ray.io/cluster-name: <job name>`` and ``ray.io/user``; ``metadata`` also as the
    CR's annotations)."""
    spec: Manifest = {
        "entrypoint": job.entrypoint,
        "metadata": dict(job.metadata),
        "runtimeEnvYAML": job.runtime_env,
        "shutdownAfterJobFinishes": job.shutdown_after_job_finishes,
        "ttlSecondsAfterFinished": job.ttl_seconds_after_finished,
        "clusterSelector": dict(job.cluster_selector),
    }
    if job.job_id:
        spec["jobId"] = job.job_id
    if job.entrypoint_num_cpus:
        spec["entrypointNumCpus"] = job.entrypoint_num_cpus
    if job.entrypoint_num_gpus:
        spec["entrypointNumGpus"] = job.entrypoint_num_gpus
    if job.entrypoint_resources:
        spec["entrypointResources"] = job.entrypoint_resources
    if job.active_deadline_seconds:
        spec["activeDeadlineSeconds"] = job.active_deadline_seconds
    metadata: Manifest = {
        "name": job.name,
        "namespace": namespace,
        "labels": {
            "ray.io/cluster-name": job.name,
            "ray.io/user": job.user,
            "app.kubernetes.io/name": APP_NAME,
            "app.kubernetes.io/managed-by": MANAGED_BY,
        },
    }
    if job.metadata:
        metadata["annotations"] = dict(job.metadata)
    return {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": metadata, "spec": spec}

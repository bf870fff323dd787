"""The ``ray.io/v1`` CustomResourceDefinitions (RayCluster, RayJob), built as plain dicts.

Pure: the same manifests are printed by ``rayscale crds``, checked in as ``deploy/crds.yaml``
and installed by the operator's tooling. The schemas type the fields KubeRay types, so the API
server accepts KubeRay's samples unchanged and rejects what KubeRay's CRD rejects (wrong
types, unknown enum values, bad quantities, a group without ``groupName`` or ``template``).
Rules on values (min <= max, unique group names, ...) stay with the operator, which reports
them as Warning Events, as KubeRay does.

Every stored worker group carries ``replicas`` and ``scaleStrategy.workersToDelete`` (schema
defaults): the autoscaler's JSON patch ``replace``s them, and a ``replace`` of a missing key
fails.
"""

from __future__ import annotations

from typing import Any, get_args

from rayscale.planner.model import UpscalingMode
from rayscale.spec.models import DEFAULT_IDLE_TIMEOUT_SECONDS, INT32_MAX

GROUP = "ray.io"
VERSION = "v1"
Schema = dict[str, Any]
Manifest = dict[str, Any]

_QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


# -- schema pieces ------------------------------------------------------------------------------


def _obj(
    properties: Schema | None = None,
    required: list[str] | None = None,
    preserve: bool = False,
    **extra: Any,
) -> Schema:
    """An object schema; ``preserve`` keeps fields not listed (KubeRay's untyped parts)."""
    schema: Schema = {"type": "object"}
    if preserve:
        schema["x-kubernetes-preserve-unknown-fields"] = True
    if properties:
        schema["properties"] = properties
    if required:
        schema["required"] = required
    schema.update(extra)
    return schema


def _free() -> Schema:
    """An object whose inside is not typed here (kept as written, never pruned)."""
    return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _string(**extra: Any) -> Schema:
    return {"type": "string", **extra}


def _int32(**extra: Any) -> Schema:
    return {"type": "integer", "format": "int32", **extra}


def _bool() -> Schema:
    return {"type": "boolean"}


def _strings() -> Schema:
    return {"type": "array", "items": {"type": "string"}}


def _string_map() -> Schema:
    return {"type": "object", "additionalProperties": {"type": "string"}}


def _free_list() -> Schema:
    return {"type": "array", "items": _free()}


def _quantity() -> Schema:
    return {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": _QUANTITY_PATTERN,
        "x-kubernetes-int-or-string": True,
    }


def _resource_requirements() -> Schema:
    def quantities() -> Schema:
        return {"type": "object", "additionalProperties": _quantity()}

    return _obj({"limits": quantities(), "requests": quantities(), "claims": _free_list()})


def _container() -> Schema:
    return _obj(
        {
            "name": _string(),
            "image": _string(),
            "imagePullPolicy": _string(enum=["Always", "Never", "IfNotPresent"]),
            "command": _strings(),
            "args": _strings(),
            "env": _free_list(),
            "envFrom": _free_list(),
            "resources": _resource_requirements(),
            "volumeMounts": _free_list(),
        },
        required=["name"],
        preserve=True,
    )


def _pod_template() -> Schema:
    """PodTemplateSpec: containers are typed (KubeRay reads them), the rest is kept as is."""
    spec = _obj(
        {
            "containers": {"type": "array", "items": _container()},
            "initContainers": {"type": "array", "items": _container()},
            "volumes": _free_list(),
            "restartPolicy": _string(enum=["Always", "OnFailure", "Never"]),
            "serviceAccountName": _string(),
            "nodeSelector": _string_map(),
        },
        required=["containers"],
        preserve=True,
    )
    metadata = _obj(
        {"labels": _string_map(), "annotations": _string_map()},
        preserve=True,
    )
    return _obj({"metadata": metadata, "spec": spec})


def _group_common() -> Schema:
    return {
        "rayStartParams": _string_map(),
        "template": _pod_template(),
        "resources": _string_map(),
        "labels": _string_map(),
    }


def _head_group() -> Schema:
    return _obj(
        {
            **_group_common(),
            "serviceType": _string(),
            "headService": _free(),
            "enableIngress": _bool(),
        },
        required=["template"],
    )


def _scale_strategy() -> Schema:
    return _obj(
        {"workersToDelete": {**_strings(), "default": []}},
        default={},
    )


def _worker_group() -> Schema:
    return _obj(
        {
            **_group_common(),
            "groupName": _string(),
            "replicas": _int32(default=0),
            "minReplicas": _int32(default=0),
            "maxReplicas": _int32(default=INT32_MAX),
            "numOfHosts": _int32(default=1),
            "idleTimeoutSeconds": _int32(),
            "priority": _int32(),
            "suspend": _bool(),
            "scaleStrategy": _scale_strategy(),
        },
        required=["groupName", "template"],
    )


def _autoscaler_options() -> Schema:
    return _obj(
        {
            "upscalingMode": _string(enum=list(get_args(UpscalingMode))),
            "idleTimeoutSeconds": _int32(default=DEFAULT_IDLE_TIMEOUT_SECONDS),
            "version": _string(enum=["v1", "v2"]),
            "resources": _resource_requirements(),
            "image": _string(),
            "imagePullPolicy": _string(enum=["Always", "Never", "IfNotPresent"]),
            "securityContext": _free(),
            "env": _free_list(),
            "envFrom": _free_list(),
            "volumeMounts": _free_list(),
            "command": _strings(),
            "args": _strings(),
        }
    )


def raycluster_spec_schema() -> Schema:
    """The RayCluster ``spec`` (also a RayJob's ``rayClusterSpec``)."""
    return _obj(
        {
            "rayVersion": _string(),
            "enableInTreeAutoscaling": _bool(),
            "suspend": _bool(),
            "managedBy": _string(
                **{
                    "x-kubernetes-validations": [
                        {"rule": "self == oldSelf", "message": "managedBy is immutable"}
                    ]
                }
            ),
            "autoscalerOptions": _autoscaler_options(),
            "headServiceAnnotations": _string_map(),
            "headGroupSpec": _head_group(),
            "workerGroupSpecs": {"type": "array", "items": _worker_group()},
            "gcsFaultToleranceOptions": _free(),
        },
        required=["headGroupSpec"],
    )


def _condition() -> Schema:
    return _obj(
        {
            "type": _string(),
            "status": _string(enum=["True", "False", "Unknown"]),
            "reason": _string(),
            "message": _string(),
            "lastTransitionTime": _string(format="date-time"),
            "observedGeneration": {"type": "integer", "format": "int64"},
        },
        required=["type", "status"],
    )


def raycluster_status_schema() -> Schema:
    return _obj(
        {
            "state": _string(),
            "reason": _string(),
            "readyWorkerReplicas": _int32(),
            "availableWorkerReplicas": _int32(),
            "desiredWorkerReplicas": _int32(),
            "minWorkerReplicas": _int32(),
            "maxWorkerReplicas": _int32(),
            "desiredCPU": _quantity(),
            "desiredMemory": _quantity(),
            "desiredGPU": _quantity(),
            "desiredTPU": _quantity(),
            "lastUpdateTime": _string(format="date-time"),
            "stateTransitionTimes": _string_map(),
            "observedGeneration": {"type": "integer", "format": "int64"},
            "endpoints": _string_map(),
            "head": _obj(
                {
                    "podIP": _string(),
                    "serviceIP": _string(),
                    "podName": _string(),
                    "serviceName": _string(),
                }
            ),
            "conditions": {
                "type": "array",
                "items": _condition(),
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
        }
    )


def _column(name: str, path: str, kind: str = "string", priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": kind, "jsonPath": path}
    if priority:
        column["priority"] = priority
    return column


def _crd(kind: str, plural: str, schema: Schema, columns: list[dict[str, Any]]) -> Manifest:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "categories": ["all"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def raycluster_crd() -> Manifest:
    schema = _obj(
        {
            "apiVersion": _string(),
            "kind": _string(),
            "metadata": {"type": "object"},
            "spec": raycluster_spec_schema(),
            "status": raycluster_status_schema(),
        }
    )
    columns = [
        _column("desired workers", ".status.desiredWorkerReplicas", "integer"),
        _column("available workers", ".status.availableWorkerReplicas", "integer"),
        _column("cpus", ".status.desiredCPU"),
        _column("memory", ".status.desiredMemory"),
        _column("gpus", ".status.desiredGPU"),
        _column("status", ".status.state"),
        _column("age", ".metadata.creationTimestamp", "date"),
    ]
    return _crd("RayCluster", "rayclusters", schema, columns)


def rayjob_crd() -> Manifest:
    spec = _obj(
        {
            "entrypoint": _string(),
            "runtimeEnvYAML": _string(),
            "jobId": _string(),
            "metadata": _string_map(),
            "rayClusterSpec": raycluster_spec_schema(),
            "clusterSelector": _string_map(),
            "shutdownAfterJobFinishes": _bool(),
            "ttlSecondsAfterFinished": _int32(default=0),
            "activeDeadlineSeconds": _int32(),
            "backoffLimit": _int32(default=0),
            "suspend": _bool(),
            "submissionMode": _string(
                enum=["K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"]
            ),
            "submitterPodTemplate": _pod_template(),
            "submitterConfig": _free(),
            "entrypointNumCpus": {"type": "number"},
            "entrypointNumGpus": {"type": "number"},
            "entrypointResources": _string(),
            "deletionStrategy": _free(),
            "managedBy": _string(
                **{
                    "x-kubernetes-validations": [
                        {"rule": "self == oldSelf", "message": "managedBy is immutable"}
                    ]
                }
            ),
        }
    )
    status = _obj(
        {
            "jobId": _string(),
            "rayClusterName": _string(),
            "dashboardURL": _string(),
            "jobStatus": _string(),
            "jobDeploymentStatus": _string(),
            "reason": _string(),
            "message": _string(),
            "startTime": _string(format="date-time"),
            "endTime": _string(format="date-time"),
            "succeeded": _int32(),
            "failed": _int32(),
            "observedGeneration": {"type": "integer", "format": "int64"},
            "rayClusterStatus": raycluster_status_schema(),
        },
        preserve=True,
    )
    schema = _obj(
        {
            "apiVersion": _string(),
            "kind": _string(),
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        }
    )
    columns = [
        _column("job status", ".status.jobStatus"),
        _column("deployment status", ".status.jobDeploymentStatus"),
        _column("ray cluster name", ".status.rayClusterName"),
        _column("start time", ".status.startTime", "date"),
        _column("end time", ".status.endTime", "date"),
        _column("age", ".metadata.creationTimestamp", "date"),
    ]
    return _crd("RayJob", "rayjobs", schema, columns)


def crds() -> list[Manifest]:
    """Every CRD rayscale serves, in install order."""
    return [raycluster_crd(), rayjob_crd()]


def crds_yaml() -> str:
    """The CRDs as one multi-document YAML (what ``rayscale crds`` prints)."""
    import yaml  # a pure serialiser; kept local so importing the builders stays light

    header = "# Generated by `rayscale crds` (rayscale.builders.crds): do not edit.\n"

    class _NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return header + "---\n".join(
        yaml.dump(crd, Dumper=_NoAliases, sort_keys=False, default_flow_style=False)
        for crd in crds()
    )

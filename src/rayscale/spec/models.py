"""Typed models of the KubeRay ``ray.io/v1`` RayCluster custom resource.

The models parse KubeRay YAML unchanged: field names are KubeRay's camelCase (as aliases of
snake_case attributes), and every field rayscale does not model (pod-template details, newer
KubeRay options, ``status``) is kept as an extra and written back by :meth:`RayCluster.to_dict`.

The models check *types* only (as the Kubernetes API server does with the CRD schema); the
rules KubeRay enforces on values (min <= max, unique group names, ...) live in
:mod:`rayscale.spec.validation`, so a bad spec reports all its problems at once.

Defaults are KubeRay's: ``replicas`` 0, ``minReplicas`` 0, ``maxReplicas`` 2147483647,
``numOfHosts`` 1, ``autoscalerOptions.idleTimeoutSeconds`` 60, ``upscalingMode`` Default,
``imagePullPolicy`` IfNotPresent. Treat instances as read-only; use ``model_copy(update=...)``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)
from pydantic_core import PydanticCustomError

from rayscale.planner.model import UpscalingMode

__all__ = [
    "DEFAULT_AUTOSCALER_CPU",
    "DEFAULT_AUTOSCALER_MEMORY",
    "DEFAULT_IDLE_TIMEOUT_SECONDS",
    "INT32_MAX",
    "RAY_ENABLE_AUTOSCALER_V2",
    "AutoscalerOptions",
    "AutoscalerVersion",
    "Container",
    "EnvVar",
    "HeadGroupSpec",
    "ObjectMeta",
    "PodSpec",
    "PodTemplateSpec",
    "QuantityValue",
    "RayCluster",
    "RayClusterSpec",
    "ResourceRequirements",
    "ScaleStrategy",
    "UpscalingMode",
    "VolumeMount",
    "WorkerGroupSpec",
]

API_VERSION = "ray.io/v1"
KIND = "RayCluster"
INT32_MAX = 2**31 - 1
DEFAULT_IDLE_TIMEOUT_SECONDS = 60
DEFAULT_AUTOSCALER_CPU = "500m"
DEFAULT_AUTOSCALER_MEMORY = "512Mi"
RAY_ENABLE_AUTOSCALER_V2 = "RAY_enable_autoscaler_v2"
V2_DEFAULT_SINCE = (2, 47, 0)
"""KubeRay: "In Ray 2.47.0 and later, the default autoscaler version is v2"."""
RUNTIME_ENV_AGENT_ANNOTATION = "rayscale.io/runtime-env-agent"
"""RayCluster annotation, "true" or "false" (default): run Ray's runtime-env agent on every
node of a *local* cluster. Without it the nodes run a small stand-in that serves empty and
``env_vars``-only runtime_envs and fails any other with a clear ``RuntimeEnvSetupError``
(``rayscale.local.runtimeenvstub``). On Kubernetes, Ray's agent always runs."""

AutoscalerVersion = Literal["v1", "v2"]


def _quantity_value(value: object) -> str | int | float:
    """Type check only; the value itself is parsed by the validation rules."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise PydanticCustomError(
            "quantity_type",
            'must be a quantity such as "500m", "2" or "1Gi", got {got}',
            {"got": type(value).__name__, "fix": 'write a quantity such as "500m", "2" or "1Gi"'},
        )
    return value


QuantityValue = Annotated[str | int | float, PlainValidator(_quantity_value)]
"""A Kubernetes quantity as written in the YAML (``"500m"``, ``1``, ``"1Gi"``), kept unparsed."""


class KubeModel(BaseModel):
    """Base: camelCase aliases, unknown fields preserved, ``null`` treated as absent."""

    model_config = ConfigDict(
        extra="allow",
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        # The API server prunes nulls of non-nullable CRD fields, so defaults apply to them.
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data

    def to_dict(self) -> dict[str, Any]:
        """The object as KubeRay YAML/JSON: camelCase keys, only fields that were given."""
        return self.model_dump(by_alias=True, exclude_unset=True)


class ObjectMeta(KubeModel):
    name: StrictStr | None = None
    namespace: StrictStr | None = None
    labels: dict[str, StrictStr] = Field(default_factory=dict)
    annotations: dict[str, StrictStr] = Field(default_factory=dict)


class EnvVar(KubeModel):
    name: StrictStr
    value: StrictStr | None = None
    value_from: dict[str, Any] | None = Field(default=None, alias="valueFrom")


class VolumeMount(KubeModel):
    name: StrictStr
    mount_path: StrictStr = Field(alias="mountPath")
    read_only: StrictBool | None = Field(default=None, alias="readOnly")
    sub_path: StrictStr | None = Field(default=None, alias="subPath")


class ResourceRequirements(KubeModel):
    limits: dict[str, QuantityValue] = Field(default_factory=dict)
    requests: dict[str, QuantityValue] = Field(default_factory=dict)


class Container(KubeModel):
    name: StrictStr
    image: StrictStr | None = None
    image_pull_policy: StrictStr | None = Field(default=None, alias="imagePullPolicy")
    command: list[StrictStr] | None = None
    args: list[StrictStr] | None = None
    env: list[EnvVar] = Field(default_factory=list)
    env_from: list[dict[str, Any]] = Field(default_factory=list, alias="envFrom")
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    volume_mounts: list[VolumeMount] = Field(default_factory=list, alias="volumeMounts")

    def env_value(self, name: str) -> str | None:
        """The literal value of env var ``name`` (None if absent or set via valueFrom)."""
        for var in self.env:
            if var.name == name:
                return var.value
        return None

    def has_env(self, name: str) -> bool:
        return any(var.name == name for var in self.env)


class PodSpec(KubeModel):
    containers: list[Container] = Field(default_factory=list)
    volumes: list[dict[str, Any]] = Field(default_factory=list)
    restart_policy: StrictStr | None = Field(default=None, alias="restartPolicy")
    node_selector: dict[str, StrictStr] = Field(default_factory=dict, alias="nodeSelector")
    service_account_name: StrictStr | None = Field(default=None, alias="serviceAccountName")


class PodTemplateSpec(KubeModel):
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PodSpec = Field(default_factory=PodSpec)

    @property
    def ray_container(self) -> Container | None:
        """The Ray container: the first container, as in KubeRay (``RayContainerIndex = 0``)."""
        return self.spec.containers[0] if self.spec.containers else None


class ScaleStrategy(KubeModel):
    workers_to_delete: list[StrictStr] = Field(default_factory=list, alias="workersToDelete")


class GroupSpec(KubeModel):
    """Fields shared by the head group and the worker groups."""

    ray_start_params: dict[str, StrictStr] = Field(default_factory=dict, alias="rayStartParams")
    template: PodTemplateSpec
    resources: dict[str, StrictStr] = Field(default_factory=dict)
    """Ray resources of the group (KubeRay >= 1.4); overrides rayStartParams and the container."""
    labels: dict[str, StrictStr] = Field(default_factory=dict)
    """Ray node labels of the group (KubeRay >= 1.5)."""

    @property
    def ray_container(self) -> Container | None:
        return self.template.ray_container


class HeadGroupSpec(GroupSpec):
    service_type: StrictStr | None = Field(default=None, alias="serviceType")
    head_service: dict[str, Any] | None = Field(default=None, alias="headService")
    enable_ingress: StrictBool = Field(default=False, alias="enableIngress")


class WorkerGroupSpec(GroupSpec):
    group_name: StrictStr = Field(alias="groupName")
    replicas: StrictInt = 0
    min_replicas: StrictInt = Field(default=0, alias="minReplicas")
    max_replicas: StrictInt = Field(default=INT32_MAX, alias="maxReplicas")
    num_of_hosts: StrictInt = Field(default=1, alias="numOfHosts")
    idle_timeout_seconds: StrictInt | None = Field(default=None, alias="idleTimeoutSeconds")
    """Per-group override of ``autoscalerOptions.idleTimeoutSeconds`` (autoscaler v2 only)."""
    priority: StrictInt | None = None
    suspend: StrictBool = False
    scale_strategy: ScaleStrategy = Field(default_factory=ScaleStrategy, alias="scaleStrategy")

    @property
    def desired_replicas(self) -> int:
        """KubeRay's desired replica count: 0 if suspended, else ``replicas`` clamped to
        ``[minReplicas, maxReplicas]`` (``maxReplicas`` wins if min > max)."""
        if self.suspend:
            return 0
        if self.min_replicas > self.max_replicas:
            return self.max_replicas
        return min(max(self.replicas, self.min_replicas), self.max_replicas)

    @property
    def desired_pods(self) -> int:
        """Desired worker pods of the group: ``desired_replicas * numOfHosts``."""
        return self.desired_replicas * self.num_of_hosts


class AutoscalerOptions(KubeModel):
    upscaling_mode: UpscalingMode = Field(default="Default", alias="upscalingMode")
    idle_timeout_seconds: StrictInt = Field(
        default=DEFAULT_IDLE_TIMEOUT_SECONDS, alias="idleTimeoutSeconds"
    )
    version: AutoscalerVersion | None = None
    resources: ResourceRequirements | None = None
    """Autoscaler container resources; None means KubeRay's default 500m CPU / 512Mi."""
    image: StrictStr | None = None
    """None means the Ray container's image."""
    image_pull_policy: StrictStr = Field(default="IfNotPresent", alias="imagePullPolicy")
    env: list[EnvVar] = Field(default_factory=list)
    env_from: list[dict[str, Any]] = Field(default_factory=list, alias="envFrom")
    volume_mounts: list[VolumeMount] = Field(default_factory=list, alias="volumeMounts")
    security_context: dict[str, Any] | None = Field(default=None, alias="securityContext")
    command: list[StrictStr] | None = None
    args: list[StrictStr] | None = None


class RayClusterSpec(KubeModel):
    ray_version: StrictStr | None = Field(default=None, alias="rayVersion")
    enable_in_tree_autoscaling: StrictBool = Field(default=False, alias="enableInTreeAutoscaling")
    suspend: StrictBool = False
    managed_by: StrictStr | None = Field(default=None, alias="managedBy")
    autoscaler_options: AutoscalerOptions = Field(
        default_factory=AutoscalerOptions, alias="autoscalerOptions"
    )
    head_service_annotations: dict[str, StrictStr] = Field(
        default_factory=dict, alias="headServiceAnnotations"
    )
    head_group_spec: HeadGroupSpec = Field(alias="headGroupSpec")
    worker_group_specs: list[WorkerGroupSpec] = Field(
        default_factory=list, alias="workerGroupSpecs"
    )


class RayCluster(KubeModel):
    """A KubeRay ``ray.io/v1`` RayCluster. Build one with :func:`rayscale.spec.parse_cluster`
    or :func:`rayscale.spec.load_file`, which validate it; ``model_validate`` checks types only.
    """

    api_version: StrictStr = Field(default=API_VERSION, alias="apiVersion")
    kind: StrictStr = KIND
    metadata: ObjectMeta
    spec: RayClusterSpec
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name or ""

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or "default"

    @property
    def runtime_env_agent(self) -> bool:
        """Whether the annotation :data:`RUNTIME_ENV_AGENT_ANNOTATION` asks for Ray's agent."""
        return self.metadata.annotations.get(RUNTIME_ENV_AGENT_ANNOTATION, "false") == "true"

    @property
    def autoscaling_enabled(self) -> bool:
        return self.spec.enable_in_tree_autoscaling

    @property
    def worker_groups(self) -> list[WorkerGroupSpec]:
        return self.spec.worker_group_specs

    @property
    def head_group(self) -> HeadGroupSpec:
        return self.spec.head_group_spec

    def worker_group(self, name: str) -> WorkerGroupSpec:
        """The worker group named ``name``; KeyError if there is none."""
        for group in self.spec.worker_group_specs:
            if group.group_name == name:
                return group
        raise KeyError(name)

    @property
    def autoscaler_v2_requested(self) -> bool:
        """KubeRay's test for v2 semantics: ``autoscalerOptions.version: v2``, or the head's Ray
        container sets ``RAY_enable_autoscaler_v2`` to ``1``/``true``."""
        if self.spec.autoscaler_options.version == "v2":
            return True
        head = self.head_group.ray_container
        return head is not None and head.env_value(RAY_ENABLE_AUTOSCALER_V2) in ("1", "true")

    @property
    def autoscaler_version(self) -> AutoscalerVersion:
        """The autoscaler version that will run: explicit ``version``, else the head env var,
        else v2 for Ray >= 2.47 (the default Ray picks on KubeRay), else v1."""
        explicit = self.spec.autoscaler_options.version
        if explicit is not None:
            return explicit
        if self.autoscaler_v2_requested:
            return "v2"
        version = ray_version_tuple(self.spec.ray_version)
        return "v2" if version is not None and version >= V2_DEFAULT_SINCE else "v1"


_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


def ray_version_tuple(text: str | None) -> tuple[int, int, int] | None:
    """``"2.60.0"`` -> ``(2, 60, 0)``; None if ``text`` does not start like a version."""
    match = _VERSION.match(text or "")
    if match is None:
        return None
    return int(match[1]), int(match[2]), int(match[3] or 0)

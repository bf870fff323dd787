"""The KubeRay v1 API server's wire shapes (compute templates, clusters, jobs) as pydantic models.

JSON goes out in lowerCamelCase (``by_alias``) and comes in either way (snake_case or
camelCase). Unknown fields are refused with a 400 naming them, so a typo such as
``minReplica`` is not silently ignored. Output-only fields (``createdAt``, ``clusterState``,
``jobStatus``...) are accepted on input and ignored, as KubeRay does, so a client can send
back what it read.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
Name = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]
Namespace = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]
Count = Annotated[int, Field(ge=0, le=2**31 - 1)]


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
    )


# --- compute templates -----------------------------------------------------------------------


class Toleration(ApiModel):
    key: str = ""
    operator: Literal["Exists", "Equal", ""] = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute", ""] = ""
    value: str = ""


class ComputeTemplate(ApiModel):
    """Pod resources, reused by head and worker groups: requests = limits = these values."""

    name: Name
    namespace: Namespace | None = None
    cpu: Annotated[int, Field(gt=0, le=2**32 - 1, description="CPUs; must be > 0")]
    memory: Annotated[int, Field(gt=0, le=2**32 - 1, description="memory in memoryUnit; > 0")]
    memory_unit: Literal["Gi", "Mi", "G", "M"] = "Gi"
    gpu: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    gpu_accelerator: str = ""
    extended_resources: dict[str, Annotated[int, Field(ge=0, le=2**32 - 1)]] = {}
    tolerations: list[Toleration] = []


class ComputeTemplateList(ApiModel):
    compute_templates: list[ComputeTemplate]


# --- clusters ---------------------------------------------------------------------------------


class VolumeType(str, enum.Enum):
    PERSISTENT_VOLUME_CLAIM = "PERSISTENT_VOLUME_CLAIM"
    HOST_PATH = "HOST_PATH"
    EPHEMERAL = "EPHEMERAL"
    CONFIGMAP = "CONFIGMAP"
    SECRET = "SECRET"
    EMPTY_DIR = "EMPTY_DIR"


class Volume(ApiModel):
    """A volume and its mount; CONFIGMAP mounts ConfigMap ``source`` (``items``: key -> path)."""

    name: Name
    mount_path: Annotated[str, Field(min_length=1, pattern=r"^/")]
    volume_type: VolumeType = VolumeType.PERSISTENT_VOLUME_CLAIM
    source: str = ""
    read_only: bool = False
    host_path_type: Literal["DIRECTORY", "FILE"] = "DIRECTORY"
    mount_propagation_mode: Literal["NONE", "HOSTTOCONTAINER", "BIDIRECTIONAL"] = "NONE"
    storage_class_name: str = ""
    access_mode: Literal["RWO", "ROX", "RWX", ""] = ""
    storage: str = ""
    items: dict[str, str] = {}

    @model_validator(mode="after")
    def _needs_source(self) -> Volume:
        needs = {
            VolumeType.CONFIGMAP: "the ConfigMap's name",
            VolumeType.SECRET: "the Secret's name",
            VolumeType.PERSISTENT_VOLUME_CLAIM: "the claim's name",
            VolumeType.HOST_PATH: "the host path",
        }
        if self.volume_type in needs and not self.source:
            raise ValueError(
                f"volume {self.name!r} of volumeType {self.volume_type.value} needs source "
                f"({needs[self.volume_type]})"
            )
        return self


class EnvValueFrom(ApiModel):
    source: Literal["CONFIGMAP", "SECRET", "RESOURCEFIELD", "FIELD"]
    name: str = ""
    key: str = ""


class EnvironmentVariables(ApiModel):
    values: dict[str, str] = {}
    values_from: dict[str, EnvValueFrom] = {}


class AutoscalerOptions(ApiModel):
    idle_timeout_seconds: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    upscaling_mode: Literal["Default", "Aggressive", "Conservative"] | None = None
    image: str = ""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never", ""] = ""
    cpu: str = ""
    memory: str = ""
    envs: EnvironmentVariables | None = None
    volumes: list[Volume] = []


class _GroupSpec(ApiModel):
    compute_template: Annotated[str, Field(min_length=1)]
    image: str = ""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never", ""] = ""
    image_pull_secret: str = ""
    service_account: str = ""
    ray_start_params: dict[str, str] = {}
    volumes: list[Volume] = []
    environment: EnvironmentVariables | None = None
    annotations: dict[str, str] = {}
    labels: dict[str, str] = {}


class HeadGroupSpec(_GroupSpec):
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer", ""] = ""
    enable_ingress: bool = False


class WorkerGroupSpec(_GroupSpec):
    group_name: Name
    replicas: Count = 0
    min_replicas: Count = 0
    max_replicas: Count = 0


class ClusterSpec(ApiModel):
    head_group_spec: HeadGroupSpec
    worker_group_spec: list[WorkerGroupSpec] = []
    enable_in_tree_autoscaling: bool = False
    autoscaler_options: AutoscalerOptions | None = None

    @field_validator("worker_group_spec")
    @classmethod
    def _unique_groups(cls, groups: list[WorkerGroupSpec]) -> list[WorkerGroupSpec]:
        seen: set[str] = set()
        for g in groups:
            if g.group_name in seen:
                raise ValueError(f"groupName {g.group_name!r} is used twice; names must differ")
            seen.add(g.group_name)
        return groups


class ClusterEvent(ApiModel):
    """A scaling decision (from the supervisor's events.jsonl), shaped as KubeRay's event."""

    id: str
    name: str
    created_at: str
    first_timestamp: str
    last_timestamp: str
    reason: str
    message: str
    type: Literal["Normal", "Warning"]
    count: int
    # Beyond KubeRay: the structured decision, so a portal need not parse ``message``.
    group: str = ""
    action: str = ""
    nodes: list[str] = []
    params: dict[str, object] = {}


class GroupStatus(ApiModel):
    name: str
    min: int
    max: int
    desired: int
    running: int
    pending: int


class Cluster(ApiModel):
    name: Name
    namespace: Namespace | None = None
    user: str = ""
    version: str = ""
    environment: Literal["DEV", "TESTING", "STAGING", "PRODUCTION"] = "DEV"
    annotations: dict[str, str] = {}
    envs: dict[str, str] = {}
    cluster_spec: ClusterSpec
    # Output only (accepted and ignored on input).
    created_at: str | None = None
    deleted_at: str | None = None
    cluster_state: str | None = None
    events: list[ClusterEvent] | None = None
    service_endpoint: dict[str, str] | None = None
    groups: list[GroupStatus] | None = None


class ClusterList(ApiModel):
    clusters: list[Cluster]
    continue_: str = Field("", alias="continue")


# --- jobs -------------------------------------------------------------------------------------


class JobStatus(str, enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"


class Job(ApiModel):
    name: Name
    namespace: Namespace | None = None
    user: str = ""
    version: str = ""
    entrypoint: Annotated[str, Field(min_length=1)]
    metadata: dict[str, str] = {}
    runtime_env: str = ""
    job_id: str = ""
    shutdown_after_job_finishes: bool = False
    cluster_selector: dict[str, str] = {}
    cluster_spec: ClusterSpec | None = None
    ttl_seconds_after_finished: Count = 0
    entrypoint_num_cpus: Annotated[float, Field(ge=0)] = 0
    entrypoint_num_gpus: Annotated[float, Field(ge=0)] = 0
    entrypoint_resources: str = ""
    active_deadline_seconds: Count = 0
    # Output only.
    created_at: str | None = None
    delete_at: str | None = None
    job_status: JobStatus | None = None
    job_deployment_status: str | None = None
    message: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    ray_cluster_name: str | None = None


class JobList(ApiModel):
    jobs: list[Job]
    continue_: str = Field("", alias="continue")


OUTPUT_ONLY_CLUSTER = frozenset(
    {"created_at", "deleted_at", "cluster_state", "events", "service_endpoint", "groups"}
)
OUTPUT_ONLY_JOB = frozenset(
    {
        "created_at",
        "delete_at",
        "job_status",
        "job_deployment_status",
        "message",
        "start_time",
        "end_time",
        "ray_cluster_name",
    }
)


class ErrorBody(ApiModel):
    code: int
    message: str
    details: list[dict[str, object]] = []

"""``rayscale.spec``: the KubeRay ``ray.io/v1`` RayCluster, parsed, validated and resolved.

- :func:`load_file` / :func:`load_text` read YAML (with ConfigMaps) into a :class:`LoadedSpec`;
  :func:`parse_cluster` builds a :class:`RayCluster` from a mapping.
- Any bad spec raises :class:`SpecError`, whose ``problems`` list every :class:`Problem`
  (path, message, fix) at once; :func:`find_problems` returns them without raising.
- :func:`group_resources` / :func:`head_resources` give a group's Ray resources with KubeRay's
  precedence; :func:`to_group_configs` feeds the planner.
- :func:`parse_quantity` reads Kubernetes quantities.
"""

from rayscale.spec.convert import group_idle_timeout, to_group_configs
from rayscale.spec.errors import Problem, SpecError, format_path
from rayscale.spec.loader import LoadedSpec, load_file, load_text, parse_cluster
from rayscale.spec.models import (
    DEFAULT_AUTOSCALER_CPU,
    DEFAULT_AUTOSCALER_MEMORY,
    DEFAULT_IDLE_TIMEOUT_SECONDS,
    INT32_MAX,
    AutoscalerOptions,
    Container,
    EnvVar,
    HeadGroupSpec,
    ObjectMeta,
    PodSpec,
    PodTemplateSpec,
    RayCluster,
    RayClusterSpec,
    ResourceRequirements,
    ScaleStrategy,
    VolumeMount,
    WorkerGroupSpec,
)
from rayscale.spec.quantity import QuantityError, ceil_quantity, parse_quantity
from rayscale.spec.resources import (
    group_resources,
    head_resources,
    is_gpu_resource_key,
    parse_resources_param,
)
from rayscale.spec.samples import SAMPLES, sample_path
from rayscale.spec.validation import find_problems

__all__ = [
    "DEFAULT_AUTOSCALER_CPU",
    "DEFAULT_AUTOSCALER_MEMORY",
    "DEFAULT_IDLE_TIMEOUT_SECONDS",
    "INT32_MAX",
    "SAMPLES",
    "AutoscalerOptions",
    "Container",
    "EnvVar",
    "HeadGroupSpec",
    "LoadedSpec",
    "ObjectMeta",
    "PodSpec",
    "PodTemplateSpec",
    "Problem",
    "QuantityError",
    "RayCluster",
    "RayClusterSpec",
    "ResourceRequirements",
    "ScaleStrategy",
    "SpecError",
    "VolumeMount",
    "WorkerGroupSpec",
    "ceil_quantity",
    "find_problems",
    "format_path",
    "group_idle_timeout",
    "group_resources",
    "head_resources",
    "is_gpu_resource_key",
    "load_file",
    "load_text",
    "parse_cluster",
    "parse_quantity",
    "parse_resources_param",
    "sample_path",
    "to_group_configs",
]

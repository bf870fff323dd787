"""From a RayCluster to the planner's :class:`~rayscale.planner.GroupConfig` (pure)."""

from __future__ import annotations

from rayscale.planner.model import GroupConfig
from rayscale.spec.models import AutoscalerOptions, RayCluster, WorkerGroupSpec
from rayscale.spec.resources import group_resources

__all__ = ["group_idle_timeout", "to_group_configs"]


def to_group_configs(cluster: RayCluster) -> tuple[GroupConfig, ...]:
    """One GroupConfig per worker group, in spec order.

    - resources: :func:`rayscale.spec.group_resources` (one host);
    - min/max replicas as given; a suspended group gets ``0..0`` so nothing is launched in it;
    - idle timeout: the group's ``idleTimeoutSeconds``, else ``autoscalerOptions``' (default 60);
    - upscaling mode: ``autoscalerOptions.upscalingMode`` (default ``Default``).

    Raises SpecError if a group's resources cannot be determined.
    """
    options = cluster.spec.autoscaler_options
    return tuple(
        _group_config(index, group, options) for index, group in enumerate(cluster.worker_groups)
    )


def group_idle_timeout(group: WorkerGroupSpec, options: AutoscalerOptions) -> float:
    """Seconds an idle worker of ``group`` waits before it may be removed."""
    if group.idle_timeout_seconds is not None:
        return float(group.idle_timeout_seconds)
    return float(options.idle_timeout_seconds)


def _group_config(index: int, group: WorkerGroupSpec, options: AutoscalerOptions) -> GroupConfig:
    high = 0 if group.suspend else max(group.max_replicas, 0)
    low = min(max(group.min_replicas, 0), high)
    return GroupConfig(
        name=group.group_name,
        resources=group_resources(group, ("spec", "workerGroupSpecs", index)),
        min_replicas=low,
        max_replicas=high,
        num_of_hosts=max(group.num_of_hosts, 1),
        idle_timeout_s=group_idle_timeout(group, options),
        upscaling_mode=options.upscaling_mode,
    )

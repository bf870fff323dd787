"""The local runtime's stand-in for the RayCluster object in etcd: the desired state.

It holds the cluster spec, and the autoscaler changes exactly the fields it patches on
Kubernetes: each group's ``replicas`` and ``scaleStrategy.workersToDelete``. The reconciler
reads it back. Thread-safe; in memory (a local cluster lives as long as its supervisor).
"""

from __future__ import annotations

import threading

from rayscale.autoscaler.scale import GroupTarget, ScaleRequest
from rayscale.spec.models import RayCluster


class UnknownGroupError(KeyError):
    """A scale request named a group the cluster does not have."""


class DesiredStore:
    def __init__(self, cluster: RayCluster) -> None:
        self._cluster = cluster
        self._lock = threading.Lock()
        self.generation = 1

    @property
    def cluster(self) -> RayCluster:
        with self._lock:
            return self._cluster

    def targets(self) -> dict[str, GroupTarget]:
        """Each group's desired replicas (clamped as KubeRay clamps) and workersToDelete."""
        with self._lock:
            return {
                g.group_name: GroupTarget(
                    g.desired_replicas, tuple(g.scale_strategy.workers_to_delete)
                )
                for g in self._cluster.worker_groups
            }

    def apply(self, request: ScaleRequest) -> None:
        """Replace ``replicas`` and the whole ``scaleStrategy`` of each named group, as the
        autoscaler's JSON patch does on Kubernetes."""
        with self._lock:
            groups = {g.group_name: g for g in self._cluster.worker_groups}
            unknown = sorted(set(request.targets) - set(groups))
            if unknown:
                raise UnknownGroupError(f"no worker group named {', '.join(unknown)}")
            updated = []
            for group in self._cluster.worker_groups:
                target = request.targets.get(group.group_name)
                if target is None:
                    updated.append(group)
                    continue
                strategy = group.scale_strategy.model_copy(
                    update={"workers_to_delete": list(target.workers_to_delete)}
                )
                updated.append(
                    group.model_copy(
                        update={"replicas": target.replicas, "scale_strategy": strategy}
                    )
                )
            spec = self._cluster.spec.model_copy(update={"worker_group_specs": updated})
            self._cluster = self._cluster.model_copy(update={"spec": spec})
            self.generation += 1

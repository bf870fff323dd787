"""The embedded runtime: a miniature of Kubernetes for one RayCluster, on this machine.

    desired state (local store)  --reconcile (pure, shared with the operator)-->  pods
    pods  --process kubelet-->  local Ray processes

It is the autoscaler's local :class:`~rayscale.autoscaler.scale.Backend`: ``apply`` writes the
desired state exactly as the autoscaler patches the RayCluster on Kubernetes, and the same
reconciler the operator runs makes pods match it. Pods are the manifests
:mod:`rayscale.builders.pods` produces, named as KubeRay names them.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

from rayscale.autoscaler.scale import (
    Observation,
    PodPhase,
    ScaleRequest,
    ScaleResult,
    WorkerPod,
)
from rayscale.builders.pods import head_pod, head_pod_prefix, worker_pod, worker_pod_prefix
from rayscale.builders.reconcile import ObservedPod, Reconciliation, reconcile
from rayscale.local import kubelet, registry
from rayscale.local.podrunner import DEFAULT_MAX_BOOTING, ProcessKubelet, start_head_node
from rayscale.local.raynodes import DEFAULT_OBJECT_STORE_BYTES, LocalRayCluster
from rayscale.local.store import DesiredStore
from rayscale.planner import HEAD_GROUP
from rayscale.spec import LoadedSpec

log = logging.getLogger("rayscale.local")
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generateName alphabet


def suffix() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(5))


class LocalRuntime:
    def __init__(
        self,
        spec: LoadedSpec,
        object_store_memory: int = DEFAULT_OBJECT_STORE_BYTES,
        head_timeout_s: float = 180.0,
        marker: str | None = None,
        max_booting: int = DEFAULT_MAX_BOOTING,
    ) -> None:
        """``marker`` goes into every node's environment (``registry.MARKER_ENV``) so that the
        cluster's processes can be found even before its run dir is recorded."""
        self.spec = spec
        self.marker = marker
        self.cluster_spec = spec.cluster
        self.store = DesiredStore(spec.cluster)
        self.object_store_memory = object_store_memory
        self.head_timeout_s = head_timeout_s
        self.max_booting = max_booting
        self.ray: LocalRayCluster | None = None
        self.kubelet: ProcessKubelet | None = None
        self.mounts: dict[str, Path] = {}
        self.registered: Callable[[], set[str]] = lambda: set()
        """Pod names Ray lists as live nodes; the supervisor wires it to GCS."""
        self.last: Reconciliation | None = None
        self._lock = threading.RLock()

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> LocalRayCluster:
        """Start the head pod and wait for GCS; materialise its ConfigMap mounts."""
        cluster = self.cluster_spec
        pod = head_pod(cluster, head_pod_prefix(cluster) + suffix())
        kubelet.check_config_maps(pod, self.spec.config_maps)  # before anything starts
        marker = {registry.MARKER_ENV: self.marker} if self.marker else {}
        self.ray = start_head_node(
            pod,
            cluster.name,
            env=marker,
            object_store_memory=self.object_store_memory,
            timeout=self.head_timeout_s,
            runtime_env_agent=cluster.runtime_env_agent,
        )
        try:
            self.ray.node_env.update(marker)
            self.mounts = kubelet.materialise_config_maps(pod, self.spec.config_maps, self.ray.root)
        except BaseException:
            self.ray.stop()
            raise
        self.kubelet = ProcessKubelet(self.ray, self.ray.gcs_address, self.max_booting)
        return self.ray

    @property
    def head_address(self) -> str:
        assert self.ray is not None
        return self.ray.gcs_address

    def teardown(self) -> list[str]:
        """Stop every process of the cluster; return descriptions of anything left."""
        if self.kubelet is not None:
            self.kubelet.shutdown()
        if self.ray is None:
            return []
        left = self.ray.stop()
        return [p.describe() for p in left]

    # -- the autoscaler's backend -------------------------------------------------------------
    def observe(self) -> Observation:
        with self._lock:
            self.reconcile()
            assert self.kubelet is not None
            pods = tuple(
                WorkerPod(p.name, p.group, _phase(p.phase), p.replica)
                for p in self.kubelet.pods.values()
            )
            return Observation(self.store.targets(), pods)

    def apply(self, request: ScaleRequest) -> ScaleResult:
        with self._lock:
            self.store.apply(request)
            self.reconcile()
        return ScaleResult(applied=True)

    # -- the operator's side ------------------------------------------------------------------
    def reconcile(self) -> Reconciliation:
        """One pass of the operator's reconcile against the local kubelet."""
        assert self.ray is not None and self.kubelet is not None
        with self._lock:
            self.kubelet.sync(self.registered())
            head = ObservedPod(
                self.ray.head.name,
                HEAD_GROUP,
                "Running" if self.ray.head.process.is_running() else "Failed",
            )
            result = reconcile(self.store.cluster, [head, *self.kubelet.observed()])
            for deletion in result.delete:
                if deletion.group == HEAD_GROUP:
                    log.error("the head %s exited; the cluster must be restarted", deletion.name)
                    continue
                self.kubelet.delete(deletion.name)
            for group, replicas in result.create.items():
                for _ in range(replicas):
                    self._create_replica(group)
            if any(result.create.values()):
                self.kubelet.sync(self.registered())  # start what may start now
            self.last = result
            return result

    def _create_replica(self, group: str) -> None:
        assert self.kubelet is not None
        cluster = self.store.cluster
        spec = cluster.worker_group(group)
        hosts = max(1, spec.num_of_hosts)
        replica = f"{cluster.name}-{group}-{suffix()}" if hosts > 1 else None
        for _ in range(hosts):
            name = worker_pod_prefix(cluster, group) + suffix()
            self.kubelet.create(worker_pod(cluster, spec, name, replica=replica))


_PHASES: dict[str, PodPhase] = {"Pending": "pending", "Running": "running", "Failed": "failed"}


def _phase(phase: str) -> PodPhase:
    return _PHASES[phase]

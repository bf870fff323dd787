"""The embedded runtime: a RayCluster's pods as local Ray processes.

It is also the autoscaler's local backend (``workers``/``launch``/``remove``). Every node is
started from the pod manifest :mod:`rayscale.builders.pods` produces, read by
:mod:`rayscale.local.kubelet`, so the local runtime runs the same pod spec as Kubernetes.
Launches return at once (a worker takes seconds to boot); removals run in the background.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rayscale.autoscaler.loop import WorkerRecord
from rayscale.builders.pods import head_pod, head_pod_prefix, worker_pod, worker_pod_prefix
from rayscale.local import kubelet
from rayscale.local.raynodes import (
    DEFAULT_OBJECT_STORE_BYTES,
    LocalRayCluster,
    RayNode,
    start_head,
)
from rayscale.planner import GroupConfig
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
    ) -> None:
        """``marker`` goes into every node's environment (``RAYSCALE_CLUSTER``) so that the
        cluster's processes can be found even before its run dir is recorded."""
        self.spec = spec
        self.marker = marker
        self.cluster_spec = spec.cluster
        self.object_store_memory = object_store_memory
        self.head_timeout_s = head_timeout_s
        self.ray: LocalRayCluster | None = None
        self.mounts: dict[str, Path] = {}
        self._lock = threading.Lock()
        self._stopper = ThreadPoolExecutor(max_workers=4, thread_name_prefix="stop-worker")
        self.replicas: dict[str, str] = {}  # worker name -> multi-host replica name

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> LocalRayCluster:
        """Start the head pod and wait for GCS; materialise its ConfigMap mounts."""
        cluster = self.cluster_spec
        pod = head_pod(cluster, head_pod_prefix(cluster) + suffix())
        local = kubelet.local_pod(pod)
        kubelet.check_config_maps(pod, self.spec.config_maps)  # before anything starts
        env = {k: v for k, v in local.env.items() if k != "RAY_ADDRESS"}
        self.ray = start_head(
            cluster.name,
            local.resources,
            head_name=local.name,
            object_store_memory=self.object_store_memory,
            env={"RAYSCALE_CLUSTER": self.marker} if self.marker else None,
            extra_args=local.extra_args,
            timeout=self.head_timeout_s,
        )
        try:
            self.ray.node_env.update({k: v for k, v in env.items() if k.startswith("RAY_CLUSTER")})
            self.mounts = kubelet.materialise_config_maps(pod, self.spec.config_maps, self.ray.root)
        except BaseException:
            self.ray.stop()
            raise
        return self.ray

    def start_initial_workers(self, groups: Sequence[GroupConfig]) -> None:
        """KubeRay's initial pods: clamp(replicas, min, max) replicas per group."""
        for group in self.cluster_spec.worker_groups:
            config = next(g for g in groups if g.name == group.group_name)
            if group.desired_replicas > 0:
                self.launch(config, group.desired_replicas)

    @property
    def head_address(self) -> str:
        assert self.ray is not None
        return self.ray.gcs_address

    def teardown(self) -> list[str]:
        """Stop every process of the cluster; return descriptions of anything left."""
        self._stopper.shutdown(wait=True)
        if self.ray is None:
            return []
        left = self.ray.stop()
        return [p.describe() for p in left]

    # -- the autoscaler's backend -------------------------------------------------------------
    def workers(self) -> list[WorkerRecord]:
        assert self.ray is not None
        with self._lock:
            nodes = list(self.ray.workers.values())
        return [self._record(n) for n in nodes]

    def _record(self, node: RayNode) -> WorkerRecord:
        running = node.process.is_running()
        return WorkerRecord(
            name=node.name,
            group=node.group,
            phase="starting" if running else "exited",
            replica=self.replicas.get(node.name),
            exit_code=None if running else node.process.returncode,
        )

    def launch(self, group: GroupConfig, replicas: int) -> list[str]:
        assert self.ray is not None
        spec = self.cluster_spec.worker_group(group.name)
        names = []
        for _ in range(replicas):
            replica = (
                f"{self.cluster_spec.name}-{group.name}-{suffix()}"
                if (group.num_of_hosts > 1)
                else None
            )
            for _host in range(max(1, group.num_of_hosts)):
                name = worker_pod_prefix(self.cluster_spec, group.name) + suffix()
                pod = worker_pod(self.cluster_spec, spec, name, replica=replica)
                local = kubelet.local_pod(pod, self.head_address)
                with self._lock:
                    self.ray.start_worker(
                        name,
                        group.name,
                        local.resources,
                        wait=False,
                        env=dict(local.env),
                        extra_args=local.extra_args,
                    )
                if replica:
                    self.replicas[name] = replica
                names.append(name)
        return names

    def remove(self, names: Sequence[str]) -> None:
        assert self.ray is not None
        for name in names:
            with self._lock:
                node = self.ray.workers.pop(name, None)
                if node is None:
                    continue
                self.ray.stopped_nodes.append(node)
            self._stopper.submit(self._stop, node)

    @staticmethod
    def _stop(node: RayNode) -> None:
        node.stop_result = node.process.stop()
        if not node.stop_result.clean:
            log.warning("worker %s left processes behind: %s", node.name, node.stop_result)

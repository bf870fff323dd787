"""Ray containers under the process kubelet: started the way the local runtime starts nodes.

A container whose command runs ``ray start`` is not run as written: its fixed ports (6379,
8265, ...) would collide between clusters on one host, and ``ray start --block`` is heavy.
Its pod is translated by :func:`rayscale.local.kubelet.local_pod` and started with
:mod:`rayscale.local.podrunner`'s ``start_head_node``/``start_worker_node``
(:mod:`rayscale.local.raynodes`: a per-cluster dir, OS-assigned ports, a keeper process), with
the Ray token the operator mounted from the cluster's Secret. The kubelet knows each head's real
GCS address because it started it; worker pods of a cluster (label ``ray.io/cluster``) wait
until their head is up, and every container of the cluster's pods gets ``RAY_ADDRESS`` = that
address.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rayscale.local import kubelet
from rayscale.local.podrunner import start_head_node, start_worker_node
from rayscale.local.raynodes import LocalRayCluster, RayNode
from rayscale.processes import ManagedProcess, ProcessInfo
from rayscale.protocol import CLUSTER_LABEL

log = logging.getLogger("rayscale.kubelet")

Manifest = Mapping[str, Any]
ClusterKey = tuple[str, str]  # (namespace, ray.io/cluster)


def single_container(pod: Manifest, container: Manifest) -> dict[str, Any]:
    """The pod as if ``container`` were its only one (the local runtime's translators read the
    Ray container at index 0)."""
    return {**pod, "spec": {**pod["spec"], "containers": [container]}}


def is_ray_container(pod: Manifest, container: Manifest) -> bool:
    """True if the container's command runs ``ray start``."""
    try:
        kubelet.ray_start_argv(single_container(pod, container))
    except kubelet.PodSpecError:
        return False
    return True


def cluster_key(pod: Manifest) -> ClusterKey | None:
    """(namespace, cluster) of a Ray cluster's pod, from its ``ray.io/cluster`` label."""
    name = (pod["metadata"].get("labels") or {}).get(CLUSTER_LABEL)
    return (pod["metadata"].get("namespace", "default"), name) if name else None


def resolve_service_names(text: str, key: ClusterKey, gcs_address: str) -> str:
    """Replace the cluster's head service names in ``text`` (``<cluster>-head-svc``, optionally
    with ``.<ns>``, ``.svc``, ``.cluster.local``): with the GCS port (6379) by the head's real
    GCS address, else by 127.0.0.1 (every pod's address here). There is no cluster DNS."""
    namespace, cluster = key
    host = (
        r"(?<![\w.-])"
        + re.escape(f"{cluster}-head-svc")
        + rf"(?:\.{re.escape(namespace)}(?:\.svc(?:\.cluster\.local)?)?)?(?![\w.-])"
    )
    text = re.sub(host.replace(r"(?![\w.-])", "") + r":6379(?!\d)", gcs_address, text)
    return re.sub(host, kubelet.LOCAL_IP, text)


class RayClusters:
    """The Ray clusters this kubelet started, by (namespace, cluster name)."""

    def __init__(self) -> None:
        self._clusters: dict[ClusterKey, LocalRayCluster] = {}
        self._stopped: list[LocalRayCluster] = []
        self._lock = threading.RLock()

    def head_address(self, key: ClusterKey) -> str | None:
        """The head's GCS address once its head is up."""
        with self._lock:
            cluster = self._clusters.get(key)
        return cluster.gcs_address if cluster is not None else None

    def start_head(
        self, key: ClusterKey, pod: Manifest, container: Manifest, env: Mapping[str, str],
        token_path: Path | None,
    ) -> RayNode:  # fmt: skip
        """Start the head's Ray node and wait until its GCS answers (blocks up to 2 minutes)."""
        head_env = {k: v for k, v in env.items() if k != "RAY_ADDRESS"}
        # With the dashboard, as on Kubernetes: `ray list actors` and `ray job submit` need it.
        cluster = start_head_node(
            single_container(pod, container), key[1], env=head_env, token_path=token_path,
            include_dashboard=True,
        )  # fmt: skip
        with self._lock:
            old = self._clusters.get(key)
            if old is not None:
                self._stopped.append(old)
            self._clusters[key] = cluster
        log.info("Ray head %s of %s/%s: GCS at %s", cluster.head.name, *key, cluster.gcs_address)
        return cluster.head

    def start_worker(
        self, key: ClusterKey, pod: Manifest, container: Manifest, env: Mapping[str, str]
    ) -> RayNode:
        """Start a worker's Ray node against its head (which must be up); does not wait."""
        cluster = self._require(key)
        manifest = single_container(pod, container)
        worker_env = {**env, "RAY_ADDRESS": cluster.gcs_address}
        return start_worker_node(cluster, manifest, cluster.gcs_address, worker_env)

    def joined(self, key: ClusterKey, name: str) -> bool:
        with self._lock:
            cluster = self._clusters.get(key)
        return cluster is not None and cluster.node_joined(name)

    def stop_node(self, key: ClusterKey, process: ManagedProcess, grace: float) -> None:
        """Stop a pod's Ray node through raynodes (a head also forgets its cluster)."""
        with self._lock:
            cluster = self._clusters.get(key)
            is_head = cluster is not None and cluster.head.process is process
            if is_head and cluster is not None:
                del self._clusters[key]
                self._stopped.append(cluster)
        if cluster is None or is_head:
            result = process.stop(grace)
            if cluster is not None:
                cluster.head.stop_result = result
            return
        name = next((n for n, node in cluster.workers.items() if node.process is process), None)
        if name is None:
            process.stop(grace)
        else:
            cluster.stop_worker(name, grace)

    def stop_all(self) -> list[ProcessInfo]:
        """Stop every cluster's nodes; return what is left (normally nothing)."""
        with self._lock:
            clusters = [*self._clusters.values(), *self._stopped]
            self._clusters.clear()
            self._stopped = []
        left: list[ProcessInfo] = []
        for cluster in clusters:
            left += cluster.stop()
            cluster.remove_dir()
        return left

    def _require(self, key: ClusterKey) -> LocalRayCluster:
        with self._lock:
            cluster = self._clusters.get(key)
        if cluster is None:
            raise LookupError(f"the head of Ray cluster {key[0]}/{key[1]} is not up")
        return cluster

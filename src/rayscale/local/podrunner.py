"""The process kubelet: runs worker pod manifests as local Ray processes.

It does what a kubelet does for the embedded runtime: a created pod waits (Pending) until it
may start; its Ray container's ``ray start`` runs in its own process group (kept by a small
keeper, see :mod:`rayscale.local.raystart`); a container that exits marks the pod Failed with
the first error line of its logs; a deleted pod's processes are stopped by their own group.

Two things keep bursts healthy on a small machine:
- at most ``max_booting`` workers boot at once (started, not yet registered in GCS); the rest
  wait as Pending pods, which the autoscaler already counts, so nothing is launched twice;
- after a failed boot, the group's next starts back off (1 s, 2 s, 4 s ... up to 30 s), as
  Kubernetes' CrashLoopBackOff does, and the failure is kept for ``status``.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rayscale.builders.reconcile import ObservedPod
from rayscale.local import kubelet
from rayscale.local.raynodes import (
    DEFAULT_HEAD_TIMEOUT_S,
    DEFAULT_OBJECT_STORE_BYTES,
    LocalRayCluster,
    RayNode,
    boot_failure_line,
    start_head,
)
from rayscale.planner.reasons import Reason, ReasonCode
from rayscale.protocol import GROUP_LABEL, REPLICA_LABEL

log = logging.getLogger("rayscale.local")

Phase = Literal["Pending", "Running", "Failed"]
DEFAULT_MAX_BOOTING = 8
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0


def start_head_node(
    manifest: Mapping[str, Any],
    cluster_name: str,
    *,
    env: Mapping[str, str] | None = None,
    token_path: Path | None = None,
    object_store_memory: int = DEFAULT_OBJECT_STORE_BYTES,
    timeout: float = DEFAULT_HEAD_TIMEOUT_S,
    include_dashboard: bool = False,
    runtime_env_agent: bool = False,
) -> LocalRayCluster:
    """Start a head pod's Ray node (its ``ray start --head`` translated by
    :func:`rayscale.local.kubelet.local_pod`) and wait for GCS. ``env`` goes to the head;
    afterwards only the ``RAY_CLUSTER*`` variables of the pod stay as every node's extra env.
    Shared by the local runtime and the Kubernetes process kubelet (``rayscale.devcluster``),
    which runs the dashboard as KubeRay's heads do (``ray list``, ``ray job submit``)."""
    local = kubelet.local_pod(manifest)
    ray = start_head(
        cluster_name,
        local.resources,
        head_name=local.name,
        include_dashboard=include_dashboard,
        runtime_env_agent=runtime_env_agent,
        object_store_memory=object_store_memory,
        env=env,
        extra_args=local.extra_args,
        timeout=timeout,
        token_path=token_path,
    )
    ray.node_env = {k: v for k, v in local.env.items() if k.startswith("RAY_CLUSTER")}
    return ray


def start_worker_node(
    ray: LocalRayCluster,
    manifest: Mapping[str, Any],
    head_address: str,
    env: Mapping[str, str] | None = None,
) -> RayNode:
    """Start a worker pod's Ray node against ``head_address`` without waiting for it to join;
    ``env`` is added to the pod's own Ray container env. Shared like :func:`start_head_node`."""
    local = kubelet.local_pod(manifest, head_address)
    return ray.start_worker(
        local.name,
        local.group,
        local.resources,
        wait=False,
        env={**local.env, **(env or {})},
        extra_args=local.extra_args,
    )


@dataclass
class LocalPod:
    """One worker pod and the process that runs it."""

    name: str
    group: str
    replica: str | None
    manifest: Mapping[str, Any]
    phase: Phase = "Pending"
    node: RayNode | None = None
    joined: bool = False
    created_at: float = field(default_factory=time.monotonic)
    exit_code: int | None = None
    failure: str = ""

    def observed(self) -> ObservedPod:
        return ObservedPod(self.name, self.group, self.phase, self.replica)


class ProcessKubelet:
    def __init__(
        self,
        ray: LocalRayCluster,
        head_address: str,
        max_booting: int = DEFAULT_MAX_BOOTING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ray = ray
        self.head_address = head_address
        self.max_booting = max(1, max_booting)
        self.clock = clock
        self.pods: dict[str, LocalPod] = {}
        self.failures: collections.deque[Reason] = collections.deque(maxlen=10)
        self.failed_boots = 0
        self._backoff: dict[str, tuple[int, float]] = {}  # group -> (failures in a row, until)
        self._lock = threading.RLock()
        self._stopper = ThreadPoolExecutor(max_workers=4, thread_name_prefix="stop-pod")

    # -- the API side ----------------------------------------------------------------------
    def create(self, manifest: Mapping[str, Any]) -> None:
        labels = manifest["metadata"].get("labels", {})
        pod = LocalPod(
            name=manifest["metadata"]["name"],
            group=labels.get(GROUP_LABEL, ""),
            replica=labels.get(REPLICA_LABEL),
            manifest=manifest,
        )
        with self._lock:
            self.pods[pod.name] = pod

    def delete(self, name: str) -> None:
        """Stop the pod's processes in the background and forget it."""
        with self._lock:
            pod = self.pods.pop(name, None)
            node = self.ray.workers.pop(name, None) if pod is not None else None
            if node is not None:
                self.ray.stopped_nodes.append(node)
        if node is not None:
            self._stopper.submit(self._stop, node)

    def observed(self) -> list[ObservedPod]:
        with self._lock:
            return [p.observed() for p in self.pods.values()]

    # -- the node side -----------------------------------------------------------------------
    def sync(self, registered: set[str]) -> None:
        """Note which pods joined Ray, mark exited ones Failed, start waiting ones."""
        with self._lock:
            for pod in self.pods.values():
                self._update(pod, registered)
            booting = sum(1 for p in self.pods.values() if p.phase == "Running" and not p.joined)
            waiting = sorted(
                (p for p in self.pods.values() if p.phase == "Pending"), key=lambda p: p.created_at
            )
            for pod in waiting:
                if booting >= self.max_booting:
                    break
                if self._backing_off(pod.group):
                    continue
                self._start(pod)
                booting += 1

    def _update(self, pod: LocalPod, registered: set[str]) -> None:
        if pod.phase != "Running" or pod.node is None:
            return
        if pod.name in registered and not pod.joined:
            pod.joined = True
            self._backoff.pop(pod.group, None)
        if pod.node.process.is_running():
            return
        pod.phase = "Failed"
        pod.exit_code = pod.node.process.returncode
        pod.failure = boot_failure_line(pod.node) or f"exit code {pod.exit_code}"
        if not pod.joined:
            self._failed_boot(pod)
            return
        reason = Reason(
            ReasonCode.WORKER_EXITED,
            {"group": pod.group, "node": pod.name, "exit_code": pod.exit_code, "line": pod.failure},
        )
        self.failures.append(reason)
        log.warning("%s; replaced if still needed", reason.text())

    def _failed_boot(self, pod: LocalPod) -> None:
        self.failed_boots += 1
        count, _ = self._backoff.get(pod.group, (0, 0.0))
        delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2**count)
        self._backoff[pod.group] = (count + 1, self.clock() + delay)
        reason = Reason(
            ReasonCode.BOOT_FAILED,
            {
                "group": pod.group,
                "node": pod.name,
                "exit_code": pod.exit_code,
                "line": pod.failure,
                "retry_in_s": delay,
            },
        )
        self.failures.append(reason)
        log.warning("%s; retrying in %.0f s", reason.text(), delay)

    def _backing_off(self, group: str) -> bool:
        _, until = self._backoff.get(group, (0, 0.0))
        return self.clock() < until

    def _start(self, pod: LocalPod) -> None:
        try:
            pod.node = start_worker_node(self.ray, pod.manifest, self.head_address)
        except Exception as exc:
            pod.phase = "Failed"
            pod.failure = f"could not start: {exc}"
            self._failed_boot(pod)
            return
        pod.phase = "Running"

    @staticmethod
    def _stop(node: RayNode) -> None:
        node.stop_result = node.process.stop()
        if not node.stop_result.clean:
            log.warning("worker %s left processes behind: %s", node.name, node.stop_result)

    def shutdown(self) -> None:
        self._stopper.shutdown(wait=True)

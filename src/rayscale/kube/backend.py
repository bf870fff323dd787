"""The autoscaler's Kubernetes backend: the RayCluster CR is the only channel to the operator.

- :meth:`KubeBackend.observe` reads the watch-fed :class:`ClusterCache` (no request per tick):
  each group's ``replicas`` (clamped as the operator clamps them) and
  ``scaleStrategy.workersToDelete``, and the worker pods not being deleted.
- :meth:`KubeBackend.apply` writes a :class:`ScaleRequest` as ONE ``application/json-patch+json``
  PATCH of ``replace`` ops on ``/spec/workerGroupSpecs/<i>/replicas`` and
  ``/spec/workerGroupSpecs/<i>/scaleStrategy`` (the whole object), exactly the body Ray's own
  sidecar sends (KubeRay protocol), so KubeRay's operator and ours read it alike. 409 and 5xx
  (and a dropped connection) are retried with exponential backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx2 as httpx
from lightkube import ApiError, Client
from lightkube.types import PatchType

from rayscale.autoscaler.scale import (
    GroupTarget,
    Observation,
    PodPhase,
    ScaleRequest,
    ScaleResult,
    WorkerPod,
)
from rayscale.kube.cache import ClusterCache, PodRecord
from rayscale.kube.resources import RayCluster
from rayscale.protocol import GROUP_LABEL, NODE_TYPE_LABEL, REPLICA_LABEL
from rayscale.spec.models import INT32_MAX

log = logging.getLogger("rayscale.kube.backend")

_PHASES: dict[str, PodPhase] = {
    "Pending": "pending",
    "Running": "running",
    "Failed": "failed",
    "Succeeded": "failed",
}
JsonPatch = list[dict[str, Any]]


class UnknownGroupError(KeyError):
    """A scale request named a group the RayCluster does not have."""


def scale_patch(spec: Mapping[str, Any], request: ScaleRequest) -> JsonPatch:
    """The JSON patch for ``request`` against ``spec`` (the CR's spec as last seen).

    Replicas are capped at the group's maxReplicas, as Ray's sidecar caps them.
    """
    groups = list(spec.get("workerGroupSpecs") or [])
    index = {g.get("groupName"): i for i, g in enumerate(groups)}
    unknown = sorted(set(request.targets) - set(index))
    if unknown:
        raise UnknownGroupError(f"the RayCluster has no worker group named {', '.join(unknown)}")
    ops: JsonPatch = []
    for name in sorted(request.targets, key=index.__getitem__):
        i, target = index[name], request.targets[name]
        cap = groups[i].get("maxReplicas", INT32_MAX)
        ops.append(
            {
                "op": "replace",
                "path": f"/spec/workerGroupSpecs/{i}/replicas",
                "value": min(target.replicas, cap),
            }
        )
        ops.append(
            {
                "op": "replace",
                "path": f"/spec/workerGroupSpecs/{i}/scaleStrategy",
                "value": {"workersToDelete": list(target.workers_to_delete)},
            }
        )
    return ops


def observed_targets(spec: Mapping[str, Any]) -> dict[str, GroupTarget]:
    """Each group's desired state in force: replicas clamped to [min, max] (0 if the group is
    suspended, maxReplicas if min > max), as the operator reads them; workersToDelete as is."""
    out: dict[str, GroupTarget] = {}
    for group in spec.get("workerGroupSpecs") or []:
        low = int(group.get("minReplicas", 0))
        high = int(group.get("maxReplicas", INT32_MAX))
        replicas = int(group.get("replicas", 0))
        if group.get("suspend"):
            desired = 0
        elif low > high:
            desired = high
        else:
            desired = min(max(replicas, low), high)
        listed = (group.get("scaleStrategy") or {}).get("workersToDelete") or []
        out[str(group["groupName"])] = GroupTarget(desired, tuple(listed))
    return out


def worker_pods(pods: Sequence[PodRecord]) -> tuple[WorkerPod, ...]:
    """Worker pods that count: not the head, not already being deleted."""
    out = [
        WorkerPod(
            name=p.name,
            group=p.labels.get(GROUP_LABEL, ""),
            phase=_PHASES.get(p.phase, "pending"),
            replica=p.labels.get(REPLICA_LABEL),
        )
        for p in pods
        if not p.deleting and p.labels.get(NODE_TYPE_LABEL) == "worker"
    ]
    return tuple(sorted(out, key=lambda w: w.name))


class KubeBackend:
    """:class:`rayscale.autoscaler.scale.Backend` on a RayCluster CR."""

    def __init__(
        self,
        client: Client,
        cache: ClusterCache,
        *,
        attempts: int = 5,
        backoff: float = 0.05,
        max_backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.cache = cache
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.patches = 0  # PATCH requests sent, retries included
        self.retries = 0

    @property
    def name(self) -> str:
        return self.cache.name

    @property
    def namespace(self) -> str:
        return self.cache.namespace

    def observe(self) -> Observation:
        cluster = self.cache.cluster()
        if cluster is None:
            raise LookupError(
                f"RayCluster {self.namespace}/{self.name} not found (deleted, or not yet seen)"
            )
        return Observation(observed_targets(cluster["spec"]), worker_pods(self.cache.pods()))

    def apply(self, request: ScaleRequest) -> ScaleResult:
        cluster = self.cache.cluster()
        if cluster is None:
            return ScaleResult(False, error=f"RayCluster {self.namespace}/{self.name} not found")
        try:
            patch = scale_patch(cluster["spec"], request)
        except UnknownGroupError as exc:
            return ScaleResult(False, error=str(exc.args[0]))
        delay, last = self.backoff, ""
        for attempt in range(1, self.attempts + 1):
            self.patches += 1
            try:
                patched = self.client.patch(
                    RayCluster,
                    self.name,
                    patch,
                    namespace=self.namespace,
                    patch_type=PatchType.JSON,
                )
            except ApiError as err:
                code = err.status.code or 0
                last = f"PATCH RayCluster {self.namespace}/{self.name}: {code} {err.status.message}"
                if not _retryable(code):
                    return ScaleResult(False, error=last, detail={"patch": patch})
            except httpx.TransportError as err:
                last = f"PATCH RayCluster {self.namespace}/{self.name}: {type(err).__name__}: {err}"
            else:
                self.cache.put_cluster(patched)
                return ScaleResult(True, detail={"patch": patch, "attempts": attempt})
            if attempt < self.attempts:
                self.retries += 1
                log.info("%s; retrying in %.2fs (attempt %d)", last, delay, attempt)
                self.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        return ScaleResult(
            False, error=f"{last} (gave up after {self.attempts} attempts)", detail={"patch": patch}
        )


def _retryable(code: int) -> bool:
    return code in (409, 429) or code >= 500

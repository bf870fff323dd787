"""The operator's I/O around the pure reconciler, one RayCluster at a time.

A pass reads the RayCluster, takes its pods from a :class:`~rayscale.kube.pods.PodSource`
(the operator's watch-fed :class:`~rayscale.kube.pods.PodInformer`, whose expectations cover
the pass's own creations and deletions until the watch shows them, so nothing is created
twice; or a quorum LIST per pass when no informer runs), asks
:func:`rayscale.builders.reconcile.reconcile` what to create and delete, does it, and writes
the status. Invalid specs get a Warning Event naming the field and the fix, and no pods.

:class:`ClusterReconciler` serialises passes per cluster and runs different clusters
concurrently: an event for a cluster whose pass is running marks it dirty (one more pass
follows), so a slow cluster never blocks another (KubeRay issue 3909).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
from collections.abc import Callable
from typing import Any

from lightkube import ApiError, AsyncClient
from lightkube.codecs import from_dict as _from_dict
from lightkube.resources.core_v1 import Pod, Service

from rayscale.builders.operator import (
    autoscaler_rbac,
    cluster_status,
    operator_head_pod,
    operator_worker_pod,
    replica_name,
    token_secret,
)
from rayscale.builders.pods import head_service
from rayscale.builders.reconcile import ObservedPod, PodPhase, Reconciliation, reconcile
from rayscale.kube.passes import KeyedPasses
from rayscale.kube.pods import ListedPods, PodSource
from rayscale.kube.resources import RayCluster, cluster_spec, patch_status
from rayscale.protocol import GROUP_LABEL, REPLICA_LABEL
from rayscale.spec import RayCluster as ClusterSpec
from rayscale.spec import SpecError, to_group_configs

log = logging.getLogger("rayscale.kube.operator")

MANAGED_BY_KUBERAY = "ray.io/kuberay-operator"
COMPONENT = "rayscale-operator"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ClusterReconciler(KeyedPasses):
    """Reconciles RayClusters on demand (:meth:`trigger`), one pass at a time per cluster."""

    kind = "RayCluster"

    def __init__(
        self,
        client: AsyncClient,
        *,
        pods: PodSource | None = None,
        token: Callable[[], str] = lambda: secrets.token_urlsafe(32),
        now: Callable[[], str] = _now,
    ) -> None:
        super().__init__()
        self.client = client
        self.pod_source: PodSource = pods if pods is not None else ListedPods(client)
        self._token = token
        self._now = now
        self._ensured: set[tuple[str, str, str]] = set()  # (cluster uid, kind, name)
        self._warned: dict[str, int] = {}  # cluster uid -> generation warned about
        self.retry_after = 5.0

    # -- one pass ----------------------------------------------------------------------------
    async def reconcile(self, namespace: str, name: str) -> None:
        self.passes += 1
        try:
            obj = await self.client.get(RayCluster, name, namespace=namespace)
        except ApiError as err:
            if err.status.code == 404:
                self.pod_source.forget(namespace, name)
                return  # deleted: its pods go with their ownerReferences
            raise
        raw: dict[str, Any] = obj.to_dict()  # type: ignore[no-untyped-call]
        spec = raw.get("spec") or {}
        managed_by = spec.get("managedBy")
        if managed_by and managed_by != MANAGED_BY_KUBERAY:
            return
        meta = raw["metadata"]
        uid, generation = meta["uid"], int(meta.get("generation", 1))
        try:
            cluster = cluster_spec(raw)
            to_group_configs(cluster)  # resources must resolve before any pod is built
        except SpecError as err:
            await self._invalid(raw, err)
            return
        await self._ensure(uid, [token_secret(cluster, self._token(), uid)])
        await self._ensure(uid, [head_service(cluster, uid)])
        if cluster.autoscaling_enabled:
            await self._ensure(uid, autoscaler_rbac(cluster, uid))
        pods = await self._pods(namespace, name)
        result = reconcile(cluster, [_observed(p) for p in pods])
        failures = await self._act(cluster, uid, result)
        if failures:  # try again later even if no event comes (KubeRay requeues too)
            log.warning("%s/%s: %s", namespace, name, "; ".join(failures))
            asyncio.get_running_loop().call_later(self.retry_after, self.trigger, namespace, name)
        if not result.idle:
            pods = await self._pods(namespace, name)
        await self._write_status(raw, cluster, result, pods, generation, failures)

    async def _pods(self, namespace: str, name: str) -> list[Any]:
        return await self.pod_source.pods(namespace, name)

    async def _act(self, cluster: ClusterSpec, uid: str, result: Reconciliation) -> list[str]:
        ns, failures = cluster.namespace, []
        for deletion in result.delete:
            try:
                await self.client.delete(Pod, deletion.name, namespace=ns)
                log.info(
                    "%s/%s: deleted pod %s (%s)",
                    ns, cluster.name, deletion.name, deletion.cause.value,
                )  # fmt: skip
            except ApiError as err:
                if err.status.code != 404:
                    failures.append(f"delete pod {deletion.name}: {err.status.message}")
                    continue
            self.pod_source.deleted(ns, cluster.name, deletion.name)
        manifests = []
        if result.create_head:
            manifests.append(operator_head_pod(cluster, uid))
        for group_name, replicas in result.create.items():
            group = cluster.worker_group(group_name)
            hosts = max(1, group.num_of_hosts)
            for _ in range(replicas):
                replica = (
                    replica_name(cluster, group_name, secrets.token_hex(3)) if hosts > 1 else None
                )
                manifests += [
                    operator_worker_pod(cluster, group, uid, replica) for _ in range(hosts)
                ]
        created = await asyncio.gather(*(self._create_pod(ns, cluster.name, m) for m in manifests))
        failures += [error for error in created if error]
        if manifests:
            log.info("%s/%s: created %d pod(s)", ns, cluster.name, len(manifests))
        return failures

    async def _create_pod(self, namespace: str, cluster: str, manifest: dict[str, Any]) -> str:
        """Create one pod and expect it; return what went wrong ("" if nothing)."""
        try:
            pod = await self._create(manifest, namespace)
        except ApiError as err:
            prefix = manifest["metadata"].get("generateName", "")
            return f"create pod {prefix}*: {err.status.message}"
        self.pod_source.created(namespace, cluster, pod)
        return ""

    async def _create(self, manifest: dict[str, Any], namespace: str) -> Any:
        client: Any = self.client  # kinds vary: lightkube's overloads cannot be picked here
        return await client.create(_from_dict(manifest), namespace=namespace)

    async def _ensure(self, uid: str, manifests: list[dict[str, Any]]) -> None:
        """Create each object unless it exists (an existing token Secret is never replaced)."""
        for manifest in manifests:
            key = (uid, manifest["kind"], manifest["metadata"]["name"])
            if key in self._ensured:
                continue
            try:
                await self._create(manifest, manifest["metadata"]["namespace"])
            except ApiError as err:
                if err.status.code != 409:
                    raise
            self._ensured.add(key)

    # -- status and events -------------------------------------------------------------------
    async def _write_status(
        self,
        raw: dict[str, Any],
        cluster: ClusterSpec,
        result: Reconciliation,
        pods: list[Any],
        generation: int,
        failures: list[str],
    ) -> None:
        service_ip = await self._service_ip(cluster)
        live = [_pod_view(p) for p in pods if p.metadata.deletionTimestamp is None]
        status = cluster_status(
            cluster,
            result,
            live,
            generation=generation,
            service_ip=service_ip,
            failure="; ".join(failures),
        )
        await self._patch_status(raw, status)

    async def _service_ip(self, cluster: ClusterSpec) -> str:
        try:
            svc = await self.client.get(
                Service, f"{cluster.name}-head-svc", namespace=cluster.namespace
            )
        except ApiError:
            return ""
        ip = svc.spec.clusterIP if svc.spec else None
        return "" if not ip or ip == "None" else str(ip)

    async def _patch_status(self, raw: dict[str, Any], status: dict[str, Any]) -> None:
        old = raw.get("status") or {}
        now = self._now()
        before = {c["type"]: c for c in old.get("conditions") or []}
        for condition in status.get("conditions", []):
            previous = before.get(condition["type"])
            same = previous is not None and previous.get("status") == condition["status"]
            condition["lastTransitionTime"] = (
                previous.get("lastTransitionTime", now) if same and previous else now
            )
        if _comparable(old) == _comparable(status):
            return
        status["lastUpdateTime"] = now
        # Keys we no longer set (state when not ready, reason once valid) are removed.
        for key in ("state", "reason"):
            if key in old and key not in status:
                status[key] = None
        await patch_status(self.client, RayCluster, raw, status)

    async def _invalid(self, raw: dict[str, Any], err: SpecError) -> None:
        meta = raw["metadata"]
        generation = int(meta.get("generation", 1))
        message = err.format()
        if self._warned.get(meta["uid"]) != generation:
            self._warned[meta["uid"]] = generation
            log.warning("%s/%s: %s", meta["namespace"], meta["name"], message)
            event = _warning_event(raw, "InvalidRayClusterSpec", message, self._now())
            await self._create(event, meta["namespace"])
        status = {"reason": message, "observedGeneration": generation}
        old = raw.get("status") or {}
        if {k: old.get(k) for k in status} != status:
            await patch_status(self.client, RayCluster, raw, status)


_PHASES: dict[str, PodPhase] = {
    "Pending": "Pending",
    "Running": "Running",
    "Succeeded": "Succeeded",
    "Failed": "Failed",
}  # Unknown (node unreachable) counts as Pending: not a failure yet


def _observed(pod: Any) -> ObservedPod:
    labels = pod.metadata.labels or {}
    phase: PodPhase = _PHASES.get((pod.status.phase if pod.status else None) or "", "Pending")
    return ObservedPod(
        name=pod.metadata.name,
        group=labels.get(GROUP_LABEL, ""),
        phase=phase,
        replica=labels.get(REPLICA_LABEL),
        deleting=pod.metadata.deletionTimestamp is not None,
    )


def _pod_view(pod: Any) -> dict[str, Any]:
    status = pod.status
    conditions = (status.conditions if status else None) or []
    return {
        "name": pod.metadata.name,
        "group": (pod.metadata.labels or {}).get(GROUP_LABEL, ""),
        "phase": (status.phase if status else None) or "Pending",
        "ready": any(c.type == "Ready" and c.status == "True" for c in conditions),
        "ip": (status.podIP if status else None) or "",
    }


def _comparable(status: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in status.items() if k != "lastUpdateTime" and v is not None}
    out["conditions"] = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"}
        for c in status.get("conditions") or []
    ]
    return out


def _warning_event(raw: dict[str, Any], reason: str, message: str, now: str) -> dict[str, Any]:
    meta = raw["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": "ray.io/v1",
            "kind": "RayCluster",
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta.get("resourceVersion", ""),
        },
        "reason": reason,
        "message": message,
        "type": "Warning",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


__all__ = ["ClusterReconciler"]

"""The operator's I/O for RayJobs with ``clusterSelector``, around :mod:`rayscale.builders.rayjob`.

A pass reads the RayJob, the selected RayCluster and the submitter Job, asks
:func:`rayscale.builders.rayjob.next_status` what comes next, creates the submitter when the
cluster is ready, and writes the RayJob's status when it changed. Deleting the RayJob deletes
the submitter through its ownerReference (the garbage collector).

A RayJob waiting for its cluster is passed again when that cluster changes (the operator calls
:meth:`JobReconciler.cluster_changed`) and every ``retry_after`` seconds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import string
from collections.abc import Callable
from typing import Any

from lightkube import ApiError, AsyncClient
from lightkube.resources.batch_v1 import Job as BatchJob

from rayscale.builders import rayjob
from rayscale.kube.passes import Key, KeyedPasses
from rayscale.kube.resources import RayCluster, RayJob, patch_status

log = logging.getLogger("rayscale.kube.operator")

MANAGED_BY_KUBERAY = "ray.io/kuberay-operator"
_ALPHABET = string.ascii_lowercase + string.digits


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _suffix() -> str:
    """5 random characters, as KubeRay's generated job ids end."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(5))


class JobReconciler(KeyedPasses):
    """Reconciles RayJobs on demand (:meth:`trigger`), one pass at a time per RayJob."""

    kind = "RayJob"

    def __init__(
        self,
        client: AsyncClient,
        *,
        suffix: Callable[[], str] = _suffix,
        now: Callable[[], str] = _now,
    ) -> None:
        super().__init__()
        self.client = client
        self._suffix = suffix
        self._now = now
        self.retry_after = 5.0
        self._waiting: dict[Key, set[str]] = {}  # (namespace, cluster) -> RayJobs waiting on it
        self._timers: dict[Key, asyncio.TimerHandle] = {}  # one pending re-pass per RayJob

    def cluster_changed(self, namespace: str, cluster: str) -> None:
        """Pass again the RayJobs that wait for this cluster."""
        for name in sorted(self._waiting.get((namespace, cluster), ())):
            self.trigger(namespace, name)

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        await super().close()

    async def reconcile(self, namespace: str, name: str) -> None:
        self.passes += 1
        try:
            obj = await self.client.get(RayJob, name, namespace=namespace)
        except ApiError as err:
            if err.status.code == 404:
                self._forget(namespace, name)
                return  # deleted: the submitter goes with its ownerReference
            raise
        raw: dict[str, Any] = obj.to_dict()  # type: ignore[no-untyped-call]
        spec: dict[str, Any] = raw.get("spec") or {}
        old: dict[str, Any] = raw.get("status") or {}
        managed_by = spec.get("managedBy")
        if (managed_by and managed_by != MANAGED_BY_KUBERAY) or old.get(
            "jobDeploymentStatus"
        ) in rayjob.TERMINAL:
            self._forget(namespace, name)
            return
        cluster_name = (spec.get("clusterSelector") or {}).get(rayjob.CLUSTER_SELECTOR_KEY, "")
        cluster = await self._cluster(namespace, str(cluster_name)) if cluster_name else None
        submitter = await self._submitter(namespace, name)
        step = rayjob.next_status(
            name,
            namespace,
            spec,
            old,
            cluster=cluster or rayjob.ClusterView(found=False),
            submitter=submitter,
            suffix=self._suffix(),
            now=self._now(),
            generation=int(raw["metadata"].get("generation", 1)),
        )
        if step.create_submitter and cluster is not None:
            await self._create_submitter(raw, step.status, cluster)
        await self._patch_status(raw, old, step.status)
        state = step.status.get("jobDeploymentStatus")
        self._forget(namespace, name)
        if state == rayjob.INITIALIZING and cluster_name:
            self._waiting.setdefault((namespace, str(cluster_name)), set()).add(name)
        if state in (rayjob.INITIALIZING, rayjob.RUNNING):
            self._timers[(namespace, name)] = asyncio.get_running_loop().call_later(
                self.retry_after, self.trigger, namespace, name
            )

    def _forget(self, namespace: str, name: str) -> None:
        timer = self._timers.pop((namespace, name), None)
        if timer is not None:
            timer.cancel()
        for (ns, _cluster), names in list(self._waiting.items()):
            if ns == namespace:
                names.discard(name)

    async def _cluster(self, namespace: str, name: str) -> rayjob.ClusterView:
        try:
            obj = await self.client.get(RayCluster, name, namespace=namespace)
        except ApiError as err:
            if err.status.code == 404:
                return rayjob.ClusterView(found=False)
            raise
        raw: dict[str, Any] = obj.to_dict()  # type: ignore[no-untyped-call]
        head = ((raw.get("spec") or {}).get("headGroupSpec") or {}).get("template") or {}
        containers = (head.get("spec") or {}).get("containers") or [{}]
        return rayjob.ClusterView(
            found=True,
            ready=(raw.get("status") or {}).get("state") == "ready",
            image=str(containers[0].get("image") or ""),
            image_pull_policy=str(containers[0].get("imagePullPolicy") or ""),
        )

    async def _submitter(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            job = await self.client.get(BatchJob, name, namespace=namespace)
        except ApiError as err:
            if err.status.code == 404:
                return None
            raise
        status: dict[str, Any] = job.status.to_dict() if job.status else {}
        return status

    async def _create_submitter(
        self, raw: dict[str, Any], status: dict[str, Any], cluster: rayjob.ClusterView
    ) -> None:
        manifest = rayjob.submitter_job(
            raw,
            submission_id=status["jobId"],
            dashboard=status["dashboardURL"],
            cluster=status["rayClusterName"],
            image=cluster.image,
            image_pull_policy=cluster.image_pull_policy,
        )
        meta = manifest["metadata"]
        try:
            client: Any = self.client  # lightkube's overloads cannot be picked for from_dict
            await client.create(BatchJob.from_dict(manifest), namespace=meta["namespace"])
            log.info("%s/%s: created the submitter Job", meta["namespace"], meta["name"])
        except ApiError as err:
            if err.status.code != 409:
                raise

    async def _patch_status(
        self, raw: dict[str, Any], old: dict[str, Any], status: dict[str, Any]
    ) -> None:
        if rayjob.comparable(old) == rayjob.comparable(status):
            return
        body = dict(status)
        for key in old:
            if key not in body:
                body[key] = None  # merge patch: remove what no longer applies
        await patch_status(self.client, RayJob, raw, body)


__all__ = ["JobReconciler"]

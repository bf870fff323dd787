"""A watch-fed cache of one RayCluster and its pods, for the autoscaler sidecar.

The loop may tick several times a second; reading the API server each tick (as Ray's sidecar
does: a GET and a pod LIST per iteration) would load it for nothing. Instead one background
thread LISTs once and then WATCHes from the list's resourceVersion: the RayCluster by name,
the pods by label ``ray.io/cluster=<name>``. A watch that ends or fails (410 Gone, a dropped
connection) is re-listed after a short backoff, so a missed DELETE never lingers.

Readers (:meth:`ClusterCache.cluster`, :meth:`ClusterCache.pods`) only take a lock.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.config.kubeconfig import SingleConfig
from lightkube.resources.core_v1 import Pod
from lightkube.types import OnErrorAction, OnErrorResult

from rayscale.kube.resources import RayCluster

log = logging.getLogger("rayscale.kube.cache")

CLUSTER_LABEL = "ray.io/cluster"


class CacheNotSyncedError(TimeoutError):
    """The first LIST of the RayCluster or its pods did not complete in time."""


@dataclass(frozen=True, slots=True)
class PodRecord:
    """What the autoscaler and operator need of a pod."""

    name: str
    labels: Mapping[str, str]
    phase: str = "Pending"
    deleting: bool = False
    ip: str = ""
    ready: bool = False
    resource_version: str = ""

    @classmethod
    def of(cls, pod: Any) -> PodRecord:
        meta, status = pod.metadata, pod.status
        conditions = (status.conditions if status else None) or []
        return cls(
            name=meta.name,
            labels=dict(meta.labels or {}),
            phase=(status.phase if status else None) or "Pending",
            deleting=meta.deletionTimestamp is not None,
            ip=(status.podIP if status else None) or "",
            ready=any(c.type == "Ready" and c.status == "True" for c in conditions),
            resource_version=meta.resourceVersion or "",
        )


@dataclass(slots=True)
class _State:
    cluster: dict[str, Any] | None = None
    cluster_version: str = ""
    pods: dict[str, PodRecord] = field(default_factory=dict)
    synced: set[str] = field(default_factory=set)
    events: int = 0


def newer(candidate: str, current: str) -> bool:
    """True unless ``candidate`` is known to be older than ``current``.

    resourceVersions are opaque, but etcd's are integers: compare them when both are, so a
    late watch event never overwrites a fresher PATCH response.
    """
    if candidate.isdigit() and current.isdigit():
        return int(candidate) >= int(current)
    return True


class ClusterCache:
    """LIST+WATCH of ``namespace/name`` and its pods on a background thread."""

    def __init__(
        self,
        config: KubeConfig | SingleConfig,
        name: str,
        namespace: str,
        *,
        client_factory: Callable[[], AsyncClient] | None = None,
        relist_backoff: float = 0.5,
    ) -> None:
        self.name, self.namespace = name, namespace
        self._config = config
        self._client_factory = client_factory
        self._relist_backoff = relist_backoff
        self._state = _State()
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.lists = 0  # LIST requests made (initial + re-lists), for tests and metrics

    # -- reading ----------------------------------------------------------------------------
    def cluster(self) -> dict[str, Any] | None:
        """The RayCluster as a raw mapping (apiVersion, metadata, spec, status), or None."""
        with self._cond:
            return self._state.cluster

    def pods(self) -> list[PodRecord]:
        with self._cond:
            return list(self._state.pods.values())

    @property
    def synced(self) -> bool:
        with self._cond:
            return self._state.synced >= {"cluster", "pods"}

    def wait_for(self, predicate: Callable[[ClusterCache], bool], timeout: float) -> bool:
        """Block until ``predicate(self)`` holds after some update (or now), or the timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if predicate(self):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)

    # -- writing (our own PATCH responses) ---------------------------------------------------
    def put_cluster(self, obj: Any) -> None:
        """Record a RayCluster we just wrote, unless the watch already has a newer one."""
        raw = _raw(obj)
        version = raw.get("metadata", {}).get("resourceVersion", "")
        with self._cond:
            if newer(version, self._state.cluster_version):
                self._state.cluster, self._state.cluster_version = raw, version
                self._cond.notify_all()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> ClusterCache:
        """Start the watches; return once both first LISTs are in (or raise)."""
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name=f"watch-{self.name}", daemon=True
        )
        self._thread.start()
        ready.wait()
        if not self.wait_for(lambda c: c.synced, timeout):
            self.stop()
            raise CacheNotSyncedError(
                f"the RayCluster {self.namespace}/{self.name} and its pods were not listed "
                f"within {timeout:.0f}s; check the API server address and this pod's RBAC "
                "(get/list/watch on pods and rayclusters.ray.io)"
            )
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(self._cancel)
            thread.join(10)

    def __enter__(self) -> ClusterCache:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _cancel(self) -> None:
        for task in self._tasks:
            task.cancel()

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready))
        finally:
            loop.close()

    async def _main(self, ready: threading.Event) -> None:
        client = (
            self._client_factory()
            if self._client_factory is not None
            else AsyncClient(config=self._config)
        )
        try:
            self._tasks = [
                asyncio.ensure_future(self._watch_cluster(client)),
                asyncio.ensure_future(self._watch_pods(client)),
            ]
            ready.set()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            ready.set()
            await client.close()

    async def _watch_cluster(self, client: AsyncClient) -> None:
        fields = {"metadata.name": self.name}

        def replace(items: list[Any]) -> None:
            raw = _raw(items[0]) if items else None
            version = (raw or {}).get("metadata", {}).get("resourceVersion", "")
            self._state.cluster, self._state.cluster_version = raw, version

        def event(op: str, obj: Any) -> None:
            raw = _raw(obj)
            version = raw.get("metadata", {}).get("resourceVersion", "")
            if op == "DELETED":
                self._state.cluster, self._state.cluster_version = None, ""
            elif newer(version, self._state.cluster_version):
                self._state.cluster, self._state.cluster_version = raw, version

        await self._list_watch(client, RayCluster, "cluster", replace, event, fields=fields)

    async def _watch_pods(self, client: AsyncClient) -> None:
        labels = {CLUSTER_LABEL: self.name}

        def replace(items: list[Any]) -> None:
            self._state.pods = {p.metadata.name: PodRecord.of(p) for p in items}

        def event(op: str, obj: Any) -> None:
            if op == "DELETED":
                self._state.pods.pop(obj.metadata.name, None)
            else:
                self._state.pods[obj.metadata.name] = PodRecord.of(obj)

        await self._list_watch(client, Pod, "pods", replace, event, labels=labels)

    async def _list_watch(
        self,
        client: AsyncClient,
        resource: Any,
        kind: str,
        replace: Callable[[list[Any]], None],
        event: Callable[[str, Any], None],
        **selectors: Any,
    ) -> None:
        def listed(items: list[Any], version: str) -> None:
            del version
            self.lists += 1
            with self._cond:
                replace(items)
                self._state.synced.add(kind)
                self._state.events += 1
                self._cond.notify_all()

        def changed(op: str, obj: Any) -> None:
            with self._cond:
                event(op, obj)
                self._state.events += 1
                self._cond.notify_all()

        await list_watch(
            client, resource, self.namespace, listed, changed, what=kind,
            relist_backoff=self._relist_backoff, **selectors,
        )  # fmt: skip


async def list_watch(
    client: AsyncClient,
    resource: Any,
    namespace: str,
    listed: Callable[[list[Any], str], None],
    changed: Callable[[str, Any], None],
    *,
    what: str,
    relist_backoff: float = 0.5,
    **selectors: Any,
) -> None:
    """LIST then WATCH from the list's resourceVersion, forever: ``listed(items, version)``
    after each LIST, ``changed(op, obj)`` per watch event. A watch that ends or fails (410
    Gone, a dropped connection) is listed again after ``relist_backoff``. ``namespace`` may
    be ``lightkube.ALL_NS``. Cancel the task to stop."""
    while True:
        try:
            listing = client.list(resource, namespace=namespace, **selectors)
            items = [item async for item in listing]
            listed(items, listing.resourceVersion or "")
            watch = client.watch(
                resource,
                namespace=namespace,
                resource_version=listing.resourceVersion,
                on_error=_stop_on_error,
                **selectors,
            )
            async for op, obj in watch:
                changed(op, obj)
            log.info("watch of %s ended; listing again", what)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("watching %s failed (%s); listing again", what, exc)
        await asyncio.sleep(relist_backoff)


def _stop_on_error(exc: Exception, count: int) -> OnErrorResult:
    """End the watch on any error: the caller re-LISTs, which also covers 410 Gone."""
    if isinstance(exc, ApiError) and exc.status.code != 410:
        log.warning("watch error: %s", exc)
    return OnErrorResult(OnErrorAction.STOP)


def _raw(obj: Any) -> dict[str, Any]:
    """A lightkube object (or a mapping) as a plain JSON-like dict."""
    if isinstance(obj, Mapping):
        return dict(obj)
    out: dict[str, Any] = obj.to_dict()
    return out

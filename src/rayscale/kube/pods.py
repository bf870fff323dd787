"""The operator's view of its pods: a watch-fed informer plus per-cluster expectations.

A reconcile pass must not LIST pods (one request per pass and cluster, and many passes per
second under churn). :class:`PodInformer` LISTs the operator's pods once and WATCHes them
(:func:`rayscale.kube.cache.list_watch`), per namespace or cluster-wide, and triggers a pass
of a pod's cluster on every change. A pass reads the pods from memory.

Memory may lag the pass's own writes: a pod just created is not yet in the watch, and a pass
that followed at once would create it again. :class:`Expectations` (KubeRay's name for the
same thing) records, per cluster, the pods a pass created (with the resourceVersion of the
create) and those it deleted; :meth:`PodInformer.pods` adds the created ones until the watch
has caught up with that resourceVersion (the pod is then in memory, or already gone) and
marks the deleted ones as going until the watch shows them going or gone.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from lightkube import ALL_NS, AsyncClient
from lightkube.resources.core_v1 import Pod
from msgspec import structs

from rayscale.builders.pods import CREATED_BY
from rayscale.kube.cache import CLUSTER_LABEL, list_watch, newer

log = logging.getLogger("rayscale.kube.operator")

CREATED_BY_LABEL = "app.kubernetes.io/created-by"
Key = tuple[str, str]  # (namespace, cluster name)


class PodSource(Protocol):
    """Where a reconcile pass reads a cluster's pods (and reports its own writes)."""

    async def pods(self, namespace: str, cluster: str) -> list[Any]: ...

    def created(self, namespace: str, cluster: str, pod: Any) -> None: ...

    def deleted(self, namespace: str, cluster: str, name: str) -> None: ...

    def forget(self, namespace: str, cluster: str) -> None: ...


class ListedPods:
    """A quorum LIST per read: always fresh, one request per pass (no informer running)."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def pods(self, namespace: str, cluster: str) -> list[Any]:
        listing = self.client.list(Pod, namespace=namespace, labels={CLUSTER_LABEL: cluster})
        return [p async for p in listing]

    def created(self, namespace: str, cluster: str, pod: Any) -> None:
        pass  # the next LIST sees it

    def deleted(self, namespace: str, cluster: str, name: str) -> None:
        pass

    def forget(self, namespace: str, cluster: str) -> None:
        pass


@dataclass(slots=True)
class Expectations:
    """A cluster's pods written by a pass and not yet seen so in the watch."""

    created: dict[str, Any] = field(default_factory=dict)  # name -> the created Pod
    deleted: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.created or self.deleted)


class PodInformer:
    """The operator's pods in memory, fed by LIST+WATCH; see the module docstring."""

    def __init__(
        self,
        client: AsyncClient,
        namespaces: Iterable[str] = (),
        *,
        on_change: Callable[[str, str], None] | None = None,
        relist_backoff: float = 0.5,
    ) -> None:
        self.client = client
        self.streams = tuple(namespaces) or (ALL_NS,)
        self.on_change = on_change
        self.relist_backoff = relist_backoff
        self._pods: dict[Key, dict[str, Any]] = {}
        self._versions: dict[str, str] = {}  # stream -> latest resourceVersion seen
        self._expected: dict[Key, Expectations] = {}
        self._synced: set[str] = set()
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.lists = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        for stream in self.streams:
            self._tasks.append(asyncio.ensure_future(self._run(stream)))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def synced(self, timeout: float = 30.0) -> None:
        """Return once every stream's first LIST is in (a pass before that would see no pods
        and create them all again)."""
        await asyncio.wait_for(self._ready.wait(), timeout)

    # -- reading -----------------------------------------------------------------------------
    async def pods(self, namespace: str, cluster: str) -> list[Any]:
        """The cluster's pods as the watch has them, corrected by the expectations."""
        await self.synced()
        key = (namespace, cluster)
        known = dict(self._pods.get(key, {}))
        expected = self._expected.get(key)
        if expected:
            version = self._versions.get(self._stream(namespace), "")
            for name, pod in list(expected.created.items()):
                if name in known or _caught_up(version, pod):
                    del expected.created[name]  # seen (or created and gone since)
                else:
                    known[name] = pod
            for name in list(expected.deleted):
                pod = known.get(name)
                if pod is None or pod.metadata.deletionTimestamp is not None:
                    expected.deleted.discard(name)
                else:
                    known[name] = _as_deleting(pod)
            if not expected:
                del self._expected[key]
        return list(known.values())

    def created(self, namespace: str, cluster: str, pod: Any) -> None:
        expected = self._expected.setdefault((namespace, cluster), Expectations())
        expected.created[pod.metadata.name] = pod

    def deleted(self, namespace: str, cluster: str, name: str) -> None:
        self._expected.setdefault((namespace, cluster), Expectations()).deleted.add(name)

    def forget(self, namespace: str, cluster: str) -> None:
        """The cluster is gone: drop what was expected of it."""
        self._expected.pop((namespace, cluster), None)

    def expectations(self, namespace: str, cluster: str) -> Expectations:
        """What is still expected of a cluster (for tests and logs)."""
        return self._expected.get((namespace, cluster), Expectations())

    # -- the watch ---------------------------------------------------------------------------
    def _stream(self, namespace: str) -> str:
        return namespace if namespace in self.streams else ALL_NS

    async def _run(self, stream: str) -> None:
        await list_watch(
            self.client, Pod, stream,
            lambda items, version: self.on_listed(stream, items, version),
            lambda op, pod: self.on_event(stream, op, pod),
            what="the operator's pods", relist_backoff=self.relist_backoff,
            labels={CREATED_BY_LABEL: CREATED_BY},
        )  # fmt: skip

    def on_listed(self, stream: str, items: list[Any], version: str) -> None:
        """A (re-)LIST of ``stream``: its pods are replaced by ``items``."""
        self.lists += 1
        before = [k for k in self._pods if _in(stream, k[0])]
        for key in before:
            del self._pods[key]
        for pod in items:
            self._put(pod)
        self._versions[stream] = version
        self._synced.add(stream)
        if self._synced >= set(self.streams):
            self._ready.set()
        for key in set(before) | {k for k in self._pods if _in(stream, k[0])}:
            self._changed(key)

    def on_event(self, stream: str, op: str, pod: Any) -> None:
        """One watch event of ``stream``."""
        key = _key(pod)
        if key is None:
            return
        if op == "DELETED":
            self._pods.get(key, {}).pop(pod.metadata.name, None)
        else:
            self._put(pod)
        version = pod.metadata.resourceVersion or ""
        if newer(version, self._versions.get(stream, "")):
            self._versions[stream] = version
        self._changed(key)

    def _put(self, pod: Any) -> None:
        key = _key(pod)
        if key is not None:
            self._pods.setdefault(key, {})[pod.metadata.name] = pod

    def _changed(self, key: Key) -> None:
        if self.on_change is not None:
            self.on_change(*key)


def _key(pod: Any) -> Key | None:
    cluster = (pod.metadata.labels or {}).get(CLUSTER_LABEL)
    return (pod.metadata.namespace or "default", cluster) if cluster else None


def _in(stream: str, namespace: str) -> bool:
    return stream in (ALL_NS, namespace)


def _caught_up(version: str, pod: Any) -> bool:
    """The watch has seen every change up to the create's resourceVersion."""
    created = pod.metadata.resourceVersion or ""
    return bool(version and created) and newer(version, created)


def _as_deleting(pod: Any) -> Any:
    """A copy of ``pod`` marked as being deleted (we asked; the watch has not said so yet)."""
    now = dt.datetime.now(dt.timezone.utc)
    return structs.replace(pod, metadata=structs.replace(pod.metadata, deletionTimestamp=now))

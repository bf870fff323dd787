"""The operator reads pods from its watch-fed informer, not a LIST per pass, and its
expectations keep a burst of passes from creating any pod twice while the watch lags. Runs
the operator's ClusterReconciler and PodInformer directly against the real apiserver (no kopf
operator runs in this module, so nothing else reconciles these clusters).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from lightkube import AsyncClient, KubeConfig
from lightkube.codecs import from_dict
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from rayscale.kube.pods import PodInformer
from rayscale.kube.reconciler import ClusterReconciler
from rayscale.kube.resources import RayCluster
from rayscale.testing.kube import KubeSession
from rayscale.testing.kube_ray import retry_not_found, sample_cluster
from tests.k8s.ray_fixtures import ns, ray_crds

__all__ = ["ns", "ray_crds"]

pytestmark = pytest.mark.k8s

NAME = "burst"
WORKERS = 6
WAIT = 30.0


class LaggingInformer(PodInformer):
    """The real informer, whose watch events are held while ``lagging`` (as a loaded API
    server or operator delays them), then delivered in order."""

    lagging = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held: list[tuple[str, str, Any]] = []

    def on_event(self, stream: str, op: str, pod: Any) -> None:
        if self.lagging:
            self.held.append((stream, op, pod))
        else:
            super().on_event(stream, op, pod)

    def catch_up(self) -> None:
        self.lagging = False
        for event in self.held:
            super().on_event(*event)
        self.held.clear()


def _pods(kube: KubeSession, ns: str) -> list[Any]:
    return list(kube.client.list(Pod, namespace=ns, labels={"ray.io/cluster": NAME}))


def _groups(pods: list[Any]) -> list[str]:
    return sorted((p.metadata.labels or {}).get("ray.io/group", "") for p in pods)


async def test_a_burst_of_passes_creates_each_pod_once(kube: KubeSession, ns: str) -> None:
    doc = sample_cluster("autoscaler")  # autoscaling on: a duplicate would never be deleted
    doc["metadata"]["name"] = NAME
    doc["spec"]["workerGroupSpecs"][0]["replicas"] = WORKERS
    retry_not_found(lambda: kube.client.create(from_dict(doc), namespace=ns))
    want = ["headgroup"] + ["small-group"] * WORKERS
    client = AsyncClient(config=KubeConfig.from_file(kube.kubeconfig), field_manager="tests")
    informer = LaggingInformer(client, [ns])
    reconciler = ClusterReconciler(client, pods=informer)
    informer.on_change = reconciler.trigger
    informer.start()
    try:
        await informer.synced(WAIT)
        informer.lagging = True
        # A pass, then a burst of passes and triggers before the watch shows any new pod.
        await reconciler.reconcile(ns, NAME)
        assert len(informer.expectations(ns, NAME).created) == len(want)
        for _ in range(5):
            for _ in range(10):
                reconciler.trigger(ns, NAME)
            await reconciler.reconcile(ns, NAME)
        await asyncio.wait_for(reconciler.idle(), WAIT)
        assert _groups(_pods(kube, ns)) == want  # the expectations stood in for the watch
        assert reconciler.passes >= 7

        # The watch catches up: the pods are in memory, nothing is expected any more, and
        # the passes its events trigger create nothing.
        async def caught_up() -> None:
            while len(informer.held) < len(want):
                await asyncio.sleep(0.05)
            informer.catch_up()

        await asyncio.wait_for(caught_up(), WAIT)
        await asyncio.wait_for(reconciler.idle(), WAIT)
        assert not informer.expectations(ns, NAME)
        assert _groups(await informer.pods(ns, NAME)) == want
    finally:
        await reconciler.close()
        await informer.close()
        await client.close()
    assert _groups(_pods(kube, ns)) == want
    assert informer.lists == 1  # one LIST for the whole run: every pass read memory


async def test_passes_on_a_lagging_watch_delete_surplus_once(kube: KubeSession, ns: str) -> None:
    """Autoscaling off, replicas 3 -> 2: one pass deletes one surplus pod and expects it gone;
    the passes that follow before the watch shows it going delete no other. (The pure
    reconciler picks surplus pods deterministically, so without the expectation a stale pass
    would repeat the same DELETE and get a 404; the expectation saves that request.)"""
    doc = sample_cluster("autoscaler")
    doc["metadata"]["name"] = NAME
    doc["spec"]["enableInTreeAutoscaling"] = False
    doc["spec"]["workerGroupSpecs"][0]["replicas"] = 3
    retry_not_found(lambda: kube.client.create(from_dict(doc), namespace=ns))
    client = AsyncClient(config=KubeConfig.from_file(kube.kubeconfig), field_manager="tests")
    informer = LaggingInformer(client, [ns])
    reconciler = ClusterReconciler(client, pods=informer)
    informer.start()
    try:
        await informer.synced(WAIT)
        await reconciler.reconcile(ns, NAME)

        async def settled(count: int) -> None:  # a read settles the expectations first
            while len(await informer.pods(ns, NAME)) != count or informer.expectations(ns, NAME):
                await asyncio.sleep(0.05)

        await asyncio.wait_for(settled(4), WAIT)
        informer.lagging = True
        replicas = {"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 2}
        kube.client.patch(RayCluster, NAME, [replicas], namespace=ns, patch_type=PatchType.JSON)
        for _ in range(5):
            await reconciler.reconcile(ns, NAME)
        assert len(informer.expectations(ns, NAME).deleted) == 1
        assert _groups(_pods(kube, ns)) == ["headgroup", "small-group", "small-group"]
        informer.catch_up()
        await asyncio.wait_for(settled(3), WAIT)
        await reconciler.reconcile(ns, NAME)
    finally:
        await reconciler.close()
        await informer.close()
        await client.close()
    assert _groups(_pods(kube, ns)) == ["headgroup", "small-group", "small-group"]

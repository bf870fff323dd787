"""Reconcile passes of different RayClusters run concurrently: a cluster whose API requests
hang (KubeRay issue 3909) does not hold up another. Runs the operator's ClusterReconciler
directly (no kopf operator runs in this module, so nothing else reconciles these clusters).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from lightkube.codecs import from_dict
from lightkube.resources.core_v1 import Pod

from rayscale.kube.reconciler import ClusterReconciler
from rayscale.testing.kube import KubeSession
from rayscale.testing.kube_ray import gated_async_client, retry_not_found, sample_cluster
from tests.k8s.ray_fixtures import ns, ray_crds

__all__ = ["ns", "ray_crds"]

pytestmark = pytest.mark.k8s

WAIT = 30.0


def _apply(kube: KubeSession, doc: dict[str, Any], ns: str) -> None:
    retry_not_found(lambda: kube.client.create(from_dict(doc), namespace=ns))


def _pods(kube: KubeSession, ns: str, name: str) -> list[Any]:
    return list(kube.client.list(Pod, namespace=ns, labels={"ray.io/cluster": name}))


async def test_a_slow_cluster_does_not_block_another(kube: KubeSession, ns: str) -> None:
    """KubeRay issue 3909: every request about `slow` hangs; `fast` is reconciled meanwhile."""
    for name in ("slow", "fast"):
        doc = sample_cluster("autoscaler")
        doc["metadata"]["name"] = name
        doc["spec"]["workerGroupSpecs"][0]["replicas"] = 1
        _apply(kube, doc, ns)
    client, transport = gated_async_client(kube.kubeconfig, "/slow")
    reconciler = ClusterReconciler(client)
    try:
        reconciler.trigger(ns, "slow")
        reconciler.trigger(ns, "fast")
        await asyncio.wait_for(reconciler.idle_except([(ns, "slow")]), WAIT)
        assert len(_pods(kube, ns, "fast")) == 2  # head and worker
        assert transport.held >= 1 and _pods(kube, ns, "slow") == []
        transport.gate.set()
        await asyncio.wait_for(reconciler.idle(), WAIT)
        assert len(_pods(kube, ns, "slow")) == 2
    finally:
        transport.gate.set()
        await reconciler.close()
        await client.close()

"""Fixtures shared by the ray.io tests of the k8s tier (import them into a test module)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import kopf
import pytest
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import (
    ConfigMap,
    Event,
    Namespace,
    Pod,
    Secret,
    Service,
    ServiceAccount,
)
from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding

from rayscale.autoscaler.scale import RayNode
from rayscale.kube.crds import install_crds
from rayscale.kube.operator import run
from rayscale.kube.resources import warm_decoders
from rayscale.planner import Demand
from rayscale.testing.kube import KubeSession
from rayscale.testing.kube_ray import new_namespace

OPERATOR_KINDS = (Pod, Service, Secret, ServiceAccount, Role, RoleBinding, Event, Job, ConfigMap)


@pytest.fixture(scope="session")
def ray_crds(kube: KubeSession) -> None:
    """The ray.io CRDs, installed once per session from rayscale.builders.crds."""
    install_crds(kube.client)


@pytest.fixture
def ns(kube: KubeSession, ray_crds: None) -> Iterator[str]:
    name = new_namespace(kube.client, "ray")
    yield name
    kube.client.delete(Namespace, name)  # stays Terminating without a namespace controller


@pytest.fixture(scope="module")
def operator(kube: KubeSession, ray_crds: None) -> Iterator[kopf.Memo]:
    """The operator, running in a thread for the whole module (beside the tests' client: the
    kinds both decode are warmed first, see rayscale.kube.resources.warm_decoders)."""
    warm_decoders(OPERATOR_KINDS)
    stop, ready, memo = threading.Event(), threading.Event(), kopf.Memo()

    def main() -> None:
        asyncio.run(run(kube.kubeconfig, stop_flag=stop, ready_flag=ready, memo=memo))

    thread = threading.Thread(target=main, name="operator", daemon=True)
    thread.start()
    assert ready.wait(60), "the operator did not start"
    yield memo
    stop.set()
    thread.join(30)


class FakeGcs:
    """Stands in for Ray's GCS (no Ray in this tier): nodes and demand set by the test."""

    def __init__(self, head: str, group: str = "small-group") -> None:
        self.group = group
        self.nodes = [RayNode("id-head", head, "headgroup", "running", {"CPU": 0}, {"CPU": 0}, 0)]
        self.demand = Demand()
        self.drained: list[str] = []

    def nodes_and_demand(self) -> tuple[list[RayNode], Demand]:
        return list(self.nodes), self.demand

    def requested_resources(self) -> list[dict[str, float]]:
        return []

    def drain(self, node_id: str, reason: str) -> tuple[bool, str]:
        self.drained.append(node_id)
        return True, ""

    def publish_status(self, payload: bytes) -> None:
        pass

    def worker(self, pod: str, idle_s: float = 0.0) -> RayNode:
        free = 1.0 if idle_s else 0.0
        return RayNode(f"id-{pod}", pod, self.group, "running", {"CPU": 1}, {"CPU": free}, idle_s)

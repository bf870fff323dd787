"""With kube-controller-manager running (garbage collector, namespace and ServiceAccount
controllers), deleting a RayCluster removes everything the operator created for it through
the ownerReferences, as in a real cluster."""

from __future__ import annotations

import kopf
import pytest
from lightkube import ApiError
from lightkube.codecs import from_dict
from lightkube.resources.core_v1 import Pod, Secret, Service, ServiceAccount

from rayscale.kube.resources import RayCluster
from rayscale.testing.controller_manager import ControllerManager
from rayscale.testing.kube import KubeSession
from rayscale.testing.kube_ray import retry_not_found, sample_cluster
from rayscale.waiting import wait_until
from tests.k8s.ray_fixtures import ns, operator, ray_crds

__all__ = ["ns", "operator", "ray_crds"]

pytestmark = pytest.mark.k8s

NAME = "raycluster-autoscaler"
WAIT = 30.0


def _gone(kube: KubeSession, kind: type, name: str, namespace: str) -> bool:
    try:
        kube.client.get(kind, name, namespace=namespace)
    except ApiError as err:
        return err.status.code == 404
    return False


def test_deleting_the_raycluster_removes_what_the_operator_created(
    kube: KubeSession, ns: str, operator: kopf.Memo, controller_manager: ControllerManager
) -> None:
    doc = sample_cluster("autoscaler")
    doc["spec"]["workerGroupSpecs"][0]["replicas"] = 2
    retry_not_found(lambda: kube.client.create(from_dict(doc), namespace=ns))

    def pods() -> list[str]:
        listed = kube.client.list(Pod, namespace=ns, labels={"ray.io/cluster": NAME})
        return [p.metadata.name for p in listed]

    wait_until(lambda: len(pods()) == 3, WAIT, "head and 2 workers", detail=lambda: str(pods()))
    owned = [(Service, f"{NAME}-head-svc"), (Secret, f"{NAME}-ray-token"), (ServiceAccount, NAME)]
    assert not any(_gone(kube, kind, name, ns) for kind, name in owned)
    kube.client.delete(RayCluster, NAME, namespace=ns)
    wait_until(lambda: not pods(), WAIT, "every pod garbage-collected", detail=lambda: str(pods()))
    for kind, name in owned:
        wait_until(lambda k=kind, n=name: _gone(kube, k, n, ns), WAIT, f"{kind.__name__} {name}")
    # The ServiceAccount controller gave the test's namespace its `default` account.
    assert not _gone(kube, ServiceAccount, "default", ns)

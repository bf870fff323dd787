"""Fixtures shared by the ray.io tests of the k8s tier (import them into a test module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lightkube.resources.core_v1 import Namespace

from rayscale.kube.crds import install_crds
from rayscale.testing.kube import KubeSession
from rayscale.testing.kube_ray import new_namespace


@pytest.fixture(scope="session")
def ray_crds(kube: KubeSession) -> None:
    """The ray.io CRDs, installed once per session from rayscale.builders.crds."""
    install_crds(kube.client)


@pytest.fixture
def ns(kube: KubeSession, ray_crds: None) -> Iterator[str]:
    name = new_namespace(kube.client, "ray")
    yield name
    kube.client.delete(Namespace, name)  # stays Terminating without a namespace controller

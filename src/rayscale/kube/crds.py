"""Install the ray.io CRDs (from :mod:`rayscale.builders.crds`) and wait until they serve."""

from __future__ import annotations

import time
from typing import Any

from lightkube import ApiError, Client
from lightkube.codecs import from_dict
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition

from rayscale.builders.crds import crds
from rayscale.kube.resources import RayCluster, RayJob

FIELD_MANAGER = "rayscale"
RESOURCES: dict[str, Any] = {"RayCluster": RayCluster, "RayJob": RayJob}


class CrdNotReadyError(RuntimeError):
    """A CRD was not Established (or its resource not served) in time."""


def install_crds(client: Client, timeout: float = 60.0) -> list[CustomResourceDefinition]:
    """Server-side apply every CRD, then wait until each is Established and served."""
    installed = []
    for manifest in crds():
        client.apply(from_dict(manifest), field_manager=FIELD_MANAGER, force=True)
    deadline = time.monotonic() + timeout
    for manifest in crds():
        installed.append(_wait_established(client, manifest, deadline))
    return installed


def _wait_established(client: Client, manifest: dict[str, Any], deadline: float) -> Any:
    name = manifest["metadata"]["name"]
    spec = manifest["spec"]
    while True:
        got = client.get(CustomResourceDefinition, name)
        conditions = got.status.conditions if got.status else None
        established = any(c.type == "Established" and c.status == "True" for c in conditions or [])
        if established and _served(client, spec["names"]["kind"]):
            return got
        if time.monotonic() > deadline:
            raise CrdNotReadyError(f"CRD {name} not established and served: {got.status}")
        time.sleep(0.1)


def _served(client: Client, kind: str) -> bool:
    """A LIST answers: the short 404 window between Established and serving is over."""
    resource = RESOURCES[kind]
    try:
        list(client.list(resource, namespace="default", chunk_size=1))
    except ApiError as err:
        if err.status.code == 404:
            return False
        raise
    return True

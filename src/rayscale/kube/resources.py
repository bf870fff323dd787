"""lightkube resource classes of the ray.io/v1 custom resources."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightkube.generic_resource import create_namespaced_resource

from rayscale.builders.crds import GROUP, VERSION
from rayscale.spec import RayCluster as ClusterSpec
from rayscale.spec import parse_cluster

RayCluster = create_namespaced_resource(GROUP, VERSION, "RayCluster", "rayclusters")
RayJob = create_namespaced_resource(GROUP, VERSION, "RayJob", "rayjobs")


def cluster_spec(raw: Mapping[str, Any]) -> ClusterSpec:
    """The stored RayCluster (a raw mapping) as a validated spec; raises SpecError.

    Only the fields a user writes are kept (server-set metadata and status are dropped).
    """
    meta = raw["metadata"]
    doc = {
        "apiVersion": raw.get("apiVersion", f"{GROUP}/{VERSION}"),
        "kind": "RayCluster",
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace") or "default",
            "labels": meta.get("labels") or {},
            "annotations": meta.get("annotations") or {},
        },
        "spec": raw.get("spec") or {},
    }
    return parse_cluster(doc)

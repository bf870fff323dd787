"""lightkube resource classes of the ray.io/v1 custom resources."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from lightkube import AsyncClient
from lightkube.core import decoders
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models import meta_v1
from lightkube.types import PatchType

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


async def patch_status(
    client: AsyncClient, kind: Any, raw: Mapping[str, Any], status: Mapping[str, Any]
) -> None:
    """Merge-patch the status subresource of the ray.io object ``raw`` (``kind``: RayCluster
    or RayJob); a key set to None is removed."""
    meta = raw["metadata"]
    await client.patch(
        kind.Status,
        meta["name"],
        {"status": dict(status)},
        namespace=meta["namespace"],
        patch_type=PatchType.MERGE,
    )


def warm_decoders(kinds: Iterable[type]) -> None:
    """Build the JSON decoders of these lightkube kinds (and of Status) now, in this thread.

    msgspec (0.22, under lightkube 1.0) can crash the process with a segmentation fault when two
    threads decode a kind for the first time at once: 8 threads decoding a Pod list crashed
    30 times out of 30; 0 out of 20 once warmed. Call this before a thread pool (the API
    server's) or a second thread (an operator beside a client) first decodes these kinds.
    """
    msgspec.json.Decoder(meta_v1.Status)
    for kind in kinds:
        decoders.decode_list(b'{"items": []}', kind)
        msgspec.json.Decoder(kind)

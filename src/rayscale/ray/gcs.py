"""Talk to a Ray cluster's GCS: read nodes and demand, drain nodes, publish ``ray status``.

A thin I/O adapter (the :class:`~rayscale.autoscaler.scale.RayView` of a live cluster). Every
call carries a timeout, so a hung GCS delays a tick by at most ``timeout_s`` per call.

The calls go through Ray's own ``ray._raylet.GcsClient`` by default (the local supervisor,
which imports Ray anyway), or through :class:`rayscale.ray.gcs_grpc.GrpcGcsClient`, which has
the same methods without importing Ray (the sidecar, to stay within its memory budget).

Ray caches the auth token process-wide, so a process talks to one token-protected cluster:
the caller enters :func:`rayscale.local.raynodes.client_auth` (locally) or sets the token
environment (in a pod) before building a :class:`GcsView`.
"""

from __future__ import annotations

import importlib
from typing import Any

from rayscale.autoscaler.scale import RayNode
from rayscale.planner import Demand
from rayscale.protocol import (
    AUTOSCALING_STATUS_KV_KEY,
    DRAIN_REASON_IDLE_TERMINATION,
    RESOURCE_REQUEST_KV_KEY,
)
from rayscale.ray.demand import demand_of, kv_request_resources, nodes_of

DEFAULT_TIMEOUT_S = 5.0


class GcsView:
    """Ray's side of the autoscaler loop, for one cluster."""

    def __init__(
        self, address: str, timeout_s: float = DEFAULT_TIMEOUT_S, client: Any = None
    ) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.client: Any = (
            client
            if client is not None
            else importlib.import_module("ray._raylet").GcsClient(address=address)
        )
        self.last_nodes: list[RayNode] = []
        """The nodes of the latest read (a runtime's kubelet uses them to see who joined)."""

    def state(self) -> Any:
        """Ray's ``ClusterResourceState`` (autoscaler_pb2)."""
        reply_type = importlib.import_module(
            "rayscale.ray.protos.autoscaler_pb2"
        ).GetClusterResourceStateReply
        raw = self.client.get_cluster_resource_state(timeout_s=self.timeout_s)
        reply = reply_type()
        reply.ParseFromString(raw)
        return reply.cluster_resource_state

    def nodes_and_demand(self) -> tuple[list[RayNode], Demand]:
        state = self.state()
        self.last_nodes = nodes_of(state)
        return self.last_nodes, demand_of(state)

    def requested_resources(self) -> list[dict[str, float]]:
        """Ray v1's request_resources bundles; raises BadDemandError on a bad value."""
        raw = self.client.internal_kv_get(RESOURCE_REQUEST_KV_KEY, None, timeout=self.timeout_s)
        return kv_request_resources(raw)

    def drain(self, node_id: str, reason: str) -> tuple[bool, str]:
        """Ask Ray to drain an idle node; the raylet refuses if the node became busy."""
        accepted, message = self.client.drain_node(
            node_id,
            DRAIN_REASON_IDLE_TERMINATION,
            f"rayscale: {reason}",
            0,
            timeout=self.timeout_s,
        )
        return bool(accepted), str(message or "")

    def publish_status(self, payload: bytes) -> None:
        """Write the ``ray status`` document (Ray v1's layout) for Ray's own CLI to read."""
        self.client.internal_kv_put(
            AUTOSCALING_STATUS_KV_KEY, payload, True, None, timeout=self.timeout_s
        )

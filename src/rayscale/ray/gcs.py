"""Talk to a Ray cluster's GCS: read nodes and demand, drain nodes (thin I/O adapter).

Ray caches the auth token process-wide, so a process talks to one token-protected cluster:
the supervisor enters :func:`rayscale.local.raynodes.client_auth` once for its lifetime.
"""

from __future__ import annotations

import importlib
from typing import Any

from rayscale.planner import Demand
from rayscale.ray.demand import RayNode, demand_of, kv_request_resources, nodes_of

RESOURCE_REQUEST_KEY = b"autoscaler_resource_request"


class GcsView:
    """The :class:`rayscale.autoscaler.loop.RayView` of a live cluster."""

    def __init__(self, address: str, timeout_s: float = 5.0) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.client: Any = importlib.import_module("ray._raylet").GcsClient(address=address)

    def state(self) -> Any:
        from ray.autoscaler.v2.sdk import get_cluster_resource_state

        return get_cluster_resource_state(self.client)

    def kv_request(self) -> list[dict[str, float]]:
        raw = self.client.internal_kv_get(RESOURCE_REQUEST_KEY, None, timeout=self.timeout_s)
        return kv_request_resources(raw)

    def snapshot(self) -> tuple[list[RayNode], Demand]:
        state = self.state()
        return nodes_of(state), demand_of(state, self.kv_request())

    def drain(self, node_id: str, reason: str) -> tuple[bool, str]:
        """Ask Ray to drain an idle node; Ray refuses if the node became busy."""
        reasons = importlib.import_module("ray.core.generated.autoscaler_pb2").DrainNodeReason
        accepted, message = self.client.drain_node(
            node_id=node_id,
            reason=reasons.DRAIN_NODE_REASON_IDLE_TERMINATION,
            reason_message=f"rayscale: {reason}",
            deadline_timestamp_ms=0,
        )
        return bool(accepted), str(message or "")

"""Ray's view of the cluster, translated into the planner's terms (pure).

Input: Ray 2.60's ``autoscaler_pb2.ClusterResourceState`` (from GCS) and the JSON that Ray's v1
``request_resources`` writes to the internal KV. Output: :class:`RayNode` records and a
planner :class:`~rayscale.planner.Demand`.

Shapes Ray reports that new nodes can never help are left out of the demand, on purpose:
tasks waiting for a placement-group bundle that already exists (``CPU_group_<pg>`` resources)
and tasks pinned to one node (``node:<ip>``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from rayscale.autoscaler.scale import BadDemandError, RayNode, RayNodeStatus
from rayscale.planner import BundleDemand, Demand, PlacementGroupDemand, Strategy
from rayscale.protocol import RESOURCE_REQUEST_KV_KEY, NodeStatus

_STRATEGY = re.compile(r"\b(STRICT_PACK|STRICT_SPREAD|PACK|SPREAD)\b")


def planning_resources(resources: Mapping[str, float]) -> dict[str, float]:
    """Keep the resources a new node could provide; drop node-local and bookkeeping ones."""
    return {
        k: float(v)
        for k, v in resources.items()
        if v and not k.startswith("node:") and "_group_" not in k and k != "object_store_memory"
    }


def _schedulable(resources: Mapping[str, float]) -> bool:
    return not any(k.startswith("node:") or "_group_" in k for k in resources)


def nodes_of(state: Any) -> list[RayNode]:
    """Live nodes (dead ones dropped) from a ClusterResourceState."""
    out = []
    for ns in state.node_states:
        if ns.status == NodeStatus.DEAD:
            continue
        status: RayNodeStatus = (
            "idle"
            if ns.status == NodeStatus.IDLE
            else "draining"
            if ns.status == NodeStatus.DRAINING
            else "running"
        )
        out.append(
            RayNode(
                node_id=ns.node_id.hex(),
                instance_id=ns.instance_id,
                group=ns.ray_node_type_name,
                status=status,
                total=planning_resources(ns.total_resources),
                available=planning_resources(ns.available_resources),
                idle_s=ns.idle_duration_ms / 1000.0 if ns.status == NodeStatus.IDLE else 0.0,
                ip=ns.node_ip_address,
            )
        )
    return out


def _strategy(gang: Any) -> Strategy:
    match = _STRATEGY.search(gang.details or "")
    if match:
        return Strategy(match.group(1))
    requests = list(gang.requests)
    if any(c.HasField("anti_affinity") for r in requests for c in r.placement_constraints):
        return Strategy.STRICT_SPREAD
    if any(c.HasField("affinity") for r in requests for c in r.placement_constraints):
        return Strategy.STRICT_PACK
    return Strategy.PACK


def _gang_requests(gang: Any) -> list[Any]:
    if len(gang.bundle_selectors):
        return list(gang.bundle_selectors[0].resource_requests)
    return list(gang.requests)


def kv_request_resources(raw: bytes | str | None) -> list[dict[str, float]]:
    """Parse Ray v1's ``autoscaler_resource_request`` KV value (a JSON list of bundles).

    Raises :class:`BadDemandError`, quoting the value, if it is not one."""
    if not raw:
        return []
    shown = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw)[:200]
    try:
        data = json.loads(raw)
        if not isinstance(data, list):
            raise TypeError("not a JSON list")
        bundles = []
        for item in data:
            if not isinstance(item, dict):
                raise TypeError(f"item {item!r} is not an object")
            res = item["resources"] if isinstance(item.get("resources"), dict) else item
            bundles.append({str(k): float(v) for k, v in res.items() if v})
    except (ValueError, TypeError) as exc:
        raise BadDemandError(
            f"the GCS KV key {RESOURCE_REQUEST_KV_KEY.decode()} holds {shown!r} ({exc}); "
            "ray.autoscaler.sdk.request_resources() writes a JSON list of bundles; "
            "call it again to overwrite the value"
        ) from exc
    return [b for b in bundles if b]


def demand_of(state: Any, kv_bundles: Iterable[Mapping[str, float]] = ()) -> Demand:
    """Pending tasks/actors, placement groups and request_resources (v2 constraint or v1 KV)."""
    counts: dict[tuple[tuple[str, float], ...], int] = {}
    for req in state.pending_resource_requests:
        shape = dict(req.request.resources_bundle)
        if not _schedulable(shape):
            continue
        key = tuple(sorted(planning_resources(shape).items()))
        if key:
            counts[key] = counts.get(key, 0) + int(req.count)
    bundles = tuple(BundleDemand(dict(k), c) for k, c in sorted(counts.items()))
    pgs = []
    for gang in state.pending_gang_resource_requests:
        shapes = [dict(r.resources_bundle) for r in _gang_requests(gang)]
        if shapes and all(_schedulable(s) for s in shapes):
            pgs.append(
                PlacementGroupDemand(
                    _strategy(gang),
                    tuple(planning_resources(s) for s in shapes),
                    name=gang.details,
                )
            )
    constraints: list[dict[str, float]] = []
    for constraint in state.cluster_resource_constraints:
        for req in constraint.resource_requests:
            shape = planning_resources(req.request.resources_bundle)
            constraints += [shape] * int(req.count)
    requested = tuple(constraints) or tuple(dict(b) for b in kv_bundles)
    return Demand(bundles=bundles, placement_groups=tuple(pgs), request_resources=requested)

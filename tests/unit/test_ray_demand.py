"""GCS ClusterResourceState -> planner demand and nodes (pure translation, real protos)."""

from __future__ import annotations

import json

import pytest
from ray.core.generated import autoscaler_pb2 as pb

from rayscale.autoscaler.scale import BadDemandError
from rayscale.planner import Strategy
from rayscale.ray.demand import demand_of, kv_request_resources, nodes_of

pytestmark = pytest.mark.unit


def _state() -> pb.ClusterResourceState:
    s = pb.ClusterResourceState()
    head = s.node_states.add(
        node_id=b"\x01" * 28,
        instance_id="c-head-x",
        ray_node_type_name="headgroup",
        status=pb.NodeStatus.RUNNING,
    )
    head.total_resources.update(
        {"CPU": 0, "memory": 2e9, "node:__internal_head__": 1, "object_store_memory": 1e8}
    )
    w = s.node_states.add(
        node_id=b"\x02" * 28,
        instance_id="c-small-group-worker-ab",
        ray_node_type_name="small-group",
        status=pb.NodeStatus.IDLE,
        idle_duration_ms=61_500,
    )
    w.total_resources.update({"CPU": 1})
    w.available_resources.update({"CPU": 1})
    s.node_states.add(node_id=b"\x03" * 28, status=pb.NodeStatus.DEAD)
    r = s.pending_resource_requests.add(count=2)
    r.request.resources_bundle.update({"CPU": 1})
    pinned = s.pending_resource_requests.add(count=1)
    pinned.request.resources_bundle.update({"CPU": 1, "node:10.0.0.1": 0.001})
    in_pg = s.pending_resource_requests.add(count=1)
    in_pg.request.resources_bundle.update({"CPU_group_abc": 1})
    gang = s.pending_gang_resource_requests.add(details="abc:STRICT_SPREAD|PENDING")
    for _ in range(3):
        b = gang.requests.add()
        b.resources_bundle.update({"CPU": 1})
        b.placement_constraints.add().anti_affinity.label_name = "_PG_abc"
    packed = s.pending_gang_resource_requests.add()
    for _ in range(2):
        b = packed.requests.add()
        b.resources_bundle.update({"CPU": 1})
        b.placement_constraints.add().affinity.label_name = "_PG_def"
    c = s.cluster_resource_constraints.add()
    rr = c.resource_requests.add(count=4)
    rr.request.resources_bundle.update({"CPU": 1})
    return s


def test_nodes_map_back_to_workers() -> None:
    head, worker = nodes_of(_state())
    assert head.group == "headgroup" and head.total == {"memory": 2e9}  # zero CPU dropped
    assert worker.instance_id == "c-small-group-worker-ab" and worker.group == "small-group"
    assert worker.status == "idle" and worker.idle_s == pytest.approx(61.5)


def test_demand_kinds() -> None:
    demand = demand_of(_state())
    assert [(dict(b.resources), b.count) for b in demand.bundles] == [({"CPU": 1.0}, 2)]
    spread, packed = demand.placement_groups
    assert spread.strategy is Strategy.STRICT_SPREAD and len(spread.bundles) == 3
    assert packed.strategy is Strategy.STRICT_PACK
    assert demand.request_resources == ({"CPU": 1.0},) * 4


def test_v1_kv_request_resources_used_when_no_v2_constraint() -> None:
    state = _state()
    del state.cluster_resource_constraints[:]
    kv = kv_request_resources(json.dumps([{"CPU": 1}, {"CPU": 1}, {"GPU": 0}]).encode())
    assert demand_of(state, kv).request_resources == ({"CPU": 1.0}, {"CPU": 1.0})


@pytest.mark.parametrize("raw", [None, b"", b"[]"], ids=["none", "empty", "list"])
def test_kv_request_resources_empty(raw: bytes | None) -> None:
    assert kv_request_resources(raw) == []


@pytest.mark.parametrize(
    "raw", [b"lots", b"{}", b"[1]", b'[{"CPU": "x"}]'], ids=["text", "object", "item", "value"]
)
def test_kv_request_resources_bad_value_names_the_key_and_the_fix(raw: bytes) -> None:
    with pytest.raises(BadDemandError) as info:
        kv_request_resources(raw)
    assert "autoscaler_resource_request" in str(info.value)
    assert "request_resources()" in str(info.value)

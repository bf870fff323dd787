"""One model of status: built from a tick, rendered as rayscale text and by Ray's own CLI.

``ray_status_payload`` must be what Ray's v1 monitor writes, so Ray's formatter (the code
``ray status`` runs) is fed our document directly.
"""

from __future__ import annotations

import json

import pytest

from rayscale.autoscaler.loop import Autoscaler
from rayscale.autoscaler.scale import WorkerPod
from rayscale.autoscaler.status import (
    ClusterStatus,
    build_status,
    format_status,
    ray_status_payload,
)
from rayscale.planner import BundleDemand, Demand, PlacementGroupDemand, Strategy
from tests.unit.test_autoscaler_loop import HEAD, FakeOperator, FakeRayView, worker_node

pytestmark = pytest.mark.unit

G = ("spec", "workerGroupSpecs", 0)


def _status() -> ClusterStatus:
    op = FakeOperator(
        [((*G, "replicas"), 2), ((*G, "maxReplicas"), 3)],
        [WorkerPod("w1", "small-group", "running"), WorkerPod("w2", "small-group", "running")],
    )
    demand = Demand(
        bundles=(BundleDemand({"CPU": 1.0}, 2), BundleDemand({"GPU": 1.0, "CPU": 1.0}, 1)),
        placement_groups=(PlacementGroupDemand(Strategy.STRICT_SPREAD, ({"CPU": 1.0},) * 2),),
        request_resources=({"CPU": 1.0},),
    )
    ray = FakeRayView([HEAD, worker_node("w1")], demand)
    report = Autoscaler(op.groups, ray, op, clock=lambda: 1_700_000_000.0).tick()
    return build_status("demo", "127.0.0.1:1", op.groups, report, ["small-group: x exited"], 0)


def test_status_counts_reasons_and_json_keys() -> None:
    status = _status()
    group = status.groups[0]
    assert (group.name, group.min, group.max) == ("small-group", 0, 3)
    assert group.running == 1 and group.pending >= 1 and group.desired == 3
    assert group.reason_codes and all(r.text for r in group.reason_codes)
    assert [u.code for u in status.infeasible] == ["missing_resource"]
    data = status.model_dump(mode="json")
    for key in ("name", "address", "updated_at", "iteration_seconds", "loop_errors", "groups",
                "nodes", "demand", "infeasible", "held_back", "launched", "deleted",
                "recent_failures"):  # fmt: skip
        assert key in data
    assert ClusterStatus.model_validate(json.loads(json.dumps(data))) == status


def test_text_view_uses_ray_status_layout() -> None:
    text = format_status(_status())
    assert text.startswith("======== Autoscaler status:")
    for line in ("Node status", "Active:", "Pending:", "Recent failures:", "Pending Demands:"):
        assert line in text
    assert "small-group: desired 3 (min 0, max 3)" in text


def test_rays_own_formatter_renders_our_document() -> None:
    from ray.autoscaler._private.autoscaler import AutoscalerSummary
    from ray.autoscaler._private.node_provider_availability_tracker import (
        NodeAvailabilitySummary,
    )
    from ray.autoscaler._private.util import LoadMetricsSummary, format_info_string

    doc = json.loads(ray_status_payload(_status()))
    lm = LoadMetricsSummary(**doc["load_metrics_report"])
    summary = doc["autoscaler_report"]
    availability = NodeAvailabilitySummary.from_fields(**summary.pop("node_availability_summary"))
    text = format_info_string(
        lm, AutoscalerSummary(node_availability_summary=availability, **summary)
    )
    assert "Active:\n 1 small-group" in text
    assert "small-group" in text.split("Pending:")[1].split("Recent failures:")[0]
    assert "{'CPU': 1.0}: 2+ pending tasks/actors" in text
    assert "(STRICT_SPREAD): 1+ pending placement groups" in text
    assert "{'CPU': 1.0}: 1 from request_resources()" in text
    assert "small-group: x exited" in text

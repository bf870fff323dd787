"""Smoke tests against real Ray 2.60 processes: what GCS tells an autoscaler.

Observed facts (printed by the tests, see kuberay-protocol.md section 4):
- ``NodeState.instance_id`` / ``ray_node_type_name`` are the ``RAY_CLOUD_INSTANCE_ID`` /
  ``RAY_NODE_TYPE_NAME`` the node was started with; Ray also adds label
  ``ray.io/node-group=<RAY_NODE_TYPE_NAME>``.
- An idle node has ``status == IDLE`` and a growing ``idle_duration_ms``; a busy one has
  ``status == RUNNING``, ``idle_duration_ms == 0`` and ``node_activity`` reasons.
- A pending actor shows in ``pending_resource_requests`` as
  ``{request: {resources_bundle: {CPU: 1.0}, label_selectors: [{}]}, count: 1}``.
- Placement groups show in ``pending_gang_resource_requests``: one entry per group with
  ``requests`` (one per bundle), ``details = "<pg id hex>:<STRATEGY>|PENDING"``; STRICT_SPREAD
  bundles carry ``anti_affinity {label_name: "_PG_<id>"}``, STRICT_PACK ``affinity``.
- ``ray.autoscaler.sdk.request_resources(num_cpus=4)`` (autoscaler v1 semantics, the default)
  writes JSON ``[{"CPU": 1}, {"CPU": 1}, {"CPU": 1}, {"CPU": 1}]`` to GCS KV key
  ``autoscaler_resource_request`` (namespace None); ``cluster_resource_constraints`` stays empty.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from rayscale import processes
from rayscale.local import raynodes
from rayscale.local.raynodes import LocalRayCluster, NodeResources

pytestmark = pytest.mark.ray

Report = Callable[[str, Any], None]
WORKER = "smoke-cpu-worker-7xk2p"
GROUP = "cpu-group"
ONE_CPU = NodeResources(num_cpus=1)

PENDING_DRIVER = """
import time
import ray
from ray.util.placement_group import placement_group

ray.init()

@ray.remote(num_cpus=1)
class Sleeper:
    def ping(self):
        return "pong"

actors = [Sleeper.remote() for _ in range(2)]          # 1 CPU in the cluster: one stays pending
spread = placement_group([{"CPU": 1}] * 2, strategy="STRICT_SPREAD")  # infeasible: 1 worker
pack = placement_group([{"CPU": 1}] * 2, strategy="STRICT_PACK")      # infeasible: 1 CPU/node
ready, _ = ray.wait([a.ping.remote() for a in actors], num_returns=1, timeout=120)
print("SUBMITTED", len(ready), flush=True)
time.sleep(600)
"""

REQUEST_RESOURCES_DRIVER = """
import ray
from ray.autoscaler.sdk import request_resources

ray.init()
request_resources(num_cpus=4)
print("REQUESTED", flush=True)
"""


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Report:
    """Print a labelled value straight to the terminal (also with output capture on)."""

    def emit(label: str, value: Any) -> None:
        # Lists (demands, KV) one item per line; dicts (node states) one key per line.
        if isinstance(value, list):
            text = "[\n" + ",\n".join(f" {json.dumps(v, sort_keys=True)}" for v in value) + "\n]"
        else:
            text = json.dumps(value, indent=1, sort_keys=True)
        with capsys.disabled():
            print(f"\n[ray-facts] {label}:\n{text}")

    return emit


def as_dict(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def nodes_by_instance(cluster: LocalRayCluster) -> dict[str, Any]:
    return {n.instance_id: n for n in cluster.resource_state().node_states}


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def status_name(node: Any) -> str:
    from ray.core.generated.autoscaler_pb2 import NodeStatus

    return str(NodeStatus.Name(node.status))


@pytest.fixture
def cluster(ray_cluster: Callable[..., LocalRayCluster]) -> Iterator[LocalRayCluster]:
    yield ray_cluster(head=NodeResources(num_cpus=0), workers=[(WORKER, GROUP, ONE_CPU)])


def test_nodes_report_instance_id_group_and_idle(cluster: LocalRayCluster, report: Report) -> None:
    worker = cluster.workers[WORKER]
    report(
        "measurements",
        {
            "head_start_to_ready_s": round(cluster.head.ready_seconds or -1, 2),
            "worker_start_to_joined_s": round(worker.ready_seconds or -1, 2),
            "head_group_rss_mb": cluster.head.rss_bytes() >> 20,
            "worker_group_rss_mb": worker.rss_bytes() >> 20,
            "worker_tree_rss_mb": processes.process_tree_rss(worker.pid) >> 20,
        },
    )
    nodes = nodes_by_instance(cluster)
    head = nodes[cluster.head.name]
    assert head.ray_node_type_name == raynodes.HEAD_GROUP
    assert "CPU" not in head.total_resources
    node = nodes[WORKER]
    assert node.ray_node_type_name == GROUP
    assert node.total_resources["CPU"] == 1.0
    assert node.labels["ray.io/node-group"] == GROUP

    def idle_worker() -> Any:
        n = nodes_by_instance(cluster)[WORKER]
        return n if status_name(n) == "IDLE" and n.idle_duration_ms > 0 else None

    idle = wait_for(idle_worker, 60, "the worker to report IDLE")
    time.sleep(1.5)
    later = nodes_by_instance(cluster)[WORKER]
    assert status_name(later) == "IDLE"
    assert later.idle_duration_ms >= idle.idle_duration_ms + 1000
    report("idle worker NodeState", as_dict(later))


def test_pending_actor_and_placement_groups(cluster: LocalRayCluster, report: Report) -> None:
    driver = cluster.start_python(PENDING_DRIVER, name="pending-driver")
    state = wait_for(
        lambda: (
            s
            if (s := cluster.resource_state()).pending_resource_requests
            and len(s.pending_gang_resource_requests) == 2
            else None
        ),
        120,
        f"pending demand (driver log: {driver.log_path})",
    )
    pending = [as_dict(r) for r in state.pending_resource_requests]
    report("pending_resource_requests", pending)
    assert pending == [
        {"request": {"resources_bundle": {"CPU": 1.0}, "label_selectors": [{}]}, "count": "1"}
    ]
    gangs = {g.details.split(":")[1]: g for g in state.pending_gang_resource_requests}
    report("pending_gang_resource_requests", [as_dict(g) for g in gangs.values()])
    spread, pack = gangs["STRICT_SPREAD|PENDING"], gangs["STRICT_PACK|PENDING"]
    assert [dict(r.resources_bundle) for r in spread.requests] == [{"CPU": 1.0}] * 2
    assert all(r.placement_constraints[0].HasField("anti_affinity") for r in spread.requests)
    assert spread.requests[0].placement_constraints[0].anti_affinity.label_name.startswith("_PG_")
    assert all(r.placement_constraints[0].HasField("affinity") for r in pack.requests)

    busy = nodes_by_instance(cluster)[WORKER]
    report("busy worker NodeState", as_dict(busy))
    assert status_name(busy) == "RUNNING"
    assert busy.idle_duration_ms == 0
    assert list(busy.node_activity)

    result = driver.stop()
    assert result.clean, result
    wait_for(
        lambda: status_name(nodes_by_instance(cluster)[WORKER]) == "IDLE",
        60,
        "the worker to become IDLE again after the driver exited",
    )
    assert not cluster.resource_state().pending_resource_requests


def test_request_resources_kv_shape(cluster: LocalRayCluster, report: Report) -> None:
    assert cluster.resource_request_kv() is None
    driver = cluster.start_python(REQUEST_RESOURCES_DRIVER, name="request-resources")
    assert driver.wait(120) == 0, driver.log_tail()
    assert "REQUESTED" in driver.log_tail()
    value = cluster.resource_request_kv()
    report("GCS KV autoscaler_resource_request after request_resources(num_cpus=4)", value)
    assert value == [{"CPU": 1}] * 4
    state = cluster.resource_state()
    assert list(state.cluster_resource_constraints) == []


def test_token_auth_is_enforced(ray_cluster: Callable[..., LocalRayCluster]) -> None:
    user_token = Path.home() / ".ray" / "auth_token"
    before = user_token.stat().st_mtime if user_token.exists() else None
    cluster = ray_cluster(head=NodeResources(num_cpus=0))

    assert cluster.token_path.stat().st_mode & 0o777 == 0o600
    assert cluster.client_env()["RAY_AUTH_MODE"] == "token"
    for name, env in [
        ("no-token", {"RAY_AUTH_MODE": "disabled"}),
        ("wrong-token", {"RAY_AUTH_TOKEN": "0" * 64}),  # RAY_AUTH_TOKEN beats the token file
    ]:
        with pytest.raises(raynodes.RayNodeExitedError) as refused:
            cluster.start_worker(name, GROUP, ONE_CPU, env=env, timeout=90)
        assert refused.value.auth_refused, refused.value.log_tail
        assert "InvalidAuthToken" in refused.value.log_tail

    from ray._raylet import GcsClient
    from ray.exceptions import AuthenticationError

    with raynodes.client_auth(None), pytest.raises(AuthenticationError):
        GcsClient(address=cluster.gcs_address).internal_kv_get(b"x", None)
    assert len(cluster.resource_state().node_states) == 1  # with the token: fine

    after = user_token.stat().st_mtime if user_token.exists() else None
    assert after == before, "~/.ray/auth_token must not be created or modified"


def test_clear_errors_for_busy_port_and_missing_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(raynodes.PortInUseError, match=str(port)):
            raynodes.start_head("busy-port", gcs_port=port)

    monkeypatch.setattr(raynodes, "find_ray_executable", lambda: "/nonexistent/bin/ray")
    with pytest.raises(raynodes.RayNotFoundError, match="/nonexistent/bin/ray"):
        raynodes.start_head("no-ray")
    assert not list(Path("/tmp").glob("rs-busy-port-*")) + list(Path("/tmp").glob("rs-no-ray-*"))

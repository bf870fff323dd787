"""The sidecar's lean gRPC GCS client against a real Ray 2.60 head, beside Ray's own client.

The same :class:`GcsView` on both transports must read the same nodes and demand, the same
request_resources and the same published ``ray status`` document, and drain alike; without
the cluster's token the GCS refuses the lean client, with it the calls succeed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import grpc
import pytest

from rayscale.local.raynodes import NodeResources
from rayscale.protocol import AUTOSCALING_STATUS_KV_KEY, RESOURCE_REQUEST_KV_KEY
from rayscale.ray.gcs import GcsView
from rayscale.ray.gcs_grpc import GrpcGcsClient
from rayscale.waiting import wait_until
from tests.ray.conftest import ClusterFactory

pytestmark = pytest.mark.ray

WORKER = "grpc-cpu-worker-aaaaa"
REQUEST = """
import ray
from ray.autoscaler.sdk import request_resources
ray.init()
request_resources(num_cpus=2)
print("REQUESTED", flush=True)
"""


def test_the_lean_client_reads_writes_and_drains_like_rays_own(
    ray_cluster: ClusterFactory,
) -> None:
    cluster = ray_cluster(workers=[(WORKER, "cpu-group", NodeResources(num_cpus=1))])
    env = cluster.client_env()
    driver = subprocess.run(
        [sys.executable, "-c", REQUEST], env=cluster.client_environ(), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert "REQUESTED" in driver.stdout, driver.stderr[-2000:]
    lean = GcsView(cluster.gcs_address, client=GrpcGcsClient(cluster.gcs_address, env))
    with cluster.gcs() as ray_client:
        ours = GcsView(cluster.gcs_address, client=ray_client)
        nodes, demand = lean.nodes_and_demand()
        ray_nodes, ray_demand = ours.nodes_and_demand()
        assert {n.instance_id for n in nodes} == {n.instance_id for n in ray_nodes}
        assert WORKER in {n.instance_id for n in nodes}
        assert demand == ray_demand
        assert lean.requested_resources() == ours.requested_resources() == [{"CPU": 1.0}] * 2

        lean.publish_status(b'{"from": "lean"}')
        raw = ray_client.internal_kv_get(AUTOSCALING_STATUS_KV_KEY, None)
        assert json.loads(raw) == {"from": "lean"}
        missing = lean.client.internal_kv_get(b"rayscale-no-such-key", None, timeout=5)
        assert missing is None and ray_client.internal_kv_get(b"rayscale-no-such-key", None) is None

        worker = next(n for n in nodes if n.instance_id == WORKER)
        accepted, message = lean.drain(worker.node_id, "idle in a test")
        assert accepted, message

        def drained() -> bool:  # an idle node drains at once: draining, then gone
            status = {n.instance_id: n.status for n in ours.nodes_and_demand()[0]}
            return status.get(WORKER, "draining") == "draining"

        wait_until(drained, 30, f"{WORKER} draining or gone")

    wrong = GrpcGcsClient(cluster.gcs_address, {**env, "RAY_AUTH_TOKEN": "not-the-token"})
    with pytest.raises(grpc.RpcError) as refused:
        wrong.internal_kv_get(RESOURCE_REQUEST_KV_KEY, None, timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, refused.value
    lean.client.close()
    wrong.close()

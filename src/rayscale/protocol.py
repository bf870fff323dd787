"""Interface facts of Ray and KubeRay that several parts of rayscale speak: GCS keys, node
states, environment variables and labels. Each is defined here once.

No I/O: constants only (values from Ray 2.60 and KubeRay v1; see
``shared/reference/kuberay-protocol.md``).
"""

from __future__ import annotations

from enum import IntEnum

# -- GCS internal KV -------------------------------------------------------------------------
RESOURCE_REQUEST_KV_KEY = b"autoscaler_resource_request"
"""Where Ray v1's ``ray.autoscaler.sdk.request_resources`` writes its JSON list of bundles."""
AUTOSCALING_STATUS_KV_KEY = b"__autoscaling_status"
"""What ``ray status`` reads with Ray v1 (``ray_constants.DEBUG_AUTOSCALING_STATUS``)."""


class NodeStatus(IntEnum):
    """``autoscaler_pb2.NodeStatus`` in ``ClusterResourceState.node_states``."""

    UNSPECIFIED = 0
    RUNNING = 1
    DEAD = 2
    IDLE = 3
    DRAINING = 4


DRAIN_REASON_IDLE_TERMINATION = 1
"""``autoscaler_pb2.DrainNodeReason.DRAIN_NODE_REASON_IDLE_TERMINATION``: the raylet may refuse."""

# -- environment of Ray containers -----------------------------------------------------------
INSTANCE_ID_ENV = "RAY_CLOUD_INSTANCE_ID"  # = pod name; GCS reports it as NodeState.instance_id
NODE_TYPE_ENV = "RAY_NODE_TYPE_NAME"  # = group name; GCS reports it as ray_node_type_name
AUTH_MODE_ENV = "RAY_AUTH_MODE"
AUTH_TOKEN_ENV = "RAY_AUTH_TOKEN"
AUTH_TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
ADDRESS_ENV = "RAY_ADDRESS"

# -- pod labels ------------------------------------------------------------------------------
GROUP_LABEL = "ray.io/group"
CLUSTER_LABEL = "ray.io/cluster"
NODE_TYPE_LABEL = "ray.io/node-type"
REPLICA_LABEL = "ray.io/worker-group-replica-name"

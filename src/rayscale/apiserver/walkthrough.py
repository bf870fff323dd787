"""The request bodies of KubeRay's API-server autoscaling walkthrough, verbatim.

Used by the tests (the walkthrough through HTTP) and by ``rayscale bench apiserver``. The
ConfigMap ``ray-example`` it mounts is the one in the shipped sample
``ray-cluster.autoscaler.yaml`` (``rayscale apply -f`` stores it).
"""

from __future__ import annotations

import copy
from typing import Any

TEMPLATE: dict[str, Any] = {
    "name": "default-template",
    "namespace": "default",
    "cpu": 2,
    "memory": 4,
}

_VOLUMES: list[dict[str, Any]] = [
    {
        "name": "code-sample",
        "mountPath": "/home/ray/samples",
        "volumeType": "CONFIGMAP",
        "source": "ray-example",
        "items": {
            "detached_actor.py": "detached_actor.py",
            "terminate_detached_actor.py": "terminate_detached_actor.py",
        },
    }
]

CLUSTER: dict[str, Any] = {
    "name": "test-cluster",
    "namespace": "default",
    "user": "boris",
    "clusterSpec": {
        "enableInTreeAutoscaling": True,
        "autoscalerOptions": {
            "upscalingMode": "Default",
            "idleTimeoutSeconds": 30,
            "cpu": "500m",
            "memory": "512Mi",
        },
        "headGroupSpec": {
            "computeTemplate": "default-template",
            "image": "rayproject/ray:2.9.0-py310",
            "serviceType": "NodePort",
            "rayStartParams": {
                "dashboard-host": "0.0.0.0",
                "metrics-export-port": "8080",
                "num-cpus": "0",
            },
            "volumes": _VOLUMES,
        },
        "workerGroupSpec": [
            {
                "groupName": "small-wg",
                "computeTemplate": "default-template",
                "image": "rayproject/ray:2.9.0-py310",
                "replicas": 0,
                "minReplicas": 0,
                "maxReplicas": 5,
                "rayStartParams": {"node-ip-address": "$MY_POD_IP"},
                "volumes": _VOLUMES,
            }
        ],
    },
}


def job(name: str, script: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "default",
        "user": "boris",
        "entrypoint": f"python /home/ray/samples/{script} actor1",
        "clusterSelector": {"ray.io/cluster": "test-cluster"},
    }


CREATE_ACTOR = job("create-actor", "detached_actor.py")
DELETE_ACTOR = job("delete-actor", "terminate_detached_actor.py")


def cluster(name: str = "test-cluster", idle_timeout: int | None = None) -> dict[str, Any]:
    """The walkthrough's cluster body, renamed and with another idle timeout if asked."""
    body = copy.deepcopy(CLUSTER)
    body["name"] = name
    if idle_timeout is not None:
        body["clusterSpec"]["autoscalerOptions"]["idleTimeoutSeconds"] = idle_timeout
    return body


def config_map_yaml() -> str:
    """The walkthrough's ConfigMap ``ray-example`` alone (what its ``kubectl apply`` adds),
    taken from the shipped sample."""
    import yaml

    from rayscale.spec import sample_path

    docs = yaml.safe_load_all(sample_path("autoscaler").read_text())
    config_map = next(d for d in docs if d and d.get("kind") == "ConfigMap")
    return yaml.safe_dump(config_map, sort_keys=False)

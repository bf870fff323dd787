"""KubeRay's autoscaling walkthroughs on `rayscale dev-cluster`, run as a user runs them.

The commands are the walkthroughs' own: `kubectl apply -f`, `kubectl get pods`, `kubectl
logs HEAD -c autoscaler`, `kubectl delete`, with `kubectl exec` replaced by `rayscale exec
--kubernetes` (the process kubelet has no streaming exec). Everything is real: kube-apiserver,
etcd, kube-controller-manager, the operator, the process kubelet, and Ray's processes (head,
workers, and our autoscaler sidecar in the head pod). Both walkthroughs run side by side in
one dev cluster, each in its own namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rayscale import processes
from rayscale.devcluster.state import process_marker
from rayscale.spec.samples import sample_path
from rayscale.waiting import wait_until

pytestmark = [pytest.mark.k8s, pytest.mark.ray]

NAME = "raycluster-autoscaler"
IDLE_TIMEOUT_S = 10
SCALE_WAIT_S = 120.0
RAYSCALE = [sys.executable, "-m", "rayscale.cli"]


@dataclass
class Dev:
    """A running dev cluster and the shell a walkthrough reader would have."""

    name: str
    env: dict[str, str]
    workdir: Path

    def sh(self, script: str, check: bool = True) -> str:
        """Run ``script`` in bash after `eval "$(rayscale dev-cluster env)"`."""
        prelude = f'eval "$({" ".join(RAYSCALE)} dev-cluster env --name {self.name})"'
        done = subprocess.run(
            ["bash", "-c", f"set -euo pipefail; {prelude}; {script}"],
            env=self.env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(
                f"`{script}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        return done.stdout

    def json(self, script: str) -> Any:
        return json.loads(self.sh(script))

    def rayscale_exec(self, namespace: str, *argv: str) -> str:
        cmd = " ".join(RAYSCALE) + f" exec --kubernetes --namespace {namespace} {NAME} -- "
        return self.sh(cmd + " ".join(argv))

    def worker_pods(self, namespace: str) -> list[dict[str, Any]]:
        listed = self.json(f"kubectl get pods -n {namespace} -l ray.io/node-type=worker -o json")
        return [p for p in listed["items"] if not p["metadata"].get("deletionTimestamp")]

    def running_workers(self, namespace: str) -> int:
        return sum(1 for p in self.worker_pods(namespace) if p["status"].get("phase") == "Running")

    def cluster(self, namespace: str) -> dict[str, Any]:
        result: dict[str, Any] = self.json(f"kubectl get raycluster {NAME} -n {namespace} -o json")
        return result

    def head_pod(self, namespace: str) -> dict[str, Any]:
        listed = self.json(f"kubectl get pods -n {namespace} -l ray.io/node-type=head -o json")
        assert len(listed["items"]) == 1, listed["items"]
        head: dict[str, Any] = listed["items"][0]
        return head


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    home = tmp_path_factory.mktemp("rayscale-home")
    env = {**os.environ, "RAYSCALE_HOME": str(home)}
    env.pop("KUBECONFIG", None)
    name = f"walk-{uuid.uuid4().hex[:6]}"
    up = subprocess.run(
        [*RAYSCALE, "dev-cluster", "up", "--name", name],
        env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    marker = process_marker(home / "dev-clusters" / name)  # what every process of it carries
    try:
        yield Dev(name, env, tmp_path_factory.mktemp("walkthrough"))
    finally:
        down = subprocess.run(
            [*RAYSCALE, "dev-cluster", "down", "--name", name],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        left = processes.find_leftovers(markers=[marker])
        processes.kill_processes(left)
        assert down.returncode == 0, down.stderr
        assert not left, [p.describe() for p in left]


def _sample(dev: Dev, sample: str) -> Path:
    """A KubeRay sample with the walkthrough's shorter idle timeout (60 s there)."""
    text = Path(sample_path(sample)).read_text(encoding="utf-8")
    assert "idleTimeoutSeconds: 60" in text
    path = dev.workdir / f"{sample}.yaml"
    path.write_text(text.replace("idleTimeoutSeconds: 60", f"idleTimeoutSeconds: {IDLE_TIMEOUT_S}"))
    return path


def _apply(dev: Dev, sample: str) -> str:
    namespace = f"walk-{uuid.uuid4().hex[:6]}"
    dev.sh(f"kubectl create namespace {namespace}")
    dev.sh(f"kubectl apply -n {namespace} -f {_sample(dev, sample)}")

    def head_ready() -> bool:
        pods = dev.json(f"kubectl get pods -n {namespace} -l ray.io/node-type=head -o json")
        statuses = [s for p in pods["items"] for s in p["status"].get("containerStatuses", [])]
        return len(statuses) == 2 and all(s.get("ready") for s in statuses)

    wait_until(
        head_ready,
        SCALE_WAIT_S,
        "the head pod's 2 containers to be ready",
        detail=lambda: dev.sh(f"kubectl get pods -n {namespace} -o wide", check=False),
    )
    return namespace


def _wait_workers(dev: Dev, namespace: str, count: int, what: str) -> None:
    wait_until(
        lambda: (
            dev.running_workers(namespace) == count and len(dev.worker_pods(namespace)) == count
        ),
        SCALE_WAIT_S,
        what,
        interval=1.0,
        detail=lambda: dev.sh(f"kubectl get pods -n {namespace}", check=False),
    )


def test_the_detached_actor_walkthrough(dev: Dev) -> None:
    ns = _apply(dev, "autoscaler")
    head = dev.head_pod(ns)
    assert [c["name"] for c in head["spec"]["containers"]] == ["ray-head", "autoscaler"]
    dev.sh(f"kubectl get serviceaccount,role,rolebinding {NAME} -n {ns}")

    dev.rayscale_exec(ns, "python3", "/home/ray/samples/detached_actor.py", "actor1")
    _wait_workers(dev, ns, 1, "actor1 to get one worker pod")
    assert dev.cluster(ns)["status"]["desiredWorkerReplicas"] == 1

    dev.rayscale_exec(ns, "python3", "/home/ray/samples/detached_actor.py", "actor2")
    _wait_workers(dev, ns, 2, "actor2 to get a second worker pod")
    assert dev.cluster(ns)["status"]["desiredWorkerReplicas"] == 2
    assert "actor1" in dev.rayscale_exec(ns, "ray", "list", "actors")

    dev.rayscale_exec(ns, "python3", "/home/ray/samples/terminate_detached_actor.py", "actor1")
    dev.rayscale_exec(ns, "python3", "/home/ray/samples/terminate_detached_actor.py", "actor2")
    _wait_workers(dev, ns, 0, "both idle workers to go after the idle timeout")
    wait_until(
        lambda: dev.cluster(ns)["spec"]["workerGroupSpecs"][0]["scaleStrategy"]
        .get("workersToDelete") == [],
        30, "workersToDelete to return to []",
    )  # fmt: skip

    status = dev.rayscale_exec(ns, "ray", "status")
    assert "Node status" in status, status
    head_name = head["metadata"]["name"]
    tail = dev.sh(f"kubectl logs {head_name} -n {ns} -c autoscaler | tail -n 20")
    # The walkthrough's `tail -n 20` shows the end of the latest status block.
    assert "Pending Demands:" in tail and "small-group: desired 0" in tail, tail
    full = dev.sh(f"kubectl logs {head_name} -n {ns} -c autoscaler")
    assert "launch:" in full and "delete:" in full, full[-3000:]

    dev.sh(f"kubectl delete raycluster {NAME} -n {ns}")
    wait_until(
        lambda: not dev.json(f"kubectl get pods -n {ns} -o json")["items"],
        60, "every pod of the deleted RayCluster to go (ownerReferences)",
    )  # fmt: skip


def test_request_resources_walkthrough(dev: Dev) -> None:
    ns = _apply(dev, "autoscaler-min1")
    _wait_workers(dev, ns, 1, "minReplicas 1 worker")
    request = "import ray; ray.init(); ray.autoscaler.sdk.request_resources(num_cpus={})"
    dev.rayscale_exec(ns, "python", "-c", repr(request.format(4)))
    _wait_workers(dev, ns, 3, "request_resources(num_cpus=4) to give 3 workers with the head")
    dev.rayscale_exec(ns, "python", "-c", repr(request.format(1)))
    _wait_workers(dev, ns, 1, "the lowered request to let the extra workers go")

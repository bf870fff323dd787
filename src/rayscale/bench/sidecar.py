"""``rayscale bench sidecar``: the Kubernetes autoscaler sidecar's reaction time and memory.

Real parts: a throwaway kube-apiserver + etcd (the k8s test tier's harness) holding the
walkthrough's RayCluster, a real Ray head (0 CPUs, as in the sample) and ``rayscale
autoscaler`` as its own process, as in the head pod. No operator or kubelet runs, so the
patched replicas never become pods and every actor stays pending.

Per trial a driver creates one 1-CPU detached actor; the figures are
- reaction: the actor's demand first visible in GCS (polled every 5 ms) -> the RayCluster's
  ``replicas`` raised, as a watch on the API server sees it (what the operator would react
  to); the sidecar reads GCS every 0.1 s, so up to that much of it is the sidecar's polling;
- the sidecar process's RSS (max over the run; Ray's own sidecar is given 512Mi).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from lightkube import Client, KubeConfig
from lightkube.codecs import from_dict

from rayscale import processes
from rayscale.kube.crds import install_crds
from rayscale.kube.resources import RayCluster
from rayscale.local.raynodes import NodeResources, start_head
from rayscale.ray.gcs import GcsView
from rayscale.ray.gcs_grpc import GrpcGcsClient
from rayscale.testing.kube import KubeBinaries, LocalKube
from rayscale.testing.kube_ray import retry_not_found, sample_cluster
from rayscale.waiting import wait_until

NAME = "raycluster-autoscaler"
REACTION_TARGET_S = 0.5  # issue "Kubernetes I": pending demand -> CR patch, median
RSS_TARGET_MB = 100.0  # issue "Kubernetes I" (Ray's own sidecar is given 512Mi)
NAMESPACE = "default"
_ACTOR = """
import ray
@ray.remote(num_cpus=1)
class A:
    pass
ray.init(namespace="bench")
A.options(name="{name}", lifetime="detached").remote()
"""


class _ReplicaWatch:
    """Records when the CR's first worker group reaches each replicas value."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: dict[int, float] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            for _, obj in self.client.watch(
                RayCluster, namespace=NAMESPACE, fields={"metadata.name": NAME}
            ):
                replicas = int(obj.spec["workerGroupSpecs"][0].get("replicas", 0))
                self.seen.setdefault(replicas, time.monotonic())
        except Exception:  # the API server stops at the end of the run: the watch ends
            return


def _pending_demands(gcs: GcsView) -> int:
    """Pending task/actor shapes in GCS, read in about a millisecond (the bench polls it)."""
    return sum(r.count for r in gcs.state().pending_resource_requests)


def run(trials: int = 5, period: float = 1.0) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="rs-bench-sidecar-"))
    with LocalKube(work / "kube", KubeBinaries.from_env()) as kube:
        client = Client(config=KubeConfig.from_file(kube.kubeconfig), field_manager="bench")
        install_crds(client)
        cluster: Any = from_dict(sample_cluster("autoscaler"))
        retry_not_found(lambda: client.create(cluster, namespace=NAMESPACE))
        ray = start_head(
            "rs-bench-sidecar", NodeResources(num_cpus=0), head_name=f"{NAME}-head-bench"
        )
        sidecar = None
        try:
            argv = [
                sys.executable, "-m", "rayscale.cli", "autoscaler", "--cluster", NAME,
                "--namespace", NAMESPACE, "--kubeconfig", str(kube.kubeconfig),
                "--gcs", ray.gcs_address, "--period", str(period),
            ]  # fmt: skip
            sidecar = processes.spawn(
                argv, log_path=work / "sidecar.log", env=ray.client_environ(dict(os.environ))
            )
            wait_until(
                lambda: "autoscaling RayCluster" in sidecar.log_tail(20000),
                120,
                "the sidecar to start",
                detail=sidecar.log_tail,
            )
            gcs = GcsView(ray.gcs_address, client=GrpcGcsClient(ray.gcs_address, ray.client_env()))
            watch = _ReplicaWatch(client)
            watch.start()
            proc = psutil.Process(sidecar.pid)
            rss = [proc.memory_info().rss]
            reactions: list[float] = []
            for trial in range(1, trials + 1):
                before = _pending_demands(gcs)
                ray.start_python(_ACTOR.format(name=f"a{trial}"), name=f"driver{trial}")

                def pending(b: int = before) -> float | None:
                    return time.monotonic() if _pending_demands(gcs) > b else None

                seen = wait_until(
                    pending,
                    60,
                    f"actor a{trial} pending in GCS",
                    interval=0.005,
                )

                def raised(t: int = trial) -> float | None:
                    return watch.seen.get(t)

                patched = wait_until(raised, 60, f"replicas {trial}", interval=0.005)
                reactions.append(patched - seen)
                rss.append(proc.memory_info().rss)
            return {
                "bench": "sidecar",
                "trials": trials,
                "reaction_s": [round(r, 3) for r in reactions],
                "reaction_median_s": round(statistics.median(reactions), 3),
                "sidecar_rss_max_mb": round(max(rss) / 2**20, 1),
                "log": str(work / "sidecar.log"),
            }
        finally:
            if sidecar is not None:
                sidecar.stop(10)
            left = ray.stop()
            client.close()
            if left:
                print(f"warning: processes left: {[p.describe() for p in left]}", file=sys.stderr)


def main(json_output: bool, trials: int, period: float) -> int:
    result = run(trials, period)
    if json_output:
        print(json.dumps(result))
    else:
        reaction, rss = result["reaction_median_s"], result["sidecar_rss_max_mb"]
        print(
            f"sidecar reaction (demand in GCS -> CR patched), {trials} trials: "
            f"median {reaction:.3f}s (target <= {REACTION_TARGET_S}s: "
            f"{_verdict(reaction, REACTION_TARGET_S)}), all {result['reaction_s']}\n"
            f"sidecar RSS max {rss} MB "
            f"(target <= {RSS_TARGET_MB:.0f} MB: {_verdict(rss, RSS_TARGET_MB)})"
        )
    return 0


def _verdict(value: float, target: float) -> str:
    return "met" if value <= target else "NOT met"

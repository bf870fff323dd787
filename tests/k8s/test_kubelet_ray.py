"""The KubeRay sample on the process kubelet: the operator creates the pods, the kubelet runs
the head's Ray node (with the cluster's token from its Secret), the autoscaler sidecar and a
worker as local processes, and a client with the token reaches the cluster."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kopf
import psutil
import pytest
from lightkube.codecs import from_dict
from lightkube.resources.core_v1 import Pod, Secret

from rayscale import processes
from rayscale.builders.operator import operator_head_pod, token_secret
from rayscale.devcluster import execrecord
from rayscale.devcluster.kubelet import Kubelet
from rayscale.kube.resources import RayCluster
from rayscale.processes import find_leftovers
from rayscale.spec import parse_cluster
from rayscale.testing.controller_manager import ControllerManager
from rayscale.testing.kube import KubeSession
from rayscale.testing.kube_ray import retry_not_found, sample_cluster, sample_documents
from rayscale.waiting import wait_until
from tests.k8s.kubelet_fixtures import kubectl, kubelet
from tests.k8s.ray_fixtures import ns, operator, ray_crds

__all__ = ["kubelet", "ns", "operator", "ray_crds"]

pytestmark = [pytest.mark.k8s, pytest.mark.ray]
NAME = "raycluster-autoscaler"
BOOT = 180.0

CLIENT = """
import json, ray
ray.init()
print(json.dumps(sorted(n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"])))
"""


def _pods(kube: KubeSession, ns: str, node_type: str) -> list[Any]:
    labels = {"ray.io/cluster": NAME, "ray.io/node-type": node_type}
    return list(kube.client.list(Pod, namespace=ns, labels=labels))


def _ready(pod: Any) -> bool:
    status = pod.status
    if status is None or status.phase != "Running":
        return False
    return any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])


def _one_ready(kube: KubeSession, ns: str, node_type: str) -> Any:
    pods = [p for p in _pods(kube, ns, node_type) if _ready(p)]
    return pods[0] if pods else None


def _describe(kube: KubeSession, ns: str) -> str:
    return "; ".join(
        f"{p.metadata.name}: {p.status.phase if p.status else None} "
        f"{[(c.name, c.state) for c in (p.status.containerStatuses or [])] if p.status else ''}"
        for p in kube.client.list(Pod, namespace=ns)
    )


def test_the_sample_cluster_runs_on_the_process_kubelet(
    kube: KubeSession,
    ns: str,
    operator: kopf.Memo,
    controller_manager: ControllerManager,
    kubelet: Kubelet,
    tmp_path: Path,
) -> None:
    config_map = next(d for d in sample_documents("autoscaler") if d["kind"] == "ConfigMap")
    kube.client.create(from_dict(config_map), namespace=ns)
    doc = sample_cluster("autoscaler")
    doc["spec"]["workerGroupSpecs"][0].update(minReplicas=1, replicas=1)
    retry_not_found(lambda: kube.client.create(from_dict(doc), namespace=ns))
    t0 = time.monotonic()
    head = wait_until(
        lambda: _one_ready(kube, ns, "head"), BOOT, "the head pod Running and Ready",
        detail=lambda: _describe(kube, ns), interval=1.0,
    )  # fmt: skip
    head_s = time.monotonic() - t0
    states = {c.name: c for c in head.status.containerStatuses}
    assert set(states) == {"ray-head", "autoscaler"}
    assert all(c.ready and c.state.running is not None for c in states.values())
    assert head.status.podIP == "127.0.0.1"

    # The Ray node runs with the operator's token: a client with the Secret's token connects.
    record = execrecord.read_record(
        execrecord.record_path(kubelet.state_dir, ns, head.metadata.name, "ray-head")
    )
    address = record.env["RAY_ADDRESS"]
    assert address and not address.endswith(":6379"), address
    sidecar = execrecord.read_record(
        execrecord.record_path(kubelet.state_dir, ns, head.metadata.name, "autoscaler")
    )
    assert sidecar.env["RAY_ADDRESS"] == address
    secret = kube.client.get(Secret, f"{NAME}-ray-token", namespace=ns)
    token = tmp_path / "token"
    token.write_bytes(base64.b64decode((secret.data or {})["auth_token"]))
    env = {"PATH": "/usr/bin:/bin", "RAY_ADDRESS": address, "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN_PATH": str(token)}  # fmt: skip

    wait_until(
        lambda: _one_ready(kube, ns, "worker"), BOOT, "the worker pod Running and Ready",
        detail=lambda: _describe(kube, ns), interval=1.0,
    )  # fmt: skip
    worker_s = time.monotonic() - t0
    print(
        f"figures: RayCluster created -> head Ready {head_s:.1f} s, worker Ready {worker_s:.1f} s"
    )
    done = subprocess.run(
        [sys.executable, "-c", CLIENT], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # The head (num-cpus 0) and the small-group worker (1 CPU) are alive in Ray.
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [0, 1.0]

    # The sidecar talks to the API server with its service account and to Ray's GCS.
    def sidecar_log() -> str:
        out = kubectl(kube, "logs", head.metadata.name, "-c", "autoscaler", "-n", ns)
        return out if "autoscaling RayCluster" in out else ""

    wait_until(sidecar_log, 60, "the autoscaler sidecar's log", interval=1.0)
    head_log = kubectl(kube, "logs", head.metadata.name, "-c", "ray-head", "-n", ns)
    assert head_log.strip(), "the Ray head's start log is served"

    kube.client.delete(RayCluster, NAME, namespace=ns)
    t1 = time.monotonic()
    wait_until(
        lambda: not list(kube.client.list(Pod, namespace=ns)), 120, "every pod gone",
        detail=lambda: _describe(kube, ns), interval=0.2,
    )  # fmt: skip
    print(f"figures: RayCluster deleted -> every pod gone {time.monotonic() - t1:.1f} s")
    assert not kubelet.leftovers()


def test_sigterm_to_the_kubelet_process_stops_its_ray_nodes(
    kube: KubeSession, ns: str, controller_manager: ControllerManager, tmp_path: Path
) -> None:
    """A head pod (the operator's manifest, pinned to a kubelet run as a process): SIGTERM to
    the kubelet stops the Ray node's whole process group and leaves nothing behind."""
    doc = sample_cluster("autoscaler")
    doc["spec"]["enableInTreeAutoscaling"] = False  # no sidecar, so no ServiceAccount needed
    doc["spec"]["headGroupSpec"]["template"]["spec"].pop("volumes")
    doc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0].pop("volumeMounts")
    doc["metadata"]["namespace"] = ns
    cluster = parse_cluster(doc)
    secret = token_secret(cluster, "t0ken", None)
    secret["metadata"].pop("ownerReferences")  # no RayCluster object in this test
    kube.client.create(from_dict(secret), namespace=ns)
    pod = operator_head_pod(cluster, None)
    pod["metadata"].pop("generateName")
    pod["metadata"].pop("ownerReferences")
    pod["metadata"]["name"] = "pinned-head"
    node = f"proc-{ns}"
    pod["spec"]["nodeName"] = node

    pki = kube.cluster.pki
    state = tmp_path / "state"
    argv = [
        sys.executable, "-m", "rayscale.devcluster.kubelet", f"--kubeconfig={kube.kubeconfig}",
        f"--node-name={node}", f"--state-dir={state}", f"--tls-cert-file={pki.kubelet_cert}",
        f"--tls-private-key-file={pki.kubelet_key}", f"--client-ca-file={pki.ca_cert}",
    ]  # fmt: skip
    out = tmp_path / "kubelet.out"
    with open(out, "wb") as stdout, open(tmp_path / "kubelet.err", "wb") as stderr:
        proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr)
    try:
        wait_until(lambda: out.read_text().strip(), 60, "the kubelet's ready line")
        kube.client.create(from_dict(pod), namespace=ns)

        def ready_pid() -> int | None:
            got = kube.client.get(Pod, "pinned-head", namespace=ns)
            if not _ready(got):
                return None
            return int(got.status.containerStatuses[0].containerID.removeprefix("process://"))

        pid = wait_until(ready_pid, BOOT, "the pinned head Ready", interval=1.0)
        rss = psutil.Process(proc.pid).memory_info().rss / 2**20
        print(f"figures: kubelet process RSS with one Ray head pod running {rss:.0f} MB")
        assert psutil.pid_exists(pid)
        members = [p.pid for p in psutil.process_iter() if _pgid(p.pid) == pid]
        assert len(members) > 2, "the Ray node's group: keeper, gcs_server, raylet, ..."
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0, (tmp_path / "kubelet.err").read_text()[-3000:]
        # Zombies (already dead, not yet reaped by their new parent) do not count.
        assert not processes.group_members(pid), [p.pid for p in processes.group_members(pid)]
        assert not find_leftovers(markers=[str(state)])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    kube.client.delete(Pod, "pinned-head", namespace=ns, grace_period=0)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_the_sidecar_scales_the_sample_on_the_process_kubelet(
    kube: KubeSession,
    ns: str,
    operator: kopf.Memo,
    controller_manager: ControllerManager,
    kubelet: Kubelet,
) -> None:
    """The detached-actor walkthrough's core: a detached actor (run with the head container's
    exec record, as ``rayscale exec --kubernetes`` will) makes the sidecar ask for a worker,
    the operator creates its pod and the kubelet runs it; killing the actor lets it go."""
    config_map = next(d for d in sample_documents("autoscaler") if d["kind"] == "ConfigMap")
    kube.client.create(from_dict(config_map), namespace=ns)
    doc = sample_cluster("autoscaler")
    doc["spec"]["autoscalerOptions"]["idleTimeoutSeconds"] = 5
    retry_not_found(lambda: kube.client.create(from_dict(doc), namespace=ns))
    head = wait_until(
        lambda: _one_ready(kube, ns, "head"), BOOT, "the head pod Ready",
        detail=lambda: _describe(kube, ns), interval=1.0,
    )  # fmt: skip
    record = execrecord.read_record(
        execrecord.record_path(kubelet.state_dir, ns, head.metadata.name, "ray-head")
    )
    base = {k: os.environ[k] for k in ("PATH", "HOME", "PYTHONPATH") if k in os.environ}

    def run(script: str) -> None:
        argv = record.argv([sys.executable, f"/home/ray/samples/{script}", "actor1"])
        done = subprocess.run(
            argv, env={**base, **record.env}, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-3000:]

    def desired() -> int:
        raw = kube.client.get(RayCluster, NAME, namespace=ns)
        return int((raw.get("status") or {}).get("desiredWorkerReplicas", -1))

    t0 = time.monotonic()
    run("detached_actor.py")
    wait_until(
        lambda: _one_ready(kube, ns, "worker"), BOOT, "a worker pod Ready for the actor",
        detail=lambda: _describe(kube, ns), interval=0.5,
    )  # fmt: skip
    print(f"figures: detached actor -> worker pod Ready {time.monotonic() - t0:.1f} s")
    wait_until(lambda: desired() == 1, 30, "desiredWorkerReplicas 1", detail=lambda: str(desired()))
    run("terminate_detached_actor.py")
    t1 = time.monotonic()
    wait_until(
        lambda: not _pods(kube, ns, "worker"), 120, "the idle worker pod gone",
        detail=lambda: _describe(kube, ns), interval=0.5,
    )  # fmt: skip
    print(f"figures: actor killed -> worker pod gone {time.monotonic() - t1:.1f} s (idle 5 s)")
    log = kubectl(kube, "logs", head.metadata.name, "-c", "autoscaler", "-n", ns, "--tail=200")
    assert "small-group" in log
    kube.client.delete(RayCluster, NAME, namespace=ns)
    wait_until(lambda: not list(kube.client.list(Pod, namespace=ns)), 120, "every pod gone")

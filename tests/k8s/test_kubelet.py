"""The process kubelet against a real kube-apiserver and kube-controller-manager: it binds
pods to its Node, runs them as local processes with what a kubelet gives containers (env,
downward API, ConfigMap/Secret volumes, a service-account token), reports their status,
serves their logs to ``kubectl logs`` and stops their processes when they are deleted."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psutil
import pytest
from lightkube import ApiError
from lightkube.codecs import from_dict
from lightkube.resources.core_v1 import ConfigMap, Node, Pod, Secret

from rayscale.devcluster import execrecord
from rayscale.devcluster.kubelet import Kubelet
from rayscale.processes import find_leftovers
from rayscale.testing.kube import KubeSession
from rayscale.waiting import wait_until
from tests.k8s.kubelet_fixtures import kubectl, kubelet, pid_of
from tests.k8s.ray_fixtures import ns, ray_crds

__all__ = ["kubelet", "ns", "ray_crds"]

pytestmark = pytest.mark.k8s
WAIT = 60.0

PRINTER = textwrap.dedent(
    """
    import os, sys, time
    for key in ("GREETING", "POD_NAME", "POD_NS", "MY_POD_IP", "NODE", "APP_LABEL",
                "FROM_SECRET", "FROM_CM", "CM_color", "KUBERNETES_SERVICE_HOST"):
        print(f"{key}={os.environ.get(key)}")
    print("file-config=" + open("/etc/config/greeting.txt").read())
    print("file-secret=" + open("/etc/secret/password").read())
    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    print("sa-namespace=" + open(sa + "/namespace").read())
    print("sa-token-bytes=%d" % len(open(sa + "/token").read()))
    print("scratch-is-dir=%s" % os.path.isdir("/scratch"))
    sys.stdout.flush()
    time.sleep(600)
    """
)


def _pod(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "printer"}},
        "spec": {"containers": [{"name": "main", "image": "python:3", "command": command}], **spec},
    }


def _get(kube: KubeSession, name: str, ns: str) -> Any:
    return kube.client.get(Pod, name, namespace=ns)


def _gone(kube: KubeSession, name: str, ns: str) -> bool:
    try:
        _get(kube, name, ns)
    except ApiError as err:
        return err.status.code == 404
    return False


def test_the_node_is_registered_ready_with_its_log_port(
    kube: KubeSession, kubelet: Kubelet
) -> None:
    node = kube.client.get(Node, kubelet.node_name)
    assert node.status is not None and node.status.conditions is not None
    ready = [c for c in node.status.conditions if c.type == "Ready"]
    assert ready and ready[0].status == "True"
    assert node.status.daemonEndpoints.kubeletEndpoint.Port == kubelet.log_port  # type: ignore[union-attr]
    addresses = [(a.type, a.address) for a in node.status.addresses or []]
    assert ("InternalIP", "127.0.0.1") in addresses


def test_a_plain_pod_runs_with_env_and_volumes_and_stops_when_deleted(
    kube: KubeSession, ns: str, kubelet: Kubelet
) -> None:
    kube.client.create(
        ConfigMap.from_dict(
            {"metadata": {"name": "cfg"}, "data": {"greeting.txt": "hello-config", "color": "blue"}}
        ),
        namespace=ns,
    )
    secret = base64.b64encode(b"s3cret").decode()
    kube.client.create(
        Secret.from_dict({"metadata": {"name": "sec"}, "data": {"password": secret}}), namespace=ns
    )
    doc = _pod("printer", ["python3", "-u", "-c", PRINTER])
    container = doc["spec"]["containers"][0]
    container["env"] = [
        {"name": "GREETING", "value": "hi $(POD_NAME)"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "GREETING", "value": "hi $(POD_NAME)"},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "MY_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {
            "name": "APP_LABEL",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}},
        },
        {
            "name": "FROM_SECRET",
            "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}},
        },
        {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
    ]
    container["envFrom"] = [{"configMapRef": {"name": "cfg"}, "prefix": "CM_"}]
    container["volumeMounts"] = [
        {"name": "config", "mountPath": "/etc/config"},
        {"name": "secret", "mountPath": "/etc/secret", "readOnly": True},
        {"name": "scratch", "mountPath": "/scratch"},
    ]
    doc["spec"]["volumes"] = [
        {"name": "config", "configMap": {"name": "cfg"}},
        {"name": "secret", "secret": {"secretName": "sec"}},
        {"name": "scratch", "emptyDir": {}},
    ]
    kube.client.create(from_dict(doc), namespace=ns)

    def running() -> Any:
        pod = _get(kube, "printer", ns)
        ok = pod.status is not None and pod.status.phase == "Running" and pod.status.podIP
        return pod if ok else None

    pod = wait_until(
        running, WAIT, "the pod Running", detail=lambda: str(_get(kube, "printer", ns).status)
    )
    assert pod.spec.nodeName == kubelet.node_name
    assert pod.status.podIP == "127.0.0.1"
    status = pod.status.containerStatuses[0]
    assert status.ready and status.state.running is not None and status.restartCount == 0
    conditions = {c.type: c.status for c in pod.status.conditions}
    assert conditions == {
        "PodScheduled": "True", "Initialized": "True", "ContainersReady": "True", "Ready": "True"
    }  # fmt: skip

    def logs() -> str:
        out = kubectl(kube, "logs", "printer", "-c", "main", "-n", ns)
        return out if "scratch-is-dir" in out else ""

    out = wait_until(logs, WAIT, "the container's output through kubectl logs")
    lines = set(out.splitlines())
    expected = {
        "GREETING=hi printer",
        "POD_NAME=printer",
        f"POD_NS={ns}",
        "MY_POD_IP=127.0.0.1",
        f"NODE={kubelet.node_name}",
        "APP_LABEL=printer",
        "FROM_SECRET=s3cret",
        "FROM_CM=blue",
        "CM_color=blue",
        "KUBERNETES_SERVICE_HOST=127.0.0.1",
        "file-config=hello-config",
        "file-secret=s3cret",
        f"sa-namespace={ns}",
        "scratch-is-dir=True",
    }
    assert expected <= lines, out
    token_line = next(line for line in lines if line.startswith("sa-token-bytes="))
    assert int(token_line.split("=")[1]) > 100
    tail = kubectl(kube, "logs", "printer", "-c", "main", "-n", ns, "--tail=1")
    assert tail.strip() == "scratch-is-dir=True"

    record = execrecord.read_record(
        execrecord.record_path(kubelet.state_dir, ns, "printer", "main")
    )
    assert record.env["FROM_SECRET"] == "s3cret"
    assert record.argv(["cat", "/etc/config/greeting.txt"])[1].endswith("greeting.txt")
    assert record.argv(["cat", "/etc/config/greeting.txt"])[1] != "/etc/config/greeting.txt"

    pid = pid_of(status.containerID)
    assert psutil.pid_exists(pid)
    kube.client.delete(Pod, "printer", namespace=ns)
    wait_until(lambda: _gone(kube, "printer", ns), WAIT, "the pod object deleted by the kubelet")
    assert not psutil.pid_exists(pid)


def test_restart_policy_never_with_a_failing_command_fails_the_pod(
    kube: KubeSession, ns: str, kubelet: Kubelet
) -> None:
    code = "import sys; print('about to fail'); sys.exit(3)"
    doc = _pod("fails", ["python3", "-c", code], restartPolicy="Never")
    kube.client.create(from_dict(doc), namespace=ns)

    def failed() -> Any:
        pod = _get(kube, "fails", ns)
        return pod if pod.status is not None and pod.status.phase == "Failed" else None

    pod = wait_until(
        failed, WAIT, "the pod Failed", detail=lambda: str(_get(kube, "fails", ns).status)
    )
    terminated = pod.status.containerStatuses[0].state.terminated
    assert terminated is not None and terminated.exitCode == 3 and terminated.reason == "Error"
    assert kubectl(kube, "logs", "fails", "-n", ns).strip() == "about to fail"
    # follow ends once the container is not running
    assert kubectl(kube, "logs", "-f", "fails", "-n", ns).strip() == "about to fail"
    kube.client.delete(Pod, "fails", namespace=ns)
    wait_until(lambda: _gone(kube, "fails", ns), WAIT, "the failed pod deleted")


def test_restart_policy_always_restarts_an_exiting_container(
    kube: KubeSession, ns: str, kubelet: Kubelet
) -> None:
    doc = _pod("restarts", ["python3", "-c", "print('run')"])
    kube.client.create(from_dict(doc), namespace=ns)

    def restarted() -> Any:
        pod = _get(kube, "restarts", ns)
        statuses = (pod.status.containerStatuses or []) if pod.status else []
        return pod if statuses and statuses[0].restartCount >= 2 else None

    pod = wait_until(restarted, WAIT, "two restarts")
    assert pod.status.phase == "Running"
    last = pod.status.containerStatuses[0].lastState.terminated
    assert last is not None and last.exitCode == 0
    assert kubectl(kube, "logs", "restarts", "-n", ns, "--previous").strip() == "run"
    kube.client.delete(Pod, "restarts", namespace=ns)
    wait_until(lambda: _gone(kube, "restarts", ns), WAIT, "the pod deleted")


def test_a_missing_service_account_is_reported_not_fatal(
    kube: KubeSession, ns: str, kubelet: Kubelet
) -> None:
    doc = _pod("no-account", ["python3", "-c", "print(1)"], serviceAccountName="nobody")
    kube.client.create(from_dict(doc), namespace=ns)

    def reported() -> Any:
        pod = _get(kube, "no-account", ns)
        statuses = (pod.status.containerStatuses or []) if pod.status else []
        waiting = statuses[0].state.waiting if statuses else None
        return (
            waiting
            if waiting is not None and waiting.reason == "CreateContainerConfigError"
            else None
        )

    waiting = wait_until(reported, WAIT, "CreateContainerConfigError")
    assert "ServiceAccount" in waiting.message and "nobody" in waiting.message
    assert _get(kube, "no-account", ns).status.phase == "Pending"
    events = json.loads(kubectl(kube, "get", "events", "-n", ns, "-o", "json"))["items"]
    assert any(
        "nobody" in e["message"] for e in events if e["involvedObject"]["name"] == "no-account"
    )
    kube.client.delete(Pod, "no-account", namespace=ns)
    wait_until(lambda: _gone(kube, "no-account", ns), WAIT, "the pod deleted")


def test_a_pod_deleted_outright_has_its_processes_stopped(
    kube: KubeSession, ns: str, kubelet: Kubelet
) -> None:
    doc = _pod("forced", ["python3", "-c", "import time; time.sleep(600)"])
    kube.client.create(from_dict(doc), namespace=ns)

    def pid() -> int | None:
        pod = _get(kube, "forced", ns)
        statuses = (pod.status.containerStatuses or []) if pod.status else []
        running = statuses and statuses[0].state.running is not None
        return pid_of(statuses[0].containerID) if running else None

    found = wait_until(pid, WAIT, "the container running")
    kube.client.delete(Pod, "forced", namespace=ns, grace_period=0)  # gone at once
    assert _gone(kube, "forced", ns)
    wait_until(lambda: not psutil.pid_exists(found), WAIT, f"pid {found} gone")


def test_the_kubelet_as_a_process_reports_ready_and_stops_its_containers_on_sigterm(
    kube: KubeSession, ns: str, tmp_path: Path
) -> None:
    pki = kube.cluster.pki
    node = f"proc-{ns}"
    argv = [
        sys.executable, "-m", "rayscale.devcluster.kubelet", f"--kubeconfig={kube.kubeconfig}",
        f"--node-name={node}", f"--state-dir={tmp_path / 'state'}", "--log-port=0",
        f"--tls-cert-file={pki.kubelet_cert}", f"--tls-private-key-file={pki.kubelet_key}",
        f"--client-ca-file={pki.ca_cert}",
    ]  # fmt: skip
    out = tmp_path / "kubelet.out"
    with open(out, "wb") as stdout:
        proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.DEVNULL)
    try:
        line = wait_until(lambda: out.read_text().strip(), WAIT, "the ready line")
        ready = json.loads(line.splitlines()[0])
        assert ready["ready"] is True and ready["node"] == node and ready["log_port"] > 0
        doc = _pod("on-proc", ["python3", "-c", "import time; time.sleep(600)"], nodeName=node)
        kube.client.create(from_dict(doc), namespace=ns)

        def pid() -> int | None:
            pod = _get(kube, "on-proc", ns)
            statuses = (pod.status.containerStatuses or []) if pod.status else []
            running = statuses and statuses[0].state.running is not None
            return pid_of(statuses[0].containerID) if running else None

        found = wait_until(pid, WAIT, "the container running under the kubelet process")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert not psutil.pid_exists(found)
        assert not find_leftovers(markers=[str(tmp_path / "state")])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    kube.client.delete(Pod, "on-proc", namespace=ns, grace_period=0)

"""Fixtures for tests that run pods on the process kubelet (import them into a test module):
kube-controller-manager (the ServiceAccount controllers give each namespace its ``default``
account, whose token the kubelet mints) and one in-process kubelet per module."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest

from rayscale.devcluster.kubelet import Kubelet
from rayscale.devcluster.logserver import TlsFiles
from rayscale.testing.controller_manager import ControllerManager
from rayscale.testing.kube import KubeSession
from rayscale.testing.kube_ray import kubectl_from_env


@pytest.fixture(scope="module")
def kubelet(
    kube: KubeSession,
    controller_manager: ControllerManager,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Kubelet]:
    pki = kube.cluster.pki
    tls = TlsFiles(pki.kubelet_cert, pki.kubelet_key, pki.ca_cert)
    node = f"node-{uuid.uuid4().hex[:6]}"
    kubelet = Kubelet(kube.config(), node, tmp_path_factory.mktemp("kubelet"), tls)
    kubelet.start()
    try:
        yield kubelet
    finally:
        left = kubelet.stop()
        assert not left, "the kubelet left processes: " + "; ".join(i.describe() for i in left)


def kubectl(kube: KubeSession, *args: str, timeout: float = 30.0) -> str:
    """Run the kubectl built with the API server against it; its stdout (fails on error)."""
    done = subprocess.run(
        [str(kubectl_from_env()), f"--kubeconfig={kube.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def pid_of(container_id: str) -> int:
    """The pid in a ``process://PID`` container id."""
    assert container_id.startswith("process://"), container_id
    return int(container_id.removeprefix("process://"))


__all__ = ["kubectl", "kubelet", "pid_of"]

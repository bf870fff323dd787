"""The Kubernetes tier: a real kube-apiserver + etcd per test session (rayscale.testing.kube).

Every test under tests/k8s is marked `k8s`. Missing binaries fail the tests (never skip):
`./dev.sh test` builds them and sets RAYSCALE_KUBE_APISERVER / RAYSCALE_ETCD.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube import Client, KubeConfig

from rayscale.testing.controller_manager import ControllerManager, binary_from_env
from rayscale.testing.kube import KubeBinaries, KubeBinariesMissing, KubeSession, LocalKube

pytestmark = pytest.mark.k8s

_HERE = Path(__file__).parent
_timings: dict[str, float] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A conftest's own `pytestmark` does not reach the test modules: mark them here too.
    for item in items:
        if _HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.k8s)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _timings:
        terminalreporter.write_line(
            f"k8s tier: etcd ready in {_timings['etcd']:.2f}s, "
            f"kube-apiserver start-to-ready {_timings['apiserver']:.2f}s"
        )


def _binaries() -> KubeBinaries:
    try:
        return KubeBinaries.from_env()
    except KubeBinariesMissing as err:
        if os.environ.get("CI"):
            pytest.fail(f"CI: the Kubernetes test tier cannot run: {err}", pytrace=False)
        pytest.fail(
            f"the Kubernetes test tier needs etcd and kube-apiserver: {err}\n"
            "(to leave this tier out on purpose, deselect it: pytest -m 'not k8s')",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def kube_binaries() -> KubeBinaries:
    """etcd and kube-apiserver from the environment; the tier fails (not skips) without them."""
    return _binaries()


@pytest.fixture(scope="session")
def kube(
    tmp_path_factory: pytest.TempPathFactory, kube_binaries: KubeBinaries
) -> Iterator[KubeSession]:
    """A ready control plane for the whole session, with an admin lightkube client."""
    with LocalKube(tmp_path_factory.mktemp("kube"), kube_binaries) as cluster:
        _timings.update(etcd=cluster.etcd_ready_seconds, apiserver=cluster.ready_seconds)
        client = Client(
            config=KubeConfig.from_file(cluster.kubeconfig), field_manager="rayscale-tests"
        )
        try:
            yield KubeSession(cluster=cluster, client=client)
        finally:
            client.close()


@pytest.fixture(scope="module")
def controller_manager(kube: KubeSession) -> Iterator[ControllerManager]:
    """kube-controller-manager (garbage collector, namespaces, ServiceAccounts and their
    tokens) for the modules that need what a real cluster does with them."""
    pki = kube.cluster.pki
    manager = ControllerManager(
        binary=binary_from_env(),
        kubeconfig=kube.kubeconfig,
        workdir=kube.cluster.workdir / f"controller-manager-{uuid.uuid4().hex[:6]}",
        service_account_key=pki.service_account_key,
        root_ca=pki.ca_cert,
    )
    with manager:
        yield manager

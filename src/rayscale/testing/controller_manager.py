"""kube-controller-manager for the Kubernetes test tier: the controllers a real cluster runs
that the tests rely on (ownerReference garbage collection, namespace finalisation, the
``default`` ServiceAccount and its token, the root CA ConfigMap).

Started against a running :class:`rayscale.testing.kube.LocalKube` through its admin
kubeconfig, as a process group of its own (:mod:`rayscale.processes`), stopped by that
group only. Ready when the ServiceAccount controller has created ``default/default``: a real
effect, not a port probe. The binary comes from ``RAYSCALE_KUBE_CONTROLLER_MANAGER``
(``scripts/build-kube-component.sh kube-controller-manager`` builds it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from lightkube import ApiError, Client, KubeConfig
from lightkube.resources.core_v1 import ServiceAccount

from rayscale import processes
from rayscale.processes import ManagedProcess
from rayscale.testing.kube.binaries import executable_from_env
from rayscale.waiting import StopWaiting, wait_until

CONTROLLER_MANAGER_ENV = "RAYSCALE_KUBE_CONTROLLER_MANAGER"
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
)


def binary_from_env() -> Path:
    return executable_from_env(CONTROLLER_MANAGER_ENV)


@dataclass
class ControllerManager:
    """kube-controller-manager with ``CONTROLLERS``, against ``kubeconfig``."""

    binary: Path
    kubeconfig: Path
    workdir: Path
    service_account_key: Path
    root_ca: Path
    ready_timeout: float = 60.0
    process: ManagedProcess | None = None
    ready_seconds: float = 0.0
    controllers: tuple[str, ...] = field(default=CONTROLLERS)

    def argv(self) -> list[str]:
        return [
            str(self.binary),
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            f"--controllers={','.join(self.controllers)}",
            f"--service-account-private-key-file={self.service_account_key}",
            f"--root-ca-file={self.root_ca}",
            "--use-service-account-credentials=false",
            "--secure-port=0",
            # Garbage collection of a deleted RayCluster's pods should take well under a second.
            "--concurrent-gc-syncs=5",
        ]

    def start(self) -> ControllerManager:
        import time

        self.workdir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        self.process = processes.spawn(
            self.argv(), log_path=self.workdir / "kube-controller-manager.log"
        )
        client = Client(config=KubeConfig.from_file(self.kubeconfig))
        try:
            wait_until(
                lambda: self._default_account(client),
                self.ready_timeout,
                "kube-controller-manager to create the default ServiceAccount",
                detail=lambda: self.process.log_tail() if self.process else "",
            )
        except BaseException:
            self.stop()
            raise
        finally:
            client.close()
        self.ready_seconds = time.monotonic() - started
        return self

    def _default_account(self, client: Client) -> bool:
        assert self.process is not None
        if not self.process.is_running():
            raise StopWaiting(
                f"kube-controller-manager exited with {self.process.returncode}:\n"
                f"{self.process.log_tail()}"
            )
        try:
            client.get(ServiceAccount, "default", namespace="default")
        except ApiError:
            return False
        return True

    def stop(self) -> None:
        if self.process is not None:
            result = self.process.stop(10, term_group=True)
            self.process = None
            if not result.clean:
                raise RuntimeError(f"kube-controller-manager left processes: {result.leftovers}")

    def __enter__(self) -> ControllerManager:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

"""What the ``kube`` test fixture yields: a running control plane plus lightkube clients."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lightkube import AsyncClient, Client, KubeConfig

from rayscale.testing.kube.control_plane import LocalKube


@dataclass
class KubeSession:
    """A running control plane plus an admin lightkube client: what the `kube` fixture yields."""

    cluster: LocalKube
    client: Client

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.kubeconfig

    def config(self) -> KubeConfig:
        return KubeConfig.from_file(self.kubeconfig)

    def new_client(self, field_manager: str = "rayscale-tests") -> Client:
        return Client(config=self.config(), field_manager=field_manager)

    def async_client(self, field_manager: str = "rayscale-tests") -> AsyncClient:
        """A new AsyncClient (bound to the caller's event loop: close it when done)."""
        return AsyncClient(config=self.config(), field_manager=field_manager)

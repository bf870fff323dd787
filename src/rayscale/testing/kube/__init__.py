"""A throwaway Kubernetes control plane for tests: etcd + kube-apiserver on loopback ports.

Only the API server and its storage run. There is no kubelet, scheduler or
kube-controller-manager, so:

- pods stay ``Pending`` (our local runtime can play the kubelet);
- a deleted namespace stays ``Terminating`` (the namespace controller would finalize it);
- ownerReference garbage collection does not happen;
- no ``default`` ServiceAccount appears in new namespaces.

Modules, one concern each:

- :mod:`.binaries`: find etcd and kube-apiserver (``eval "$(scripts/setup-k8s.sh)"``);
- :mod:`.pki`: the throwaway CA, serving and admin certificates, service-account key;
- :mod:`.kubeconfig`: the admin kubeconfig with embedded certificates;
- :mod:`.probes`: one-shot readiness probes (HTTP(S) GET);
- :mod:`.control_plane`: :class:`LocalKube`, which starts and stops the two processes
  through :mod:`rayscale.processes`;
- :mod:`.session`: :class:`KubeSession`, what the ``kube`` fixture yields (with clients).
"""

from rayscale.testing.kube.binaries import (
    APISERVER_ENV,
    ETCD_ENV,
    SETUP_HINT,
    KubeBinaries,
    KubeBinariesMissing,
)
from rayscale.testing.kube.control_plane import KubeStartError, KubeStopError, LocalKube
from rayscale.testing.kube.kubeconfig import write_kubeconfig
from rayscale.testing.kube.pki import ADMIN_GROUP, ADMIN_USER, LOOPBACK, Pki, write_pki
from rayscale.testing.kube.session import KubeSession

__all__ = [
    "ADMIN_GROUP",
    "ADMIN_USER",
    "APISERVER_ENV",
    "ETCD_ENV",
    "LOOPBACK",
    "SETUP_HINT",
    "KubeBinaries",
    "KubeBinariesMissing",
    "KubeSession",
    "KubeStartError",
    "KubeStopError",
    "LocalKube",
    "Pki",
    "write_kubeconfig",
    "write_pki",
]

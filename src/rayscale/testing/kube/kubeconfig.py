"""The admin kubeconfig for the test control plane, with the certs embedded so it stands alone."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from rayscale.testing.kube.pki import ADMIN_USER, Pki, write_private

CONTEXT = "rayscale-test"


def write_kubeconfig(path: Path, server: str, pki: Pki, namespace: str = "default") -> Path:
    """Write a self-contained kubeconfig (embedded certs) for the admin user."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT,
                "cluster": {"server": server, "certificate-authority-data": b64(pki.ca_cert)},
            }
        ],
        "users": [
            {
                "name": ADMIN_USER,
                "user": {
                    "client-certificate-data": b64(pki.admin_cert),
                    "client-key-data": b64(pki.admin_key),
                },
            }
        ],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": ADMIN_USER, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }
    write_private(path, yaml.safe_dump(config, sort_keys=False).encode())
    return path

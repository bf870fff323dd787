"""Helpers for tests of the ray.io resources against the test tier's kube-apiserver.

Kept apart from :mod:`rayscale.testing.kube` (the control plane itself): namespaces, the
KubeRay samples as raw documents, a raw HTTP client for what lightkube does not expose (the
server-side Table view), and a retry for the first request after a CRD is established.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx2 as httpx
import yaml
from lightkube import ApiError, Client, KubeConfig
from lightkube.config.client_adapter import Client as adapter_client
from lightkube.config.client_adapter import ConnectionParams
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from rayscale.spec.samples import sample_path

T = TypeVar("T")


def new_namespace(client: Client, prefix: str) -> str:
    """Create a uniquely named namespace; the test tier never reuses one."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    client.create(Namespace(metadata=ObjectMeta(name=name)))
    return name


def sample_documents(name: str) -> list[dict[str, Any]]:
    """Every YAML document of a KubeRay sample, exactly as parsed from the file."""
    text = Path(sample_path(name)).read_text(encoding="utf-8")
    return [doc for doc in yaml.safe_load_all(text) if doc]


def sample_cluster(name: str) -> dict[str, Any]:
    """The RayCluster document of a sample, unchanged."""
    return next(d for d in sample_documents(name) if d.get("kind") == "RayCluster")


def raw_http(kubeconfig: Path) -> httpx.Client:
    """An httpx client authenticated like the admin lightkube client (close it when done)."""
    config = KubeConfig.from_file(kubeconfig).get()
    if config is None:
        raise ValueError(f"{kubeconfig} has no current context")
    return adapter_client(config, ConnectionParams(timeout=httpx.Timeout(10.0)))


def retry_not_found(call: Callable[[], T], timeout: float = 30.0) -> T:
    """Call, retrying a 404 (a just-established CRD is not served for a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except ApiError as err:
            if err.status.code != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)

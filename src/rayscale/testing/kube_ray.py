"""Helpers for tests of the ray.io resources against the test tier's kube-apiserver.

Kept apart from :mod:`rayscale.testing.kube` (the control plane itself): namespaces, the
KubeRay samples as raw documents, a raw HTTP client for what lightkube does not expose (the
server-side Table view), and a retry for the first request after a CRD is established.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx2 as httpx
import yaml
from lightkube import ApiError, AsyncClient, Client, KubeConfig
from lightkube.config.client_adapter import Client as adapter_client
from lightkube.config.client_adapter import ConnectionParams, verify_cluster
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from rayscale.spec.samples import sample_path
from rayscale.testing.kube.binaries import executable_from_env

T = TypeVar("T")


KUBECTL_ENV = "RAYSCALE_KUBECTL"


def kubectl_from_env() -> Path:
    """The kubectl built from the same k8s.io/kubernetes module as the API server."""
    return executable_from_env(KUBECTL_ENV)


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


@dataclass
class Sent:
    """One request as it went out: method, path, query, content type and body."""

    method: str
    path: str
    query: str
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RecordingTransport(httpx.BaseTransport):
    """A real HTTPS transport to the API server that records every request, and can answer
    the next N requests of a method with a fake status instead of sending them (to test
    retries of 409 and 5xx that a healthy API server does not produce on demand)."""

    def __init__(self, kubeconfig: Path) -> None:
        config = KubeConfig.from_file(kubeconfig).get()
        if config is None or config.user is None:
            raise ValueError(f"{kubeconfig} has no current context with a user")
        verify = verify_cluster(config.cluster, config.user, config.abs_file)
        self._inner = httpx.HTTPTransport(verify=verify)
        self.sent: list[Sent] = []
        self.fake_failures: list[tuple[str, int]] = []
        self.faked: list[Sent] = []
        self._lock = threading.Lock()

    def fail_next(self, method: str, status: int, times: int = 1) -> None:
        with self._lock:
            self.fake_failures += [(method, status)] * times

    def requests(self, method: str) -> list[Sent]:
        with self._lock:
            return [s for s in self.sent if s.method == method]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        sent = Sent(
            request.method,
            request.url.path,
            request.url.query.decode() if isinstance(request.url.query, bytes) else "",
            request.headers.get("content-type", ""),
            body,
        )
        with self._lock:
            fake = next((f for f in self.fake_failures if f[0] == request.method), None)
            if fake is not None:
                self.fake_failures.remove(fake)
                self.faked.append(sent)
            else:
                self.sent.append(sent)
        if fake is not None:
            return _fake_status(fake[1], request)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def _fake_status(code: int, request: httpx.Request) -> httpx.Response:
    reason = {409: "Conflict", 500: "InternalError", 503: "ServiceUnavailable"}.get(code, "")
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"fake {code} injected by the test",
        "reason": reason,
        "code": code,
    }
    return httpx.Response(code, json=status, request=request)


def recording_client(
    kubeconfig: Path, field_manager: str = "rayscale-tests"
) -> tuple[Client, RecordingTransport]:
    """A lightkube Client whose every request goes through a RecordingTransport."""
    transport = RecordingTransport(kubeconfig)
    client = Client(
        config=KubeConfig.from_file(kubeconfig), field_manager=field_manager, transport=transport
    )
    return client, transport


class GatedAsyncTransport(httpx.AsyncBaseTransport):
    """A real async HTTPS transport to the API server that holds every request whose path
    contains ``hold`` until :attr:`gate` is set: a slow API path, made on purpose."""

    def __init__(self, kubeconfig: Path, hold: str) -> None:
        config = KubeConfig.from_file(kubeconfig).get()
        if config is None or config.user is None:
            raise ValueError(f"{kubeconfig} has no current context with a user")
        verify = verify_cluster(config.cluster, config.user, config.abs_file)
        self._inner = httpx.AsyncHTTPTransport(verify=verify)
        self.hold = hold
        self.gate = asyncio.Event()
        self.held = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.hold in request.url.path:
            self.held += 1
            await self.gate.wait()
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def gated_async_client(kubeconfig: Path, hold: str) -> tuple[AsyncClient, GatedAsyncTransport]:
    """An AsyncClient whose requests for paths containing ``hold`` wait for the gate."""
    transport = GatedAsyncTransport(kubeconfig, hold)
    client = AsyncClient(
        config=KubeConfig.from_file(kubeconfig), field_manager="rayscale-tests", transport=transport
    )
    return client, transport

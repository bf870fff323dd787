"""Serve the API with uvicorn (``rayscale apiserver``)."""

from __future__ import annotations

import sys
from pathlib import Path

from rayscale.apiserver.app import create_app
from rayscale.apiserver.backends.base import Backend


class ServerConfigError(ValueError):
    """A bad flag or token file; the message names it and the fix."""


def read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ServerConfigError(f"--auth-token-file {path}: cannot read it ({exc})") from None
    if not token:
        raise ServerConfigError(f"--auth-token-file {path}: the file is empty; put the token in it")
    if any(c.isspace() for c in token):
        raise ServerConfigError(f"--auth-token-file {path}: the token must not contain spaces")
    return token


def local_backend(records_only: bool, period: float) -> Backend:
    from rayscale.apiserver.backends.local import LocalBackend

    return LocalBackend(records_only=records_only, period=period)


def kube_backend(kubeconfig: Path | None) -> Backend:
    """The Kubernetes backend on ``kubeconfig`` (default: $KUBECONFIG, ~/.kube/config, or the
    pod's service account)."""
    from rayscale.apiserver.backends.kube import KubeBackend
    from rayscale.kube.operator import default_kubeconfig

    path = kubeconfig or default_kubeconfig()
    if path is not None and not path.is_file():
        raise ServerConfigError(
            f"--kubeconfig {path}: no such file; pass --kubeconfig or set KUBECONFIG"
        )
    try:
        return KubeBackend.from_kubeconfig(path)
    except Exception as exc:  # lightkube raises several kinds for a bad kubeconfig
        where = f"--kubeconfig {path}" if path else "the in-cluster service account"
        raise ServerConfigError(f"{where}: cannot load it ({type(exc).__name__}: {exc})") from None


def serve(backend: Backend, host: str, port: int, token: str | None = None) -> None:
    import uvicorn

    app = create_app(backend, token)
    print(
        f"rayscale apiserver ({backend.name} backend) on http://{host}:{port}/apis/v1 "
        f"(OpenAPI: /openapi.json, health: /healthz, metrics: /metrics)"
        + ("; bearer token required" if token else ""),
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)

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

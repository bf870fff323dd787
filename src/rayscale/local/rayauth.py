"""Token authentication for local Ray clusters (Ray 2.60): one token per cluster.

Read from ``ray/_private/authentication`` and ``_raylet.so``:
- The mode comes from ``RAY_AUTH_MODE`` (``token`` | ``disabled``). If it is unset,
  ``ray start --head`` turns token auth on only when a token is already available, and
  ``ray.init()`` starting a new local cluster turns it on always (creating
  ``~/.ray/auth_token`` if missing). A client connecting to an explicit address never turns
  it on by itself: it needs ``RAY_AUTH_MODE=token``.
- The token is looked up, first match wins: ``RAY_AUTH_TOKEN`` (the token itself),
  ``RAY_AUTH_TOKEN_PATH`` (a file holding it), ``~/.ray/auth_token``.
- Every gRPC call carries it; a node or client without it fails with
  ``InvalidAuthToken`` / ``ray.exceptions.AuthenticationError``.
We never rely on or touch ``~/.ray/auth_token``: every node gets ``RAY_AUTH_MODE=token`` and
``RAY_AUTH_TOKEN_PATH=<dir>/auth_token`` (and inherited ``RAY_AUTH_TOKEN`` is removed, since it
would take precedence).

How a user script connects (``cluster.client_env()`` gives exactly these variables)::

    RAY_ADDRESS=<gcs host:port> RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=<dir>/auth_token \\
        python my_script.py          # the script calls ray.init() or ray.init(address=...)

In-process GCS access (``GcsClient``, ``get_cluster_resource_state``) reads the same settings
from ``os.environ`` but Ray caches them process-wide; :func:`client_auth` switches them (and
refreshes Ray's caches) for the duration of a ``with`` block. A process can talk to only one
token-protected cluster at a time this way: switching tokens makes existing ``GcsClient``
objects fail until switched back.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from rayscale.protocol import AUTH_MODE_ENV, AUTH_TOKEN_ENV, AUTH_TOKEN_PATH_ENV

TOKEN_FILE = "auth_token"


def write_token(path: Path) -> str:
    """Write a new random token (64 hex chars, like ``ray get-auth-token``) with mode 0600."""
    token = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    return token


def auth_env(token_path: Path) -> dict[str, str]:
    """The variables that make any Ray process use the token in ``token_path``."""
    return {AUTH_MODE_ENV: "token", AUTH_TOKEN_PATH_ENV: str(token_path)}


def without_auth(base: Mapping[str, str]) -> dict[str, str]:
    drop = (AUTH_MODE_ENV, AUTH_TOKEN_ENV, AUTH_TOKEN_PATH_ENV, "RAY_ADDRESS")
    return {k: v for k, v in base.items() if k not in drop}


_AUTH_LOCK = threading.RLock()


@contextlib.contextmanager
def client_auth(token_path: Path | None) -> Iterator[None]:
    """Make in-process Ray clients (``GcsClient``) use ``token_path`` inside the block.

    Ray reads the auth mode and token once and caches them process-wide, so this sets the
    environment variables, refreshes Ray's config and token cache, and restores both on exit.
    ``None`` means no token (``RAY_AUTH_MODE=disabled``). Thread-safe, not concurrent: one
    cluster's token at a time per process.
    """
    raylet = _ray_module("ray._raylet")
    loader, config = raylet.AuthenticationTokenLoader, raylet.Config
    wanted = auth_env(token_path) if token_path else {AUTH_MODE_ENV: "disabled"}
    keys = (AUTH_MODE_ENV, AUTH_TOKEN_ENV, AUTH_TOKEN_PATH_ENV)
    with _AUTH_LOCK:
        saved = {k: os.environ.get(k) for k in keys}
        try:
            _set_env({k: wanted.get(k) for k in keys})
            config.initialize("")
            loader.instance().reset_cache()
            yield
        finally:
            _set_env(saved)
            config.initialize("")
            loader.instance().reset_cache()


def _ray_module(name: str) -> Any:
    return importlib.import_module(name)


def _set_env(values: Mapping[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value

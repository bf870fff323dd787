"""Readiness probes for the control plane: one HTTP(S) GET each, never a retry loop.

A probe returns ``(ready, detail)``; the detail (body or error) goes into the error message
if the component never becomes ready. Waiting is :func:`rayscale.waiting.wait_until`'s job.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable

Probe = Callable[[], tuple[bool, str]]

_TIMEOUT_S = 2.0


def http_ok(url: str, context: ssl.SSLContext | None = None) -> tuple[bool, str]:
    """GET ``url`` directly (no proxy from the environment): ready on HTTP 200."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(url, timeout=_TIMEOUT_S) as resp:
            return resp.status == 200, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return False, err.read().decode(errors="replace")
    except (OSError, ssl.SSLError) as err:
        return False, str(err)


def etcd_healthy(url: str) -> tuple[bool, str]:
    """Ready when etcd's ``/health`` says ``{"health": "true"}``, not merely on HTTP 200."""
    ok, body = http_ok(url)
    if not ok:
        return False, body
    try:
        return json.loads(body).get("health") == "true", body
    except ValueError:
        return False, body

"""A stand-in for Ray's runtime-env agent on clusters that do not ask for runtime_envs.

``python -S -I runtimeenvstub.py --node-id=ID --session-dir=DIR --node-ip-address=IP ...``
(the raylet starts it with the arguments it gives the real agent; unknown ones are ignored).
Stdlib only: about 10 MB RSS and a few hundredths of a CPU-second per node boot, instead of
the real agent's 80 MB and about 0.5 CPU-s (aiohttp, Ray's runtime_env plugins).

The contract it keeps (``ray/_private/runtime_env/agent/main.py``): bind an HTTP port on the
node's IP, publish it in ``<session dir>/runtime_env_agent_port_<node id>``, answer the
raylet's three POSTs (bodies are protobuf messages of ``runtime_env_agent.proto``), check the
cluster's token when token auth is on, and exit when the raylet goes.

What it serves:
- an empty runtime_env (the raylet asks for none in that case) and one with ``env_vars``
  only: created at once, the worker gets those variables, as with Ray's agent;
- anything else (``pip``, ``conda``, ``uv``, ``working_dir``, ``py_modules``, ``container``,
  plugins...): the request fails with :data:`UNSUPPORTED`, so the task or actor fails at
  once with Ray's ``RuntimeEnvSetupError`` carrying that text (it does not hang). Turn Ray's
  real agent on with the RayCluster annotation ``rayscale.io/runtime-env-agent: "true"``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PORT_NAME = "runtime_env_agent_port"  # ray._raylet.RUNTIME_ENV_AGENT_PORT_NAME
ANNOTATION = "rayscale.io/runtime-env-agent"  # rayscale.spec.models.RUNTIME_ENV_AGENT_ANNOTATION
SUPPORTED_KEYS = frozenset({"env_vars"})
UNSUPPORTED = (
    "this rayscale local cluster runs without Ray's runtime-env agent, so it cannot set up "
    "runtime_env field(s) {fields} (only env_vars work). Add the annotation "
    f'{ANNOTATION}: "true" to the RayCluster\'s metadata and start the cluster again, '
    "or run without that runtime_env."
)
STATUS_OK, STATUS_FAILED = 0, 1  # ray.rpc.AgentRpcStatus


# --- the few protobuf bits needed (proto3 wire format) ---------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of each field of a serialized message, in order."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            yield number, value
        elif wire == 2:
            size, pos = _read_varint(data, pos)
            yield number, data[pos : pos + size]
            pos += size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            yield number, data[pos : pos + size]
            pos += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def message(*parts: tuple[int, int | str]) -> bytes:
    """Serialize fields (number, int or string); proto3 defaults (0, "") are left out."""
    out = bytearray()
    for number, value in parts:
        if isinstance(value, int):
            if value:
                out += _varint(number << 3) + _varint(value)
        elif value:
            raw = value.encode()
            out += _varint(number << 3 | 2) + _varint(len(raw)) + raw
    return bytes(out)


# --- requests ---------------------------------------------------------------------------------


def get_or_create(body: bytes) -> bytes:
    """``GetOrCreateRuntimeEnvReply`` for a ``GetOrCreateRuntimeEnvRequest``."""
    serialized = next((v for n, v in fields(body) if n == 1 and isinstance(v, bytes)), b"")
    try:
        env = json.loads(serialized.decode() or "{}")
    except ValueError:
        return message((1, STATUS_FAILED), (2, f"runtime_env is not JSON: {serialized[:200]!r}"))
    if not isinstance(env, dict):
        return message((1, STATUS_FAILED), (2, f"runtime_env is not a mapping: {env!r}"))
    # Keys starting with "_" are Ray's own notes (``_ray_commit``), not fields to set up.
    unsupported = sorted(
        k for k, v in env.items() if k not in SUPPORTED_KEYS and not k.startswith("_") and v
    )
    if unsupported:
        return message((1, STATUS_FAILED), (2, UNSUPPORTED.format(fields=", ".join(unsupported))))
    env_vars = env.get("env_vars") or {}
    context: dict[str, object] = {  # ray._private.runtime_env.context.RuntimeEnvContext, serialized
        "command_prefix": [],
        "env_vars": {str(k): str(v) for k, v in env_vars.items()},
        "py_executable": sys.executable,
        "override_worker_entrypoint": None,
        "java_jars": [],
    }
    return message((1, STATUS_OK), (3, json.dumps(context)))


def delete_if_possible(body: bytes) -> bytes:
    """``DeleteRuntimeEnvIfPossibleReply``: ok (nothing was created)."""
    return message((1, STATUS_OK))


def envs_info(body: bytes) -> bytes:
    """``GetRuntimeEnvsInfoReply``: no runtime envs, total 0 (all fields default)."""
    return b""


REPLIES: dict[str, Callable[[bytes], bytes]] = {
    "/get_or_create_runtime_env": get_or_create,
    "/delete_runtime_env_if_possible": delete_if_possible,
    "/get_runtime_envs_info": envs_info,
}


def _token() -> str | None:
    """The cluster's token when Ray's token auth is on (same settings as the raylet's)."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        return None
    token = os.environ.get("RAY_AUTH_TOKEN")
    if not token and os.environ.get("RAY_AUTH_TOKEN_PATH"):
        token = Path(os.environ["RAY_AUTH_TOKEN_PATH"]).read_text()
    return (token or "").strip() or None


class Handler(BaseHTTPRequestHandler):
    token: str | None = None
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.token is not None:
            given = self.headers.get("Authorization") or self.headers.get("X-Ray-Authorization")
            if given is None:
                return self._send(401, b"Unauthorized: Missing authentication token", "text/plain")
            if given.removeprefix("Bearer ").strip() != self.token:
                return self._send(403, b"Forbidden: Invalid authentication token", "text/plain")
        reply = REPLIES.get(self.path)
        if reply is None:
            return self._send(404, b"not found", "text/plain")
        self._send(200, reply(body), "application/octet-stream")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return  # the raylet logs failures; per-request lines would only fill the log


def _arg(argv: Sequence[str], name: str, default: str | None = None) -> str:
    for arg in argv:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    if default is not None:
        return default
    raise SystemExit(f"runtimeenvstub: missing --{name}=...")


def publish_port(session_dir: Path, node_id: str, port: int) -> None:
    """Write the bound port to the file the raylet waits for, atomically (as Ray does)."""
    path = session_dir / f"{PORT_NAME}_{node_id}"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(str(port))
    os.replace(tmp, path)


def main(argv: Sequence[str]) -> int:
    parent = os.getppid()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    Handler.token = _token()
    host = _arg(argv, "node-ip-address", "127.0.0.1")
    port = int(_arg(argv, "runtime-env-agent-port", "0"))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server_class = type("Server", (ThreadingHTTPServer,), {"address_family": family})
    server = server_class((host, port), Handler)
    server.daemon_threads = True
    publish_port(Path(_arg(argv, "session-dir")), _arg(argv, "node-id"), server.server_port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    while os.getppid() == parent:
        time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

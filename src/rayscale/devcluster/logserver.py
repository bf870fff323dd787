"""The kubelet's container-log endpoint, over HTTPS, so that ``kubectl logs`` works.

kube-apiserver proxies ``GET /api/v1/namespaces/NS/pods/POD/log?container=C`` to
``https://<node InternalIP>:<kubeletEndpoint.Port>/containerLogs/NS/POD/C`` with its kubelet
client certificate; this server presents a certificate of the same CA for 127.0.0.1 and
accepts only clients whose certificate that CA signed. Query parameters: ``tailLines``,
``limitBytes``, ``previous`` (the log before the last restart; 404 if there is none) and
``follow`` (streams new output every 0.5 s until the container stops or the client goes;
``sinceSeconds``/``timestamps`` are ignored).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("rayscale.kubelet")

FOLLOW_POLL_S = 0.5


@dataclass(frozen=True)
class TlsFiles:
    """The kubelet's serving certificate and the CA its clients' certificates come from."""

    cert: Path
    key: Path
    client_ca: Path

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.client_ca))
        ctx.load_cert_chain(str(self.cert), str(self.key))
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


# (namespace, pod, container, previous) -> the log file, or None if there is no such container
LogLookup = Callable[[str, str, str, bool], Path | None]
# (namespace, pod, container) -> True while the container runs (for follow)
RunningCheck = Callable[[str, str, str], bool]


def tail_lines(data: bytes, lines: int) -> bytes:
    if lines <= 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


class LogServer:
    """A threaded HTTPS server on ``host:port`` (0: the OS picks; see :attr:`port`)."""

    def __init__(
        self, tls: TlsFiles, lookup: LogLookup, running: RunningCheck,
        host: str = "127.0.0.1", port: int = 0,
    ) -> None:  # fmt: skip
        handler = _handler(lookup, running)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._server.socket = tls.context().wrap_socket(self._server.socket, server_side=True)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> LogServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="kubelet-logs", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)


def _handler(lookup: LogLookup, running: RunningCheck) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            log.debug("log endpoint: " + format, *args)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            parts = [unquote(p) for p in url.path.strip("/").split("/")]
            if len(parts) != 4 or parts[0] != "containerLogs":
                self._text(404, f"not found: {url.path} (only /containerLogs/NS/POD/CONTAINER)")
                return
            _, namespace, pod, container = parts
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            previous = query.get("previous", "false").lower() == "true"
            path = lookup(namespace, pod, container, previous)
            if path is None or not path.exists():
                what = "previous terminated container" if previous else "container"
                self._text(404, f"{what} {container!r} in pod {namespace}/{pod} not found")
                return
            try:
                data = self._select(path.read_bytes(), query)
            except ValueError as err:
                self._text(400, str(err))
                return
            if query.get("follow", "false").lower() == "true" and not previous:
                self._follow(path, data, lambda: running(namespace, pod, container))
                return
            self._send(200, data)

        @staticmethod
        def _select(data: bytes, query: dict[str, str]) -> bytes:
            if "tailLines" in query:
                data = tail_lines(data, int(query["tailLines"]))
            if "limitBytes" in query:
                data = data[: int(query["limitBytes"])]
            return data

        def _follow(self, path: Path, first: bytes, alive: Callable[[], bool]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            offset = path.stat().st_size
            try:
                self._chunk(first)
                while True:
                    with open(path, "rb") as f:
                        f.seek(offset)
                        new = f.read()
                    offset += len(new)
                    self._chunk(new)
                    if not new and not alive():
                        break
                    time.sleep(FOLLOW_POLL_S)
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                return

        def _chunk(self, data: bytes) -> None:
            if data:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        def _text(self, code: int, message: str) -> None:
            self._send(code, message.encode() + b"\n")

        def _send(self, code: int, data: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler

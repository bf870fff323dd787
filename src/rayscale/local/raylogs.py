"""Why a Ray node failed to boot: the first error line of its own logs.

Every node of a local cluster writes into the cluster's shared Ray temp dir, its file names
tagged with the node's tag (see :mod:`rayscale.local.raystart`): ``raylet.<tag>.out`` /
``.err``, ``dashboard_agent.<tag>.err``, ... under ``<temp>/session_*/logs``. The raylet's log
holds the root cause (``bind: Address already in use``, ``InvalidAuthToken``, a failed check),
the node's own log (``ray start`` output) the symptom (``The current node timed out during
startup``, a bad flag). We read the raylet's first, then the agents', then ``ray start``'s.
"""

from __future__ import annotations

import re
from pathlib import Path

# A glog-style raylet/GCS line: "[2026-11-23 13:54:39,165 E 24777 24786] (raylet) file.cc:118: msg".
_GLOG_ERROR = re.compile(r"^\[[\d\- :,]+ [EFC] \d+ \d+\] \([\w_]+\) [\w.]+:\d+: (?P<msg>.*)$")
# gRPC core's own format: "E1123 14:55:45.606118915   17980 chttp2_server.cc:1059] msg".
_GRPC_ERROR = re.compile(r"^[EF]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\]\s+(?P<msg>.*)$")
# Python: "ValueError: ...", "ray.exceptions.AuthenticationError: ...", click's "Error: ...".
_PY_ERROR = re.compile(r"^[\w.]*(?:Error|Exception): ")
# Noise a raylet prints at E level while dying; the line before it says why.
_NOISE = (
    "Stack trace",
    "SIGABRT received",
    "*** ",
    "Unhandled exception: N5boost",
    "An unexpected system state has occurred",
)
_MAX_LEN = 400


def first_error_line(text: str) -> str | None:
    """The first glog E/F message (without its prefix) or Python exception line in ``text``."""
    fallback: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        glog = _GLOG_ERROR.match(line) or _GRPC_ERROR.match(line)
        if glog:
            msg = glog.group("msg")
            what = msg.split("what(): ", 1)
            if len(what) == 2:  # boost exceptions: keep the message, not the mangled type
                return _short(what[1])
            if not msg.startswith(_NOISE):
                return _short(msg)
            fallback = fallback or _short(msg)
        elif _PY_ERROR.match(line) and not line.startswith("Traceback"):
            return _short(line)
    return fallback


def node_log_files(temp_dir: Path, tag: str) -> list[Path]:
    """The node's own Ray logs in the shared temp dir, raylet's first."""
    found: list[Path] = []
    for stem in ("raylet", "dashboard_agent", "runtime_env_agent", "gcs_server"):
        for suffix in ("err", "out", "log"):
            found.extend(sorted(temp_dir.glob(f"session_*/logs/{stem}.{tag}.{suffix}")))
    return found


def boot_failure_line(temp_dir: Path, tag: str, start_log: Path) -> str | None:
    """First error line of the node's raylet/agent logs, else of its ``ray start`` log."""
    for path in [*node_log_files(temp_dir, tag), start_log]:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        line = first_error_line(text)
        if line:
            prefix = "" if path == start_log else f"{path.name.split('.')[0]}: "
            return prefix + line
    return None


def _short(line: str) -> str:
    line = re.sub(r" /\S+\(\+0x[0-9a-f]+\).*$", "", line)  # drop a glued-on stack frame
    line = re.sub(r'created_time:"[^"]*",?\s*', "", line)  # gRPC status noise
    return line if len(line) <= _MAX_LEN else line[: _MAX_LEN - 3] + "..."

"""The exec record: how one running container of the process kubelet was started.

The process kubelet has no streaming exec. Instead it writes, for each running container,
``<state-dir>/pods/<namespace>/<pod>/<container>.exec.json`` with the container's resolved
environment, its mounts (container path -> local path) and its working directory, and
``rayscale exec --kubernetes`` runs a command the way ``kubectl exec`` would: with that env,
and with container paths in its arguments mapped to their local copies. Both sides use this
module, so the file's shape is defined once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rayscale.local.kubelet import rewrite_paths

SUFFIX = ".exec.json"
STATE_DIR_ANNOTATION = "rayscale.io/kubelet-state-dir"
"""On the Node a process kubelet registers: its state dir, so exec finds the records."""


class ExecRecordError(RuntimeError):
    """The record is missing or unreadable; the message says which and what to check."""


@dataclass(frozen=True)
class ExecRecord:
    """A container's resolved env, its mounts and its working directory."""

    env: Mapping[str, str]
    mounts: Mapping[str, str] = field(default_factory=dict)  # container path -> local path
    cwd: str | None = None

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` with container paths under the mounts replaced by their local copies."""
        return rewrite_paths(argv, {k: Path(v) for k, v in self.mounts.items()})

    def to_json(self) -> str:
        return json.dumps(
            {"env": dict(self.env), "mounts": dict(self.mounts), "cwd": self.cwd},
            indent=1,
            sort_keys=True,
        )


def pod_dir(state_dir: Path, namespace: str, pod: str) -> Path:
    """Where the process kubelet keeps one pod's files (volumes, logs, exec records)."""
    return state_dir / "pods" / namespace / pod


def record_path(state_dir: Path, namespace: str, pod: str, container: str) -> Path:
    return pod_dir(state_dir, namespace, pod) / f"{container}{SUFFIX}"


def write_record(path: Path, record: ExecRecord) -> None:
    """Write atomically (mode 0600: the env may hold credentials)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(record.to_json())
    tmp.replace(path)


def read_record(path: Path) -> ExecRecord:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ExecRecordError(
            f"{path}: no exec record; is the container running under this kubelet's state dir?"
        ) from None
    except (OSError, ValueError) as exc:
        raise ExecRecordError(f"{path}: unreadable exec record ({exc})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("env"), dict):
        raise ExecRecordError(f"{path}: not an exec record (no 'env' mapping)")
    mounts = raw.get("mounts") or {}
    cwd = raw.get("cwd")
    return ExecRecord(
        env={str(k): str(v) for k, v in raw["env"].items()},
        mounts={str(k): str(v) for k, v in mounts.items()},
        cwd=str(cwd) if cwd else None,
    )

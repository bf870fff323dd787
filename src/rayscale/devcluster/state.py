"""Where a dev cluster lives on disk, and the one record its keeper writes and ``down`` reads."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rayscale.local.registry import home

MARKER_ENV = "RAYSCALE_DEV_CLUSTER"
"""Set to :func:`process_marker` in the keeper's environment, so every process of the stack
(control plane, kubelet, every pod's processes) carries it and ``down`` finds them all."""

STATE_FILE = "state.json"
DEFAULT_NAME = "dev"


class CorruptStateError(RuntimeError):
    """The state file exists but cannot be read; the stack's processes may still run."""


@dataclass
class DevClusterState:
    pid: int
    pid_started: float
    status: str = "starting"  # starting | ready | failed | stopping | stopped
    error: str = ""
    server: str = ""
    kubeconfig: str = ""
    kubectl: str = ""
    node: str = ""
    kubelet_state_dir: str = ""
    pids: dict[str, list[int]] = field(default_factory=dict)
    ready_seconds: float = 0.0


def cluster_dir(name: str) -> Path:
    return home() / "dev-clusters" / name


def process_marker(directory: Path) -> str:
    """The trailing slash keeps ``dev`` from matching ``dev2``."""
    return f"{directory}/"


def write_state(directory: Path, state: DevClusterState) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(directory / STATE_FILE)


def read_state(directory: Path) -> DevClusterState | None:
    path = directory / STATE_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return DevClusterState(**json.loads(text))
    except (ValueError, TypeError) as exc:
        raise CorruptStateError(
            f"{path} is unreadable ({exc}); `rayscale dev-cluster down` still stops every "
            "process of the dev cluster"
        ) from exc

"""Where local clusters are recorded, so that `status`, `exec` and `down` find them.

``$RAYSCALE_HOME`` (default ``~/.rayscale``) holds ``clusters/<name>/`` with:
- ``state.json``: supervisor pid (and its start time, so a reused pid is not mistaken for it),
  the run dir every Ray process of the cluster carries in its environment, the GCS address,
  the token file and the ConfigMap mounts;
- ``status.json``: the latest autoscaler iteration (written each tick);
- ``supervisor.log``: the supervisor's log (with every decision and its reason).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil

from rayscale import processes
from rayscale.local.raynodes import MARKER_ENV as RUN_DIR_ENV
from rayscale.local.raynodes import auth_env, without_auth

EVENTS_FILE = "events.jsonl"
"""Every scaling decision of a cluster with its reason code, one JSON object per line."""
TICKS_FILE = "ticks.jsonl"
"""Each group's desired/running/pending counts, a line whenever they change."""

MARKER_ENV = "RAYSCALE_CLUSTER"
"""Set to :func:`process_marker` in the environment of a cluster's supervisor and nodes."""


def home() -> Path:
    return Path(os.environ.get("RAYSCALE_HOME") or Path.home() / ".rayscale")


@dataclass
class ClusterRecord:
    name: str
    spec: str
    pid: int
    pid_started: float
    status: str = "starting"  # starting | ready | stopping
    run_dir: str = ""
    address: str = ""
    token_path: str = ""
    mounts: dict[str, str] = field(default_factory=dict)  # container path -> local dir

    def client_env(self) -> dict[str, str]:
        """What a script needs to connect: the address and this cluster's token."""
        return {"RAY_ADDRESS": self.address, **auth_env(Path(self.token_path))}

    def client_environ(self) -> dict[str, str]:
        """Our environment with any inherited Ray address/auth replaced by this cluster's."""
        return {**without_auth(os.environ), **self.client_env()}


def cluster_dir(name: str) -> Path:
    return home() / "clusters" / name


def write(record: ClusterRecord) -> None:
    path = cluster_dir(record.name) / "state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2))
    tmp.replace(path)


class CorruptRecordError(RuntimeError):
    """A cluster's state file exists but cannot be read; its processes may still run."""


def read(name: str) -> ClusterRecord | None:
    """The cluster's record; None if there is none. A file that exists but cannot be read
    raises :class:`CorruptRecordError` (never "not running": `down` must still clean up)."""
    path = cluster_dir(name) / "state.json"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return ClusterRecord(**json.loads(text))
    except (ValueError, TypeError) as exc:
        raise CorruptRecordError(
            f"the state file {path} of cluster {name!r} is unreadable ({exc}); "
            f"`rayscale down {name}` stops every process of the cluster and removes it"
        ) from exc


def names() -> list[str]:
    root = home() / "clusters"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "state.json").is_file())


def write_status(name: str, status: dict[str, Any]) -> None:
    path = cluster_dir(name) / "status.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status, indent=2, ensure_ascii=False))
    tmp.replace(path)


def read_status(name: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((cluster_dir(name) / "status.json").read_text())
        return data
    except (OSError, ValueError):
        return None


class _Owner(Protocol):
    pid: int
    pid_started: float


def supervisor_alive(record: _Owner) -> bool:
    """True if the supervisor (the process ``record`` names by pid and start time) runs. A
    killed one that its (re)parent has not reaped yet is a zombie, which psutil's
    ``is_running()`` still reports as running: it counts as dead."""
    try:
        proc = psutil.Process(record.pid)
        return bool(
            abs(proc.create_time() - record.pid_started) < 0.05
            and proc.is_running()
            and proc.status() != psutil.STATUS_ZOMBIE
        )
    except psutil.Error:
        return False


def process_marker(name: str) -> str:
    """Set in every node's environment; the trailing slash keeps ``foo`` from matching
    ``foo-bar``."""
    return f"{cluster_dir(name)}/"


def leftovers(record: ClusterRecord) -> list[processes.ProcessInfo]:
    """Every live process of this cluster: they carry its marker and run dir in their env."""
    markers = [process_marker(record.name)] + ([record.run_dir] if record.run_dir else [])
    return processes.find_leftovers(markers=markers)


def clean_up(record: ClusterRecord) -> list[processes.ProcessInfo]:
    """Kill what a dead supervisor left behind, by PID; forget the cluster (its logs stay).

    Returns the processes that survived (normally none)."""
    survivors = processes.kill_processes(leftovers(record))
    if not survivors:
        if record.run_dir:
            shutil.rmtree(record.run_dir, ignore_errors=True)
        forget(record.name)
    return survivors


def clean_up_by_name(name: str) -> list[processes.ProcessInfo]:
    """Kill every process carrying the cluster's marker, when its record is unreadable; the
    run dirs they name in their environment go too."""
    found = processes.find_leftovers(markers=[process_marker(name)])
    run_dirs = set()
    for info in found:
        with contextlib.suppress(psutil.Error):
            run_dir = psutil.Process(info.pid).environ().get(RUN_DIR_ENV)
            if run_dir:
                run_dirs.add(run_dir)
    survivors = processes.kill_processes(found)
    if not survivors:
        for run_dir in run_dirs:
            shutil.rmtree(run_dir, ignore_errors=True)
        forget(name)
    return survivors


def forget(name: str) -> None:
    for file in ("state.json", "status.json"):
        (cluster_dir(name) / file).unlink(missing_ok=True)


def append_jsonl(name: str, file: str, records: list[dict[str, Any]]) -> None:
    """Append records to ``<cluster dir>/<file>`` (events.jsonl, ticks.jsonl), one per line."""
    if not records:
        return
    path = cluster_dir(name) / file
    with open(path, "a") as out:
        out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file such as ``<cluster dir>/events.jsonl`` ([] if it does not
    exist); a line being written (torn) is skipped."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out

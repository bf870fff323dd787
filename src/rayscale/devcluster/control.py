"""``rayscale dev-cluster up | down | env``: start, stop and use the one-machine Kubernetes.

``up`` spawns the keeper (:mod:`rayscale.devcluster.stack`) detached and returns once it
reports ready; ``down`` asks it to stop everything, then stops whatever still carries the
dev cluster's marker (a keeper killed with SIGKILL leaves its children behind). Errors are
typed, so the CLI words them.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from rayscale import processes
from rayscale.devcluster.state import (
    DEFAULT_NAME,
    MARKER_ENV,
    CorruptStateError,
    DevClusterState,
    cluster_dir,
    process_marker,
    read_state,
)
from rayscale.local.registry import supervisor_alive
from rayscale.testing.controller_manager import CONTROLLER_MANAGER_ENV
from rayscale.testing.kube.binaries import APISERVER_ENV, ETCD_ENV, binary_problem
from rayscale.testing.kube_ray import KUBECTL_ENV
from rayscale.waiting import StopWaiting, WaitTimeoutError, wait_until

READY_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 120.0
LOG_FILE = "dev-cluster.log"
BINARY_ENVS = (ETCD_ENV, APISERVER_ENV, CONTROLLER_MANAGER_ENV, KUBECTL_ENV)
SETUP_HINT = (
    "run `./dev.sh dev-cluster up` from a checkout (it builds them once, cached), or "
    '`eval "$(scripts/setup-k8s.sh)"` in this shell first'
)


class DevClusterError(RuntimeError):
    """Base class: the dev cluster could not be started, used or stopped."""


class AlreadyRunningError(DevClusterError):
    pass


class NotRunningError(DevClusterError):
    pass


class StartError(DevClusterError):
    pass


class StopError(DevClusterError):
    pass


def missing_binaries(environ: dict[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    return [v for v in BINARY_ENVS if binary_problem(env, v)]


def _read_or_none(directory: Path) -> DevClusterState | None:
    """The state, or None if there is none or it is unreadable: up and down then go by the
    marker the stack's processes carry, not by the file."""
    try:
        return read_state(directory)
    except CorruptStateError:
        return None


def _alive(state: DevClusterState | None) -> bool:
    return state is not None and supervisor_alive(state)


def up(name: str, timeout: float = READY_TIMEOUT_S) -> DevClusterState:
    """Start dev cluster ``name`` in the background; return its state once it is ready."""
    directory = cluster_dir(name)
    state = _read_or_none(directory)
    if _alive(state):
        assert state is not None
        raise AlreadyRunningError(
            f"dev cluster {name!r} is already running (keeper pid {state.pid}); "
            f"`rayscale dev-cluster env --name {name}` prints how to use it, "
            f"`rayscale dev-cluster down --name {name}` stops it"
        )
    missing = missing_binaries()
    if missing:
        raise StartError(f"{', '.join(missing)} not set to executables. Fix: {SETUP_HINT}")
    _clean_up(directory)  # leftovers of a killed keeper, if any
    for old in ("control-plane", "controller-manager", "kubelet", "state.json"):
        path = directory / old
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "rayscale.devcluster.stack", str(directory)]
    argv += ["--kubectl", os.environ[KUBECTL_ENV]]
    env = {**os.environ, MARKER_ENV: process_marker(directory)}
    log_path = directory / LOG_FILE
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )

    def ready() -> DevClusterState | None:
        current = read_state(directory)
        if current is not None and current.pid == proc.pid:
            if current.status == "ready":
                return current
            if current.status == "failed":
                raise StopWaiting(f"{current.error}\n{processes.read_tail(log_path, 3000)}")
        if proc.poll() is not None:
            raise StopWaiting(
                f"the keeper exited with code {proc.returncode}:\n"
                f"{processes.read_tail(log_path, 3000)}"
            )
        return None

    try:
        return wait_until(ready, timeout, f"dev cluster {name!r} to be ready", 0.5)
    except StopWaiting as exc:
        proc.wait(STOP_TIMEOUT_S)
        raise StartError(f"the dev cluster did not start: {exc}") from exc
    except WaitTimeoutError as exc:
        down(name)
        raise StartError(
            f"not ready within {timeout:.0f} s (stopped again); see {log_path}"
        ) from exc


def running(name: str) -> DevClusterState:
    state = read_state(cluster_dir(name))
    if state is None or not _alive(state) or state.status != "ready":
        option = f" --name {name}" if name != DEFAULT_NAME else ""
        raise NotRunningError(
            f"dev cluster {name!r} is not running; start it with `rayscale dev-cluster up{option}`"
        )
    return state


def env_lines(state: DevClusterState) -> list[str]:
    """``export`` lines that make the walkthrough's kubectl commands run as written."""
    exports = [f"export KUBECONFIG={shlex.quote(state.kubeconfig)}"]
    if state.kubectl:
        folder = str(Path(state.kubectl).parent)
        exports.append(f'export PATH={shlex.quote(folder)}:"$PATH"')
    return exports


def down(name: str, timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop dev cluster ``name``: the keeper stops its parts in order; then anything left."""
    directory = cluster_dir(name)
    state = _read_or_none(directory)
    if state is None and not directory.exists():
        raise NotRunningError(f"no dev cluster named {name!r}")
    if state is not None and _alive(state):
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.pid, signal.SIGTERM)
        with contextlib.suppress(WaitTimeoutError):
            wait_until(lambda: not _alive(state), timeout, "the dev cluster's keeper", 0.3)
    left = _clean_up(directory)
    if left:
        raise StopError(f"could not stop: {', '.join(p.describe() for p in left)}")
    with contextlib.suppress(FileNotFoundError):
        (directory / "state.json").unlink()


def _clean_up(directory: Path) -> list[processes.ProcessInfo]:
    """SIGKILL every process that still carries the marker; return the survivors."""
    found = processes.find_leftovers(markers=[process_marker(directory)])
    return processes.kill_processes(found) if found else []

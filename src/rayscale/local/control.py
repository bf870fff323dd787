"""Start and stop local clusters as detached supervisors (shared by the CLI and the API server).

A local cluster is one ``python -m rayscale.local.supervisor SPEC.yaml`` process in its own
session; it records itself in :mod:`rayscale.local.registry`. Errors are typed (no typer here),
so each caller words them for its own audience.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from rayscale.local import registry
from rayscale.waiting import StopWaiting, WaitTimeoutError, wait_until

READY_TIMEOUT_S = 300.0


class ControlError(RuntimeError):
    """Base class: a cluster could not be started or stopped."""


class AlreadyRunningError(ControlError):
    """A live supervisor already owns a cluster of that name."""


class StartError(ControlError):
    """The supervisor exited or did not become ready; the message carries its log tail."""


class StopError(ControlError):
    """Processes of the cluster survived the stop; the message lists them."""


class NotFoundError(ControlError):
    """No local cluster of that name is recorded."""


def supervisor_log(name: str) -> Path:
    return registry.cluster_dir(name) / "supervisor.out"


def start_detached(spec_path: Path, name: str, period: float = 1.0) -> subprocess.Popen[bytes]:
    """Spawn the supervisor for ``spec_path`` (cluster ``name``) and return at once.

    The caller owns the Popen (poll it to reap the process when it exits); readiness shows
    in ``registry.read(name).status``.
    """
    record = registry.read(name)
    if record is not None and registry.supervisor_alive(record):
        raise AlreadyRunningError(
            f"cluster {name!r} is already running (supervisor pid {record.pid}); "
            f"stop it first with `rayscale down {name}`"
        )
    log_path = supervisor_log(name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "rayscale.local.supervisor", str(spec_path.resolve())]
    # The marker lets `down` find the supervisor even if its state file is unreadable.
    env = {**os.environ, registry.MARKER_ENV: registry.process_marker(name)}
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            [*argv, "--period", str(period)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )


def wait_ready(
    name: str, proc: subprocess.Popen[bytes], timeout: float = READY_TIMEOUT_S
) -> registry.ClusterRecord:
    """Wait until the supervisor ``proc`` reports the cluster ready; raise StartError if not."""
    log_path = supervisor_log(name)

    def ready() -> registry.ClusterRecord | None:
        record = registry.read(name)
        if record is not None and record.pid == proc.pid and record.status == "ready":
            return record
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
            raise StopWaiting(f"the supervisor exited with code {proc.returncode}:\n{tail}")
        return None

    try:
        return wait_until(ready, timeout, f"the head of {name} to be ready", 0.3)
    except StopWaiting as exc:
        raise StartError(str(exc)) from exc
    except WaitTimeoutError as exc:
        raise StartError(
            f"the head did not become ready within {timeout:.0f} s; see {log_path}"
        ) from exc


def up_detached(
    spec_path: Path,
    period: float = 1.0,
    *,
    name: str | None = None,
    timeout: float = READY_TIMEOUT_S,
) -> registry.ClusterRecord:
    """Start the cluster of ``spec_path`` detached and return its record once the head is ready."""
    if name is None:
        from rayscale.spec import load_file

        name = load_file(spec_path).cluster.name
    proc = start_detached(spec_path, name, period)
    return wait_ready(name, proc, timeout)


def down(name: str, timeout: float = 90.0) -> None:
    """Stop every process of cluster ``name`` (even if its supervisor was killed, or its state
    file is unreadable), and forget it."""
    try:
        record = registry.read(name)
    except registry.CorruptRecordError:
        left = registry.clean_up_by_name(name)  # every process carries the cluster's marker
        if left:
            raise StopError(f"could not stop: {', '.join(p.describe() for p in left)}") from None
        return
    if record is None:
        raise NotFoundError(f"no local cluster named {name!r}")
    if registry.supervisor_alive(record):
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGTERM)
        with contextlib.suppress(WaitTimeoutError):
            wait_until(lambda: not registry.supervisor_alive(record), timeout, "the supervisor")
    left = registry.clean_up(record)
    if left:
        raise StopError(f"could not stop: {', '.join(p.describe() for p in left)}")

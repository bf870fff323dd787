"""One container of a pod, run as a local process group (:mod:`rayscale.processes`).

A container's image is this machine: ``rayscale``, ``python``, ``python3`` and ``ray`` at
the start of its command are resolved to this interpreter's virtualenv (``bin/`` next to
``sys.executable``), whose ``bin`` also comes first on ``PATH``. Its environment is what the
kubelet resolved (no inherited kubeconfig or credentials) plus the few variables a process
needs (``PATH``, ``HOME``, locale, ``PYTHONPATH``). stdout and stderr go to
``<pod dir>/<container>.log``; at a restart the previous log is kept as
``<container>.previous.log`` (``kubectl logs --previous``).

Restarts follow ``restartPolicy``: ``Always`` restarts any exit, ``OnFailure`` a non-zero
exit, ``Never`` none; restarts back off 1 s, 2 s, 4 s ... up to 30 s (Kubernetes:
10 s .. 5 min), shown as ``CrashLoopBackOff`` meanwhile.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rayscale import processes
from rayscale.devcluster.api import now
from rayscale.local.podrunner import BACKOFF_FIRST_S, BACKOFF_MAX_S
from rayscale.processes import ManagedProcess

VENV_COMMANDS = ("rayscale", "python", "python3", "ray")
PASSED_ENV = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH", "USER", "RAYSCALE_HOME")
MARKER_ENV = "RAYSCALE_KUBELET_DIR"  # in every container's env: leftovers are found by it
DEFAULT_GRACE_S = 30.0


def venv_bin() -> Path:
    return Path(sys.executable).parent


def resolve_command(argv: Sequence[str]) -> list[str]:
    """``argv`` with a leading ``rayscale``/``python``/``python3``/``ray`` (bare or any path
    ending so) taken from this interpreter's virtualenv."""
    if not argv:
        return []
    head = Path(argv[0]).name
    if head in VENV_COMMANDS:
        candidate = venv_bin() / head
        if head.startswith("python") and not candidate.exists():
            candidate = Path(sys.executable)
        if candidate.exists():
            return [str(candidate), *argv[1:]]
    return list(argv)


def base_environ(marker: str) -> dict[str, str]:
    """What every container process gets besides its resolved env."""
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env["PATH"] = f"{venv_bin()}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    env[MARKER_ENV] = marker
    return env


@dataclass(frozen=True)
class Termination:
    exit_code: int
    started_at: str
    finished_at: str

    def state(self) -> dict[str, Any]:
        return {
            "terminated": {
                "exitCode": self.exit_code,
                "reason": "Completed" if self.exit_code == 0 else "Error",
                "startedAt": self.started_at,
                "finishedAt": self.finished_at,
            }
        }


@dataclass
class Container:
    """A container of a pod and its process across restarts.

    ``launch`` starts the process and returns it (a plain spawn, or a Ray node's keeper);
    ``ready_check`` says whether a running container is ready (default: running);
    ``stopper`` stops it (default: SIGTERM to the group leader, grace, SIGKILL the group);
    ``blocked`` tells why it may not start yet (a Ray worker waits for its head).
    """

    name: str
    image: str
    log_path: Path
    launch: Callable[[], ManagedProcess]
    restart_policy: str = "Always"
    ready_check: Callable[[], bool] | None = None
    stopper: Callable[[ManagedProcess, float], None] | None = None
    blocked: Callable[[], str | None] | None = None  # why it may not start yet, if so
    process: ManagedProcess | None = None
    started_at: str = ""
    restart_count: int = 0
    last: Termination | None = None
    done: bool = False  # exited and will not restart
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    backoff_until: float = 0.0
    _failures: int = field(default=0, repr=False)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.is_running()

    @property
    def ready(self) -> bool:
        if not self.running:
            return False
        return self.ready_check() if self.ready_check is not None else True

    def current_log(self) -> Path:
        """The log of the running (or last) process: a Ray node logs where raynodes puts it."""
        return self.process.log_path if self.process is not None else self.log_path

    def start(self) -> None:
        if self.process is not None and self.log_path.exists():  # a restart
            self.log_path.replace(self.log_path.with_suffix(".previous.log"))
        self.process = self.launch()
        self.started_at = now()
        self.waiting_reason = ""

    def poll(self) -> bool:
        """Note an exit, restart when due; True if anything changed."""
        if self.process is None or self.done:
            return False
        if self.waiting_reason == "CrashLoopBackOff":
            if time.monotonic() < self.backoff_until:
                return False
            self.restart_count += 1
            self.start()
            return True
        if self.running:
            return False
        code = self.process.returncode
        self.process.stop(1.0, term_group=True)  # reap what the leader left in its group
        self.last = Termination(code if code is not None else -1, self.started_at, now())
        restart = self.restart_policy == "Always" or (
            self.restart_policy == "OnFailure" and self.last.exit_code != 0
        )
        if not restart:
            self.done = True
            return True
        delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2**self._failures)
        self._failures += 1
        self.backoff_until = time.monotonic() + delay
        self.waiting_reason = "CrashLoopBackOff"
        self.waiting_message = f"back-off {delay:.0f}s restarting failed container"
        return True

    def stop(self, grace: float = DEFAULT_GRACE_S) -> None:
        if self.process is None:
            return
        if self.stopper is not None:
            self.stopper(self.process, grace)
        else:
            self.process.stop(grace, term_group=False)
        self.done = True

    def status(self) -> dict[str, Any]:
        """The container's ``containerStatuses`` entry."""
        out: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.running,
        }
        if self.process is not None:
            out["containerID"] = f"process://{self.process.pid}"
        if self.running:
            out["state"] = {"running": {"startedAt": self.started_at}}
        elif self.done and self.last is not None:
            out["state"] = self.last.state()
        else:
            waiting = {"reason": self.waiting_reason or "ContainerCreating"}
            if self.waiting_message:
                waiting["message"] = self.waiting_message
            out["state"] = {"waiting": waiting}
        if self.last is not None and not self.done:
            out["lastState"] = self.last.state()
        return out


def spawner(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path | None, log_path: Path, name: str
) -> Callable[[], ManagedProcess]:
    """``launch`` for a plain container."""

    def launch() -> ManagedProcess:
        return processes.spawn(argv, log_path=log_path, name=name, env=env, cwd=cwd)

    return launch

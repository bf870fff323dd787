"""Spawn, stop and account for local processes, one process group each.

Every process started through :func:`spawn` is the leader of a new session and process group
(``start_new_session=True``), so its pid is also its pgid and everything it forks stays in that
group unless it calls ``setsid``/``setpgid`` itself. Stopping therefore never needs a name
pattern (no ``pkill -f``): :meth:`ManagedProcess.stop` signals the leader (or the group), waits,
and then SIGKILLs whatever is left of *that* group.

:func:`find_leftovers` looks for processes that belong to given groups or whose command line or
environment mentions a marker string (typically a per-run temp dir that the spawner also put in
the child's environment), so that a process which escaped its group is still found.

Ports: prefer port 0 (the OS assigns it at bind time). :func:`reserve_ports` is for the few ports
that must be known in advance: it hands out ports under a machine-wide lock, so no two rayscale
processes get the same one.

Nothing here is Ray-specific; :mod:`rayscale.local.raynodes` builds on it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import psutil

from rayscale.waiting import WaitTimeoutError, wait_until

DEFAULT_STOP_TIMEOUT_S = 30.0
DEFAULT_KILL_TIMEOUT_S = 10.0
_POLL_S = 0.05


class ProcessError(RuntimeError):
    """Base class for errors raised by this module."""


class ExecutableNotFoundError(ProcessError):
    """The command to spawn does not exist or is not executable."""


@dataclass(frozen=True)
class ProcessInfo:
    """A snapshot of one live process, as reported by :func:`find_leftovers`."""

    pid: int
    pgid: int
    create_time: float
    cmdline: str
    reason: str  # why it matched: "group <pgid>", "cmdline", "environ"

    def describe(self) -> str:
        """One line: pid, pgid, match reason and the start of the command line."""
        return f"pid={self.pid} pgid={self.pgid} ({self.reason}): {self.cmdline[:200]}"


@dataclass(frozen=True)
class StopResult:
    """What happened when a process (group) was stopped."""

    returncode: int | None
    seconds: float
    escalated: bool  # SIGKILL was needed
    leftovers: tuple[ProcessInfo, ...] = ()

    @property
    def clean(self) -> bool:
        """True when nothing of the group survived."""
        return not self.leftovers


@dataclass
class ManagedProcess:
    """A command running as the leader of its own process group, with a log file."""

    name: str
    argv: tuple[str, ...]
    log_path: Path
    popen: subprocess.Popen[bytes]
    started_at: float = field(default_factory=time.monotonic)  # time.monotonic()

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def pgid(self) -> int:
        # start_new_session=True: the child is session and group leader, pgid == pid.
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def is_running(self) -> bool:
        """True while the group leader has not exited."""
        return self.popen.poll() is None

    def members(self) -> list[psutil.Process]:
        """Live (non-zombie) processes of this process group, the leader included."""
        return group_members(self.pgid)

    def send_signal(self, sig: int, *, group: bool = False) -> None:
        """Send ``sig`` to the leader, or to the whole group; missing targets are ignored."""
        try:
            if group:
                os.killpg(self.pgid, sig)
            elif self.is_running():
                self.popen.send_signal(sig)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the leader to exit; None on timeout."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(
        self,
        timeout: float = DEFAULT_STOP_TIMEOUT_S,
        *,
        term_group: bool = False,
        kill_timeout: float = DEFAULT_KILL_TIMEOUT_S,
    ) -> StopResult:
        """Stop the process group: SIGTERM, wait up to ``timeout``, then SIGKILL the group.

        ``term_group=False`` sends SIGTERM to the leader only and lets it shut its children
        down in order (what a supervisor such as ``ray start --block`` expects);
        ``term_group=True`` sends it to every member at once. Either way the call returns only
        when the whole group is gone or ``kill_timeout`` after the SIGKILL has passed; survivors
        are reported in :attr:`StopResult.leftovers`.
        """
        t0 = time.monotonic()
        if self.is_running():
            self.send_signal(signal.SIGTERM, group=term_group)
        elif self.members():  # the leader is gone but its group is not: nobody else will
            self.send_signal(signal.SIGTERM, group=True)
        gone = self._wait_group_gone(t0 + timeout)
        escalated = False
        if not gone:
            escalated = True
            self.send_signal(signal.SIGKILL, group=True)
            self._wait_group_gone(time.monotonic() + kill_timeout)
        self.wait(0)
        leftovers = tuple(_info(p, f"group {self.pgid}") for p in self.members())
        return StopResult(
            returncode=self.returncode,
            seconds=time.monotonic() - t0,
            escalated=escalated,
            leftovers=tuple(i for i in leftovers if i is not None),
        )

    def _wait_group_gone(self, deadline: float) -> bool:
        while True:
            self.wait(0)  # reap the leader so it does not linger as a zombie
            if not self.is_running() and not self.members():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)

    def log_tail(self, max_bytes: int = 4000) -> str:
        """The last ``max_bytes`` of the log file (empty if it does not exist)."""
        return read_tail(self.log_path, max_bytes)


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    name: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = False,
) -> ManagedProcess:
    """Start ``argv`` as the leader of a new session/process group.

    stdout and stderr are appended to ``log_path`` (parents created); stdin is /dev/null.
    ``env`` is the complete environment (None: inherit ours). ``die_with_parent=True`` makes
    the child get SIGTERM if the calling thread dies without stopping it (see
    :class:`_DieWithParent`). Raises :class:`ExecutableNotFoundError` with a readable message
    if ``argv[0]`` cannot be run.
    """
    if not argv:
        raise ValueError("argv must not be empty")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
                preexec_fn=_DieWithParent() if die_with_parent else None,
            )
        except FileNotFoundError as e:
            raise ExecutableNotFoundError(f"cannot run {argv[0]!r}: not found ({e})") from e
        except PermissionError as e:
            raise ExecutableNotFoundError(f"cannot run {argv[0]!r}: not executable ({e})") from e
    return ManagedProcess(
        name=name or Path(argv[0]).name, argv=tuple(argv), log_path=log_path, popen=popen
    )


class _DieWithParent:
    """``preexec_fn`` that asks Linux to SIGTERM the child when its parent dies (prctl).

    A backstop for a parent that is killed or crashes (a test run interrupted with SIGKILL,
    say) before it calls :meth:`ManagedProcess.stop`; normal teardown is still ``stop``.
    Linux sends the signal when the *thread* that forked exits, so spawn from a thread that
    outlives the child (the main thread, in tests). libc is loaded here, in the parent, so
    the forked child makes only plain C calls: no imports, no locks. Elsewhere than Linux
    there is no PR_SET_PDEATHSIG and this does nothing.
    """

    _PR_SET_PDEATHSIG = 1

    def __init__(self) -> None:
        import ctypes  # imported here: only callers that ask for die_with_parent need libc
        import sys

        self._libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
        self._parent = os.getpid()

    def __call__(self) -> None:
        if self._libc is None:
            return
        self._libc.prctl(self._PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != self._parent:  # the parent died before prctl took effect
            os._exit(1)


def group_members(pgid: int) -> list[psutil.Process]:
    """Live, non-zombie processes whose process group is ``pgid``."""
    out: list[psutil.Process] = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return out


def find_leftovers(
    *,
    pgids: Iterable[int] = (),
    markers: Iterable[str] = (),
    exclude_pids: Iterable[int] = (),
) -> list[ProcessInfo]:
    """Live processes in any of ``pgids``, or whose cmdline/environment contains a marker.

    The calling process is always excluded (it may legitimately carry a marker in its own
    environment), as are zombies and ``exclude_pids``. Environments of processes we may not
    read are skipped.
    """
    groups = set(pgids)
    marks = [m for m in markers if m]
    skip = {os.getpid(), *exclude_pids}
    found: list[ProcessInfo] = []
    for proc in psutil.process_iter():
        if proc.pid in skip:
            continue
        try:
            reason = _match(proc, groups, marks)
            info = _info(proc, reason) if reason else None
        except (ProcessLookupError, psutil.Error):
            continue
        if info is not None:
            found.append(info)
    return found


def _match(proc: psutil.Process, groups: set[int], marks: list[str]) -> str | None:
    if proc.status() == psutil.STATUS_ZOMBIE:
        return None
    pgid = os.getpgid(proc.pid)
    if pgid in groups:
        return f"group {pgid}"
    if not marks:
        return None
    cmdline = " ".join(proc.cmdline())
    if any(m in cmdline for m in marks):
        return "cmdline"
    try:
        environ = proc.environ()
    except psutil.AccessDenied:
        return None
    if any(m in v for v in environ.values() for m in marks):
        return "environ"
    return None


def _info(proc: psutil.Process, reason: str) -> ProcessInfo | None:
    try:
        return ProcessInfo(
            pid=proc.pid,
            pgid=os.getpgid(proc.pid),
            create_time=proc.create_time(),
            cmdline=" ".join(proc.cmdline()) or proc.name(),
            reason=reason,
        )
    except (ProcessLookupError, psutil.Error):
        return None


def kill_processes(
    infos: Iterable[ProcessInfo], *, timeout: float = DEFAULT_KILL_TIMEOUT_S
) -> list[ProcessInfo]:
    """SIGKILL each process by pid (only if it is still the same process); return survivors."""
    targets: list[tuple[ProcessInfo, psutil.Process]] = []
    for info in infos:
        try:
            proc = psutil.Process(info.pid)
            if abs(proc.create_time() - info.create_time) > 0.01:
                continue  # the pid was reused by an unrelated process
            proc.kill()
            targets.append((info, proc))
        except psutil.Error:
            continue
    _, alive = psutil.wait_procs([p for _, p in targets], timeout=timeout)
    alive_pids = {p.pid for p in alive}
    return [i for i, _ in targets if i.pid in alive_pids]


def process_tree_rss(pid: int) -> int:
    """Resident set size in bytes of ``pid`` and all its descendants (0 if it is gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def group_rss(pgid: int) -> int:
    """Resident set size in bytes of all live members of process group ``pgid``."""
    total = 0
    for proc in group_members(pgid):
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def is_port_free(port: int, host: str = "") -> bool:
    """True if a TCP listener could bind ``host:port`` now ("" = all interfaces)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


# Fixed ports are picked below Linux's ephemeral range (32768-60999 by default), where the OS
# puts every port it assigns for a bind to port 0, so the two never collide.
RESERVED_LOW, RESERVED_HIGH = 10_000, 32_000
RESERVATION_S = 120.0  # a reserved port is not handed out again for this long
_RESERVATIONS = Path("/tmp/rayscale-ports.json")
_RESERVATIONS_LOCK = Path("/tmp/rayscale-ports.lock")


def reserve_ports(count: int, host: str = "") -> list[int]:
    """``count`` distinct TCP ports for listeners that must be known before they bind.

    Prefer port 0 (the OS assigns the port when the listener binds: no race at all). For a
    port a client must be told in advance, this picks one that is free now and that no
    rayscale process on this machine was handed in the last ``RESERVATION_S`` seconds: the
    choice is made under an exclusive ``flock`` on ``/tmp/rayscale-ports.lock`` and recorded
    in ``/tmp/rayscale-ports.json``, so concurrent clusters (any process, any RAYSCALE_HOME)
    never get the same port. A process outside rayscale can still take it before it is bound;
    callers retry on a bind failure.
    """
    rng = random.Random()
    with _locked(_RESERVATIONS_LOCK):
        now = time.time()
        taken = {p: t for p, t in _read_reservations().items() if t > now - RESERVATION_S}
        out: list[int] = []
        for _ in range(2000):
            if len(out) == count:
                break
            port = rng.randint(RESERVED_LOW, RESERVED_HIGH)
            if port not in taken and port not in out and is_port_free(port, host):
                out.append(port)
        if len(out) < count:
            raise ProcessError(f"could not reserve {count} free TCP ports")
        taken.update({p: now for p in out})
        _RESERVATIONS.write_text(json.dumps({str(p): t for p, t in taken.items()}))
    return out


def free_port(host: str = "") -> int:
    """One reserved TCP port (see :func:`reserve_ports`)."""
    return reserve_ports(1, host)[0]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_reservations() -> dict[int, float]:
    try:
        return {int(k): float(v) for k, v in json.loads(_RESERVATIONS.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def read_tail(path: Path, max_bytes: int = 4000) -> str:
    """The last ``max_bytes`` of a text file, decoded leniently ("" if missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            return f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def stop_group(pgid: int, timeout: float = DEFAULT_KILL_TIMEOUT_S) -> list[ProcessInfo]:
    """Stop a process group known only by its id (e.g. recorded before a restart): SIGTERM,
    then SIGKILL after ``timeout``. The caller checks first that the group is still the one it
    started (the leader's create time). Returns the members left (normally none)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return []
        try:
            wait_until(lambda: not group_members(pgid), timeout, f"group {pgid} gone", _POLL_S)
            return []
        except WaitTimeoutError:
            continue
    return [i for i in (_info(p, f"group {pgid}") for p in group_members(pgid)) if i is not None]


def stop_on_signals(stop: threading.Event, logger: logging.Logger) -> None:
    """SIGTERM and SIGINT set ``stop`` (logged), so a long-running process (the sidecar, the
    dev cluster's keeper, the process kubelet) shuts down in order instead of dying."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del frame
        logger.info("received signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

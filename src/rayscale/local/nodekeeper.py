"""The keeper of one local Ray node: ``python -S -I nodekeeper.py PID=KIND ...``.

Stdlib only, started by ``exec`` from :mod:`rayscale.local.raystart` once ``ray start`` has
brought the node up, so it keeps that process's pid, process group and log (about 8 MB RSS
instead of the 130 MB of ``ray start --block``). It watches the processes ``ray start`` left
running. If one exits, it stops the rest and exits 1 (as ``ray start --block`` does). On
SIGTERM/SIGINT it stops them (GCS last), then whatever is left in its process group (agents,
Ray workers), and exits 0.

``nodekeeper.py --stop=CODE``: stop whatever is in the process group and exit with CODE (used
when ``ray start`` failed: without ``--block`` it leaves a half-started raylet running).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Sequence

_STOPPING: list[int] = []


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, pgrp, ...)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """True while ``pid`` runs (reaping it if it is our exited child)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def group_members(pgid: int) -> list[int]:
    """Live processes of process group ``pgid``, this one excluded."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            fields = _stat(int(name))
            if fields is not None and int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(name))
    return out


def terminate(pids: Sequence[int], timeout: float) -> None:
    """SIGTERM ``pids`` and wait up to ``timeout`` for them to go."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)


def keep(watched: dict[int, str]) -> int:
    """Block until a watched process exits (1) or we are told to stop (0); then clean up."""
    code = 0
    while not _STOPPING:
        dead = [p for p in watched if not alive(p)]
        if dead:
            print(f"rayscale node keeper: {[watched[p] for p in dead]} exited", flush=True)
            code = 1
            break
        time.sleep(0.2)
    terminate([p for p, k in watched.items() if k != "gcs_server"], 15)
    terminate([p for p, k in watched.items() if k == "gcs_server"], 10)
    pgid = os.getpgid(0)
    terminate(group_members(pgid), 5)
    for pid in group_members(pgid):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return code


def main(argv: Sequence[str]) -> int:
    if len(argv) == 1 and argv[0].startswith("--stop="):  # ray start failed: clean up, exit
        _STOPPING.append(1)
        keep({})
        return int(argv[0].removeprefix("--stop="))
    watched = {int(p): k for p, k in (a.split("=", 1) for a in argv)}
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: _STOPPING.append(1))
    print(f"rayscale node keeper (pid {os.getpid()}) watching {watched}", flush=True)
    return keep(watched)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

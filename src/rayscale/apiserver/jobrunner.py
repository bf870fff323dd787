"""Run a job's entrypoint and record its exit code in a file: ``python -m
rayscale.apiserver.jobrunner EXIT_FILE ARGV...``.

The API server spawns this (in its own process group, output to the job's log) instead of the
entrypoint itself, so a job's outcome survives an API server restart: the restarted server
reads EXIT_FILE instead of needing the Popen it lost. Standard library only (it runs beside
every driver).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m rayscale.apiserver.jobrunner EXIT_FILE ARGV...", file=sys.stderr)
        return 2
    exit_file, command = argv[0], argv[1:]
    stopped: list[int] = []

    def on_term(signum: int, frame: object) -> None:
        del frame
        stopped.append(signum)  # the driver, in our process group, got the signal too

    signal.signal(signal.SIGTERM, on_term)
    try:
        code = subprocess.call(command)
    except OSError as exc:
        print(f"cannot run {command[0]!r}: {exc}", file=sys.stderr, flush=True)
        code = 127
    tmp = f"{exit_file}.tmp"
    with open(tmp, "w") as f:
        json.dump({"code": code, "at": time.time(), "signalled": bool(stopped)}, f)
    os.replace(tmp, exit_file)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

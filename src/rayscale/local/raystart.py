"""``python -I raystart.py --tag=T [--no-*-agent] -- start ARGS...``: ``ray start``, then a keeper.

Run by path with ``-I`` (it imports only the stdlib, Ray and psutil), so it works whatever
``sys.path`` the caller had.

Why not ``ray start --block``:
- **Names.** All nodes of a local cluster share one Ray temp dir (so the head's log monitor
  streams every node's task output to drivers). ``ray start`` names each node's Unix sockets and
  log files with the first free counter (``sockets/plasma_store.2``, ``raylet.2.out``), checked
  with ``os.path.exists`` long before the raylet binds the socket. Workers booting together pick
  the same name, and every raylet but one dies with ``bind: Address already in use`` (the
  plasma store's socket), then ``ray start`` times out after 30 s. Here the names carry the
  node's tag instead (``plasma_store.w3``, ``raylet.w3.out``): unique by construction, and they
  tell which log belongs to which node.
- **Memory.** ``ray start --block`` keeps a Python process with all of Ray imported (about
  130 MB RSS) alive for the node's lifetime only to watch its children. Here the same process
  runs ``ray start`` without ``--block`` and then ``exec``s a stdlib-only keeper (about 8 MB)
  under the same pid, so its process group, log file and pid stay what the caller spawned.

- **CPU.** A node boot on a 2-core machine is CPU-bound, so its CPU time decides how many
  nodes boot at once in a given time. ``ray start`` imports ``ray.scripts.scripts``, which adds
  the ``ray list``/``ray job``/``ray serve`` command groups if it can import them (Serve,
  FastAPI, NumPy...): 0.7 of its 1.0 CPU-s. They are marked unimportable here
  (``UNUSED_CLI_MODULES``; ``ray start`` never uses them, and Ray skips a group that fails to
  import). ``--no-dashboard-agent`` and ``--no-runtime-env-agent`` make the raylet start
  stdlib stand-ins for those agents (:mod:`rayscale.local.agentstub`,
  :mod:`rayscale.local.runtimeenvstub`) by rewriting its ``--*_agent_command`` flags.

The keeper (:mod:`rayscale.local.nodekeeper`) watches the processes ``ray start`` left
running (the raylet; on a head also GCS, the API server, the client server, the log monitor).
It does not drain the node on SIGTERM as ``ray start --block`` does: the autoscaler drains
through GCS before it stops a worker.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _unique_names(tag: str) -> None:
    """Make every socket and "unique" log file name of this node carry ``tag``."""
    from ray._private.node import Node

    original = Node._make_inc_temp

    def tagged(self: Any, suffix: str = "", prefix: str = "", directory_name: Any = None) -> Any:
        return original(self, suffix, f"{prefix}.{tag}" if prefix else tag, directory_name)

    Node._make_inc_temp = tagged  # type: ignore[method-assign]


# The raylet's flag holding each agent's command -> (our stub, the real agent's arguments the
# stub needs).
STUBS = {
    "dashboard": ("--dashboard_agent_command=", "agentstub.py", ("--node-id=", "--session-dir=")),
    "runtime-env": (
        "--runtime_env_agent_command=",
        "runtimeenvstub.py",
        ("--node-id=", "--session-dir=", "--node-ip-address=", "--runtime-env-agent-port="),
    ),
}

# ``ray.scripts.scripts`` adds these subcommand groups when it can import them (``ray list``,
# ``ray job``, ``ray serve``; it skips any that fail to import). ``ray start`` never uses them,
# and importing them (Serve, FastAPI, NumPy, aiohttp...) was about 0.7 of the CLI's 1.0 CPU-s
# per node boot.
UNUSED_CLI_MODULES = (
    "ray.serve.scripts",
    "ray.dashboard.modules.job.cli",
    "ray.util.state.state_cli",
)


def _stub_agents(kinds: Sequence[str]) -> None:
    """Have the raylet start our stubs (``STUBS``) in place of the agents named in ``kinds``."""
    from ray._private import ray_constants, services

    original = services.start_ray_process
    stubs = [STUBS[k] for k in kinds]

    def start(command: list[str], process_type: str, *args: Any, **kwargs: Any) -> Any:
        if process_type == ray_constants.PROCESS_TYPE_RAYLET:
            for flag, stub, keep in stubs:
                command = [_replace_agent(a, flag, stub, keep) for a in command]
        return original(command, process_type, *args, **kwargs)

    services.start_ray_process = start


def _skip_dashboard_deps_probe() -> None:
    """On a worker whose dashboard agent is stubbed, skip Ray's probe of the dashboard's
    optional dependencies (it imports aiohttp, OpenTelemetry, pydantic...: about 0.15 CPU-s).

    On a worker node ``ray start`` calls the probe once, in ``services.start_raylet``, only to
    add ``--minimal`` to the dashboard agent's command, which the stub replaces. (A head
    calls it for the API server too, so heads keep the probe.)
    """
    from ray._private import utils

    utils.get_dashboard_dependency_error = lambda: None


def _replace_agent(arg: str, flag: str, stub: str, keep: Sequence[str]) -> str:
    if not arg.startswith(flag):
        return arg
    real = shlex.split(arg[len(flag) :])
    kept = [a for a in real if a.startswith(tuple(keep))]
    path = str(Path(__file__).with_name(stub))
    return str(flag + subprocess.list2cmdline([sys.executable, "-S", "-I", path, *kept]))


def _kind(cmdline: Sequence[str]) -> str:
    text = " ".join(cmdline)
    for hint, kind in (("gcs_server", "gcs_server"), ("raylet/raylet", "raylet")):
        if hint in text:
            return kind
    return os.path.basename(cmdline[0]) if cmdline else "process"


def _run_ray_start(args: Sequence[str]) -> int:
    for name in UNUSED_CLI_MODULES:
        sys.modules[name] = None  # type: ignore[assignment]  # makes ``import name`` fail
    from ray.scripts.scripts import main as ray_main

    sys.argv = ["ray", *args]
    try:
        ray_main()  # type: ignore[no-untyped-call]
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


USAGE = (
    "usage: python -I raystart.py --tag=TAG [--no-dashboard-agent] [--no-runtime-env-agent]"
    " -- start ARGS..."
)
FLAGS = {"--no-dashboard-agent": "dashboard", "--no-runtime-env-agent": "runtime-env"}


def main(argv: Sequence[str]) -> int:
    if "--" not in argv:
        print(USAGE, file=sys.stderr)
        return 2
    split = list(argv).index("--")
    own, ray_args = argv[:split], argv[split + 1 :]
    tags = [a.removeprefix("--tag=") for a in own if a.startswith("--tag=")]
    unknown = [a for a in own if not a.startswith("--tag=") and a not in FLAGS]
    if len(tags) != 1 or unknown or not ray_args or "--block" in ray_args:
        print(f"{USAGE}\n(do not pass --block: the keeper blocks)", file=sys.stderr)
        return 2
    _unique_names(tags[0])
    stubbed = [kind for flag, kind in FLAGS.items() if flag in own]
    if stubbed:
        _stub_agents(stubbed)
    if "dashboard" in stubbed and "--head" not in ray_args:
        _skip_dashboard_deps_probe()
    code = _run_ray_start(ray_args)
    keeper = str(Path(__file__).with_name("nodekeeper.py"))
    sys.stdout.flush()
    sys.stderr.flush()
    if code != 0:  # without --block, ray start leaves what it started running: stop it
        os.execv(sys.executable, [sys.executable, "-S", "-I", "-u", keeper, f"--stop={code}"])
    import psutil

    children = []
    for child in psutil.Process().children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                children.append(f"{child.pid}={_kind(child.cmdline())}")
        except psutil.Error:
            continue
    os.execv(sys.executable, [sys.executable, "-S", "-I", "-u", keeper, *children])
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

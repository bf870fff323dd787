"""Run a real Ray cluster on this machine: a Ray head plus workers, each a ``ray start``.

Each cluster gets
- its own short directory (``/tmp/rs-<name>-<random>``) holding the nodes' launcher logs, the
  Ray temp dir (``<dir>/ray``, shared by all nodes of the cluster, as in Ray's own
  ``cluster_utils``, so the head's log monitor streams every node's task output to drivers)
  and the cluster's auth token (``<dir>/auth_token``, mode 0600; see
  :mod:`rayscale.local.rayauth`);
- port 0 for everything Ray can bind on its own (node manager, object manager, worker ports,
  agents, metrics, GCS, dashboard): the OS assigns each port at bind time, so nodes booting
  together cannot collide. Only the head's Ray client server port must be fixed; it comes
  from :func:`rayscale.processes.reserve_ports` (a machine-wide lock) and a head that
  loses the port anyway is started again with another;
- every node started by :mod:`rayscale.local.raystart` (``ray start``, then a small keeper
  instead of ``ray start --block``) with a tag (``h``, ``w1``, ``w2``...) in all its socket and
  log file names, in its own process group (see :mod:`rayscale.processes`), with
  ``RAYSCALE_RUN_DIR=<dir>`` in its environment so that leftovers are found even if a Ray
  process leaves the group. :meth:`LocalRayCluster.boot_failure_line` reads those logs.

Measured on the 2-core development machine (``python -m rayscale.bench.boots 1,3,6,10``):
- head (``--num-cpus=0``, no dashboard UI, no monitor) spawn -> GCS answers: 3.3-6.2 s,
  about 390 MB RSS (keeper 10, gcs_server 42, raylet 27, minimal API server 115, ray client
  server 88, log monitor 78, dashboard agent stub 10, runtime-env agent stub 20); with
  ``ray start --block`` and the real agent it was about 680 MB;
- worker: about 67 MB RSS for its process group before any Ray worker process runs a task
  (keeper 10, raylet 27, dashboard agent stub 10, runtime-env agent stub 20), was 360 MB
  (``ray start --block`` CLI 133, raylet 28, dashboard agent 119, runtime-env agent 80); about
  0.5 CPU-s to boot (0.3 of it ``import ray`` in ``ray start``), was 1.5;
- N workers started at once -> all in GCS: N=1 0.5 s, 6: 1.9-2.6 s, no failed boot (with
  Ray's ports: 2 of 3, 5 of 6 and 8 of 10 failed). The CPU is the limit (see above);
- SIGTERM -> group gone: under 1 s for an idle worker or a lone head.

Dashboard choice: ``--include-dashboard=true`` starts nine dashboard module subprocesses
(~90 MB each): the head grew to about 1.6 GB RSS and took 6.2-6.6 s instead of 4.9-5.3 s.
The autoscaler needs GCS only, so it is off by default; Ray then still runs a minimal API
server (usage stats only, no job submission REST API). Turn it on when the jobs API or UI
is needed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rayscale import processes
from rayscale.local import raylogs
from rayscale.local.rayauth import (
    TOKEN_FILE,
    _ray_module,
    auth_env,
    client_auth,
    without_auth,
    write_token,
)
from rayscale.planner.model import HEAD_GROUP
from rayscale.processes import ManagedProcess, ProcessInfo, StopResult
from rayscale.protocol import (
    AUTH_MODE_ENV,
    AUTH_TOKEN_ENV,
    AUTH_TOKEN_PATH_ENV,
    INSTANCE_ID_ENV,
    NODE_TYPE_ENV,
    RESOURCE_REQUEST_KV_KEY,
)

__all__ = [
    "AUTH_MODE_ENV",
    "AUTH_TOKEN_ENV",
    "AUTH_TOKEN_PATH_ENV",
    "TOKEN_FILE",
    "LocalRayCluster",
    "NodePorts",
    "NodeResources",
    "RayNode",
    "auth_env",
    "boot_failure_line",
    "client_auth",
    "start_head",
    "without_auth",
    "write_token",
]  # fmt: skip

# Ray's type stubs do not declare these; they are imported lazily (importing ray takes ~0.5 s).
GcsClient = Any  # ray._raylet.GcsClient
ClusterResourceState = Any  # ray.core.generated.autoscaler_pb2.ClusterResourceState

# --- constants -------------------------------------------------------------------------------
# (Ray/KubeRay interface facts come from rayscale.protocol; HEAD_GROUP from the planner model.)

MARKER_ENV = "RAYSCALE_RUN_DIR"
DRAIN_TIMEOUT_ENV = "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"
RAY_TEMP_SUBDIR = "ray"
HEAD_TAG = "h"
LAUNCHER = Path(__file__).with_name("raystart.py")

# Above Ray's 75 MiB floor; Ray's default (30% of RAM per node) would not fit many nodes.
DEFAULT_OBJECT_STORE_BYTES = 80 * 1024 * 1024
DEFAULT_HEAD_TIMEOUT_S = 120.0
DEFAULT_JOIN_TIMEOUT_S = 120.0
# Ray's drain-on-SIGTERM budget for nodes started with ``ray start --block`` (Ray's default is
# 30 s); our keeper does not drain (the autoscaler drains through GCS), the env is kept for
# nodes a user starts by hand against the cluster.
DEFAULT_DRAIN_TIMEOUT_S = 5.0
DEFAULT_STOP_TIMEOUT_S = 30.0
HEAD_PORT_ATTEMPTS = 3  # a head that lost a reserved port is started again with new ones
# AF_UNIX paths are limited to 107 bytes; Ray appends about 70 characters to the temp dir:
# "/ray/session_2026-11-23_09-34-57_226960_4858/sockets/plasma_store" + ".<tag>".
MAX_ROOT_LEN = 32
_PORT_IN_USE = re.compile(r"address already in use|already occupied|bind.*fail", re.IGNORECASE)
_AUTH_FAILED = re.compile(r"InvalidAuthToken|Unauthenticated|AuthenticationError")


# --- errors ----------------------------------------------------------------------------------


class RayNodesError(RuntimeError):
    """Base class for errors starting or stopping local Ray nodes."""


class RayNotFoundError(RayNodesError):
    """The ``ray`` executable could not be found."""


class PortInUseError(RayNodesError):
    """A port the node needs is already taken."""


class RayNodeExitedError(RayNodesError):
    """A node's process exited while we waited for it to become ready."""

    def __init__(self, message: str, log_tail: str, failure_line: str | None = None) -> None:
        why = f"\n{failure_line}" if failure_line else ""
        super().__init__(f"{message}{why}\n--- log tail ---\n{log_tail}")
        self.log_tail = log_tail
        self.failure_line = failure_line

    @property
    def auth_refused(self) -> bool:
        """True if the logs show the node was refused for a missing/wrong auth token."""
        return bool(_AUTH_FAILED.search(f"{self.failure_line or ''}\n{self.log_tail}"))


class RayStartTimeoutError(RayNodesError):
    """A node did not become ready in time."""


# --- resources and ports ---------------------------------------------------------------------


@dataclass(frozen=True)
class NodeResources:
    """What a node advertises to Ray (``ray start`` flags). None = let Ray detect it."""

    num_cpus: int | None = None
    num_gpus: int | None = None
    memory: int | None = None  # bytes
    custom: Mapping[str, float] = field(default_factory=dict)

    def to_args(self) -> list[str]:
        args: list[str] = []
        if self.num_cpus is not None:
            args.append(f"--num-cpus={self.num_cpus}")
        if self.num_gpus is not None:
            args.append(f"--num-gpus={self.num_gpus}")
        if self.memory is not None:
            args.append(f"--memory={self.memory}")
        if self.custom:
            args.append(f"--resources={json.dumps(dict(self.custom), sort_keys=True)}")
        return args


@dataclass(frozen=True)
class NodePorts:
    """Ports one Ray node listens on; 0 = the OS assigns it when the listener binds.

    Every flag of ``ray start`` that accepts 0 gets 0 (read in Ray 2.60's
    ``_private/parameter.py`` and ``services.py``, and tried): the node manager, object
    manager, worker ports (``--min/--max-worker-port=0``: each Ray worker binds its own),
    metrics export, dashboard agent (HTTP and gRPC), runtime-env agent, GCS (``--port=0``:
    Ray publishes it in ``ray_current_cluster``) and the dashboard. The Ray client server
    rejects 0 (``ray_client_server_port must be between 1024 and 65535``), and the two
    metrics ports set by environment variable are fixed too: those come from
    :func:`rayscale.processes.reserve_ports`. Head-only ports are None on workers.
    """

    node_manager: int = 0
    object_manager: int = 0
    metrics_export: int = 0
    dashboard_agent_listen: int = 0
    dashboard_agent_grpc: int = 0
    runtime_env_agent: int = 0
    min_worker: int = 0
    max_worker: int = 0
    gcs: int | None = None
    dashboard: int | None = None
    ray_client_server: int | None = None
    autoscaler_metrics: int | None = None  # env AUTOSCALER_METRIC_PORT (Ray monitor, 44217)
    dashboard_metrics: int | None = None  # env DASHBOARD_METRIC_PORT (dashboard head, 44227)

    @classmethod
    def allocate(cls, *, head: bool, gcs_port: int | None = None) -> NodePorts:
        """Port 0 wherever Ray allows it; reserved fixed ports for the head's few others."""
        if not head:
            return cls()
        client, autoscaler_metrics, dashboard_metrics = processes.reserve_ports(3)
        return cls(
            gcs=gcs_port or 0,
            dashboard=0,
            ray_client_server=client,
            autoscaler_metrics=autoscaler_metrics,
            dashboard_metrics=dashboard_metrics,
        )

    def listen_ports(self) -> list[int]:
        """Every fixed port (not 0, not the worker range) this node will bind."""
        return [v for k, v in vars(self).items() if v and "worker" not in k]

    def to_args(self) -> list[str]:
        args = [
            f"--node-manager-port={self.node_manager}",
            f"--object-manager-port={self.object_manager}",
            f"--metrics-export-port={self.metrics_export}",
            f"--dashboard-agent-listen-port={self.dashboard_agent_listen}",
            f"--dashboard-agent-grpc-port={self.dashboard_agent_grpc}",
            f"--runtime-env-agent-port={self.runtime_env_agent}",
            f"--min-worker-port={self.min_worker}",
            f"--max-worker-port={self.max_worker}",
        ]
        if self.gcs is not None:
            args.append(f"--port={self.gcs}")
        if self.dashboard is not None:
            args.append(f"--dashboard-port={self.dashboard}")
        if self.ray_client_server is not None:
            args.append(f"--ray-client-server-port={self.ray_client_server}")
        return args

    def to_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.autoscaler_metrics is not None:
            env["AUTOSCALER_METRIC_PORT"] = str(self.autoscaler_metrics)
        if self.dashboard_metrics is not None:
            env["DASHBOARD_METRIC_PORT"] = str(self.dashboard_metrics)
        return env


# --- executable, directories -----------------------------------------------------------------


def find_ray_executable() -> str:
    """The ``ray`` CLI of this Python environment (next to ``sys.executable``), else PATH."""
    candidate = Path(sys.executable).parent / "ray"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("ray")
    if found:
        return found
    raise RayNotFoundError(
        f"the `ray` executable was found neither next to {sys.executable} nor on PATH; "
        "install ray[default]>=2.60 into this environment (pip install -e '.[dev]')"
    )


def launcher_argv(
    ray_executable: str, tag: str, dashboard_agent: bool = False, runtime_env_agent: bool = False
) -> list[str]:
    """The command that starts one node: :mod:`rayscale.local.raystart` with the Python of
    ``ray_executable``'s environment (its ``ray start`` arguments follow). Without
    ``dashboard_agent`` the node runs :mod:`rayscale.local.agentstub` in its place, without
    ``runtime_env_agent`` :mod:`rayscale.local.runtimeenvstub`."""
    python = Path(ray_executable).parent / "python"
    if not (python.is_file() and os.access(python, os.X_OK)):
        python = Path(sys.executable)
    if not Path(ray_executable).is_file():
        raise RayNotFoundError(f"cannot run {ray_executable!r}: not found")
    lean = [] if dashboard_agent else ["--no-dashboard-agent"]
    lean += [] if runtime_env_agent else ["--no-runtime-env-agent"]
    return [str(python), "-I", str(LAUNCHER), f"--tag={tag}", *lean, "--", "start"]


def make_cluster_dir(name: str, base: Path | None = None) -> Path:
    """Create a fresh, short directory for one cluster (Unix socket paths are limited)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:10] or "c"
    root = Path(tempfile.mkdtemp(prefix=f"rs-{slug}-", dir=str(base or "/tmp")))
    if len(str(root)) > MAX_ROOT_LEN:
        shutil.rmtree(root, ignore_errors=True)
        raise RayNodesError(
            f"cluster dir {root} is longer than {MAX_ROOT_LEN} characters; Ray's Unix socket "
            "paths under it would exceed the 107-byte limit. Use a shorter base dir."
        )
    return root


# --- nodes and clusters ----------------------------------------------------------------------


@dataclass
class RayNode:
    """One Ray node (head or worker): its launcher/keeper process and what we know about it."""

    name: str
    group: str
    is_head: bool
    process: ManagedProcess
    ports: NodePorts
    resources: NodeResources
    ready_seconds: float | None = None  # spawn -> GCS ready (head) / joined (worker)
    stop_result: StopResult | None = None
    tag: str = ""  # in the node's Ray socket and log file names: raylet.<tag>.out
    temp_dir: Path | None = None  # the cluster's Ray temp dir

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def pgid(self) -> int:
        return self.process.pgid

    def rss_bytes(self) -> int:
        """RSS of every live process in this node's group (keeper, raylet, agents, workers)."""
        return processes.group_rss(self.pgid)


def boot_failure_line(node: RayNode) -> str | None:
    """Why ``node`` failed to boot, in one line, or None if its logs show no error.

    The first error of the node's own raylet log (``<temp>/session_*/logs/raylet.<tag>.err``
    then ``.out``: e.g. ``raylet: bind: Address already in use ...``), then of its agents'
    logs, then of its ``ray start`` output (e.g. ``Error: No such option: --bogus``,
    ``Exception: The current node timed out during startup...``). Cheap (reads a few small
    files); meant for a node whose process exited or did not join in time.
    """
    if node.temp_dir is None or not node.tag:
        return raylogs.first_error_line(node.process.log_tail(20_000))
    return raylogs.boot_failure_line(node.temp_dir, node.tag, node.process.log_path)


@dataclass
class LocalRayCluster:
    """A Ray head (and workers) running as local processes; see the module docstring."""

    name: str
    root: Path
    ray_executable: str
    token_path: Path
    gcs_address: str = ""
    _head: RayNode | None = None
    workers: dict[str, RayNode] = field(default_factory=dict)
    object_store_memory: int = DEFAULT_OBJECT_STORE_BYTES
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S
    node_env: dict[str, str] = field(default_factory=dict)  # extra env for every node
    stopped_nodes: list[RayNode] = field(default_factory=list)
    clients: list[ManagedProcess] = field(default_factory=list)  # drivers etc., see start_client
    _started_workers: int = 0  # for unique worker tags w1, w2, ...
    # Run Ray's dashboard agent on every node (needed by the dashboard); else a stub.
    dashboard_agent: bool = False
    # Run Ray's runtime-env agent on every node (needed by runtime_envs other than env_vars);
    # else :mod:`rayscale.local.runtimeenvstub`.
    runtime_env_agent: bool = False

    @property
    def head(self) -> RayNode:
        if self._head is None:
            raise RayNodesError(f"cluster {self.name!r} has no head node")
        return self._head

    # -- paths and env --

    @property
    def temp_dir(self) -> Path:
        return self.root / RAY_TEMP_SUBDIR

    @property
    def marker(self) -> str:
        """String found in the cmdline or env of every process of this cluster."""
        return str(self.root)

    def client_env(self) -> dict[str, str]:
        """The variables a driver/client must set to connect (see :mod:`rayauth`)."""
        return {"RAY_ADDRESS": self.gcs_address, **auth_env(self.token_path)}

    def client_environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """A complete environment for a client subprocess: ``base`` (default ours) with any
        inherited auth settings replaced by this cluster's."""
        return {**without_auth(os.environ if base is None else base), **self.client_env()}

    def nodes(self) -> list[RayNode]:
        return [self.head, *self.workers.values()]

    def all_pgids(self) -> list[int]:
        nodes = [n.pgid for n in [*self.nodes(), *self.stopped_nodes]]
        return [*nodes, *(c.pgid for c in self.clients)]

    # -- GCS --

    @contextlib.contextmanager
    def gcs(self) -> Iterator[GcsClient]:
        """A ``GcsClient`` for this cluster, with the cluster's token active in this block."""
        with client_auth(self.token_path):
            yield _ray_module("ray._raylet").GcsClient(address=self.gcs_address)

    def resource_state(self) -> ClusterResourceState:
        """``ray.autoscaler.v2.sdk.get_cluster_resource_state`` for this cluster."""
        from ray.autoscaler.v2.sdk import get_cluster_resource_state

        with self.gcs() as client:
            return get_cluster_resource_state(client)

    def resource_request_kv(self) -> Any:
        """The decoded JSON under GCS KV ``autoscaler_resource_request`` (None if unset)."""
        with self.gcs() as client:
            raw = client.internal_kv_get(RESOURCE_REQUEST_KV_KEY, None)
        return None if raw is None else json.loads(raw)

    # -- workers --

    def start_worker(
        self,
        name: str,
        group: str = "workers",
        resources: NodeResources | None = None,
        *,
        wait: bool = True,
        timeout: float = DEFAULT_JOIN_TIMEOUT_S,
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> RayNode:
        """Start a worker node named ``name`` (its ``RAY_CLOUD_INSTANCE_ID``) in ``group``.

        Safe to call many times at once: every port is OS-assigned and every socket/log name
        carries the node's tag. With ``wait``, returns once GCS lists a live node with that
        instance id; raises :class:`RayNodeExitedError` (e.g. auth refused: ``.auth_refused``;
        ``.failure_line``: see :func:`boot_failure_line`) or :class:`RayStartTimeoutError`.
        ``env`` overrides node variables, e.g. ``{"RAY_AUTH_MODE": "disabled"}`` to start a
        worker without the token.
        """
        if name in self.workers:
            raise RayNodesError(f"worker {name!r} already exists in cluster {self.name!r}")
        resources = resources or NodeResources()
        ports = NodePorts.allocate(head=False)
        self._started_workers += 1
        tag = f"w{self._started_workers}"
        argv = [
            *launcher_argv(self.ray_executable, tag, self.dashboard_agent, self.runtime_env_agent),
            f"--address={self.gcs_address}",
            *self._common_args(), "--include-log-monitor=false",
            *ports.to_args(), *resources.to_args(), *extra_args,
        ]  # fmt: skip
        node = self._spawn(name, group, False, argv, ports, resources, env, tag)
        self.workers[name] = node
        if wait:
            self.wait_joined(node, timeout)
        return node

    def wait_joined(self, node: RayNode, timeout: float = DEFAULT_JOIN_TIMEOUT_S) -> float:
        """Block until GCS lists ``node`` as alive; return seconds since it was spawned."""
        deadline = time.monotonic() + timeout
        while True:
            if not node.process.is_running():
                raise RayNodeExitedError(
                    f"worker {node.name!r} exited with code {node.process.returncode} "
                    f"before joining {self.gcs_address}",
                    node.process.log_tail(),
                    boot_failure_line(node),
                )
            if self._node_alive(node.name):
                node.ready_seconds = time.monotonic() - node.process.started_at
                return node.ready_seconds
            if time.monotonic() > deadline:
                raise RayStartTimeoutError(
                    f"worker {node.name!r} did not join {self.gcs_address} within {timeout:.0f}s"
                    f" ({boot_failure_line(node) or 'no error in its logs'})"
                    f"\n--- log tail ---\n{node.process.log_tail()}"
                )
            time.sleep(0.25)

    def boot_failure_line(self, node: RayNode) -> str | None:
        """See :func:`boot_failure_line`."""
        return boot_failure_line(node)

    def node_joined(self, instance_id: str) -> bool:
        """True if GCS lists a live node with this instance id (a worker pod's name)."""
        return self._node_alive(instance_id)

    def _node_alive(self, instance_id: str) -> bool:
        dead = _ray_module("ray.core.generated.autoscaler_pb2").NodeStatus.DEAD
        try:
            state = self.resource_state()
        except Exception:
            return False
        return any(n.instance_id == instance_id and n.status != dead for n in state.node_states)

    def stop_worker(self, name: str, timeout: float = DEFAULT_STOP_TIMEOUT_S) -> StopResult:
        """Stop one worker (SIGTERM to its keeper: it stops the raylet, then its group)."""
        node = self.workers.pop(name)
        node.stop_result = node.process.stop(timeout)
        self.stopped_nodes.append(node)
        return node.stop_result

    # -- clients --

    def start_client(
        self,
        argv: Sequence[str],
        name: str = "client",
        env: Mapping[str, str] | None = None,
    ) -> ManagedProcess:
        """Run a command (e.g. a driver script) against this cluster in its own process group.

        It gets :meth:`client_environ` plus ``env``; its output goes to ``<dir>/logs/<name>.log``.
        The cluster tracks it and :meth:`stop` stops it before the nodes.
        """
        log_path = self.root / "logs" / f"{name}-{len(self.clients)}.log"
        proc = processes.spawn(
            argv, name=name, log_path=log_path, env={**self.client_environ(), **(env or {})}
        )
        self.clients.append(proc)
        return proc

    def start_python(
        self, code: str, name: str = "driver", env: Mapping[str, str] | None = None
    ) -> ManagedProcess:
        """Run ``python -c code`` (this interpreter) as a client; see :meth:`start_client`."""
        return self.start_client([sys.executable, "-u", "-c", code], name, env)

    # -- whole cluster --

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT_S) -> list[ProcessInfo]:
        """Stop clients, then all workers (in parallel), then the head; return what is left."""
        for client in self.clients:
            client.stop(timeout)
        workers = list(self.workers)
        for name in workers:
            self.workers[name].process.send_signal(signal.SIGTERM)
        for name in workers:
            self.stop_worker(name, timeout)
        if self.head.stop_result is None:
            self.head.stop_result = self.head.process.stop(timeout)
        return self.leftovers()

    def leftovers(self) -> list[ProcessInfo]:
        """Live processes of this cluster's groups, or mentioning its directory."""
        return processes.find_leftovers(pgids=self.all_pgids(), markers=[self.marker])

    def remove_dir(self) -> None:
        """Delete the cluster directory (logs, Ray temp dir, token)."""
        shutil.rmtree(self.root, ignore_errors=True)

    # -- internals --

    def _common_args(self) -> list[str]:
        return [
            f"--temp-dir={self.temp_dir}",
            f"--object-store-memory={self.object_store_memory}",
            "--disable-usage-stats",
            "--log-style=record",
            "--log-color=false",
        ]

    def _node_environ(
        self, name: str, group: str, ports: NodePorts, override: Mapping[str, str] | None
    ) -> dict[str, str]:
        env = without_auth(os.environ)
        env.update(auth_env(self.token_path))
        env.update(
            {
                MARKER_ENV: self.marker,
                INSTANCE_ID_ENV: name,
                NODE_TYPE_ENV: group,
                DRAIN_TIMEOUT_ENV: str(self.drain_timeout_s),
                "RAY_USAGE_STATS_ENABLED": "0",
            }
        )
        env.update(ports.to_env())
        env.update(self.node_env)
        env.update(override or {})
        return env

    def _spawn(
        self,
        name: str,
        group: str,
        is_head: bool,
        argv: list[str],
        ports: NodePorts,
        resources: NodeResources,
        env: Mapping[str, str] | None,
        tag: str,
    ) -> RayNode:
        busy = [p for p in ports.listen_ports() if not processes.is_port_free(p)]
        if busy:
            raise PortInUseError(f"cannot start Ray node {name!r}: port(s) {busy} already in use")
        try:
            proc = processes.spawn(
                argv,
                name=name,
                log_path=self.root / "logs" / f"{name}.log",
                env=self._node_environ(name, group, ports, env),
            )
        except processes.ExecutableNotFoundError as e:
            raise RayNotFoundError(str(e)) from e
        return RayNode(
            name, group, is_head, proc, ports, resources, tag=tag, temp_dir=self.temp_dir
        )


def start_head(
    name: str = "rayscale",
    resources: NodeResources | None = None,
    *,
    head_name: str | None = None,
    include_dashboard: bool = False,
    runtime_env_agent: bool = False,
    monitor: bool = False,
    gcs_port: int | None = None,
    object_store_memory: int = DEFAULT_OBJECT_STORE_BYTES,
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S,
    base_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = DEFAULT_HEAD_TIMEOUT_S,
    token_path: Path | None = None,
) -> LocalRayCluster:
    """Start a Ray head as a local process and wait until its GCS answers.

    - ``include_dashboard=False`` (default): Ray still runs a minimal API server but not the
      nine dashboard modules (UI, jobs REST API, ...): about 1.5 s faster, 930 MB smaller.
    - ``runtime_env_agent=False`` (default): every node of the cluster runs
      :mod:`rayscale.local.runtimeenvstub` instead of Ray's runtime-env agent: runtime_envs
      other than ``env_vars`` fail with a clear ``RuntimeEnvSetupError``.
    - ``monitor=False`` (default): ``--no-monitor``, as KubeRay does with in-tree autoscaling:
      the autoscaler is ours, not Ray's monitor process.
    - ``gcs_port=None`` (default): the OS assigns GCS's port; a given port that is busy raises
      :class:`PortInUseError`.
    - ``env`` is added to every node's environment (head and workers).
    - ``token_path=None`` (default): a new token in the cluster dir; else the cluster uses the
      token in that file (the process kubelet passes the operator's token Secret).

    A head that loses one of its reserved fixed ports to another process before binding it is
    started again with new ones (``HEAD_PORT_ATTEMPTS``). On any other failure the head is
    stopped and the directory kept for its logs.
    """
    for attempt in range(1, HEAD_PORT_ATTEMPTS + 1):
        try:
            return _start_head_once(
                name, resources, head_name=head_name, include_dashboard=include_dashboard,
                runtime_env_agent=runtime_env_agent, monitor=monitor, gcs_port=gcs_port,
                object_store_memory=object_store_memory,
                drain_timeout_s=drain_timeout_s, base_dir=base_dir, env=env,
                extra_args=extra_args, timeout=timeout, token_path=token_path,
            )  # fmt: skip
        except PortInUseError:
            if gcs_port is not None or attempt == HEAD_PORT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _start_head_once(
    name: str,
    resources: NodeResources | None,
    *,
    head_name: str | None,
    include_dashboard: bool,
    runtime_env_agent: bool,
    monitor: bool,
    gcs_port: int | None,
    object_store_memory: int,
    drain_timeout_s: float,
    base_dir: Path | None,
    env: Mapping[str, str] | None,
    extra_args: Sequence[str],
    timeout: float,
    token_path: Path | None,
) -> LocalRayCluster:
    ray = find_ray_executable()
    launcher = launcher_argv(ray, HEAD_TAG, include_dashboard, runtime_env_agent)
    root = make_cluster_dir(name, base_dir)
    if token_path is None:
        token_path = root / TOKEN_FILE
        write_token(token_path)
    resources = resources or NodeResources()
    cluster = LocalRayCluster(
        name=name,
        root=root,
        ray_executable=ray,
        token_path=token_path,
        object_store_memory=object_store_memory,
        drain_timeout_s=drain_timeout_s,
        node_env=dict(env or {}),
        dashboard_agent=include_dashboard,
        runtime_env_agent=runtime_env_agent,
    )
    try:
        ports = NodePorts.allocate(head=True, gcs_port=gcs_port)
        argv = [
            *launcher, "--head", *cluster._common_args(),
            f"--include-dashboard={'true' if include_dashboard else 'false'}",
            *([] if monitor else ["--no-monitor"]),
            *ports.to_args(), *resources.to_args(), *extra_args,
        ]  # fmt: skip
        head = cluster._spawn(
            head_name or f"{name}-head", HEAD_GROUP, True, argv, ports, resources, None, HEAD_TAG
        )
        cluster._head = head
    except (RayNodesError, processes.ProcessError):
        cluster.remove_dir()  # nothing ran, no logs worth keeping
        raise
    try:
        _wait_head_ready(cluster, timeout)
    except BaseException:
        head.stop_result = head.process.stop()
        raise
    return cluster


def _wait_head_ready(cluster: LocalRayCluster, timeout: float) -> None:
    """Wait for ``ray start`` to write the GCS address, then for GCS to answer a query."""
    head = cluster.head
    address_file = cluster.temp_dir / "ray_current_cluster"
    deadline = time.monotonic() + timeout
    while True:
        if not head.process.is_running():
            tail = head.process.log_tail()
            why = boot_failure_line(head)
            msg = f"Ray head exited with code {head.process.returncode} while starting"
            if _PORT_IN_USE.search(f"{why}\n{tail}"):
                raise PortInUseError(f"{msg} (a port is in use): {why}\n{tail}")
            raise RayNodeExitedError(msg, tail, why)
        if not cluster.gcs_address and address_file.is_file():
            cluster.gcs_address = address_file.read_text().strip()
        if cluster.gcs_address and _gcs_answers(cluster):
            head.ready_seconds = time.monotonic() - head.process.started_at
            return
        if time.monotonic() > deadline:
            raise RayStartTimeoutError(
                f"Ray head did not become ready within {timeout:.0f}s"
                f"\n--- log tail ---\n{head.process.log_tail()}"
            )
        time.sleep(0.2)


def _gcs_answers(cluster: LocalRayCluster) -> bool:
    try:
        state = cluster.resource_state()
    except Exception:
        return False
    return len(state.node_states) > 0

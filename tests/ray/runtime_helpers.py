"""Helpers for the Ray-tier end-to-end tests of the embedded runtime (``rayscale up``).

The tests drive the product as a user does: the real ``rayscale`` CLI in subprocesses
(``up --detach``, ``status -o json``, ``exec``, ``down``), with ``RAYSCALE_HOME`` pointing at a
per-test directory and a RayCluster YAML written to tmp (a shipped sample with a unique
``metadata.name`` and, optionally, a shorter idle timeout or another upscaling mode).

The ``runtime`` fixture (import it into a test module) hands out :class:`RuntimeCluster`
objects and guarantees teardown: background drivers are stopped by their process group,
``rayscale down`` runs for every cluster, and then no process of any run of that cluster may
remain. Processes are found by marker: every Ray process of a local cluster carries its run
dir (``/tmp/rs-<slug>-XXXX``, see :func:`rayscale.local.raynodes.make_cluster_dir`) and
``<RAYSCALE_HOME>/clusters/<name>/`` in its environment, and each test's cluster name starts
with a random token, so the prefix
``/tmp/rs-<slug>-`` matches exactly the processes of this test's clusters, whichever run
(an old one left by a killed supervisor, or the current one) they belong to. The supervisors
seen in ``state.json`` must be gone as well. Leaked processes are killed by pid afterwards,
and the test fails with ``RAY PROCESS LEAK``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from rayscale import processes
from rayscale.local import registry
from rayscale.processes import ProcessInfo
from rayscale.spec import sample_path
from rayscale.waiting import StopWaiting, wait_until

RAYSCALE = str(Path(sys.executable).with_name("rayscale"))
LEAK_MESSAGE = "RAY PROCESS LEAK"
MARKER_ENV = "RAYSCALE_RUN_DIR"
INSTANCE_ENV = "RAY_CLOUD_INSTANCE_ID"
RUN_DIR_BASE = "/tmp"
CLI_TIMEOUT_S = 300.0
UP_TIMEOUT_S = 360.0
DOWN_TIMEOUT_S = 180.0
_TOKEN_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"

Status = dict[str, Any]


# --- names, specs ---------------------------------------------------------------------------


def unique_name(label: str) -> str:
    """A DNS-1035 cluster name starting with a random token (``rtk3x9-<label>``)."""
    token = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(4))
    return f"rt{token}-{label}"[:53].rstrip("-")


def run_dir_prefix(name: str) -> str:
    """The prefix of every run dir of cluster ``name`` (mirrors ``make_cluster_dir``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:10] or "c"
    return f"{RUN_DIR_BASE}/rs-{slug}-"


def spec_docs(sample: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(sample_path(sample).read_text()) if d]


def write_spec(
    directory: Path,
    sample: str,
    name: str,
    *,
    idle_timeout: int | None = None,
    upscaling_mode: str | None = None,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """A shipped sample, renamed; optionally with another idle timeout / mode / edit."""
    docs = spec_docs(sample)
    for doc in docs:
        if doc.get("kind") != "RayCluster":
            continue
        doc["metadata"]["name"] = name
        options = doc["spec"].setdefault("autoscalerOptions", {})
        if idle_timeout is not None:
            options["idleTimeoutSeconds"] = idle_timeout
        if upscaling_mode is not None:
            options["upscalingMode"] = upscaling_mode
        if edit is not None:
            edit(doc)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


# --- the CLI ----------------------------------------------------------------------------------


@dataclass
class Cli:
    """``rayscale`` in a subprocess, with its own ``RAYSCALE_HOME``."""

    home: Path

    def env(self) -> dict[str, str]:
        drop = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
        env = {k: v for k, v in os.environ.items() if k not in drop}
        env["RAYSCALE_HOME"] = str(self.home)
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        return env

    def run(self, *args: str, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [RAYSCALE, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"`{' '.join(map(str, result.args))}` exited {result.returncode}\n"
        f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}"
    )


# --- processes -------------------------------------------------------------------------------


def environ_of(proc: psutil.Process) -> dict[str, str]:
    try:
        return dict(proc.environ())
    except (psutil.Error, ProcessLookupError):
        return {}


def alive(pid: int, create_time: float | None = None) -> bool:
    """True if ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        proc = psutil.Process(pid)
        if create_time is not None and abs(proc.create_time() - create_time) > 0.05:
            return False
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def node_processes(run_dir: str) -> dict[str, list[psutil.Process]]:
    """Live processes of one run, by ``RAY_CLOUD_INSTANCE_ID`` (node / pod name)."""
    out: dict[str, list[psutil.Process]] = {}
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        env = environ_of(proc)
        if env.get(MARKER_ENV) == run_dir and env.get(INSTANCE_ENV):
            out.setdefault(env[INSTANCE_ENV], []).append(proc)
    return out


def ray_start_leader(run_dir: str, instance_id: str) -> int:
    """The pid (= pgid) of node ``instance_id``'s group leader in this run (its ``ray start``
    launcher, which stays as the node's keeper; see ``rayscale.local.raystart``)."""
    for proc in node_processes(run_dir).get(instance_id, []):
        try:
            if os.getpgid(proc.pid) == proc.pid:
                return int(proc.pid)
        except (psutil.Error, ProcessLookupError):
            continue
    raise AssertionError(f"no node leader process for {instance_id} under {run_dir}")


def run_dirs_with_processes(prefix: str) -> set[str]:
    """Run dirs (``RAYSCALE_RUN_DIR``) starting with ``prefix`` that still have a live process."""
    found = set()
    for proc in psutil.process_iter():
        env = environ_of(proc)
        value = env.get(MARKER_ENV, "")
        if value.startswith(prefix):
            try:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found.add(value)
            except psutil.Error:
                continue
    return found


def head_start_processes(prefix: str) -> list[psutil.Process]:
    """Live group leaders of head nodes (``<cluster>-head-xxxxx``) of any run whose dir starts
    with ``prefix``."""
    out = []
    for proc in psutil.process_iter():
        try:
            env = environ_of(proc)
            if (
                env.get(MARKER_ENV, "").startswith(prefix)
                and "-head-" in env.get(INSTANCE_ENV, "")
                and os.getpgid(proc.pid) == proc.pid
                and proc.status() != psutil.STATUS_ZOMBIE
            ):
                out.append(proc)
        except (psutil.Error, ProcessLookupError):
            continue
    return out


# --- a cluster run through the CLI ------------------------------------------------------------


def group(status: Status, name: str = "small-group") -> dict[str, Any]:
    for g in status.get("groups") or []:
        if g.get("name") == name:
            return dict(g)
    return {}


def workers(status: Status, name: str = "small-group") -> list[dict[str, Any]]:
    return [n for n in status.get("nodes") or [] if n.get("group") == name]


def counts(status: Status, name: str = "small-group") -> tuple[int, int]:
    """(running, pending) of a worker group in a status."""
    g = group(status, name)
    return int(g.get("running", -1)), int(g.get("pending", -1))


@dataclass
class RuntimeCluster:
    cli: Cli
    name: str
    spec: Path
    scratch: Path
    run_dirs: list[str] = field(default_factory=list)
    supervisors: list[tuple[int, float]] = field(default_factory=list)  # (pid, create time)
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)
    background_logs: dict[int, Path] = field(default_factory=dict)

    # -- files --
    @property
    def cluster_dir(self) -> Path:
        return self.cli.home / "clusters" / self.name

    @property
    def prefix(self) -> str:
        return run_dir_prefix(self.name)

    def state(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads((self.cluster_dir / "state.json").read_text())
            return data
        except (OSError, ValueError):
            return None

    def status_file(self) -> Status | None:
        """status.json as the supervisor wrote it on its last tick (no CLI round trip)."""
        try:
            data: Status = json.loads((self.cluster_dir / "status.json").read_text())
            return data
        except (OSError, ValueError):
            return None

    def records(self, file: str) -> list[dict[str, Any]]:
        """The supervisor's own JSONL records: ``ticks.jsonl`` (group counts whenever they
        change) or ``events.jsonl`` (every decision with its reason code)."""
        return registry.read_jsonl(self.cluster_dir / file)

    def log_tail(self, max_bytes: int = 4000) -> str:
        parts = []
        for name in ("supervisor.log", "supervisor.out"):
            text = processes.read_tail(self.cluster_dir / name, max_bytes)
            if text:
                parts.append(f"--- {name} ---\n{text}")
        return "\n".join(parts) or "(no supervisor log)"

    # -- commands --
    def up(self, period: float = 0.5) -> subprocess.CompletedProcess[str]:
        result = self.cli.run("up", str(self.spec), "--detach", "--period", str(period),
                              timeout=UP_TIMEOUT_S)  # fmt: skip
        self._remember()
        assert result.returncode == 0, describe(result) + "\n" + self.log_tail()
        return result

    def _remember(self) -> None:
        state = self.state()
        if state is None:
            return
        if state.get("run_dir") and state["run_dir"] not in self.run_dirs:
            self.run_dirs.append(state["run_dir"])
        entry = (int(state["pid"]), float(state["pid_started"]))
        if entry not in self.supervisors:
            self.supervisors.append(entry)

    @property
    def run_dir(self) -> str:
        state = self.state()
        assert state is not None and state.get("run_dir"), f"{self.name}: no run_dir in state"
        return str(state["run_dir"])

    def status(self) -> Status:
        """``rayscale status NAME -o json``."""
        result = self.cli.run("status", self.name, "-o", "json", timeout=60)
        assert result.returncode == 0, describe(result)
        data: Status = json.loads(result.stdout)
        return data

    def wait_status(
        self,
        check: Callable[[Status], bool],
        what: str,
        timeout: float = 180.0,
        *,
        interval: float = 0.5,
    ) -> Status:
        """Poll ``status -o json`` until ``check`` holds; fail with the last status and log."""
        last: Status = {}

        def ready() -> Status | None:
            nonlocal last
            last = self.status()
            if last.get("groups") and check(last):
                return last
            if not last.get("supervisor", {}).get("alive", True):
                raise StopWaiting(
                    f"{self.name}: supervisor died while waiting for {what}\n{self.log_tail()}"
                )
            return None

        def detail() -> str:
            return f"last status: {json.dumps(summary(last), indent=1)}\n{self.log_tail()}"

        return wait_until(ready, timeout, f"{self.name}: {what}", interval, detail)

    def wait_workers(
        self, running: int, timeout: float = 180.0, group_name: str = "small-group"
    ) -> Status:
        """Wait for exactly ``running`` running and 0 pending workers in ``group_name``."""
        return self.wait_status(
            lambda s: counts(s, group_name) == (running, 0),
            f"{running} running, 0 pending in {group_name}",
            timeout,
        )

    def exec(
        self, *argv: str, timeout: float = CLI_TIMEOUT_S, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``rayscale exec NAME -- argv...`` (waits for it)."""
        result = self.cli.run("exec", self.name, "--", *argv, timeout=timeout)
        if check:
            assert result.returncode == 0, describe(result)
        return result

    def exec_script(
        self, code: str, *args: str, timeout: float = CLI_TIMEOUT_S, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        path = self._script(code)
        return self.exec("python3", str(path), *args, timeout=timeout, check=check)

    def exec_background(self, code: str, *args: str) -> subprocess.Popen[bytes]:
        """A driver that keeps running, in its own process group (stopped at teardown)."""
        path = self._script(code)
        with open(path.with_suffix(".log"), "ab") as log:
            proc = subprocess.Popen(
                [RAYSCALE, "exec", self.name, "--", "python3", str(path), *args],
                env=self.cli.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.background.append(proc)
        self.background_logs[proc.pid] = path.with_suffix(".log")
        return proc

    def background_log(self, proc: subprocess.Popen[bytes]) -> str:
        return processes.read_tail(self.background_logs[proc.pid])

    def _script(self, code: str) -> Path:
        path = self.scratch / f"driver-{len(list(self.scratch.glob('driver-*.py')))}.py"
        path.write_text(code)
        return path

    def stop_background(self) -> None:
        for proc in self.background:
            stop_group(proc)
        self.background.clear()

    def kill_supervisor(self) -> int:
        """SIGKILL the supervisor (state.json pid); return its pid once it is gone."""
        state = self.state()
        assert state is not None, f"{self.name}: no state.json"
        pid, started = int(state["pid"]), float(state["pid_started"])
        assert alive(pid, started), f"{self.name}: supervisor {pid} is not running"
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not alive(pid, started), 30, f"supervisor {pid} to die")
        return pid

    def down(self) -> subprocess.CompletedProcess[str]:
        return self.cli.run("down", self.name, timeout=DOWN_TIMEOUT_S)

    # -- leak check --
    def leftovers(self) -> list[ProcessInfo]:
        """Every live process of any run of this cluster, and its live supervisors."""
        # The run-dir prefix, the run dirs seen, and the per-cluster marker every node carries
        # (``RAYSCALE_CLUSTER=<home>/clusters/<name>/``, rayscale.local.registry.process_marker).
        markers = [self.prefix, *self.run_dirs, f"{self.cluster_dir}/"]
        found = processes.find_leftovers(markers=markers)
        pids = {p.pid for p in found}
        for pid, started in self.supervisors:
            if pid not in pids and alive(pid, started):
                try:
                    proc = psutil.Process(pid)
                    found.append(
                        ProcessInfo(
                            pid,
                            os.getpgid(pid),
                            proc.create_time(),
                            " ".join(proc.cmdline()),
                            "supervisor",
                        )
                    )
                except (psutil.Error, ProcessLookupError):
                    continue
        return found

    def leftover_dirs(self) -> list[str]:
        base = Path(RUN_DIR_BASE)
        slug_prefix = Path(self.prefix).name
        return sorted(str(p) for p in base.glob(f"{slug_prefix}*"))


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL, the process group led by ``proc`` (started with a new session)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + timeout
        while processes.group_members(proc.pid) and time.monotonic() < deadline:
            proc.poll()
            time.sleep(0.1)
        proc.poll()
        if not processes.group_members(proc.pid):
            break
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def summary(status: Status) -> dict[str, Any]:
    """The parts of a status worth printing in a failure message."""
    return {
        "groups": [
            {k: g.get(k) for k in ("name", "desired", "running", "pending", "reasons")}
            for g in status.get("groups") or []
        ],
        "nodes": [(n.get("name"), n.get("state")) for n in status.get("nodes") or []],
        "demand": status.get("demand"),
        "infeasible": status.get("infeasible"),
        "held_back": status.get("held_back"),
        "loop_errors": status.get("loop_errors"),
        "recent_failures": status.get("recent_failures"),
        "supervisor": status.get("supervisor"),
    }


# --- the fixture --------------------------------------------------------------------------------

RuntimeFactory = Callable[..., RuntimeCluster]


@pytest.fixture(name="runtime")
def runtime_fixture(tmp_path: Path) -> Iterator[RuntimeFactory]:
    """Factory: ``runtime(sample, label, idle_timeout=..., upscaling_mode=..., edit=...)``.

    Returns a :class:`RuntimeCluster` (not started: call ``.up()``). Teardown stops background
    drivers, runs ``rayscale down`` for each cluster and fails the test if any process of any
    of its runs (or a supervisor) is left, or a run dir stayed in /tmp.
    """
    cli = Cli(tmp_path / "home")
    made: list[RuntimeCluster] = []

    def make(
        sample: str = "autoscaler",
        label: str = "c",
        *,
        idle_timeout: int | None = None,
        upscaling_mode: str | None = None,
        edit: Callable[[dict[str, Any]], None] | None = None,
    ) -> RuntimeCluster:
        name = unique_name(label)
        scratch = tmp_path / name
        scratch.mkdir()
        spec = write_spec(
            scratch, sample, name, idle_timeout=idle_timeout, upscaling_mode=upscaling_mode,
            edit=edit,
        )  # fmt: skip
        cluster = RuntimeCluster(cli, name, spec, scratch)
        made.append(cluster)
        return cluster

    yield make

    problems: list[str] = []
    for cluster in made:
        cluster.stop_background()
        cluster._remember()
        if cluster.state() is not None:
            try:
                result = cluster.down()
                if result.returncode != 0:
                    problems.append(describe(result))
            except subprocess.TimeoutExpired as e:
                problems.append(f"{cluster.name}: `rayscale down` timed out: {e}")
        leaks = cluster.leftovers()
        if leaks:
            problems.append(_leak_report(cluster.name, leaks))
            processes.kill_processes(leaks)
        dirs = cluster.leftover_dirs()
        if dirs:
            problems.append(f"{cluster.name}: run dir(s) left in {RUN_DIR_BASE}: {dirs}")
            if os.environ.get("RAYSCALE_KEEP_DIRS") != "1":
                for d in dirs:
                    shutil.rmtree(d, ignore_errors=True)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def _leak_report(name: str, leaks: Sequence[ProcessInfo]) -> str:
    lines = "\n".join(f"  {info.describe()}" for info in leaks)
    return f"{LEAK_MESSAGE}: {len(leaks)} process(es) of cluster {name} left:\n{lines}"

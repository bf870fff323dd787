"""A real ``rayscale apiserver`` (uvicorn, local backend) in a subprocess, and an HTTP client.

The server runs with its own ``RAYSCALE_HOME`` under the test's tmp dir; every process it
starts (supervisors, Ray nodes, job drivers) inherits that path in its environment, which is
how the teardown finds them: it deletes what is left through the runtime (``control.down``),
then fails with ``RAY PROCESS LEAK`` if any process still carries the home path.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rayscale import processes
from rayscale.apiserver import walkthrough
from rayscale.local import control, registry

LEAK_MESSAGE = "RAY PROCESS LEAK"
NS = "/apis/v1/namespaces/default"


@dataclass
class Reply:
    status: int
    body: Any
    text: str


@dataclass
class ApiServer:
    home: Path
    port: int
    period: float = 0.5
    proc: processes.ManagedProcess | None = None
    logs: list[Path] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        drop = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
        env = {k: v for k, v in os.environ.items() if k not in drop}
        env.update(RAYSCALE_HOME=str(self.home), PYTHONUNBUFFERED="1")
        env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        return env

    def start(self) -> None:
        log = self.home / f"apiserver-{len(self.logs)}.log"
        self.logs.append(log)
        argv = [sys.executable, "-m", "rayscale.cli", "apiserver", "--port", str(self.port),
                "--period", str(self.period)]  # fmt: skip
        self.proc = processes.spawn(argv, log_path=log, name="apiserver", env=self.env())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not self.proc.is_running():
                raise AssertionError(f"the API server exited:\n{self.log_tail()}")
            try:
                if self.call("GET", "/healthz").status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"the API server did not answer /healthz:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the API server alone (not its group: what it started must survive)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.is_running():
            self.proc.stop(timeout=15)

    def log_tail(self) -> str:
        return "\n".join(processes.read_tail(p, 3000) for p in self.logs)

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            text = resp.read().decode()
        finally:
            conn.close()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return Reply(resp.status, parsed, text)

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        reply = self.call(method, path, body)
        assert reply.status == 200, f"{method} {path}: {reply.status} {reply.text}"
        return reply.body

    def wait(self, path: str, check: Callable[[Any], bool], what: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = self.ok("GET", path)
            if check(last):
                return last
            time.sleep(0.5)
        raise AssertionError(
            f"timed out after {timeout:.0f}s waiting for {what}; last: "
            f"{json.dumps(last)[:3000]}\n{self.log_tail()}"
        )

    def leftovers(self) -> list[processes.ProcessInfo]:
        return processes.find_leftovers(markers=[str(self.home)])


def group(cluster: dict[str, Any], name: str = "small-wg") -> dict[str, Any]:
    return next((g for g in cluster.get("groups") or [] if g["name"] == name), {})


@pytest.fixture(name="api_server")
def api_server_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiServer]:
    """A started API server whose home already holds the walkthrough's ConfigMap (as
    ``rayscale apply -f`` stores it). Teardown stops everything and checks for leaks."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("RAYSCALE_HOME", str(home))
    server = ApiServer(home, processes.free_port())
    cm = tmp_path / "ray-example.yaml"
    cm.write_text(walkthrough.config_map_yaml())
    import subprocess

    applied = subprocess.run(
        [sys.executable, "-m", "rayscale.cli", "apply", "-f", str(cm)],
        env=server.env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    assert "configmap/ray-example" in applied.stdout
    server.start()
    yield server
    problems = []
    if server.proc is not None and server.proc.is_running():  # stop jobs a failed test left
        try:
            for job in server.call("GET", "/apis/v1/jobs").body["jobs"]:
                if job["jobStatus"] in ("PENDING", "RUNNING"):
                    server.call("DELETE", f"{NS}/jobs/{job['name']}")
        except (OSError, KeyError, TypeError) as exc:
            problems.append(f"could not stop the jobs through the API: {exc}")
    server.stop()
    for name in registry.names():
        try:
            control.down(name, timeout=60)
        except control.ControlError as exc:
            problems.append(f"down {name}: {exc}")
    leaks = server.leftovers()
    if leaks:
        problems.append(
            f"{LEAK_MESSAGE}: {len(leaks)} process(es) left:\n"
            + "\n".join(f"  {p.describe()}" for p in leaks)
        )
        processes.kill_processes(leaks)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)

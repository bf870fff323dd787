"""The supervisor behind ``rayscale up``: one process that owns a local cluster.

It starts the head and the initial workers, runs the autoscaler loop against them, writes
the status each iteration, and on SIGTERM/SIGINT (Ctrl-C) stops every process it started.
If it is killed outright, ``rayscale down`` (or the next ``up`` of the same cluster) finds and
stops what is left, by the run dir every process carries in its environment.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

from rayscale.autoscaler.loop import Autoscaler, TickReport
from rayscale.autoscaler.status import ClusterStatus, build_status, ray_status_payload
from rayscale.local import registry
from rayscale.local.raynodes import client_auth
from rayscale.local.runtime import LocalRuntime
from rayscale.planner import GroupConfig
from rayscale.ray.gcs import GcsView
from rayscale.spec import LoadedSpec, load_file, to_group_configs

RAY_STATUS_REFRESH_S = 10.0

log = logging.getLogger("rayscale.supervisor")


class AlreadyRunningError(RuntimeError):
    pass


def prepare(name: str) -> str | None:
    """Refuse a second supervisor; clean up after a dead one. Returns a note, if any."""
    record = registry.read(name)
    if record is None:
        return None
    if registry.supervisor_alive(record):
        raise AlreadyRunningError(
            f"cluster {name!r} is already running (supervisor pid {record.pid}); "
            f"use `rayscale status {name}` or stop it with `rayscale down {name}`"
        )
    found = registry.leftovers(record)
    survivors = registry.clean_up(record)
    if survivors:
        raise RuntimeError(f"could not stop processes left by a dead supervisor: {survivors}")
    return f"cleaned up {len(found)} process(es) left by a dead supervisor of {name!r}"


def _log_to(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("rayscale")
    root.setLevel(logging.INFO)
    root.addHandler(handler)


class Supervisor:
    def __init__(
        self, spec: LoadedSpec, spec_path: str, period: float = 1.0, read_period: float = 0.2
    ) -> None:
        self.spec = spec
        self.spec_path = spec_path
        self.period = period
        self.read_period = min(read_period, period)
        self.groups: tuple[GroupConfig, ...] = to_group_configs(spec.cluster)
        self.name = spec.cluster.name
        self.stop = threading.Event()
        self.runtime = LocalRuntime(spec, marker=registry.process_marker(self.name))
        self.autoscaler: Autoscaler | None = None
        self.view: GcsView | None = None
        self.last: ClusterStatus | None = None
        self._last_counts: Any = None
        self.listeners: list[Callable[[TickReport], None]] = []
        self._published: tuple[float, Any] = (0.0, None)

    def start(self) -> registry.ClusterRecord:
        note = prepare(self.name)
        for file in (registry.EVENTS_FILE, registry.TICKS_FILE):
            (registry.cluster_dir(self.name) / file).unlink(missing_ok=True)
        _log_to(registry.cluster_dir(self.name) / "supervisor.log")
        if note:
            log.warning("%s", note)
        me = psutil.Process()
        record = registry.ClusterRecord(self.name, self.spec_path, me.pid, me.create_time())
        registry.write(record)
        try:
            ray = self.runtime.start()
        except BaseException:
            self.runtime.teardown()
            registry.clean_up(record)
            raise
        record.status = "ready"
        record.run_dir = str(ray.root)
        record.address = ray.gcs_address
        record.token_path = str(ray.token_path)
        record.mounts = {k: str(v) for k, v in self.runtime.mounts.items()}
        registry.write(record)
        log.info("cluster %s ready at %s (head %s)", self.name, ray.gcs_address, ray.head.name)
        return record

    def _on_tick(self, report: TickReport) -> None:
        """Record one planning tick: status.json, events.jsonl, ticks.jsonl, `ray status`."""
        assert self.runtime.kubelet is not None
        failures = [r.text() for r in self.runtime.kubelet.failures]
        errors = self.autoscaler.failures if self.autoscaler else 0
        status = build_status(
            self.name,
            self.runtime.head_address,
            self.groups,
            report,
            failures,
            errors,
            self.runtime.kubelet.failed_boots,
        )
        self.last = status
        registry.write_status(self.name, status.model_dump(mode="json"))
        events = [e.to_json(report.at) for e in report.events if e.type != "waiting"]
        registry.append_jsonl(self.name, registry.EVENTS_FILE, events)
        counts = {
            g.name: {"desired": g.desired, "running": g.running, "pending": g.pending}
            for g in status.groups
        }
        if counts != self._last_counts:
            tick = {"at": report.at, "groups": counts}
            registry.append_jsonl(self.name, registry.TICKS_FILE, [tick])
            self._last_counts = counts
        self._publish(status)
        for listener in self.listeners:
            listener(report)

    def _publish(self, status: ClusterStatus) -> None:
        """Keep Ray's own `ray status` current: on change, and at least every 10 s."""
        if self.view is None:
            return
        key = status.model_dump(exclude={"updated_at", "iteration_seconds", "plan_seconds"})
        now = time.monotonic()
        if key == self._published[1] and now - self._published[0] < RAY_STATUS_REFRESH_S:
            return
        try:
            self.view.publish_status(ray_status_payload(status))
            self._published = (now, key)
        except Exception as exc:
            log.warning("could not publish ray status: %s", exc)

    def run(self, on_ready: Callable[[], None] | None = None) -> list[str]:
        """Run the loop until stopped; return descriptions of processes left (normally none)."""
        assert self.runtime.ray is not None
        try:
            with client_auth(self.runtime.ray.token_path):
                view = self.view = GcsView(self.runtime.head_address)
                # Who joined Ray, from the loop's own latest read (no extra GCS call).
                self.runtime.registered = lambda: {n.instance_id for n in view.last_nodes}
                self.runtime.reconcile()  # the initial workers: clamp(replicas, min, max)
                self.autoscaler = Autoscaler(self.groups, view, self.runtime, on_tick=self._on_tick)
                if on_ready:
                    on_ready()
                self.autoscaler.run(self.stop, self.read_period, self.period)
        finally:
            left = self.shutdown()
        return left

    def shutdown(self) -> list[str]:
        record = registry.read(self.name)
        if record is not None:
            record.status = "stopping"
            registry.write(record)
        log.info("stopping cluster %s", self.name)
        left = self.runtime.teardown()
        if left:
            log.error("processes left after teardown: %s", left)
        else:
            if self.runtime.ray is not None:
                self.runtime.ray.remove_dir()
            registry.forget(self.name)
        return left

    def handle_signals(self) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            del frame
            log.info("received signal %d: tearing down", signum)
            self.stop.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)


def main(argv: list[str] | None = None) -> int:
    """Detached entry point: ``python -m rayscale.local.supervisor SPEC [--period S]``."""
    parser = argparse.ArgumentParser(prog="rayscale-supervisor")
    parser.add_argument("spec")
    parser.add_argument("--period", type=float, default=1.0)
    args = parser.parse_args(argv)
    sup = Supervisor(load_file(Path(args.spec)), os.path.abspath(args.spec), args.period)
    sup.handle_signals()
    try:
        sup.start()
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    left = sup.run()
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())

"""The local backend: records in SQLite, clusters as detached local supervisors, jobs as drivers.

- A cluster becomes a RayCluster YAML (built from its compute templates, plus the ConfigMaps
  its volumes name) under ``$RAYSCALE_HOME/apiserver/clusters/`` and one supervisor started
  with :func:`rayscale.local.control.start_detached`. The supervisor outlives the API server;
  a restarted server finds it again through :mod:`rayscale.local.registry`.
- A job with ``clusterSelector`` runs its entrypoint as a driver process with the cluster's
  address and token (``ClusterRecord.client_environ``), wrapped by
  :mod:`rayscale.apiserver.jobrunner` so its exit code is on disk, in its own process group
  (:func:`rayscale.processes.spawn`) with a log file. Deleting a running job stops that
  group. Why a driver rather than Ray's job submission: see README ("Jobs on the local
  backend"): the jobs REST API needs the dashboard (~930 MB more per head).
- ``records_only=True`` stores clusters without starting anything (for ``bench apiserver``
  and the schemathesis run): their ``clusterState`` says ``records-only``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import shlex
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
import yaml

from rayscale import processes
from rayscale.apiserver import errors, mapping
from rayscale.apiserver.backends import common
from rayscale.apiserver.backends.common import CLUSTER_LABEL, check_namespace, selected_cluster
from rayscale.apiserver.errors import invalid_field, not_found
from rayscale.apiserver.models import (
    OUTPUT_ONLY_CLUSTER,
    OUTPUT_ONLY_JOB,
    Cluster,
    ClusterEvent,
    ComputeTemplate,
    GroupStatus,
    Job,
    JobStatus,
)
from rayscale.apiserver.store import ClusterRow, DuplicateError, JobRow, Store
from rayscale.local import control, registry

log = logging.getLogger("rayscale.apiserver")

MAX_EVENTS = 100
START_GRACE_S = 60.0  # a cluster with no registry record yet is "starting" this long
WARNING_EVENTS = frozenset({"drain_refused", "boot_failed", "action_failed"})
DEPLOYMENT = {
    JobStatus.PENDING: "Initializing",
    JobStatus.RUNNING: "Running",
    JobStatus.SUCCEEDED: "Complete",
    JobStatus.FAILED: "Failed",
    JobStatus.STOPPED: "Complete",
}
TERMINAL = frozenset({JobStatus.SUCCEEDED.value, JobStatus.FAILED.value, JobStatus.STOPPED.value})


def rfc3339(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def local_name(namespace: str, name: str) -> str:
    """The local runtime keys clusters by name alone: other namespaces get a prefix."""
    return name if namespace == "default" else f"{namespace}--{name}"


def encode_token(key: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode_token(token: str) -> tuple[str, str]:
    try:
        ns, name = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(ns), str(name)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise invalid_field(
            "continue", "not a token this server handed out", "pass the previous page's continue"
        ) from exc


def _pid_alive(pid: int | None, started: float | None) -> bool:
    if pid is None:
        return False
    try:
        proc = psutil.Process(pid)
        same = started is None or abs(proc.create_time() - started) < 0.05
        return bool(same and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


class LocalBackend:
    name = "local"

    def __init__(
        self, home: Path | None = None, *, records_only: bool = False, period: float = 1.0
    ) -> None:
        self.home = home or registry.home()
        self.root = self.home / "apiserver"
        self.store = Store(self.root / "apiserver.db")
        self.records_only = records_only
        self.period = period
        self._children: list[subprocess.Popen[bytes]] = []  # supervisors we spawned (to reap)
        self._drivers: dict[tuple[str, str], processes.ManagedProcess] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle --
    def start(self) -> None:
        self._finish_interrupted_deletes()
        self._thread = threading.Thread(target=self._loop, name="reconcile", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.store.close()

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.reconcile()
            except Exception:  # keep serving; the next pass retries
                log.exception("reconcile pass failed")

    def reconcile(self) -> None:
        """Reap exited children; start pending jobs whose cluster is ready; record job exits."""
        with self._lock:
            self._children = [p for p in self._children if p.poll() is None]
        for row in self.store.list_jobs():
            if row.status not in TERMINAL:
                self._refresh_job(row)

    def _finish_interrupted_deletes(self) -> None:
        for row in self.store.list_clusters(None):
            if row.phase == "deleting":
                with contextlib.suppress(errors.ApiError):
                    self.delete_cluster(row.namespace, row.name)

    # -- compute templates --
    def create_template(self, namespace: str, template: ComputeTemplate) -> ComputeTemplate:
        check_namespace(template.namespace, namespace)
        out = template.model_copy(update={"namespace": namespace})
        try:
            self.store.insert("templates", namespace, out.name, out.model_dump(by_alias=True))
        except DuplicateError:
            raise errors.ConflictError(
                f"compute template {template.name!r} already exists in namespace {namespace!r}",
                [errors.field_detail("name", "already exists")],
            ) from None
        return out

    def get_template(self, namespace: str, name: str) -> ComputeTemplate:
        row = self.store.get("templates", namespace, name)
        if row is None:
            raise not_found("compute template", name, namespace)
        return ComputeTemplate.model_validate(row.body)

    def list_templates(self, namespace: str | None) -> list[ComputeTemplate]:
        return [
            ComputeTemplate.model_validate(r.body)
            for r in self.store.list_rows("templates", namespace)
        ]

    def delete_template(self, namespace: str, name: str) -> None:
        if not self.store.delete("templates", namespace, name):
            raise not_found("compute template", name, namespace)

    # -- ConfigMaps (rayscale apply) --
    def put_config_map(self, namespace: str, name: str, data: dict[str, str]) -> None:
        self.store.upsert_config_map(namespace, name, data)

    # -- clusters --
    def build(
        self, namespace: str, cluster: Cluster
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The RayCluster CR and the ConfigMaps it mounts; 404 naming a missing one's field."""
        templates: dict[str, ComputeTemplate] = {}
        for field, name in mapping.template_names(cluster):
            if name not in templates:
                row = self.store.get("templates", namespace, name)
                if row is None:
                    raise not_found("compute template", name, namespace, field)
                templates[name] = ComputeTemplate.model_validate(row.body)
        config_maps: list[dict[str, Any]] = []
        for field, name in mapping.config_map_sources(cluster):
            row = self.store.get("configmaps", namespace, name)
            if row is None:
                err = not_found("ConfigMap", name, namespace, field)
                err.message += "; store it with `rayscale apply -f FILE.yaml`"
                raise err
            if all(cm["metadata"]["name"] != name for cm in config_maps):
                config_maps.append(mapping.config_map_manifest(name, namespace, row.body))
        cr = mapping.ray_cluster(
            cluster, namespace, templates, name=local_name(namespace, cluster.name)
        )
        common.check_ray_cluster(cr)
        return cr, config_maps

    def create_cluster(self, namespace: str, cluster: Cluster) -> Cluster:
        check_namespace(cluster.namespace, namespace)
        cr, config_maps = self.build(namespace, cluster)
        body = cluster.model_dump(by_alias=True, exclude=set(OUTPUT_ONLY_CLUSTER))
        body["namespace"] = namespace
        name = local_name(namespace, cluster.name)
        if self.records_only:
            row = self._insert_cluster(namespace, cluster.name, body, name, "records-only")
            return self._cluster_view(row)
        record = registry.read(name)
        if record is not None and registry.supervisor_alive(record):
            raise errors.ConflictError(
                f"a local cluster named {name!r} is already running (supervisor pid "
                f"{record.pid}), not created through this API server; stop it with "
                f"`rayscale down {name}` or pick another name",
                [errors.field_detail("name", "taken by a running local cluster")],
            )
        row = self._insert_cluster(namespace, cluster.name, body, name, "starting")
        path = self.root / "clusters" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump_all([cr, *config_maps], sort_keys=False))
        try:
            proc = control.start_detached(path, name, self.period)
        except control.ControlError as exc:
            self.store.delete("clusters", namespace, cluster.name)
            raise errors.ConflictError(str(exc)) from None
        with self._lock:
            self._children.append(proc)
        return self._cluster_view(row)

    def _insert_cluster(
        self, namespace: str, name: str, body: dict[str, Any], local: str, phase: str
    ) -> ClusterRow:
        try:
            return self.store.insert_cluster(namespace, name, body, local, phase)
        except DuplicateError:
            raise errors.ConflictError(
                f"cluster {name!r} already exists in namespace {namespace!r}",
                [errors.field_detail("name", "already exists")],
            ) from None

    def _row(self, namespace: str, name: str) -> ClusterRow:
        row = self.store.get_cluster(namespace, name)
        if row is None:
            raise not_found("cluster", name, namespace)
        return row

    def get_cluster(self, namespace: str, name: str) -> Cluster:
        return self._cluster_view(self._row(namespace, name))

    def list_clusters(
        self, namespace: str | None, limit: int | None, continue_token: str | None
    ) -> tuple[list[Cluster], str]:
        after = decode_token(continue_token) if continue_token else None
        rows = self.store.list_clusters(namespace, after, limit + 1 if limit else None)
        token = ""
        if limit and len(rows) > limit:
            rows = rows[:limit]
            token = encode_token((rows[-1].namespace, rows[-1].name))
        return [self._cluster_view(r) for r in rows], token

    def delete_cluster(self, namespace: str, name: str) -> None:
        row = self._row(namespace, name)
        for job in self.store.list_jobs(namespace):
            if job.cluster == name and job.status not in TERMINAL:
                self._stop_job(job, f"cluster {name!r} was deleted")
        if row.phase != "records-only":
            self.store.set_cluster_phase(namespace, name, "deleting")
            try:
                control.down(row.local_name, timeout=90)
            except control.NotFoundError:
                pass  # never started, or already stopped
            except control.ControlError as exc:
                raise errors.ApiError(f"could not stop cluster {name!r}: {exc}") from None
            (self.root / "clusters" / f"{row.local_name}.yaml").unlink(missing_ok=True)
        self.store.delete("clusters", namespace, name)

    def _state(self, row: ClusterRow) -> tuple[str, str, registry.ClusterRecord | None]:
        """(clusterState, message, registry record) of a cluster."""
        if row.phase in ("records-only", "deleting"):
            return row.phase, row.message, None
        record = registry.read(row.local_name)
        if record is None:
            if time.time() - row.created_at < START_GRACE_S:
                return "starting", "", None
            tail = processes.read_tail(control.supervisor_log(row.local_name), 1500)
            return "failed", f"the local cluster is not running; supervisor output: {tail}", None
        if not registry.supervisor_alive(record):
            return (
                "failed",
                f"the supervisor (pid {record.pid}) is not running; delete the cluster and "
                "create it again",
                record,
            )
        return record.status, "", record

    def _cluster_view(self, row: ClusterRow) -> Cluster:
        cluster = Cluster.model_validate(row.body)
        state, _message, record = self._state(row)
        status = registry.read_status(row.local_name) if record is not None else None
        groups = self._groups(cluster, status)
        endpoint = {"gcs": record.address} if record is not None and record.address else {}
        events = self._events(row) if row.phase not in ("records-only",) else []
        return cluster.model_copy(
            update={
                "namespace": row.namespace,
                "created_at": rfc3339(row.created_at),
                "cluster_state": state,
                "events": events,
                "service_endpoint": endpoint,
                "groups": groups,
            }
        )

    @staticmethod
    def _groups(cluster: Cluster, status: dict[str, Any] | None) -> list[GroupStatus]:
        if status and status.get("groups"):
            return [
                GroupStatus(
                    name=str(g["name"]),
                    min=int(g["min"]),
                    max=int(g["max"]),
                    desired=int(g["desired"]),
                    running=int(g["running"]),
                    pending=int(g["pending"]),
                )
                for g in status["groups"]
            ]
        return [
            GroupStatus(
                name=g.group_name,
                min=g.min_replicas,
                max=g.max_replicas,
                desired=min(max(g.replicas, g.min_replicas), g.max_replicas),
                running=0,
                pending=0,
            )
            for g in cluster.cluster_spec.worker_group_spec
        ]

    def _events(self, row: ClusterRow) -> list[ClusterEvent]:
        return read_events(
            registry.cluster_dir(row.local_name) / registry.EVENTS_FILE,
            row.local_name,
            since=row.created_at,
        )

    # -- jobs --
    def create_job(self, namespace: str, job: Job) -> Job:
        check_namespace(job.namespace, namespace)
        cluster = selected_cluster(job, self.name)
        for field, value in (
            ("entrypointNumCpus", job.entrypoint_num_cpus),
            ("entrypointNumGpus", job.entrypoint_num_gpus),
            ("entrypointResources", job.entrypoint_resources),
        ):
            if value:
                raise invalid_field(
                    field,
                    "not supported by the local backend (the entrypoint "
                    "runs as a driver process, outside Ray's scheduling)",
                    "leave it out",
                )
        runtime_env_vars(job.runtime_env)
        try:
            shlex.split(job.entrypoint)
        except ValueError as exc:
            raise invalid_field("entrypoint", f"cannot be split into arguments: {exc}") from None
        if self.store.get_cluster(namespace, cluster) is None:
            raise not_found("cluster", cluster, namespace, f"clusterSelector.{CLUSTER_LABEL}")
        jobs_dir = self.root / "jobs" / namespace
        jobs_dir.mkdir(parents=True, exist_ok=True)
        log_path, exit_path = jobs_dir / f"{job.name}.log", jobs_dir / f"{job.name}.exit"
        body = job.model_dump(by_alias=True, exclude=set(OUTPUT_ONLY_JOB) | {"cluster_spec"})
        body["namespace"] = namespace
        try:
            row = self.store.insert_job(
                namespace, job.name, body, cluster, str(log_path), str(exit_path)
            )
        except DuplicateError:
            raise errors.ConflictError(
                f"job {job.name!r} already exists in namespace {namespace!r}",
                [errors.field_detail("name", "already exists")],
            ) from None
        exit_path.unlink(missing_ok=True)
        log_path.unlink(missing_ok=True)
        row = self._refresh_job(row)
        return self._job_view(row)

    def _job_row(self, namespace: str, name: str) -> JobRow:
        row = self.store.get_job(namespace, name)
        if row is None:
            raise not_found("job", name, namespace)
        return row

    def get_job(self, namespace: str, name: str) -> Job:
        row = self._job_row(namespace, name)
        if row.status not in TERMINAL:
            row = self._refresh_job(row)
        return self._job_view(row)

    def list_jobs(self, namespace: str | None) -> list[Job]:
        return [self._job_view(r) for r in self.store.list_jobs(namespace)]

    def delete_job(self, namespace: str, name: str) -> None:
        row = self._job_row(namespace, name)
        if row.status not in TERMINAL:
            self._stop_job(row, "deleted")
        self.store.delete("jobs", namespace, name)
        for path in (row.log_path, row.exit_path):
            if path:
                Path(path).unlink(missing_ok=True)

    def job_logs(self, namespace: str, name: str, max_bytes: int) -> str:
        row = self._job_row(namespace, name)
        return processes.read_tail(Path(row.log_path), max_bytes)

    def _job_view(self, row: JobRow) -> Job:
        job = Job.model_validate(row.body)
        status = JobStatus(row.status)
        return job.model_copy(
            update={
                "namespace": row.namespace,
                "job_id": job.job_id or row.name,
                "created_at": rfc3339(row.created_at),
                "job_status": status,
                "job_deployment_status": DEPLOYMENT[status],
                "message": row.message,
                "start_time": rfc3339(row.start_time),
                "end_time": rfc3339(row.end_time),
                "ray_cluster_name": row.cluster,
            }
        )

    def _refresh_job(self, row: JobRow) -> JobRow:
        """Advance a job: start it once its cluster is ready; record how its driver ended."""
        with self._lock:
            fresh = self.store.get_job(row.namespace, row.name)
            if fresh is None or fresh.status in TERMINAL:
                return fresh or row
            row = fresh
            if row.status == JobStatus.PENDING.value:
                self._maybe_start(row)
            else:
                self._check_exit(row)
            return self.store.get_job(row.namespace, row.name) or row

    def _maybe_start(self, row: JobRow) -> None:
        cluster = self.store.get_cluster(row.namespace, row.cluster)
        if cluster is None:
            self._finish(row, JobStatus.FAILED, f"cluster {row.cluster!r} no longer exists")
            return
        state, message, record = self._state(cluster)
        if state == "failed":
            self._finish(row, JobStatus.FAILED, f"cluster {row.cluster!r} failed: {message}")
            return
        if state != "ready" or record is None:
            wait = "records-only mode: nothing runs" if state == "records-only" else ""
            self.store.update_job(
                row.namespace,
                row.name,
                message=wait or f"waiting for cluster {row.cluster!r} ({state})",
            )
            return
        try:
            proc = self._spawn_driver(row, record)
        except (OSError, processes.ProcessError) as exc:
            self._finish(row, JobStatus.FAILED, f"could not start the entrypoint: {exc}")
            return
        self._drivers[(row.namespace, row.name)] = proc
        started = psutil.Process(proc.pid).create_time() if proc.is_running() else None
        self.store.update_job(
            row.namespace,
            row.name,
            status=JobStatus.RUNNING.value,
            message=f"driver pid {proc.pid}",
            pid=proc.pid,
            pid_started=started,
            start_time=time.time(),
        )

    def _spawn_driver(
        self, row: JobRow, record: registry.ClusterRecord
    ) -> processes.ManagedProcess:
        from rayscale.local.kubelet import rewrite_paths

        job = Job.model_validate(row.body)
        argv = rewrite_paths(
            shlex.split(job.entrypoint), {k: Path(v) for k, v in record.mounts.items()}
        )
        if argv and argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        env = {
            **record.client_environ(),
            **runtime_env_vars(job.runtime_env),
            "PYTHONUNBUFFERED": "1",
        }
        runner = [sys.executable, "-m", "rayscale.apiserver.jobrunner", row.exit_path, *argv]
        log_path = Path(row.log_path)
        return processes.spawn(
            runner, log_path=log_path, name=f"job-{row.name}", env=env, cwd=log_path.parent
        )

    def _check_exit(self, row: JobRow) -> None:
        driver = self._drivers.get((row.namespace, row.name))
        if driver is not None:
            driver.wait(0)  # reap it if it exited
        exit_path = Path(row.exit_path)
        if exit_path.exists():
            try:
                code = int(json.loads(exit_path.read_text())["code"])
            except (OSError, ValueError, KeyError, TypeError):
                code = -1
            if code == 0:
                self._finish(row, JobStatus.SUCCEEDED, "the entrypoint exited with code 0")
            else:
                tail = processes.read_tail(Path(row.log_path), 600).strip()
                self._finish(
                    row, JobStatus.FAILED, f"the entrypoint exited with code {code}: {tail}"
                )
        elif not _pid_alive(row.pid, row.pid_started):
            self._finish(
                row, JobStatus.FAILED, "the driver ended without recording an exit code (killed?)"
            )
        elif self._past_deadline(row):
            deadline = Job.model_validate(row.body).active_deadline_seconds
            self._stop_job(row, f"activeDeadlineSeconds ({deadline} s) exceeded")
            self.store.update_job(row.namespace, row.name, status=JobStatus.FAILED.value)

    @staticmethod
    def _past_deadline(row: JobRow) -> bool:
        deadline = Job.model_validate(row.body).active_deadline_seconds
        return bool(deadline and row.start_time and time.time() - row.start_time > deadline)

    def _finish(self, row: JobRow, status: JobStatus, message: str) -> None:
        self._drivers.pop((row.namespace, row.name), None)
        self.store.update_job(
            row.namespace, row.name, status=status.value, message=message, end_time=time.time()
        )

    def _stop_job(self, row: JobRow, why: str) -> None:
        """Stop a job's driver by its own process group (SIGTERM, then SIGKILL)."""
        with self._lock:
            driver = self._drivers.pop((row.namespace, row.name), None)
            if driver is not None:
                driver.stop(timeout=10, term_group=True)
            elif _pid_alive(row.pid, row.pid_started) and row.pid is not None:
                processes.stop_group(row.pid)
            self.store.update_job(
                row.namespace,
                row.name,
                status=JobStatus.STOPPED.value,
                message=f"stopped: {why}",
                end_time=time.time(),
            )


def runtime_env_vars(runtime_env: str) -> dict[str, str]:
    """``env_vars`` of a job's runtimeEnv (YAML); any other key is a 400 on the local backend."""
    if not runtime_env.strip():
        return {}
    try:
        data = yaml.safe_load(runtime_env)
    except yaml.YAMLError as exc:
        raise invalid_field("runtimeEnv", f"not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise invalid_field("runtimeEnv", "must be a YAML mapping such as 'env_vars: {A: b}'")
    other = sorted(str(k) for k in data if k != "env_vars")
    if other:
        raise invalid_field(
            f"runtimeEnv.{other[0]}",
            "not supported by the local backend",
            "the driver runs in the API server's Python environment; use env_vars only",
        )
    env = data.get("env_vars") or {}
    if not isinstance(env, dict):
        raise invalid_field("runtimeEnv.env_vars", "must be a mapping of names to values")
    return {str(k): str(v) for k, v in env.items()}


def read_events(path: Path, cluster: str, since: float = 0.0) -> list[ClusterEvent]:
    """The last scaling decisions of a cluster (``events.jsonl``), as KubeRay-shaped events."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    out: list[ClusterEvent] = []
    for i, line in enumerate(lines):
        try:
            e = json.loads(line)
            at = float(e["at"])
            if at < since:
                continue
            reason = e.get("reason") or {}
            kind = str(e.get("type", ""))
            group, count = str(e.get("group", "")), int(e.get("count", 0))
            text = str(reason.get("text", ""))
            stamp = rfc3339(at) or ""
            out.append(
                ClusterEvent(
                    id=f"{cluster}-{i}",
                    name=f"{cluster}.{kind}",
                    created_at=stamp,
                    first_timestamp=stamp,
                    last_timestamp=stamp,
                    reason=str(reason.get("code", kind)),
                    message=f"{kind} {count} in {group}: {text}"
                    if text
                    else f"{kind} {count} in {group}",
                    type="Warning" if kind in WARNING_EVENTS else "Normal",
                    count=count,
                    group=group,
                    action=kind,
                    nodes=[str(n) for n in e.get("nodes") or []],
                    params=dict(reason.get("params") or {}),
                )
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a torn last line while the supervisor writes: skip it
    return out[-MAX_EVENTS:]


def apply_file(
    backend: LocalBackend, path: Path, namespace: str = "default", period: float = 1.0
) -> list[str]:
    """``rayscale apply -f``: store the file's ConfigMaps; start its RayClusters (if any).

    Returns one line per object, kubectl style (``configmap/ray-example stored``).
    """
    from rayscale.spec import load_text

    text = path.read_text(encoding="utf-8")
    try:
        docs = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    out = []
    for doc in docs:
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: every YAML document must be a mapping")
        kind = doc.get("kind")
        if kind == "ConfigMap":
            meta = doc.get("metadata") or {}
            name = meta.get("name")
            if not name:
                raise ValueError(f"{path}: a ConfigMap has no metadata.name")
            ns = meta.get("namespace") or namespace
            data = doc.get("data") or {}
            if not isinstance(data, dict):
                raise ValueError(f"{path}: ConfigMap {name} data must be a mapping")
            backend.put_config_map(ns, str(name), {str(k): str(v) for k, v in data.items()})
            out.append(f"configmap/{name} stored (namespace {ns})")
    if any(d.get("kind") == "RayCluster" for d in docs):
        spec = load_text(text, source=str(path))
        if not backend.records_only:
            record = control.up_detached(path, period, name=spec.cluster.name)
            out.append(f"raycluster/{spec.cluster.name} started at {record.address}")
        else:
            out.append(f"raycluster/{spec.cluster.name} not started (records only)")
    return out

"""One pod under the process kubelet: a worker thread that makes the pod's processes match the
pod object and reports its status (the kubelet's "pod worker").

Each pass: a pod being deleted (``deletionTimestamp``) or gone has its containers stopped
(SIGTERM, its grace period, then SIGKILL to the group; Ray nodes through raynodes) and is then
deleted with grace period 0; otherwise its volumes and service-account token are written, its
containers started (Ray containers first, see :mod:`.raypods`), exits noted and restarts done,
and ``pods/status`` PATCHed when the status changed.

Readiness: a Ray container is ready once its node has joined Ray (a head: its GCS answers);
any other container once its process runs (``readinessProbe`` is not run).
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightkube import ApiError

from rayscale.devcluster import execrecord
from rayscale.devcluster.api import KubeletApi, now
from rayscale.devcluster.containers import (
    DEFAULT_GRACE_S,
    Container,
    base_environ,
    resolve_command,
    spawner,
)
from rayscale.devcluster.podenv import (
    SERVICE_ACCOUNT_MOUNT,
    ContainerConfigError,
    container_mounts,
    expand,
    materialise_volumes,
    resolve_env,
)
from rayscale.devcluster.raypods import (
    RayClusters,
    cluster_key,
    is_ray_container,
    resolve_service_names,
)
from rayscale.local.kubelet import LOCAL_IP, rewrite_paths, rewrite_text
from rayscale.processes import ManagedProcess

log = logging.getLogger("rayscale.kubelet")

Manifest = dict[str, Any]
PASS_S = 1.0
SERVICE_ACCOUNT_DIR_ENV = "RAYSCALE_SERVICE_ACCOUNT_DIR"


@dataclass
class PodContext:
    """What every pod worker of one kubelet shares."""

    api: KubeletApi
    state_dir: Path
    ray: RayClusters
    marker: str


@dataclass
class PodWorker:
    """Runs one pod (by uid) until it is deleted; see the module docstring."""

    ctx: PodContext
    pod: Manifest
    gone: bool = False
    containers: dict[str, Container] = field(default_factory=dict)
    _wake: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _reported: dict[str, Any] | None = None
    _config_error: str = ""
    _transitions: dict[str, tuple[str, str]] = field(default_factory=dict)  # type -> (status, at)
    _stopping: bool = False

    @property
    def namespace(self) -> str:
        return str(self.pod["metadata"].get("namespace", "default"))

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    @property
    def dir(self) -> Path:
        return execrecord.pod_dir(self.ctx.state_dir, self.namespace, self.name)

    # -- from the watch ----------------------------------------------------------------------
    def update(self, pod: Manifest | None) -> None:
        """A newer pod object, or None when it was deleted."""
        with self._lock:
            if pod is None:
                self.gone = True
            else:
                self.pod = pod
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"pod-{self.name}", daemon=True)
        self._thread.start()

    def shutdown(self, timeout: float = 60.0) -> None:
        """Stop the containers (the kubelet is stopping; the pod object stays)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the pass loop ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    pod, gone = copy.deepcopy(self.pod), self.gone
                    self._wake.clear()
                if self._stopping:
                    self._stop_containers(pod)
                    return
                if gone or pod["metadata"].get("deletionTimestamp"):
                    self._stop_containers(pod)
                    if not gone:
                        self.ctx.api.delete_pod(self.namespace, self.name)
                    log.info("pod %s/%s: stopped and deleted", self.namespace, self.name)
                    return
                try:
                    self._sync(pod)
                except Exception:
                    log.exception("pod %s/%s: sync failed", self.namespace, self.name)
                self._wake.wait(PASS_S)
        except Exception:
            log.exception("pod %s/%s: worker failed", self.namespace, self.name)
            self._stop_containers(self.pod)

    def _stop_containers(self, pod: Manifest) -> None:
        grace = pod["metadata"].get("deletionGracePeriodSeconds")
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE_S)
        # Sidecars first, the Ray node last (its logs stay readable longest).
        for container in reversed(list(self.containers.values())):
            try:
                container.stop(float(grace))
            except Exception:
                log.exception("pod %s: stopping container %s", self.name, container.name)

    def _sync(self, pod: Manifest) -> None:
        if not self.containers:
            try:
                self._create_containers(pod)
                self._config_error = ""
            except ContainerConfigError as err:
                if str(err) != self._config_error:
                    self._config_error = str(err)
                    log.warning("pod %s/%s: %s", self.namespace, self.name, err)
                    self.ctx.api.event(pod, "Warning", "Failed", f"Error: {err}")
                self._report(pod)
                return
        self._start_due(pod)
        for container in self.containers.values():
            container.poll()
        if _ray_failed(self.containers.values()):  # the pod is Failed: stop its other containers
            for container in self.containers.values():
                if container.running:
                    container.stop(5.0)
        self._report(pod)

    # -- creating containers ---------------------------------------------------------------
    def _create_containers(self, pod: Manifest) -> None:
        sa_dir = self._service_account(pod)
        volumes = materialise_volumes(pod, self.dir, self.ctx.api, sa_dir)
        policy = pod["spec"].get("restartPolicy", "Always")
        containers: dict[str, Container] = {}
        for spec in pod["spec"]["containers"]:
            mounts = container_mounts(spec, volumes)
            env = self._env(pod, spec, mounts, sa_dir)
            containers[spec["name"]] = self._container(pod, spec, env, mounts, policy)
        self.containers = containers
        skipped = [c["name"] for c in pod["spec"].get("initContainers") or []]
        if skipped:
            message = f"init containers {skipped} not run: the process kubelet does not run them"
            log.warning("pod %s/%s: %s", self.namespace, self.name, message)
            self.ctx.api.event(pod, "Warning", "InitContainersSkipped", message)

    def _service_account(self, pod: Manifest) -> Path | None:
        if pod["spec"].get("automountServiceAccountToken") is False:
            return None
        token = self.ctx.api.service_account_token(pod)
        target = self.dir / "serviceaccount"
        target.mkdir(parents=True, exist_ok=True)
        for name, data in (
            ("token", token.encode()),
            ("ca.crt", self.ctx.api.server.ca_pem),
            ("namespace", self.namespace.encode()),
        ):
            path = target / name
            path.write_bytes(data)
            path.chmod(0o600)
        return target

    def _env(
        self, pod: Manifest, spec: Manifest, mounts: Mapping[str, Path], sa_dir: Path | None
    ) -> dict[str, str]:
        base = {**self.ctx.api.server.env(), "HOSTNAME": self.name}
        env = resolve_env(pod, spec, self.ctx.api, base)
        env = {k: rewrite_text(v, mounts) for k, v in env.items()}
        if sa_dir is not None:
            env[SERVICE_ACCOUNT_DIR_ENV] = str(sa_dir)
        return env

    def _container(
        self,
        pod: Manifest,
        spec: Manifest,
        env: dict[str, str],
        mounts: Mapping[str, Path],
        policy: str,
    ) -> Container:
        name = spec["name"]
        log_path = self.dir / f"{name}.log"
        record = execrecord.record_path(self.ctx.state_dir, self.namespace, self.name, name)
        image = str(spec.get("image", ""))
        key = cluster_key(pod)
        if key is not None and is_ray_container(pod, spec):
            return self._ray_container(pod, spec, env, mounts, key, log_path, record, image)
        argv = [*(spec.get("command") or []), *(spec.get("args") or [])]
        if not argv:
            raise ContainerConfigError(
                f"container {name!r} has no command: the process kubelet cannot run an "
                "image's entrypoint; set command/args"
            )
        cwd = Path(rewrite_text(spec["workingDir"], mounts)) if spec.get("workingDir") else None

        def launch() -> ManagedProcess:
            full = self._with_ray_address(pod, env)
            argv_now = [self._resolve_names(pod, expand(a, full)) for a in argv]
            argv_now = resolve_command(rewrite_paths(argv_now, mounts))
            environ = {**base_environ(self.ctx.marker), **full}
            _write_record(record, full, mounts, cwd)
            return spawner(argv_now, environ, cwd, log_path, name)()

        return Container(name, image, log_path, launch, restart_policy=policy)

    def _with_ray_address(self, pod: Manifest, env: Mapping[str, str]) -> dict[str, str]:
        """The env of a Ray cluster's container: ``RAY_ADDRESS`` = its head's real GCS address
        and the head service's names resolved (see :func:`.raypods.resolve_service_names`)."""
        head = self._head(pod)
        if head is None:
            return dict(env)
        key, address = head
        resolved = {k: resolve_service_names(v, key, address) for k, v in env.items()}
        return {**resolved, "RAY_ADDRESS": address}

    def _resolve_names(self, pod: Manifest, text: str) -> str:
        head = self._head(pod)
        return resolve_service_names(text, *head) if head is not None else text

    def _head(self, pod: Manifest) -> tuple[tuple[str, str], str] | None:
        """The pod's Ray cluster and its head's GCS address, once that head is up."""
        key = cluster_key(pod)
        address = self.ctx.ray.head_address(key) if key is not None else None
        return (key, address) if key is not None and address else None

    def _ray_container(
        self,
        pod: Manifest,
        spec: Manifest,
        env: dict[str, str],
        mounts: Mapping[str, Path],
        key: tuple[str, str],
        log_path: Path,
        record: Path,
        image: str,
    ) -> Container:
        token = env.get("RAY_AUTH_TOKEN_PATH")
        token_path = Path(token) if token and Path(token).is_file() else None
        node_name = self.name
        head = "--head" in " ".join([*(spec.get("command") or []), *(spec.get("args") or [])])

        def launch() -> ManagedProcess:
            if head:
                node = self.ctx.ray.start_head(key, pod, spec, env, token_path)
            else:
                node = self.ctx.ray.start_worker(key, pod, spec, env)
            _write_record(record, self._with_ray_address(pod, env), mounts, None)
            return node.process

        joined = [head]

        def ready() -> bool:
            if not joined[0]:
                joined[0] = self.ctx.ray.joined(key, node_name)
            return joined[0]

        def stop(process: ManagedProcess, grace: float) -> None:
            self.ctx.ray.stop_node(key, process, grace)

        def blocked() -> str | None:
            if head or self.ctx.ray.head_address(key) is not None:
                return None
            return "waiting for the Ray head of the cluster"

        return Container(
            spec["name"], image, log_path, launch, restart_policy="Never",
            ready_check=ready, stopper=stop, blocked=blocked,
        )  # fmt: skip

    def _start_due(self, pod: Manifest) -> None:
        """Start containers not started yet: a Ray pod's Ray container first (a worker's only
        once its head is up), the others once the cluster's GCS address is known."""
        ray_first = [c for c in self.containers.values() if c.stopper is not None]
        others = [c for c in self.containers.values() if c.stopper is None]
        for container in ray_first:
            if container.process is not None or container.done:
                continue
            why = container.blocked() if container.blocked is not None else None
            if why:
                container.waiting_message = why
                continue
            self._start(container)
        if any(c.process is None for c in ray_first):
            return
        for container in others:
            if container.process is None and not container.done:
                self._start(container)

    def _start(self, container: Container) -> None:
        try:
            container.start()
        except Exception as err:
            log.warning("pod %s: container %s failed to start: %s", self.name, container.name, err)
            container.waiting_reason = "RunContainerError"
            container.waiting_message = str(err).splitlines()[0][:300] if str(err) else repr(err)
            container.done = True
            self.ctx.api.event(self.pod, "Warning", "Failed", f"Error: {container.waiting_message}")

    # -- status ----------------------------------------------------------------------------
    def _report(self, pod: Manifest) -> None:
        status = self._status(pod)
        if status == self._reported:
            return
        stamp = now()
        for cond in status["conditions"]:
            seen = self._transitions.get(cond["type"])
            if seen is None or seen[0] != cond["status"]:
                self._transitions[cond["type"]] = (cond["status"], stamp)
        sent = {
            **status,
            "startTime": self.pod.get("status", {}).get("startTime") or stamp,
            "conditions": [
                {**c, "lastTransitionTime": self._transitions[c["type"]][1]}
                for c in status["conditions"]
            ],
        }
        try:
            self.ctx.api.patch_status(self.namespace, self.name, sent)
            self._reported = status
        except ApiError as err:
            if err.status.code != 404:
                raise

    def _status(self, pod: Manifest) -> dict[str, Any]:
        containers = list(self.containers.values())
        statuses = [c.status() for c in containers]
        if not containers:
            statuses = [_waiting(c, self._config_error) for c in pod["spec"]["containers"]]
        phase = _phase(containers, _ray_failed(containers))
        ready = phase == "Running" and all(c.ready for c in containers)
        started = bool(containers) and all(c.process is not None for c in containers)
        return {
            "phase": phase,
            "hostIP": LOCAL_IP,
            "hostIPs": [{"ip": LOCAL_IP}],
            "podIP": LOCAL_IP if started else None,
            "podIPs": [{"ip": LOCAL_IP}] if started else None,
            "conditions": [
                _condition("PodScheduled", True),
                _condition("Initialized", True),
                _condition("ContainersReady", ready),
                _condition("Ready", ready),
            ],
            "containerStatuses": statuses,
        }


def _ray_failed(containers: Iterable[Container]) -> bool:
    """A Ray container exited (or could not start): its pod is Failed, for the operator to
    replace (Ray containers are not restarted in place)."""
    return any(c.stopper is not None and c.done for c in containers)


def _phase(containers: list[Container], ray_failed: bool) -> str:
    if ray_failed:
        return "Failed"
    if not containers or any(c.process is None and not c.done for c in containers):
        return "Pending"
    if all(c.done for c in containers):
        codes = [c.last.exit_code if c.last else 1 for c in containers]
        return "Succeeded" if all(code == 0 for code in codes) else "Failed"
    return "Running"


def _waiting(spec: Manifest, error: str) -> dict[str, Any]:
    reason = "CreateContainerConfigError" if error else "ContainerCreating"
    waiting = {"reason": reason, **({"message": error} if error else {})}
    return {
        "name": spec["name"],
        "image": str(spec.get("image", "")),
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "started": False,
        "state": {"waiting": waiting},
    }


def _condition(kind: str, ok: bool) -> dict[str, Any]:
    return {"type": kind, "status": "True" if ok else "False"}


def _write_record(
    path: Path, env: Mapping[str, str], mounts: Mapping[str, Path], cwd: Path | None
) -> None:
    record = execrecord.ExecRecord(
        env=dict(env),
        mounts={k: str(v) for k, v in mounts.items()},
        cwd=str(cwd) if cwd else None,
    )
    execrecord.write_record(path, record)


__all__ = ["SERVICE_ACCOUNT_MOUNT", "PodContext", "PodWorker"]

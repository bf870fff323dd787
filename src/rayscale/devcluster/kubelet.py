"""The process kubelet: a real client of a real kube-apiserver that runs pods as local
processes, because no container runtime exists on this machine.

- It registers a ``Node`` (Ready, InternalIP 127.0.0.1, generous allocatable cpu/memory, its
  log endpoint's port) and refreshes its Ready condition every ``heartbeat_s``.
- There is no kube-scheduler: it also binds every pod without ``spec.nodeName`` to its node
  through the ``pods/binding`` subresource.
- One LIST+WATCH of all pods in all namespaces feeds one worker per pod bound to it
  (:mod:`.pods`): containers run as process groups (:mod:`.containers`; Ray containers as
  local Ray nodes, :mod:`.raypods`), status is PATCHed to ``pods/status``, and a deleted pod's
  processes are stopped before the pod is deleted with grace period 0.
- Container logs are served on ``/containerLogs/...`` over HTTPS (:mod:`.logserver`), so
  ``kubectl logs`` works; every running container has an exec record (:mod:`.execrecord`).

Run it as a process::

    python -m rayscale.devcluster.kubelet --kubeconfig F --node-name N --state-dir D \\
        --tls-cert-file C --tls-private-key-file K --client-ca-file CA [--log-port 0]

It prints one JSON line ``{"ready": true, "node": ..., "log_port": ...}`` once the Node is
registered and the endpoint serves, then runs until SIGTERM/SIGINT, when it stops every
process it started (by process group) and deletes its Node. In tests, use :class:`Kubelet`
(``start()``/``stop()`` or ``with``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

from lightkube import ALL_NS, ApiError, AsyncClient, KubeConfig
from lightkube.resources.core_v1 import Pod
from lightkube.types import OnErrorAction, OnErrorResult

from rayscale.devcluster.api import KubeletApi
from rayscale.devcluster.execrecord import STATE_DIR_ANNOTATION
from rayscale.devcluster.logserver import LogServer, TlsFiles
from rayscale.devcluster.pods import PodContext, PodWorker
from rayscale.devcluster.raypods import RayClusters
from rayscale.processes import ProcessInfo, find_leftovers, stop_on_signals

log = logging.getLogger("rayscale.kubelet")

HEARTBEAT_S = 10.0
RELIST_BACKOFF_S = 0.5


class Kubelet:
    """One node's kubelet; see the module docstring."""

    def __init__(
        self,
        config: KubeConfig,
        node_name: str,
        state_dir: Path,
        tls: TlsFiles,
        *,
        log_port: int = 0,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.node_name = node_name
        self.state_dir = Path(state_dir).resolve()
        self.config = config
        self.tls = tls
        self.heartbeat_s = heartbeat_s
        self.api = KubeletApi(config, node_name)
        self.ray = RayClusters()
        self.ctx = PodContext(self.api, self.state_dir, self.ray, marker=str(self.state_dir))
        self.workers: dict[str, PodWorker] = {}  # by pod uid
        self.logs = LogServer(tls, self._log_path, self._running, port=log_port)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._binder = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bind")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._threads: list[threading.Thread] = []
        self._synced = threading.Event()

    @property
    def log_port(self) -> int:
        return self.logs.port

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> Kubelet:
        """Serve logs, register the Node, start the watch; return once the first LIST is in."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.logs.start()
        try:
            self.api.register_node(self.log_port, {STATE_DIR_ANNOTATION: str(self.state_dir)})
            for target, name in ((self._watch_thread, "watch"), (self._heartbeats, "heartbeat")):
                thread = threading.Thread(target=target, name=f"kubelet-{name}", daemon=True)
                thread.start()
                self._threads.append(thread)
            if not self._synced.wait(timeout):
                raise TimeoutError(f"the first LIST of pods did not complete in {timeout:.0f}s")
        except BaseException:
            self.stop()
            raise
        log.info("kubelet %s: node registered, logs on port %d", self.node_name, self.log_port)
        return self

    def stop(self) -> list[ProcessInfo]:
        """Stop every pod's processes and the watch; delete the Node; return leftovers."""
        self._stop.set()
        loop, task = self._loop, self._watch_task
        if loop is not None and task is not None:
            loop.call_soon_threadsafe(task.cancel)
        for thread in self._threads:
            thread.join(15)
        self._binder.shutdown(wait=True)
        with self._lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.shutdown()
        left = self.ray.stop_all()
        left += self.leftovers()
        try:
            self.api.delete_node()
        except Exception as exc:
            log.warning("could not delete node %s: %s", self.node_name, exc)
        self.logs.stop()
        self.api.close()
        return left

    def leftovers(self) -> list[ProcessInfo]:
        """Live processes whose env or command line mentions this kubelet's state dir."""
        return find_leftovers(markers=[str(self.state_dir)])

    def __enter__(self) -> Kubelet:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.stop()

    # -- heartbeat -------------------------------------------------------------------------
    def _heartbeats(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.api.heartbeat(self.log_port)
            except Exception as exc:
                log.warning("node heartbeat failed: %s", exc)

    # -- the pod watch ---------------------------------------------------------------------
    def _watch_thread(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._watch_task = loop.create_task(self._list_watch())
            loop.run_until_complete(self._watch_task)
        except asyncio.CancelledError:
            pass
        finally:
            loop.close()

    async def _list_watch(self) -> None:
        client = AsyncClient(config=self.config)
        try:
            while not self._stop.is_set():
                try:
                    listing = client.list(Pod, namespace=ALL_NS)
                    items = [item async for item in listing]
                    self._replace([i.to_dict() for i in items])
                    self._synced.set()
                    watch = client.watch(
                        Pod, namespace=ALL_NS, resource_version=listing.resourceVersion,
                        on_error=_stop_on_error,
                    )  # fmt: skip
                    async for op, obj in watch:
                        self._event(op, obj.to_dict())
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("watching pods failed (%s); listing again", exc)
                await asyncio.sleep(RELIST_BACKOFF_S)
        finally:
            await client.close()

    def _replace(self, pods: list[dict[str, Any]]) -> None:
        seen = set()
        for pod in pods:
            seen.add(pod["metadata"]["uid"])
            self._event("MODIFIED", pod)
        with self._lock:
            missing = [self.workers.pop(uid) for uid in list(self.workers) if uid not in seen]
        for worker in missing:
            worker.update(None)

    def _event(self, op: str, pod: dict[str, Any]) -> None:
        if self._stop.is_set():
            return
        meta, spec = pod["metadata"], pod.get("spec") or {}
        uid = meta["uid"]
        node = spec.get("nodeName")
        if op == "DELETED":
            with self._lock:
                worker = self.workers.pop(uid, None)
            if worker is not None:
                worker.update(None)
            return
        if not node:
            if not meta.get("deletionTimestamp"):
                self._binder.submit(self._bind, meta["namespace"], meta["name"], uid)
            return
        if node != self.node_name:
            return
        with self._lock:
            worker = self.workers.get(uid)
            if worker is None:
                if _finished(pod):
                    return  # a finished pod from before a restart: nothing to run
                worker = PodWorker(self.ctx, pod)
                self.workers[uid] = worker
                worker.start()
                return
        worker.update(pod)

    def _bind(self, namespace: str, name: str, uid: str) -> None:
        try:
            self.api.bind(namespace, name, uid)
            log.info("bound pod %s/%s to node %s", namespace, name, self.node_name)
        except ApiError as err:
            if err.status.code not in (404, 409):  # gone, or bound meanwhile
                log.warning("could not bind pod %s/%s: %s", namespace, name, err)

    # -- logs ------------------------------------------------------------------------------
    def _worker(self, namespace: str, pod: str) -> PodWorker | None:
        with self._lock:
            return next(
                (w for w in self.workers.values() if (w.namespace, w.name) == (namespace, pod)),
                None,
            )

    def _log_path(self, namespace: str, pod: str, container: str, previous: bool) -> Path | None:
        worker = self._worker(namespace, pod)
        if worker is None or container not in worker.containers:
            return None
        current = worker.containers[container].current_log()
        return current.with_suffix(".previous.log") if previous else current

    def _running(self, namespace: str, pod: str, container: str) -> bool:
        worker = self._worker(namespace, pod)
        found = worker.containers.get(container) if worker is not None else None
        return found is not None and found.running


def _finished(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _stop_on_error(exc: Exception, count: int) -> OnErrorResult:
    """End the watch on any error: the caller re-LISTs (which also covers 410 Gone)."""
    del exc, count
    return OnErrorResult(OnErrorAction.STOP)


# -- the process ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m rayscale.devcluster.kubelet",
        description="A process kubelet: runs the pods bound to NODE as local processes.",
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--node-name", required=True)
    parser.add_argument("--state-dir", type=Path, required=True, help="pod files and logs")
    parser.add_argument("--log-port", type=int, default=0, help="0: the OS picks a free port")
    parser.add_argument("--tls-cert-file", type=Path, required=True, help="serving cert")
    parser.add_argument("--tls-private-key-file", type=Path, required=True)
    parser.add_argument(
        "--client-ca-file", type=Path, required=True, help="CA of kube-apiserver's client cert"
    )
    parser.add_argument("--heartbeat", type=float, default=HEARTBEAT_S, help="seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for path in (args.kubeconfig, args.tls_cert_file, args.tls_private_key_file,
                 args.client_ca_file):  # fmt: skip
        if not path.is_file():
            print(f"error: {path}: no such file", file=sys.stderr)
            return 2
    stop = threading.Event()

    stop_on_signals(stop, log)
    tls = TlsFiles(args.tls_cert_file, args.tls_private_key_file, args.client_ca_file)
    kubelet = Kubelet(
        KubeConfig.from_file(args.kubeconfig), args.node_name, args.state_dir, tls,
        log_port=args.log_port, heartbeat_s=args.heartbeat,
    )  # fmt: skip
    kubelet.start()
    try:
        ready = {"ready": True, "node": args.node_name, "log_port": kubelet.log_port}
        print(json.dumps(ready), flush=True)
        stop.wait()
    finally:
        left = kubelet.stop()
        if left:
            log.error("processes left behind: %s", "; ".join(i.describe() for i in left))
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())

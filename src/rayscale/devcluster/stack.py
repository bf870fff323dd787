"""The dev cluster's keeper: one detached process that owns the whole one-machine stack.

``rayscale dev-cluster up`` spawns ``python -m rayscale.devcluster.stack DIR`` in a session
of its own and waits for ``DIR/state.json`` to say ``ready``. The keeper starts, in order:
etcd and kube-apiserver (:class:`rayscale.testing.kube.LocalKube`), kube-controller-manager
(garbage collection, namespaces, ServiceAccounts and their tokens), the ``ray.io`` CRDs, the
RayCluster operator (in this process, on a thread), and the process kubelet (its own process,
which starts every pod's processes in their own process groups). On SIGTERM it stops them in
the reverse order, so the kubelet stops Ray's processes before the API server goes away.

Every process it starts inherits :data:`MARKER_ENV`, so ``down`` can find what is left even
after the keeper was killed with SIGKILL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from rayscale import processes
from rayscale.devcluster.state import DevClusterState, write_state
from rayscale.processes import ManagedProcess, stop_on_signals
from rayscale.waiting import StopWaiting, wait_until

if TYPE_CHECKING:
    from rayscale.testing.kube import LocalKube

log = logging.getLogger("rayscale.devcluster")

NODE_NAME = "rayscale-dev"
READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0


@dataclass
class Stack:
    """The running parts, in start order; :meth:`stop` undoes whatever :meth:`start` did."""

    directory: Path
    kubectl: Path | None = None
    undo: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    state: DevClusterState | None = None

    def start(self) -> DevClusterState:
        from lightkube import Client, KubeConfig

        from rayscale.kube.crds import install_crds
        from rayscale.testing.controller_manager import ControllerManager, binary_from_env
        from rayscale.testing.kube import LocalKube

        started = time.monotonic()
        kube = LocalKube(self.directory / "control-plane").start()
        self.undo.append(("kube-apiserver and etcd", kube.stop))
        log.info("kube-apiserver ready at %s", kube.server)
        manager = ControllerManager(
            binary=binary_from_env(),
            kubeconfig=kube.kubeconfig,
            workdir=self.directory / "controller-manager",
            service_account_key=kube.pki.service_account_key,
            root_ca=kube.pki.ca_cert,
        ).start()
        self.undo.append(("kube-controller-manager", manager.stop))
        log.info("kube-controller-manager ready")
        client = Client(config=KubeConfig.from_file(kube.kubeconfig))
        try:
            install_crds(client)
        finally:
            client.close()
        log.info("ray.io CRDs established")
        self._start_operator(kube.kubeconfig)
        kubelet = self._start_kubelet(kube)
        self.state = DevClusterState(
            pid=_own_pid(),
            pid_started=_own_start_time(),
            status="ready",
            server=kube.server,
            kubeconfig=str(kube.kubeconfig),
            kubectl=str(self.kubectl) if self.kubectl else "",
            node=NODE_NAME,
            kubelet_state_dir=str(self.directory / "kubelet"),
            pids={
                "etcd+kube-apiserver": kube.pids,
                "kube-controller-manager": [manager.process.pid] if manager.process else [],
                "kubelet": [kubelet.pid],
            },
            ready_seconds=round(time.monotonic() - started, 2),
        )
        return self.state

    def _start_operator(self, kubeconfig: Path) -> None:
        """The operator on a thread of this process, with kopf's own ready and stop flags."""
        import kopf

        from rayscale.kube.operator import run

        ready, stop = threading.Event(), threading.Event()

        def main() -> None:
            try:
                asyncio.run(run(kubeconfig, stop_flag=stop, ready_flag=ready, memo=kopf.Memo()))
            except Exception:
                log.exception("the operator stopped with an error")

        thread = threading.Thread(target=main, name="operator", daemon=True)
        thread.start()

        def stop_operator() -> None:
            stop.set()
            thread.join(30)

        self.undo.append(("operator", stop_operator))

        def ok() -> bool:
            if not thread.is_alive():
                raise StopWaiting("the operator exited during start-up (see its traceback above)")
            return ready.is_set()

        wait_until(ok, READY_TIMEOUT_S, "the operator to start watching")
        log.info("operator ready")

    def _start_kubelet(self, kube: LocalKube) -> ManagedProcess:
        """The process kubelet, ready when its Node reports Ready to the API server."""
        kubeconfig = kube.kubeconfig
        argv = [
            sys.executable, "-m", "rayscale.devcluster.kubelet",
            "--kubeconfig", str(kubeconfig),
            "--node-name", NODE_NAME,
            "--state-dir", str(self.directory / "kubelet"),
            "--tls-cert-file", str(kube.pki.kubelet_cert),
            "--tls-private-key-file", str(kube.pki.kubelet_key),
            "--client-ca-file", str(kube.pki.ca_cert),
        ]  # fmt: skip
        proc = processes.spawn(
            argv, log_path=self.directory / "kubelet.log", name="kubelet", die_with_parent=True
        )
        self.undo.append(("process kubelet", lambda: _stop(proc)))
        wait_until(
            lambda: _node_ready(kubeconfig, proc),
            READY_TIMEOUT_S,
            f"the process kubelet's Node {NODE_NAME} to be Ready",
            interval=0.3,
            detail=proc.log_tail,
        )
        log.info("process kubelet ready (node %s)", NODE_NAME)
        return proc

    def stop(self) -> list[str]:
        """Stop everything in reverse order; return what could not be stopped cleanly."""
        problems: list[str] = []
        while self.undo:
            what, undo = self.undo.pop()
            log.info("stopping %s", what)
            try:
                undo()
            except Exception as exc:
                problems.append(f"{what}: {exc}")
                log.error("stopping %s failed: %s", what, exc)
        return problems


def _stop(proc: ManagedProcess) -> None:
    result = proc.stop(STOP_TIMEOUT_S, term_group=True)
    if not result.clean:
        raise RuntimeError(f"left processes: {result.leftovers}")


def _node_ready(kubeconfig: Path, proc: ManagedProcess) -> bool:
    from lightkube import ApiError, Client, KubeConfig
    from lightkube.resources.core_v1 import Node

    if not proc.is_running():
        raise StopWaiting(
            f"the process kubelet exited with {proc.returncode}:\n{proc.log_tail(2000)}"
        )
    client = Client(config=KubeConfig.from_file(kubeconfig))
    try:
        node: Any = client.get(Node, NODE_NAME)
    except ApiError:
        return False
    finally:
        client.close()
    conditions = node.status.conditions if node.status else None
    return any(c.type == "Ready" and c.status == "True" for c in conditions or [])


def _own_pid() -> int:
    return os.getpid()


def _own_start_time() -> float:
    return float(psutil.Process().create_time())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--kubectl", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per request otherwise
    stop = threading.Event()

    stop_on_signals(stop, log)
    directory: Path = args.directory.resolve()
    stack = Stack(directory, kubectl=args.kubectl)
    write_state(directory, DevClusterState(pid=_own_pid(), pid_started=_own_start_time()))
    try:
        state = stack.start()
    except BaseException as exc:
        log.error("the dev cluster did not start: %s", exc)
        with contextlib.suppress(Exception):
            stack.stop()
        write_state(
            directory,
            DevClusterState(
                pid=_own_pid(), pid_started=_own_start_time(), status="failed", error=str(exc)
            ),
        )
        return 1
    write_state(directory, state)
    log.info("dev cluster ready in %.1f s; KUBECONFIG=%s", state.ready_seconds, state.kubeconfig)
    stop.wait()
    state.status = "stopping"
    write_state(directory, state)
    problems = stack.stop()
    state.status = "stopped" if not problems else "failed"
    state.error = "; ".join(problems)
    write_state(directory, state)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())

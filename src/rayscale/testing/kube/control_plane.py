"""Start and stop the throwaway control plane: etcd, then kube-apiserver, on loopback ports.

Each component is a :mod:`rayscale.processes` process (its own process group, stopped by
that group only, SIGTERM then SIGKILL; nothing is ever matched by name) spawned with
``die_with_parent=True``, so a killed test run does not leave it behind. A start that loses a
port race (another process bound the free port first) is retried on new ports.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

from rayscale import processes
from rayscale.processes import ManagedProcess
from rayscale.testing.kube.binaries import KubeBinaries
from rayscale.testing.kube.kubeconfig import write_kubeconfig
from rayscale.testing.kube.pki import LOOPBACK, Pki, write_pki
from rayscale.testing.kube.probes import Probe, etcd_healthy, http_ok
from rayscale.waiting import StopWaiting, WaitTimeoutError, wait_until

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
_BIND_RETRIES = 3
_LOG_TAIL_BYTES = 4000

# A component's argv and readiness probe, built anew (new ports) for each start attempt.
Launch = Callable[[], tuple[list[str], Probe]]


class KubeStartError(RuntimeError):
    """A control-plane process exited or did not become ready in time."""


class KubeStopError(RuntimeError):
    """A control-plane process group survived SIGKILL."""


class LocalKube:
    """etcd + kube-apiserver under `workdir`; use as a context manager or call start()/stop().

    After start(): `kubeconfig` (admin, embedded certs), `server` (https URL),
    `etcd_url`, `ready_seconds` (kube-apiserver start to /readyz ok) and
    `etcd_ready_seconds`.
    """

    def __init__(
        self,
        workdir: Path,
        binaries: KubeBinaries | None = None,
        *,
        ready_timeout: float = 180.0,
        stop_timeout: float = 15.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.binaries = binaries if binaries is not None else KubeBinaries.from_env()
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.kubeconfig = self.workdir / "kubeconfig"
        self.server = ""
        self.etcd_url = ""
        self.ready_seconds = 0.0
        self.etcd_ready_seconds = 0.0
        self.processes: list[ManagedProcess] = []
        self._pki: Pki | None = None

    def __enter__(self) -> LocalKube:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def env(self) -> dict[str, str]:
        """Environment for clients (kubectl, lightkube's default loader)."""
        return {"KUBECONFIG": str(self.kubeconfig)}

    def start(self) -> LocalKube:
        """Start etcd, then kube-apiserver; write the kubeconfig; stop everything on failure."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._pki = write_pki(self.workdir / "pki")
        try:
            self._start_etcd()
            self._start_apiserver()
        except BaseException:
            self.stop()
            raise
        write_kubeconfig(self.kubeconfig, self.server, self._pki)
        return self

    def stop(self) -> None:
        """Stop our own process groups, apiserver first; raise if any group survived."""
        errors = []
        survivors = []
        for proc in reversed(self.processes):
            error = _stop(proc, self.stop_timeout)
            if error:
                errors.append(error)
                survivors.append(proc)
        self.processes = survivors[::-1]
        if errors:
            raise KubeStopError("; ".join(errors))

    def ssl_context(self) -> ssl.SSLContext:
        """A TLS context that trusts the test CA and presents the admin client cert."""
        pki = self._require_pki()
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        return ctx

    @property
    def pki(self) -> Pki:
        """The throwaway PKI (after start()): the process kubelet serves with its kubelet cert."""
        return self._require_pki()

    def _require_pki(self) -> Pki:
        if self._pki is None:
            raise RuntimeError("LocalKube.start() has not run")
        return self._pki

    def _start_with_retry(self, name: str, launch: Launch, env: Mapping[str, str]) -> float:
        """Spawn and wait until ready; on a lost port race, stop and retry on new ports."""
        for attempt in range(_BIND_RETRIES):
            argv, probe = launch()
            proc = processes.spawn(
                argv,
                name=name,
                log_path=self.workdir / f"{name}.log",
                env=env,
                die_with_parent=True,
            )
            self.processes.append(proc)
            try:
                return _wait_ready(proc, probe, self.ready_timeout)
            except KubeStartError as err:
                error = _stop(proc, self.stop_timeout)
                if error:
                    raise KubeStopError(error) from err
                self.processes.remove(proc)
                if attempt + 1 == _BIND_RETRIES or not _lost_port_race(proc):
                    raise
        raise AssertionError("unreachable")

    def _start_etcd(self) -> None:
        data_dir = self.workdir / "etcd-data"
        extra = _etcd_optional_flags(self.binaries.etcd)
        # etcd reads ETCD_* variables as flags: keep stray ones out.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}

        def launch() -> tuple[list[str], Probe]:
            client, peer = processes.free_port(), processes.free_port()
            self.etcd_url = f"http://{LOOPBACK}:{client}"
            peer_url = f"http://{LOOPBACK}:{peer}"
            argv = [
                str(self.binaries.etcd),
                "--name=rayscale-test",
                f"--data-dir={data_dir}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=rayscale-test={peer_url}",
                "--initial-cluster-state=new",
                *extra,
            ]
            url = f"{self.etcd_url}/health"
            return argv, lambda: etcd_healthy(url)

        self.etcd_ready_seconds = self._start_with_retry("etcd", launch, env)

    def _start_apiserver(self) -> None:
        pki = self._require_pki()
        cert_dir = self.workdir / "apiserver-certs"
        cert_dir.mkdir(exist_ok=True)
        ctx = self.ssl_context()

        def launch() -> tuple[list[str], Probe]:
            port = processes.free_port()
            self.server = f"https://{LOOPBACK}:{port}"
            argv = [
                str(self.binaries.apiserver),
                f"--etcd-servers={self.etcd_url}",
                f"--bind-address={LOOPBACK}",
                f"--advertise-address={LOOPBACK}",
                f"--secure-port={port}",
                f"--cert-dir={cert_dir}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.service_account_pub}",
                f"--service-account-signing-key-file={pki.service_account_key}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                # ServiceAccount admission rejects every pod until the namespace's "default"
                # ServiceAccount exists, and only kube-controller-manager (not run here) creates
                # it. Our pods name their service accounts explicitly or need none.
                "--disable-admission-plugins=ServiceAccount",
                # The endpoint reconciler would publish 127.0.0.1 as the `kubernetes` service's
                # endpoint, which Endpoints validation rejects (loopback): it would only log
                # errors forever. Nothing in-cluster needs that service here.
                "--endpoint-reconciler-type=none",
                # `kubectl logs` goes through the apiserver to the process kubelet's log
                # endpoint (rayscale.devcluster.kubelet), which serves a cert of the test CA
                # for 127.0.0.1 (its Node's InternalIP) and accepts this client cert.
                f"--kubelet-client-certificate={pki.kubelet_client_cert}",
                f"--kubelet-client-key={pki.kubelet_client_key}",
                f"--kubelet-certificate-authority={pki.ca_cert}",
                "--kubelet-preferred-address-types=InternalIP",
                "--profiling=false",
            ]
            url = f"{self.server}/readyz"
            return argv, lambda: http_ok(url, ctx)

        self.ready_seconds = self._start_with_retry("kube-apiserver", launch, os.environ)


def _wait_ready(proc: ManagedProcess, probe: Probe, timeout: float) -> float:
    """Wait until `probe` passes; return seconds waited. KubeStartError if it dies or times out."""
    start = time.monotonic()
    last = ""

    def ready() -> bool:
        nonlocal last
        if not proc.is_running():
            raise StopWaiting(f"{proc.name} exited with code {proc.returncode} before it was ready")
        ok, last = probe()
        return ok

    try:
        wait_until(
            ready, timeout, f"{proc.name} to be ready", detail=lambda: f"last probe: {last[:500]}"
        )
    except (StopWaiting, WaitTimeoutError) as err:
        raise KubeStartError(
            f"{err}\nlog {proc.log_path}:\n{proc.log_tail(_LOG_TAIL_BYTES)}"
        ) from err
    return time.monotonic() - start


def _stop(proc: ManagedProcess, timeout: float) -> str | None:
    """SIGTERM the whole group, SIGKILL it after `timeout`; describe what survived, if any."""
    result = proc.stop(timeout, term_group=True, kill_timeout=timeout)
    if result.clean:
        return None
    left = ", ".join(info.describe() for info in result.leftovers)
    return f"{proc.name} (process group {proc.pgid}) survived SIGKILL: {left}"


def _lost_port_race(proc: ManagedProcess) -> bool:
    return "address already in use" in proc.log_tail(20_000).lower()


def _etcd_optional_flags(etcd: Path) -> list[str]:
    """Flags that speed up a throwaway etcd, if this etcd version knows them."""
    help_text = subprocess.run(
        [str(etcd), "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    known = help_text.stdout + help_text.stderr
    wanted = {
        "--unsafe-no-fsync": "--unsafe-no-fsync",  # data is thrown away after the test
        "--log-level": "--log-level=warn",
    }
    return [flag for name, flag in wanted.items() if name in known]

"""A throwaway Kubernetes control plane for tests: etcd + kube-apiserver on loopback ports.

Only the API server and its storage run. There is no kubelet, scheduler or
kube-controller-manager, so:

- pods stay ``Pending`` (our local runtime can play the kubelet);
- a deleted namespace stays ``Terminating`` (the namespace controller would finalize it);
- ownerReference garbage collection does not happen;
- no ``default`` ServiceAccount appears in new namespaces.

Binaries come from the environment (``RAYSCALE_KUBE_APISERVER``, ``RAYSCALE_ETCD``), set by
``eval "$(scripts/setup-k8s.sh)"``, which ``./dev.sh test`` runs.

Each process runs in its own session (so its own process group) and is stopped by that group
id only: SIGTERM, then SIGKILL after a timeout. Nothing here ever matches processes by name,
because other work shares the machine.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import datetime as dt
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from lightkube import AsyncClient, Client, KubeConfig

APISERVER_ENV = "RAYSCALE_KUBE_APISERVER"
ETCD_ENV = "RAYSCALE_ETCD"
SETUP_HINT = (
    'run `./dev.sh test`, or `eval "$(scripts/setup-k8s.sh)"` in this shell, to build '
    "etcd and kube-apiserver (cached under $RAYSCALE_CACHE) and export these variables"
)
ADMIN_USER = "rayscale-admin"
ADMIN_GROUP = "system:masters"  # bypasses RBAC authorization entirely
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
LOOPBACK = "127.0.0.1"
_BIND_RETRIES = 3


class KubeBinariesMissing(RuntimeError):
    """etcd or kube-apiserver is not configured or not executable."""


class KubeStartError(RuntimeError):
    """A control-plane process exited or did not become ready in time."""


class KubeStopError(RuntimeError):
    """A control-plane process group survived SIGKILL."""


@dataclass(frozen=True)
class KubeBinaries:
    """Paths of the two executables the control plane needs."""

    apiserver: Path
    etcd: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KubeBinaries:
        """Read the binaries from the environment; raise KubeBinariesMissing with the fix."""
        env = os.environ if environ is None else environ
        checks = (_check_binary(env, APISERVER_ENV), _check_binary(env, ETCD_ENV))
        problems = [p for p in checks if p]
        if problems:
            raise KubeBinariesMissing("; ".join(problems) + ". Fix: " + SETUP_HINT)
        return cls(apiserver=Path(env[APISERVER_ENV]), etcd=Path(env[ETCD_ENV]))


def _check_binary(env: Mapping[str, str], var: str) -> str | None:
    value = env.get(var, "")
    if not value:
        return f"{var} is not set"
    if not (os.path.isfile(value) and os.access(value, os.X_OK)):
        return f"{var}={value} is not an executable file"
    return None


# --- certificates and keys ----------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """Files of the throwaway PKI: one CA signs the serving cert and the admin client cert."""

    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_pub: Path


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _issue(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=7))
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def write_pki(directory: Path) -> Pki:
    """Generate a CA, a loopback serving cert, an admin client cert and a service-account key."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("rayscale-test-ca")
    ca = _issue(
        ca_name,
        ca_key,
        ca_name,
        ca_key,
        [
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (x509.KeyUsage(False, False, False, False, False, True, True, False, False), True),
        ],
    )
    leaf_usage = x509.KeyUsage(True, False, True, False, False, False, False, False, False)
    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving = _issue(
        _name("kube-apiserver"),
        serving_key,
        ca_name,
        ca_key,
        [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (leaf_usage, True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.DNSName("kubernetes.default.svc"),
                        x509.IPAddress(ipaddress.ip_address(LOOPBACK)),
                    ]
                ),
                False,
            ),
        ],
    )
    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin = _issue(
        _name(ADMIN_USER, ADMIN_GROUP),
        admin_key,
        ca_name,
        ca_key,
        [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (leaf_usage, True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        ],
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_pub = sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem = serialization.Encoding.PEM
    return Pki(
        ca_cert=_write(directory / "ca.crt", ca.public_bytes(pem)),
        serving_cert=_write(directory / "apiserver.crt", serving.public_bytes(pem)),
        serving_key=_write(directory / "apiserver.key", _pem_key(serving_key)),
        admin_cert=_write(directory / "admin.crt", admin.public_bytes(pem)),
        admin_key=_write(directory / "admin.key", _pem_key(admin_key)),
        service_account_key=_write(directory / "sa.key", _pem_key(sa_key)),
        service_account_pub=_write(directory / "sa.pub", sa_pub),
    )


def write_kubeconfig(path: Path, server: str, pki: Pki, namespace: str = "default") -> Path:
    """Write a self-contained kubeconfig (embedded certs) for the admin user."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "rayscale-test",
                "cluster": {"server": server, "certificate-authority-data": b64(pki.ca_cert)},
            }
        ],
        "users": [
            {
                "name": ADMIN_USER,
                "user": {
                    "client-certificate-data": b64(pki.admin_cert),
                    "client-key-data": b64(pki.admin_key),
                },
            }
        ],
        "contexts": [
            {
                "name": "rayscale-test",
                "context": {"cluster": "rayscale-test", "user": ADMIN_USER, "namespace": namespace},
            }
        ],
        "current-context": "rayscale-test",
        "preferences": {},
    }
    _write(path, yaml.safe_dump(config, sort_keys=False).encode())
    return path


# --- processes ----------------------------------------------------------------------------


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (the caller retries on a bind race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class ManagedProcess:
    """A child started in its own session; its pid is also its process-group id."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def group_alive(self) -> bool:
        """True while any process of its group exists (leader reaped or not)."""
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # the group id now belongs to someone else's process
            return False
        return True

    def stop(self, timeout: float) -> None:
        """SIGTERM the group, SIGKILL it after `timeout`, reap, and verify it is gone."""
        self._signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.popen.wait(timeout)
        if self.group_alive():  # children left behind in the group
            self._signal(signal.SIGKILL)
            deadline = time.monotonic() + timeout
            while self.group_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        if self.alive() or self.group_alive():
            raise KubeStopError(f"{self.name} (process group {self.pid}) survived SIGKILL")

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)


# Loaded in the parent so the forked child only makes one plain C call (no imports, no locks).
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the test process dies without stopping us.

    A backstop for a killed or crashed pytest; normal teardown is ManagedProcess.stop().
    """
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(name: str, argv: list[str], log_path: Path, env: Mapping[str, str]) -> ManagedProcess:
    """Start `argv` in a new session with stdout+stderr appended to `log_path`."""
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
            preexec_fn=_die_with_parent,  # one prctl call: safe enough after fork
        )
    return ManagedProcess(name=name, popen=popen, log_path=log_path)


def _http_ok(url: str, context: ssl.SSLContext | None) -> tuple[bool, str]:
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(url, timeout=2.0) as resp:
            return resp.status == 200, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return False, err.read().decode(errors="replace")
    except (OSError, ssl.SSLError) as err:
        return False, str(err)


def wait_until_ready(
    proc: ManagedProcess, probe: Callable[[], tuple[bool, str]], timeout: float
) -> float:
    """Poll `probe` until it passes; return seconds waited. Raise if the process dies first."""
    start = time.monotonic()
    last = ""
    while time.monotonic() - start < timeout:
        if not proc.alive():
            raise KubeStartError(
                f"{proc.name} exited with code {proc.popen.returncode} before it was ready; "
                f"log {proc.log_path}:\n{_log_tail(proc.log_path)}"
            )
        ok, last = probe()
        if ok:
            return time.monotonic() - start
        time.sleep(0.2)
    raise KubeStartError(
        f"{proc.name} not ready after {timeout:.0f}s (last probe: {last[:500]}); "
        f"log {proc.log_path}:\n{_log_tail(proc.log_path)}"
    )


def _bind_race(proc: ManagedProcess) -> bool:
    return "address already in use" in _log_tail(proc.log_path, 200).lower()


# --- the control plane ----------------------------------------------------------------------


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
        """Stop our own process groups, apiserver first; verify each is gone."""
        errors = []
        for proc in reversed(self.processes):
            try:
                proc.stop(self.stop_timeout)
            except KubeStopError as err:
                errors.append(str(err))
        self.processes = [p for p in self.processes if p.alive() or p.group_alive()]
        if errors:
            raise KubeStopError("; ".join(errors))

    def ssl_context(self) -> ssl.SSLContext:
        """A TLS context that trusts the test CA and presents the admin client cert."""
        pki = self._require_pki()
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        return ctx

    def _require_pki(self) -> Pki:
        if self._pki is None:
            raise RuntimeError("LocalKube.start() has not run")
        return self._pki

    def _start_with_retry(
        self,
        name: str,
        argv_for: Callable[[], tuple[list[str], Callable[[], tuple[bool, str]]]],
        env: Mapping[str, str],
    ) -> float:
        for attempt in range(_BIND_RETRIES):
            argv, probe = argv_for()
            proc = spawn(name, argv, self.workdir / f"{name}.log", env)
            self.processes.append(proc)
            try:
                return wait_until_ready(proc, probe, self.ready_timeout)
            except KubeStartError:
                proc.stop(self.stop_timeout)
                self.processes.remove(proc)
                if attempt + 1 == _BIND_RETRIES or not _bind_race(proc):
                    raise
        raise AssertionError("unreachable")

    def _start_etcd(self) -> None:
        data_dir = self.workdir / "etcd-data"
        extra = _etcd_optional_flags(self.binaries.etcd)
        # etcd reads ETCD_* variables as flags: keep stray ones out.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}

        def argv_for() -> tuple[list[str], Callable[[], tuple[bool, str]]]:
            client, peer = free_port(), free_port()
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
            return argv, lambda: _etcd_healthy(url)

        self.etcd_ready_seconds = self._start_with_retry("etcd", argv_for, env)

    def _start_apiserver(self) -> None:
        pki = self._require_pki()
        cert_dir = self.workdir / "apiserver-certs"
        cert_dir.mkdir(exist_ok=True)
        ctx = self.ssl_context()

        def argv_for() -> tuple[list[str], Callable[[], tuple[bool, str]]]:
            port = free_port()
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
                "--profiling=false",
            ]
            url = f"{self.server}/readyz"
            return argv, lambda: _http_ok(url, ctx)

        self.ready_seconds = self._start_with_retry("kube-apiserver", argv_for, os.environ)


@dataclass
class KubeSession:
    """A running control plane plus an admin lightkube client: what the `kube` fixture yields."""

    cluster: LocalKube
    client: Client

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.kubeconfig

    def config(self) -> KubeConfig:
        return KubeConfig.from_file(self.kubeconfig)

    def new_client(self, field_manager: str = "rayscale-tests") -> Client:
        return Client(config=self.config(), field_manager=field_manager)

    def async_client(self, field_manager: str = "rayscale-tests") -> AsyncClient:
        """A new AsyncClient (bound to the caller's event loop: close it when done)."""
        return AsyncClient(config=self.config(), field_manager=field_manager)


def _etcd_healthy(url: str) -> tuple[bool, str]:
    ok, body = _http_ok(url, None)
    if not ok:
        return False, body
    try:
        return json.loads(body).get("health") == "true", body
    except ValueError:
        return False, body


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

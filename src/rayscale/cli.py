"""The ``rayscale`` command line.

Bad input (a spec, a state file, a flag) ends with a one-paragraph error on stderr and exit
code 2, never a traceback.
"""

from __future__ import annotations

import enum
import functools
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from rayscale.spec import LoadedSpec

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="KubeRay-compatible autoscaling for Ray: plan, run locally, benchmark.",
)
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print figures.")
app.add_typer(bench_app, name="bench")
dev_app = typer.Typer(
    no_args_is_help=True,
    help="A one-machine Kubernetes (kube-apiserver, etcd, kube-controller-manager, the "
    "operator and a process kubelet) to try the operator without a cluster.",
)
app.add_typer(dev_app, name="dev-cluster")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@functools.cache
def _err() -> Console:
    """stderr for people; built on first use, so that a command that prints nothing there
    (the autoscaler sidecar, whose memory is budgeted) never imports rich."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    _err().print(f"[bold red]error:[/] {message}", markup=True)
    raise typer.Exit(code)


class Output(str, enum.Enum):
    text = "text"
    json = "json"


def _load_spec(path: Path) -> LoadedSpec:
    """Parse a RayCluster YAML, or exit 2 listing every problem (path, message, fix)."""
    from rayscale.spec import SpecError, load_file

    try:
        return load_file(path)
    except SpecError as exc:
        fail(exc.format())


@app.command("plan")
def plan_cmd(
    cluster: Annotated[Path, typer.Argument(help="RayCluster YAML (KubeRay ray.io/v1)")],
    state: Annotated[
        Path, typer.Option("--state", "-s", help="Snapshot of nodes and demand (JSON)")
    ],
    output: Annotated[Output, typer.Option("--output", "-o", help="text or json")] = Output.text,
) -> None:
    """Dry run: what would the autoscaler do for this cluster and this snapshot?"""
    from rayscale.dryrun import StateError, load_state, plan_to_json, plan_to_text, to_planner_input
    from rayscale.planner import plan
    from rayscale.spec import to_group_configs

    groups = to_group_configs(_load_spec(cluster).cluster)
    try:
        inp = to_planner_input(load_state(state), groups)
    except StateError as exc:
        fail(str(exc))
    result = plan(inp)
    if output is Output.json:
        sys.stdout.write(json.dumps(plan_to_json(result), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(plan_to_text(result) + "\n")


def _connect_text(name: str, env: dict[str, str]) -> str:
    exports = " ".join(f"{k}={v}" for k, v in env.items())
    return (
        f"Cluster {name} is up. Connect a script with:\n"
        f"  export {exports}\n"
        f"  python my_script.py   # ray.init() picks these up\n"
        f"or run a command with the address and token set:  rayscale exec {name} -- python ..."
    )


@app.command("up")
def up_cmd(
    file: Annotated[Path, typer.Argument(help="RayCluster YAML (KubeRay ray.io/v1)")],
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Return once the head is ready")
    ] = False,
    period: Annotated[
        float, typer.Option("--period", min=0.1, help="Autoscaler period in seconds")
    ] = 1.0,
) -> None:
    """Run the cluster a RayCluster YAML describes, locally, with autoscaling."""
    from rayscale.builders.pods import head_pod
    from rayscale.local import registry, supervisor
    from rayscale.local.kubelet import PodSpecError, check_config_maps

    spec = _load_spec(file)
    name = spec.cluster.name
    try:
        check_config_maps(head_pod(spec.cluster, f"{name}-head-check"), spec.config_maps)
    except PodSpecError as exc:
        fail(f"{file}: {exc}")
    try:
        record = registry.read(name)
    except registry.CorruptRecordError as exc:
        fail(str(exc))
    if record is not None and registry.supervisor_alive(record):
        fail(
            f"cluster {name!r} is already running (supervisor pid {record.pid}); "
            f"stop it first with `rayscale down {name}`"
        )
    if detach:
        _up_detached(file, name, period)
        return
    sup = supervisor.Supervisor(spec, str(file.resolve()), period)
    sup.handle_signals()
    try:
        rec = sup.start()
    except Exception as exc:
        fail(f"could not start {name}: {exc}", code=1)
    _err().print(_connect_text(name, rec.client_env()))
    left = _run_live(sup)
    raise typer.Exit(1 if left else 0)


def _run_live(sup) -> list[str]:  # type: ignore[no-untyped-def]
    import threading

    from rich.live import Live
    from rich.text import Text

    from rayscale.autoscaler.status import format_status

    result: list[list[str]] = []
    worker = threading.Thread(target=lambda: result.append(sup.run()), daemon=True)
    worker.start()
    if not sys.stdout.isatty():
        while worker.is_alive():
            worker.join(0.5)
        return result[0] if result else []
    with Live(Text("starting..."), refresh_per_second=2, transient=False) as live:
        while worker.is_alive():
            if sup.last is not None:
                live.update(Text(format_status(sup.last)))
            worker.join(0.5)
    return result[0] if result else []


def _up_detached(file: Path, name: str, period: float) -> None:
    from rayscale.local import control

    try:
        record = control.up_detached(file, period, name=name)
    except control.ControlError as exc:
        fail(str(exc), code=1)
    _err().print(_connect_text(name, record.client_env()))
    _err().print(f"Supervisor pid {record.pid}; stop with `rayscale down {name}`.")


def _pick(name: str | None) -> str:
    from rayscale.local import registry

    names = registry.names()
    if name is None:
        if len(names) == 1:
            return names[0]
        fail(
            "no local cluster is running"
            if not names
            else f"several clusters are running ({', '.join(names)}); name one"
        )
    if name not in names:
        fail(
            f"no local cluster named {name!r}" + (f"; running: {', '.join(names)}" if names else "")
        )
    return name


def _record(name: str):  # type: ignore[no-untyped-def]
    """The cluster's record, or exit 2 with how to clean up if its state file is unreadable."""
    from rayscale.local import registry

    try:
        record = registry.read(name)
    except registry.CorruptRecordError as exc:
        fail(str(exc))
    if record is None:
        fail(f"no local cluster named {name!r}")
    return record


@app.command("status")
def status_cmd(
    name: Annotated[str | None, typer.Argument(help="Cluster name (default: the only one)")] = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.text,
) -> None:
    """A `ray status`-like view of a local cluster, plus each group's target and reasons."""
    from rayscale.autoscaler.status import ClusterStatus, format_status
    from rayscale.local import registry

    name = _pick(name)
    record = _record(name)
    status = registry.read_status(name)
    alive = registry.supervisor_alive(record)
    if output is Output.json:
        data = dict(
            status
            or {"name": name, "address": record.address, "groups": [], "nodes": [], "demand": {}}
        )
        data["supervisor"] = {"pid": record.pid, "alive": alive, "state": record.status}
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return
    if not alive:
        _err().print(
            f"warning: the supervisor of {name} (pid {record.pid}) is not running; "
            f"`rayscale down {name}` cleans up"
        )
    if status is None:
        sys.stdout.write(f"{name}: {record.status}, no autoscaler iteration yet\n")
        return
    sys.stdout.write(format_status(ClusterStatus.model_validate(status)) + "\n")


@app.command("down")
def down_cmd(
    name: Annotated[str | None, typer.Argument(help="Cluster name (default: the only one)")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a clean stop")] = 90.0,
) -> None:
    """Stop every process of a local cluster (even if its supervisor was killed)."""
    from rayscale.local import control

    name = _pick(name)
    try:
        control.down(name, timeout)
    except control.ControlError as exc:
        fail(str(exc), code=1)
    _err().print(f"{name}: stopped")


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Cluster name")],
    kubernetes: Annotated[
        bool,
        typer.Option(
            "--kubernetes",
            help="The RayCluster NAME on Kubernetes (a `rayscale dev-cluster`), via $KUBECONFIG",
        ),
    ] = False,
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", help="With --kubernetes: its namespace")
    ] = "default",
    container: Annotated[
        str | None,
        typer.Option("--container", "-c", help="With --kubernetes: the head's container"),
    ] = None,
) -> None:
    """Run a command against the cluster (address and token set), like kubectl exec on the head.

    Paths under the head's ConfigMap mounts (e.g. /home/ray/samples/...) map to local copies.
    With --kubernetes, CMD runs with the head container's environment and mounts, as
    `kubectl exec` would (the dev cluster's process kubelet has no streaming exec).
    """
    import subprocess

    from rayscale.local.kubelet import rewrite_paths

    argv = list(ctx.args)
    if argv[:1] == ["--"]:  # click keeps the separator in some positions; later ones are CMD's
        argv = argv[1:]
    if not argv:
        fail("no command given: rayscale exec NAME -- CMD [ARGS...]")
    if kubernetes:
        raise typer.Exit(_exec_kubernetes(name, namespace, container, argv))
    name = _pick(name)
    record = _record(name)
    if record.status != "ready":
        fail(f"cluster {name} is {record.status}, not ready")
    mounts = {k: Path(v) for k, v in record.mounts.items()}
    argv = rewrite_paths(argv, mounts)
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    env = record.client_environ()
    try:
        code = subprocess.call(argv, env=env)
    except FileNotFoundError:
        fail(f"command not found: {argv[0]}")
    raise typer.Exit(code)


def _exec_kubernetes(name: str, namespace: str, container: str | None, argv: list[str]) -> int:
    import subprocess

    from lightkube import ApiError, Client, ConfigError, KubeConfig

    from rayscale.devcluster.execrecord import ExecRecordError
    from rayscale.devcluster.execute import ExecError, exec_environ, head_record, local_command
    from rayscale.kube.operator import default_kubeconfig

    kubeconfig = default_kubeconfig()
    try:
        client = Client(config=KubeConfig.from_file(kubeconfig) if kubeconfig else None)
    except ConfigError as exc:
        fail(f'no Kubernetes to reach ({exc}); `eval "$(rayscale dev-cluster env)"` first')
    try:
        pod, record = head_record(client, namespace, name, container)
    except (ExecError, ExecRecordError) as exc:
        fail(str(exc))
    except ApiError as exc:
        fail(f"the API server refused: {exc.status.message}")
    except OSError as exc:
        fail(f"cannot reach the API server ({exc}); is the dev cluster up?")
    finally:
        client.close()
    del pod
    command = local_command(record.argv(argv))
    try:
        return subprocess.call(command, env=exec_environ(record), cwd=record.cwd or None)
    except FileNotFoundError:
        fail(f"command not found: {argv[0]}")


@app.command("demo")
def demo_cmd(
    idle_timeout: Annotated[
        int, typer.Option("--idle-timeout", min=0, help="Seconds before an idle worker goes")
    ] = 10,
    period: Annotated[float, typer.Option("--period", min=0.1, help="Autoscaler period")] = 0.5,
) -> None:
    """KubeRay's detached-actor autoscaling walkthrough, locally; exit 0 if it behaved.

    Prints every scaling decision with its reason as it happens.
    """
    from rayscale.local import demo, registry

    record = registry.read(demo.DEMO_NAME)
    if record is not None and registry.supervisor_alive(record):
        fail(f"a demo is already running (pid {record.pid}); `rayscale down {demo.DEMO_NAME}`")
    raise typer.Exit(demo.run(idle_timeout, period, out=lambda s: print(s, flush=True)))


@app.command("apiserver")
def apiserver_cmd(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port")] = 31888,
    local: Annotated[
        bool,
        typer.Option(
            "--local/--kubernetes",
            help="Backend: the local runtime (default), or Kubernetes (ConfigMaps, ray.io CRs)",
        ),
    ] = True,
    records_only: Annotated[
        bool, typer.Option("--records-only", help="Store clusters and jobs, start no Ray")
    ] = False,
    auth_token_file: Annotated[
        Path | None, typer.Option(help="Require `Authorization: Bearer <token in this file>`")
    ] = None,
    period: Annotated[
        float, typer.Option("--period", min=0.1, help="Autoscaler period of started clusters")
    ] = 1.0,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            help="With --kubernetes: kubeconfig (default: $KUBECONFIG, ~/.kube/config, or "
            "in-cluster)"
        ),
    ] = None,
) -> None:
    """Serve KubeRay's v1 REST API (compute templates, clusters, jobs): on this machine
    (--local, the default) or on Kubernetes (--kubernetes: ConfigMaps, RayCluster and RayJob
    CRs, run by `rayscale operator`)."""
    from rayscale.apiserver import server

    if local and kubeconfig is not None:
        fail("--kubeconfig is for the Kubernetes backend; add --kubernetes")
    if not local and records_only:
        fail("--records-only is for the local backend; leave it out with --kubernetes")
    try:
        token = server.read_token(auth_token_file) if auth_token_file else None
        backend = (
            server.local_backend(records_only, period) if local else server.kube_backend(kubeconfig)
        )
    except server.ServerConfigError as exc:
        fail(str(exc))
    server.serve(backend, host, port, token)


@app.command("apply")
def apply_cmd(
    file: Annotated[Path, typer.Option("--filename", "-f", help="YAML: ConfigMaps, RayClusters")],
    namespace: Annotated[str, typer.Option("--namespace", "-n")] = "default",
    period: Annotated[float, typer.Option("--period", min=0.1)] = 1.0,
) -> None:
    """Like `kubectl apply -f`: store the file's ConfigMaps for the API server; start its
    RayClusters locally."""
    from rayscale.apiserver.backends.local import LocalBackend, apply_file
    from rayscale.local import control
    from rayscale.spec import SpecError

    if not file.is_file():
        fail(f"{file}: no such file")
    backend = LocalBackend()
    try:
        for line in apply_file(backend, file, namespace, period):
            sys.stdout.write(line + "\n")
    except SpecError as exc:
        fail(exc.format())
    except (ValueError, OSError) as exc:
        fail(str(exc))
    except control.ControlError as exc:
        fail(str(exc), code=1)
    finally:
        backend.store.close()


@bench_app.command("apiserver")
def bench_apiserver(
    clusters: Annotated[int, typer.Option(min=1, help="Cluster records to create")] = 200,
    requests: Annotated[int, typer.Option(min=10, help="Requests per measured operation")] = 2000,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON summary line")] = False,
    jobs: Annotated[
        bool, typer.Option("--jobs", help="Instead: driver process vs Ray job submission")
    ] = False,
) -> None:
    """Latency of GET cluster / list clusters and template create/delete rate (records only)."""
    if jobs:
        from rayscale.bench.job_paths import main as run_jobs

        raise typer.Exit(run_jobs(3, json_output))
    from rayscale.bench.apiserver import main as run

    raise typer.Exit(run(clusters, requests, json_output))


@app.command("crds")
def crds_cmd() -> None:
    """Print the ray.io/v1 CRDs (RayCluster, RayJob) as YAML, for `kubectl apply -f -`."""
    from rayscale.builders.crds import crds_yaml

    sys.stdout.write(crds_yaml())


@app.command("operator")
def operator_cmd(
    kubeconfig: Annotated[
        Path | None,
        typer.Option(help="kubeconfig (default: $KUBECONFIG, ~/.kube/config, or in-cluster)"),
    ] = None,
    namespace: Annotated[
        list[str] | None, typer.Option("--namespace", "-n", help="Watch only these namespaces")
    ] = None,
    install_crds: Annotated[
        bool, typer.Option("--install-crds/--no-install-crds", help="Apply the ray.io CRDs first")
    ] = False,
) -> None:
    """Run the RayCluster operator (kopf): head, service, workers, RBAC, token, status."""
    import asyncio
    import logging

    from rayscale.kube import operator

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    config = kubeconfig or operator.default_kubeconfig()
    if config is not None and not config.is_file():
        fail(f"kubeconfig {config}: no such file; pass --kubeconfig or set KUBECONFIG")
    if install_crds:
        from lightkube import Client, KubeConfig

        from rayscale.kube.crds import install_crds as install

        client = Client(config=KubeConfig.from_file(config) if config else None)
        install(client)
        client.close()
    asyncio.run(operator.run(config, namespaces=tuple(namespace or ())))


@app.command("autoscaler")
def autoscaler_cmd(
    cluster: Annotated[
        str | None, typer.Option("--cluster", help="RayCluster name (default $RAY_CLUSTER_NAME)")
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", help="Its namespace (default $RAY_CLUSTER_NAMESPACE)"),
    ] = None,
    kubeconfig: Annotated[
        Path | None, typer.Option(help="kubeconfig (default: the pod's service account)")
    ] = None,
    gcs: Annotated[
        str,
        typer.Option("--gcs", envvar="RAY_ADDRESS", help="Ray GCS address (default $RAY_ADDRESS)"),
    ] = "127.0.0.1:6379",
    period: Annotated[float, typer.Option("--period", min=0.1, help="Plan at least every S")] = 1.0,
) -> None:
    """The autoscaler sidecar of a RayCluster's head pod (reads Ray, patches the CR)."""
    import logging
    import os
    import threading

    from rayscale import sidecar

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    name = cluster or os.environ.get("RAY_CLUSTER_NAME")
    ns = namespace or os.environ.get("RAY_CLUSTER_NAMESPACE") or "default"
    if not name:
        fail("no cluster name: pass --cluster NAME or set RAY_CLUSTER_NAME")
    if kubeconfig is not None and not kubeconfig.is_file():
        fail(f"kubeconfig {kubeconfig}: no such file")
    stop = threading.Event()
    from rayscale.processes import stop_on_signals

    stop_on_signals(stop, sidecar.log)
    try:
        sidecar.run(
            name,
            ns,
            config=sidecar.kube_config(kubeconfig),
            view=lambda s: sidecar.connect_gcs(gcs, s, timeout=600),
            stop=stop,
            period=period,
            address=gcs,
        )
    except LookupError as exc:
        fail(str(exc))


@bench_app.command("sidecar")
def bench_sidecar(
    json_output: Annotated[bool, typer.Option("--json", help="One JSON summary line")] = False,
    trials: Annotated[int, typer.Option(min=1, help="Actors created, one per trial")] = 5,
    period: Annotated[float, typer.Option("--period", min=0.1)] = 1.0,
) -> None:
    """The Kubernetes sidecar: pending demand in GCS -> RayCluster patched; its RSS.

    Needs the k8s tier's binaries (eval "$(scripts/setup-k8s.sh)") and starts a Ray head.
    """
    from rayscale.bench.sidecar import main as run
    from rayscale.testing.kube import KubeBinariesMissing

    try:
        raise typer.Exit(run(json_output, trials, period))
    except KubeBinariesMissing as exc:
        fail(str(exc))


@bench_app.command("e2e")
def bench_e2e(
    json_output: Annotated[bool, typer.Option("--json", help="One JSON summary line")] = False,
    trials: Annotated[int, typer.Option(min=0, help="Scale-up/scale-down cycles")] = 5,
    idle_timeout: Annotated[int, typer.Option("--idle-timeout", min=1)] = 5,
    period: Annotated[float, typer.Option("--period", min=0.1)] = 1.0,
    bursts: Annotated[
        str, typer.Option("--bursts", help="Burst sizes N (comma-separated; '' for none)")
    ] = "1,3,6,10",
) -> None:
    """Latencies (demand -> launch decision, idle expiry -> removal), bursts of N one-CPU
    tasks -> N workers (failed boots, RSS per worker), and supervisor RSS."""
    from rayscale.bench.e2e import main as run

    try:
        sizes = [int(s) for s in bursts.split(",") if s.strip()]
    except ValueError:
        fail(f"--bursts must be comma-separated integers such as 1,3,6,10, not {bursts!r}")
    if any(n < 1 or n > 10 for n in sizes):
        fail("--bursts sizes must be between 1 and 10 (the sample's small-group maxReplicas)")
    raise typer.Exit(run(json_output, trials, idle_timeout, period, sizes))


@bench_app.command("planner")
def bench_planner(
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON object per scenario")
    ] = False,
    full: Annotated[
        bool,
        typer.Option("--full", help="Give Ray's schedulers 600 s a call and repeat more (long)"),
    ] = False,
    scenario: Annotated[
        list[str] | None, typer.Option("--scenario", help="Run only these (S1..S6)")
    ] = None,
    table_from: Annotated[
        str | None,
        typer.Option("--table-from", help="Render the table from a saved --json run"),
    ] = None,
) -> None:
    """rayscale's planner vs Ray 2.60's v1 and v2 schedulers on the same seeded inputs.

    With no flags it takes a few minutes: Ray's calls are cut at 15 s and reported as lower
    bounds.
    """
    from rayscale.bench.planner_bench import main as run

    raise typer.Exit(run(json_output, full=full, scenarios=scenario, table_from=table_from))


DevName = Annotated[str, typer.Option("--name", help="Which dev cluster (several may run)")]


@dev_app.command("up")
def dev_up_cmd(
    name: DevName = "dev",
    timeout: Annotated[float, typer.Option(help="Seconds to wait until it is ready")] = 300.0,
) -> None:
    """Start the stack in the background; return when kubectl can use it."""
    from rayscale.devcluster import control

    try:
        state = control.up(name, timeout)
    except control.AlreadyRunningError as exc:
        fail(str(exc))
    except control.DevClusterError as exc:
        fail(str(exc), code=1)
    _err().print(f"dev cluster {name!r} ready in {state.ready_seconds:.1f} s ({state.server}).")
    _err().print("Use it from this shell with:")
    suffix = f" --name {name}" if name != "dev" else ""
    _err().print(f'  eval "$(rayscale dev-cluster env{suffix})"')
    _err().print("then `kubectl apply -f ...`, `kubectl get pods`, `kubectl get raycluster`.")


@dev_app.command("env")
def dev_env_cmd(name: DevName = "dev") -> None:
    """Print `export KUBECONFIG=... PATH=...` for the walkthrough's kubectl commands."""
    from rayscale.devcluster import control
    from rayscale.devcluster.state import CorruptStateError

    try:
        state = control.running(name)
    except (control.DevClusterError, CorruptStateError) as exc:
        fail(str(exc))
    sys.stdout.write("\n".join(control.env_lines(state)) + "\n")


@dev_app.command("down")
def dev_down_cmd(
    name: DevName = "dev",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a clean stop")] = 120.0,
) -> None:
    """Stop every part of the stack and every pod's processes; leave nothing behind."""
    from rayscale.devcluster import control

    try:
        control.down(name, timeout)
    except control.NotRunningError as exc:
        fail(str(exc))
    except control.DevClusterError as exc:
        fail(str(exc), code=1)
    _err().print(f"dev cluster {name!r} stopped; no process left")


def main() -> None:
    app()


if __name__ == "__main__":
    main()

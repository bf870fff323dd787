"""The RayJob submitter and status steps (rayscale.builders.rayjob), pure: no Kubernetes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rayscale import processes
from rayscale.builders import rayjob
from rayscale.builders.rayjob import ClusterView, RayJobSpecError, next_status
from rayscale.waiting import wait_until

pytestmark = pytest.mark.unit

NOW = "2026-01-01T00:00:00Z"
SPEC: dict[str, Any] = {
    "entrypoint": "python /home/ray/samples/detached_actor.py actor1",
    "clusterSelector": {"ray.io/cluster": "test-cluster"},
}
READY = ClusterView(found=True, ready=True, image="rayproject/ray:2.9.0-py310")


def step(
    spec: dict[str, Any] = SPEC,
    old: dict[str, Any] | None = None,
    cluster: ClusterView = READY,
    submitter: dict[str, Any] | None = None,
) -> rayjob.Step:
    return next_status(
        "create-actor", "ns1", spec, old or {}, cluster=cluster, submitter=submitter,
        suffix="ab12c", now=NOW, generation=1,
    )  # fmt: skip


def test_submit_command_is_kuberays_submission_that_waits() -> None:
    dashboard = rayjob.dashboard_url("test-cluster", "ns1")
    assert dashboard == "test-cluster-head-svc.ns1.svc.cluster.local:8265"
    spec = {**SPEC, "runtimeEnvYAML": "env_vars:\n  A: b\n", "metadata": {"team": "x"}}
    command = rayjob.submit_command(spec, "create-actor-ab12c", dashboard)
    wait, rest = command.split(" ; done ; ")
    trap, submit = rest.split(" ; ray job submit ")
    submit = "ray job submit " + submit
    assert wait.startswith("until python3 -c ")
    assert " http://test-cluster-head-svc.ns1.svc.cluster.local:8265/api/gcs_healthz >" in wait
    assert submit == (
        "ray job submit --address http://test-cluster-head-svc.ns1.svc.cluster.local:8265 "
        """--runtime-env-json '{"env_vars":{"A":"b"}}' --metadata-json '{"team": "x"}' """
        "--submission-id create-actor-ab12c -- python /home/ray/samples/detached_actor.py actor1"
        " & wait $!"
    )
    assert trap.startswith("trap 'ray job stop --address http://test-cluster-head-svc")


def test_the_job_waits_for_its_cluster_then_creates_the_submitter() -> None:
    missing = step(cluster=ClusterView(found=False))
    assert not missing.create_submitter
    assert missing.status["jobDeploymentStatus"] == "Initializing"
    assert missing.status["jobStatus"] == "PENDING"
    assert "not found" in missing.status["message"]
    assert missing.status["jobId"] == "create-actor-ab12c"
    not_ready = step(old=missing.status, cluster=ClusterView(found=True, ready=False))
    assert "to be ready" in not_ready.status["message"] and not not_ready.create_submitter
    assert not_ready.status["jobId"] == "create-actor-ab12c"  # kept, not drawn again
    ready = step(old=not_ready.status)
    assert ready.create_submitter and ready.status["jobDeploymentStatus"] == "Running"
    assert ready.status["startTime"] == NOW


@pytest.mark.parametrize(
    ("conditions", "deployment", "job_status"),
    [
        ([{"type": "Complete", "status": "True"}], "Complete", "SUCCEEDED"),
        ([{"type": "Failed", "status": "True", "message": "backoff"}], "Failed", "FAILED"),
        ([], "Running", "PENDING"),
    ],
)
def test_the_submitters_end_is_the_jobs_outcome(
    conditions: list[dict[str, str]], deployment: str, job_status: str
) -> None:
    out = step(old={"jobId": "x", "startTime": NOW}, submitter={"conditions": conditions})
    assert (out.status["jobDeploymentStatus"], out.status["jobStatus"]) == (deployment, job_status)
    assert ("endTime" in out.status) == (deployment != "Running")
    if deployment != "Running":  # finished: a later pass changes nothing
        assert step(old=out.status, submitter={"active": 1}).status == out.status


def test_a_running_submitter_is_running_and_a_finished_job_never_changes() -> None:
    running = step(old={"jobId": "x"}, submitter={"active": 1})
    assert running.status["jobStatus"] == "RUNNING"
    done = {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
    assert step(old=done, submitter={"active": 1}).status == done


def test_a_job_rayscale_cannot_run_fails_naming_the_field() -> None:
    out = step(spec={"entrypoint": "x", "clusterSelector": {}})
    assert out.status["jobDeploymentStatus"] == "Failed"
    assert "spec.clusterSelector.ray.io/cluster" in out.status["message"]
    out = step(spec={**SPEC, "rayClusterSpec": {"headGroupSpec": {}}})
    assert "spec.rayClusterSpec" in out.status["message"] and not out.create_submitter
    with pytest.raises(RayJobSpecError, match="runtimeEnvYAML"):
        rayjob.runtime_env_json({"runtimeEnvYAML": "- a list"})


def test_submitter_job_is_owned_named_and_carries_the_token() -> None:
    raw = {"metadata": {"name": "create-actor", "namespace": "ns1", "uid": "u-1"}, "spec": SPEC}
    job = rayjob.submitter_job(
        raw, submission_id="create-actor-ab12c", dashboard="d:8265", cluster="test-cluster",
        image="img:1",
    )  # fmt: skip
    assert job["metadata"]["name"] == "create-actor"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "img:1"
    assert {e["name"]: e.get("value") for e in container["env"]}["RAY_AUTH_MODE"] == "token"
    assert pod["volumes"][0]["secret"]["secretName"] == "test-cluster-ray-token"


@pytest.mark.parametrize("exit_code", [0, 1])
def test_the_script_runs_in_bash_and_exits_as_ray_job_submit(
    tmp_path: Path, exit_code: int
) -> None:
    """Run the submitter's command line in bash with fake `python3` (dashboard healthy) and
    fake `ray` (records its argv, exits as `ray job submit` does for SUCCEEDED/FAILED)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "ray").write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/argv\nexit {exit_code}\n'
    )
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    raw = {"metadata": {"name": "create-actor", "namespace": "ns1"}, "spec": SPEC}
    job = rayjob.submitter_job(
        raw, submission_id="id-1", dashboard="h:8265", cluster="c", image="img"
    )
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(container["command"] + container["args"], env=env, timeout=30)
    assert done.returncode == exit_code
    assert (tmp_path / "argv").read_text().split("\n")[:-1] == [
        "job", "submit", "--address", "http://h:8265", "--submission-id", "id-1", "--",
        "python", "/home/ray/samples/detached_actor.py", "actor1",
    ]  # fmt: skip


def test_a_stopped_submitter_stops_the_ray_job(tmp_path: Path) -> None:
    """SIGTERM to the submitter's bash (its pod is deleted) runs `ray job stop` for the job."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "ray").write_text(
        f'#!/bin/sh\nif [ "$2" = stop ]; then printf "%s\\n" "$@" > {tmp_path}/stop; exit 0; fi\n'
        f"touch {tmp_path}/submitted\nexec sleep 30\n"
    )
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    raw = {"metadata": {"name": "create-actor", "namespace": "ns1"}, "spec": SPEC}
    job = rayjob.submitter_job(
        raw, submission_id="id-1", dashboard="h:8265", cluster="c", image="img"
    )
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    # Its own process group, as a pod's processes are: the fake submission (a sleep) left
    # behind by the terminated bash is stopped with that group, by its id.
    proc = subprocess.Popen(
        container["command"] + container["args"], env=env, start_new_session=True
    )
    try:
        wait_until(lambda: (tmp_path / "submitted").exists(), 10, "the fake submission")
        proc.terminate()
        assert proc.wait(10) == 143
    finally:
        processes.stop_group(proc.pid, timeout=5)
    assert (tmp_path / "stop").read_text().split("\n")[:-1] == [
        "job", "stop", "--address", "http://h:8265", "--no-wait", "id-1",
    ]  # fmt: skip

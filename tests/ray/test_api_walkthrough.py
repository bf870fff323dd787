"""KubeRay's API-server autoscaling walkthrough, through real HTTP, on the local backend.

The requests are the walkthrough's (only the host changes, and the idle timeout is 5 s instead
of 30): create ``default-template`` (2 CPU, 4 Gi), create ``test-cluster`` (head num-cpus 0,
``small-wg`` 0..5 workers, the ``ray-example`` ConfigMap mounted at /home/ray/samples),
submit ``create-actor``: one worker; then SIGKILL the API server while a job runs and start it
again: templates, clusters and jobs are all there, the running job's outcome is recorded, and
the cluster is still managed; submit ``delete-actor``: back to 0 workers after the idle
timeout. Deleting a running job stops its driver; deleting the cluster stops every process.
"""

from __future__ import annotations

import time

import pytest

from rayscale import processes
from rayscale.apiserver import walkthrough
from rayscale.local import registry
from tests.ray.api_helpers import NS, ApiServer, api_server_fixture, group  # noqa: F401

pytestmark = pytest.mark.ray

IDLE_TIMEOUT_S = 5


def job_done(job: dict) -> bool:  # type: ignore[type-arg]
    return job.get("jobStatus") in ("SUCCEEDED", "FAILED", "STOPPED")


def test_autoscaling_walkthrough_through_http(api_server: ApiServer) -> None:
    api = api_server
    template = api.ok("POST", f"{NS}/compute_templates", walkthrough.TEMPLATE)
    assert (template["cpu"], template["memory"]) == (2, 4)

    created = api.ok("POST", f"{NS}/clusters", walkthrough.cluster(idle_timeout=IDLE_TIMEOUT_S))
    assert created["clusterState"] in ("starting", "ready"), created
    cluster = api.wait(
        f"{NS}/clusters/test-cluster",
        lambda c: c["clusterState"] == "ready" and bool(c["groups"]),
        "test-cluster ready",
        300,
    )
    assert cluster["serviceEndpoint"]["gcs"], cluster
    small = group(cluster)
    assert (small["min"], small["max"], small["running"]) == (0, 5, 0), cluster["groups"]

    # create-actor: a 1-CPU detached actor cannot run on the head (num-cpus 0): one worker.
    job = api.ok("POST", f"{NS}/jobs", walkthrough.CREATE_ACTOR)
    assert job["jobStatus"] in ("PENDING", "RUNNING", "SUCCEEDED"), job
    job = api.wait(f"{NS}/jobs/create-actor", job_done, "create-actor to finish", 180)
    logs = api.call("GET", f"{NS}/jobs/create-actor/logs")
    assert job["jobStatus"] == "SUCCEEDED", f"{job}\n{logs.text}"
    assert job["jobDeploymentStatus"] == "Complete" and job["startTime"] and job["endTime"]
    assert logs.status == 200
    cluster = api.wait(
        f"{NS}/clusters/test-cluster",
        lambda c: (group(c)["running"], group(c)["pending"]) == (1, 0),
        "small-wg running 1",
        240,
    )
    assert group(cluster)["desired"] == 1

    # A job that is running when the API server is SIGKILLed.
    slow = {**walkthrough.CREATE_ACTOR, "name": "slow-job",
            "entrypoint": "python -c 'import time; time.sleep(6); print(\"slept\")'"}  # fmt: skip
    api.ok("POST", f"{NS}/jobs", slow)
    api.wait(f"{NS}/jobs/slow-job", lambda j: j["jobStatus"] == "RUNNING", "slow-job running", 60)
    record = registry.read("test-cluster")
    assert record is not None
    api.kill()
    api.start()
    assert registry.supervisor_alive(record), "the cluster must outlive the API server"

    assert api.ok("GET", f"{NS}/compute_templates/default-template")["cpu"] == 2
    names = [c["name"] for c in api.ok("GET", "/apis/v1/clusters")["clusters"]]
    assert names == ["test-cluster"]
    cluster = api.ok("GET", f"{NS}/clusters/test-cluster")
    assert cluster["clusterState"] == "ready" and group(cluster)["running"] == 1, cluster
    jobs = {j["name"]: j for j in api.ok("GET", f"{NS}/jobs")["jobs"]}
    assert jobs["create-actor"]["jobStatus"] == "SUCCEEDED", jobs
    slow_job = api.wait(f"{NS}/jobs/slow-job", job_done, "slow-job to finish", 60)
    assert slow_job["jobStatus"] == "SUCCEEDED", slow_job
    assert "slept" in api.call("GET", f"{NS}/jobs/slow-job/logs").text

    # delete-actor, submitted to the restarted server: back to 0 after the idle timeout.
    api.ok("POST", f"{NS}/jobs", walkthrough.DELETE_ACTOR)
    job = api.wait(f"{NS}/jobs/delete-actor", job_done, "delete-actor to finish", 180)
    assert job["jobStatus"] == "SUCCEEDED", api.call("GET", f"{NS}/jobs/delete-actor/logs").text
    killed_at = time.monotonic()
    cluster = api.wait(
        f"{NS}/clusters/test-cluster",
        lambda c: (group(c)["running"], group(c)["pending"], group(c)["desired"]) == (0, 0, 0),
        "small-wg back to 0",
        IDLE_TIMEOUT_S + 180,
    )
    assert time.monotonic() - killed_at >= IDLE_TIMEOUT_S - 3, "removed before the idle timeout"
    assert isinstance(cluster["events"], list)
    if (registry.cluster_dir("test-cluster") / "events.jsonl").exists():
        actions = {e["action"] for e in cluster["events"]}
        assert {"launch", "delete"} <= actions, cluster["events"]
        assert all(e["reason"] for e in cluster["events"])

    # Deleting a running job stops its driver (started by this server run).
    sleeper = {**walkthrough.CREATE_ACTOR, "name": "sleeper",
               "entrypoint": "python -c 'import time; time.sleep(600)'"}  # fmt: skip
    api.ok("POST", f"{NS}/jobs", sleeper)
    api.wait(f"{NS}/jobs/sleeper", lambda j: j["jobStatus"] == "RUNNING", "sleeper running", 60)
    assert processes.find_leftovers(markers=["sleeper.exit"]), "the driver should be running"
    assert api.ok("DELETE", f"{NS}/jobs/sleeper") == {}
    assert not processes.find_leftovers(markers=["sleeper.exit"]), "the driver must be stopped"
    assert api.call("GET", f"{NS}/jobs/sleeper").status == 404

    # activeDeadlineSeconds: a driver running past it is stopped and the job FAILED.
    late = {**sleeper, "name": "late", "activeDeadlineSeconds": 2}
    api.ok("POST", f"{NS}/jobs", late)
    late_job = api.wait(f"{NS}/jobs/late", job_done, "the deadline to stop late", 60)
    assert late_job["jobStatus"] == "FAILED" and "activeDeadlineSeconds" in late_job["message"]
    assert not processes.find_leftovers(markers=["late.exit"]), "the driver must be stopped"

    # Deleting the cluster stops it; it is gone from the API and from the runtime.
    assert api.ok("DELETE", f"{NS}/clusters/test-cluster") == {}
    assert api.call("GET", f"{NS}/clusters/test-cluster").status == 404
    assert registry.names() == []
    assert api.call("DELETE", f"{NS}/clusters/test-cluster").status == 404

"""A RayJob with ``clusterSelector`` -> its submitter (a batch/v1 Job) and the RayJob's status.

Pure (no I/O, no clock, no randomness): the job id's random suffix and the time are arguments.
As KubeRay's K8sJobMode: the submitter Job is named after the RayJob, labelled
``ray.io/originated-from-crd: RayJob`` / ``ray.io/originated-from-cr-name: <name>``, owned by
the RayJob (so deleting the RayJob deletes it), runs the selected cluster's head image and, in
``/bin/bash -ce``, waits for the head's dashboard (``/api/gcs_healthz``) and runs
``ray job submit --address http://<cluster>-head-svc.<ns>.svc.cluster.local:8265
--submission-id <jobId> -- <entrypoint>``, with the cluster's Ray token mounted from its Secret.
A submitter stopped by SIGTERM (its RayJob was deleted) runs ``ray job stop`` first.

One difference from KubeRay: KubeRay submits with ``--no-wait`` then follows the logs and asks
the dashboard's job API for ``jobStatus``. Here ``ray job submit`` waits for the job, so its
exit code (1 when Ray reports the job FAILED) is the outcome: ``jobStatus`` is derived from the
submitter's end (Complete -> SUCCEEDED, Failed -> FAILED), not read from the dashboard.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from rayscale.builders.operator import with_token
from rayscale.builders.pods import HEAD_PORTS, Manifest

CLUSTER_SELECTOR_KEY = "ray.io/cluster"
ORIGIN_CRD_LABEL = "ray.io/originated-from-crd"
ORIGIN_NAME_LABEL = "ray.io/originated-from-cr-name"
CREATED_BY_LABEL = "app.kubernetes.io/created-by"
CREATED_BY = "rayscale-operator"
SUBMITTER_CONTAINER = "ray-job-submitter"
GCS_HEALTH_PATH = "api/gcs_healthz"
DEFAULT_IMAGE = "rayproject/ray:2.60.0"

# jobDeploymentStatus values (KubeRay's)
INITIALIZING, RUNNING, COMPLETE, FAILED = "Initializing", "Running", "Complete", "Failed"
TERMINAL = frozenset({COMPLETE, FAILED})


class RayJobSpecError(ValueError):
    """A RayJob this operator cannot run; ``field`` is the path, the message says the fix."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def selected_cluster(spec: Mapping[str, Any]) -> str:
    """The RayCluster named by ``clusterSelector``; RayJobSpecError if there is none."""
    if spec.get("rayClusterSpec"):
        raise RayJobSpecError(
            "spec.rayClusterSpec",
            "a RayJob that creates its own cluster is not supported by rayscale's operator; "
            f"create the RayCluster and select it with clusterSelector {{{CLUSTER_SELECTOR_KEY}: "
            "<name>}}",
        )
    selector = spec.get("clusterSelector") or {}
    name = selector.get(CLUSTER_SELECTOR_KEY, "")
    if not name:
        raise RayJobSpecError(
            f"spec.clusterSelector.{CLUSTER_SELECTOR_KEY}",
            "required: the name of the RayCluster to run the job on",
        )
    return str(name)


def job_id(name: str, spec: Mapping[str, Any], suffix: str) -> str:
    """``spec.jobId``, else ``<name>-<suffix>`` (KubeRay: the name and 5 random characters)."""
    return str(spec.get("jobId") or f"{name}-{suffix}")


def dashboard_url(cluster: str, namespace: str) -> str:
    """The head's dashboard as KubeRay writes ``status.dashboardURL`` (no scheme)."""
    return f"{cluster}-head-svc.{namespace}.svc.cluster.local:{HEAD_PORTS['dashboard']}"


def runtime_env_json(spec: Mapping[str, Any]) -> str:
    """``runtimeEnvYAML`` as the JSON ``ray job submit --runtime-env-json`` takes ("" if none)."""
    text = str(spec.get("runtimeEnvYAML") or "")
    if not text.strip():
        return ""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RayJobSpecError("spec.runtimeEnvYAML", f"not valid YAML: {exc}") from None
    if data is None:
        return ""
    if not isinstance(data, dict):
        raise RayJobSpecError("spec.runtimeEnvYAML", "must be a YAML mapping (pip:, env_vars:...)")
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _number(value: float) -> str:
    return f"{value:f}"


def submit_command(spec: Mapping[str, Any], submission_id: str, dashboard: str) -> str:
    """The submitter's shell script: wait for the dashboard, then ``ray job submit`` (waiting,
    so the exit code is the job's outcome)."""
    address = dashboard if dashboard.startswith("http://") else f"http://{dashboard}"
    health = f"{address}/{GCS_HEALTH_PATH}"
    probe = (
        'python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)" '
        + shlex.quote(health)
    )
    wait = (
        f"until {probe} >/dev/null 2>&1 ; do echo "
        + shlex.quote(f"Waiting for Ray Dashboard GCS to become healthy at {address} ...")
        + " ; sleep 2 ; done"
    )
    argv = ["ray", "job", "submit", "--address", address]
    runtime_env = runtime_env_json(spec)
    if runtime_env:
        argv += ["--runtime-env-json", runtime_env]
    metadata = spec.get("metadata") or {}
    if metadata:
        argv += ["--metadata-json", json.dumps(dict(metadata), sort_keys=True)]
    argv += ["--submission-id", submission_id]
    if float(spec.get("entrypointNumCpus") or 0) > 0:
        argv += ["--entrypoint-num-cpus", _number(float(spec["entrypointNumCpus"]))]
    if float(spec.get("entrypointNumGpus") or 0) > 0:
        argv += ["--entrypoint-num-gpus", _number(float(spec["entrypointNumGpus"]))]
    if spec.get("entrypointResources"):
        argv += ["--entrypoint-resources", str(spec["entrypointResources"])]
    entrypoint = str(spec.get("entrypoint") or "").strip()
    if not entrypoint:
        raise RayJobSpecError("spec.entrypoint", "required: the command to run on the cluster")
    # Deleting the RayJob deletes this pod: on SIGTERM, stop the Ray job too (KubeRay does it
    # from the operator through the dashboard). `wait` is interruptible by the trap, and under
    # `bash -e` its status (the submission's exit code) is the script's.
    stop = shlex.join(["ray", "job", "stop", "--address", address, "--no-wait", submission_id])
    trap = f"trap {shlex.quote(stop + ' ; exit 143')} TERM INT"
    # The entrypoint is a shell command line, as in KubeRay: appended unquoted after "--".
    return f"{wait} ; {trap} ; {shlex.join(argv)} -- {entrypoint} & wait $!"


def owner_reference(rayjob: Mapping[str, Any]) -> dict[str, Any]:
    meta = rayjob["metadata"]
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def submitter_labels(name: str) -> dict[str, str]:
    return {ORIGIN_NAME_LABEL: name, ORIGIN_CRD_LABEL: "RayJob", CREATED_BY_LABEL: CREATED_BY}


def submitter_job(
    rayjob: Mapping[str, Any],
    *,
    submission_id: str,
    dashboard: str,
    cluster: str,
    image: str = "",
    image_pull_policy: str = "",
) -> Manifest:
    """The batch/v1 Job that submits ``rayjob`` to ``cluster`` (whose head runs ``image``)."""
    meta, spec = rayjob["metadata"], rayjob.get("spec") or {}
    name = meta["name"]
    env = [
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "RAY_DASHBOARD_ADDRESS", "value": dashboard},
        {"name": "RAY_JOB_SUBMISSION_ID", "value": submission_id},
    ]
    container: dict[str, Any] = {
        "name": SUBMITTER_CONTAINER,
        "image": image or DEFAULT_IMAGE,
        "command": ["/bin/bash", "-ce", "--"],
        "args": [submit_command(spec, submission_id, dashboard)],
        "env": env,
        "resources": {
            "limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "500m", "memory": "200Mi"},
        },
    }
    if image_pull_policy:
        container["imagePullPolicy"] = image_pull_policy
    labels = submitter_labels(name)
    template: Manifest = {
        "metadata": {"labels": dict(labels)},
        "spec": {"restartPolicy": "Never", "containers": [container]},
    }
    with_token(template, f"{cluster}-ray-token")
    config = spec.get("submitterConfig") or {}
    job_spec: dict[str, Any] = {
        # `ray job submit` of a submission id that exists fails: a retry cannot re-run the
        # job, so no retries unless the RayJob asks for them (KubeRay: 2).
        "backoffLimit": int(config.get("backoffLimit", 0)),
        "template": template,
    }
    if int(spec.get("activeDeadlineSeconds") or 0) > 0:
        job_spec["activeDeadlineSeconds"] = int(spec["activeDeadlineSeconds"])
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": meta.get("namespace", "default"),
            "labels": labels,
            "ownerReferences": [owner_reference(rayjob)],
        },
        "spec": job_spec,
    }


# -- status -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterView:
    """What the RayJob needs to know of the selected RayCluster."""

    found: bool
    ready: bool = False
    image: str = ""
    image_pull_policy: str = ""


@dataclass(frozen=True)
class Step:
    """The RayJob's next status, and whether to create the submitter first."""

    status: dict[str, Any]
    create_submitter: bool = False


def submitter_outcome(job_status: Mapping[str, Any]) -> tuple[str, str]:
    """("succeeded" | "failed" | "running" | "pending", message) of a batch/v1 Job's status."""
    for condition in job_status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return "succeeded", "the submitter's `ray job submit` exited 0"
        if condition.get("type") == "Failed":
            why = condition.get("message") or condition.get("reason") or "failed"
            return "failed", f"the submitter failed: {why}"
    if int(job_status.get("active") or 0) > 0 or int(job_status.get("ready") or 0) > 0:
        return "running", "the submitter is running `ray job submit`"
    return "pending", "the submitter Job was created; its pod has not started yet"


def next_status(
    name: str,
    namespace: str,
    spec: Mapping[str, Any],
    old: Mapping[str, Any],
    *,
    cluster: ClusterView,
    submitter: Mapping[str, Any] | None,
    suffix: str,
    now: str,
    generation: int,
) -> Step:
    """One step of a RayJob: Initializing (cluster missing or not ready) -> Running (submitter
    created) -> Complete/Failed (the submitter's end). ``submitter`` is the batch Job's status
    (None: no submitter Job). A finished RayJob's status no longer changes."""
    if old.get("jobDeploymentStatus") in TERMINAL:
        return Step(dict(old))
    status: dict[str, Any] = {
        k: v for k, v in old.items() if k not in ("reason",) and v is not None
    }
    status["observedGeneration"] = generation
    try:
        selected = selected_cluster(spec)
        submission_id = str(old.get("jobId") or job_id(name, spec, suffix))
        dashboard = dashboard_url(selected, namespace)
        submit_command(spec, submission_id, dashboard)  # refuse a bad spec before any object
    except RayJobSpecError as err:
        status.update(
            jobDeploymentStatus=FAILED,
            jobStatus="FAILED",
            reason="ValidationFailed",
            message=str(err),
            endTime=now,
        )
        status.setdefault("startTime", now)
        return Step(status)
    status.setdefault("startTime", now)
    status.update(jobId=submission_id, rayClusterName=selected, dashboardURL=dashboard)
    if submitter is None:
        if not cluster.found:
            message = f"waiting for RayCluster {selected!r}: not found in namespace {namespace!r}"
        elif not cluster.ready:
            message = f"waiting for RayCluster {selected!r} to be ready"
        else:
            status.update(
                jobDeploymentStatus=RUNNING,
                jobStatus="PENDING",
                message=f"created the submitter Job {name!r}",
            )
            return Step(status, create_submitter=True)
        status.update(jobDeploymentStatus=INITIALIZING, jobStatus="PENDING", message=message)
        return Step(status)
    outcome, message = submitter_outcome(submitter)
    status["message"] = message
    if outcome == "succeeded":
        status.update(jobDeploymentStatus=COMPLETE, jobStatus="SUCCEEDED", endTime=now)
        status["succeeded"] = 1
    elif outcome == "failed":
        status.update(jobDeploymentStatus=FAILED, jobStatus="FAILED", endTime=now)
        status["failed"] = 1
    else:
        status["jobDeploymentStatus"] = RUNNING
        status["jobStatus"] = "RUNNING" if outcome == "running" else "PENDING"
    return Step(status)


def comparable(status: Mapping[str, Any]) -> dict[str, Any]:
    """A status without what changes by itself, to skip writes that change nothing."""
    return {k: v for k, v in status.items() if v is not None}


__all__ = [
    "CLUSTER_SELECTOR_KEY",
    "ClusterView",
    "RayJobSpecError",
    "Step",
    "dashboard_url",
    "job_id",
    "next_status",
    "selected_cluster",
    "submit_command",
    "submitter_job",
    "submitter_outcome",
]

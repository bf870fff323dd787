"""`rayscale apiserver --kubernetes` through real HTTP against a real kube-apiserver, with the
operator running: the walkthrough's requests become a labelled ConfigMap, a RayCluster CR and a
RayJob CR, and the operator turns the RayJob into KubeRay's submitter Job.

No kubelet runs in this tier: the test marks the head pod Running and Ready, and ends the
submitter Job, through their status subresources (what a kubelet and the Job controller do).
"""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import kopf
import pytest
import yaml
from lightkube import ApiError
from lightkube.codecs import from_dict
from lightkube.resources.batch_v1 import Job as BatchJob
from lightkube.resources.core_v1 import ConfigMap, Pod
from lightkube.types import PatchType

from rayscale import processes
from rayscale.apiserver import walkthrough
from rayscale.kube.resources import RayCluster, RayJob
from rayscale.testing.controller_manager import ControllerManager
from rayscale.testing.kube import KubeSession
from rayscale.waiting import wait_until
from tests.k8s.ray_fixtures import ns, operator, ray_crds

__all__ = ["ns", "operator", "ray_crds"]

pytestmark = pytest.mark.k8s

WAIT = 30.0
V1 = "/apis/v1"


def start_apiserver(tmp: Path, *args: str) -> tuple[processes.ManagedProcess, httpx.Client]:
    """`rayscale apiserver ARGS` as its own process on a free port, and a client for it."""
    port = processes.free_port()
    argv = [sys.executable, "-m", "rayscale.cli", "apiserver", "--port", str(port), *args]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    server = processes.spawn(  # SIGTERM if the test process dies without stopping it
        argv, log_path=tmp / f"apiserver-{port}.log", name="apiserver", env=env,
        die_with_parent=True,
    )  # fmt: skip
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0)

    def healthy() -> bool:
        if not server.is_running():
            raise AssertionError(f"the API server exited: {server.log_tail()}")
        try:
            return client.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    wait_until(healthy, WAIT, "the API server answers /healthz", detail=server.log_tail)
    return server, client


@pytest.fixture(scope="module")
def api(
    kube: KubeSession, ray_crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp("api")
    server, client = start_apiserver(tmp, "--kubernetes", "--kubeconfig", str(kube.kubeconfig))
    try:
        assert client.get("/healthz").json() == {"status": "ok", "backend": "kubernetes"}
        yield client
    finally:
        client.close()
        server.stop(timeout=10)


def in_ns(body: dict[str, Any], ns: str, **changes: Any) -> dict[str, Any]:
    """A walkthrough body in the test's namespace (the walkthrough uses `default`)."""
    out = copy.deepcopy(body)
    out["namespace"] = ns
    out.update(changes)
    return out


def ok(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    assert set(body) == {"code", "message", "details"}, body
    return body


def ray_example(kube: KubeSession, ns: str) -> None:
    """The walkthrough's `kubectl apply` of ConfigMap ray-example."""
    doc = yaml.safe_load(walkthrough.config_map_yaml())
    doc["metadata"]["namespace"] = ns
    kube.client.create(from_dict(doc), namespace=ns)


def seed(api: httpx.Client, kube: KubeSession, ns: str, cluster: str = "test-cluster") -> None:
    ray_example(kube, ns)
    ok(api.post(f"{V1}/namespaces/{ns}/compute_templates", json=in_ns(walkthrough.TEMPLATE, ns)))
    ok(api.post(f"{V1}/namespaces/{ns}/clusters", json=in_ns(walkthrough.cluster(cluster), ns)))


def head_ready(kube: KubeSession, ns: str, cluster: str) -> None:
    """Do what a kubelet would: the head pod runs and is Ready; the operator then says ready."""
    labels = {"ray.io/cluster": cluster, "ray.io/node-type": "head"}
    heads = wait_until(
        lambda: list(kube.client.list(Pod, namespace=ns, labels=labels)), WAIT, "the head pod"
    )
    status = {
        "phase": "Running",
        "podIP": "10.1.0.9",
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    kube.client.patch(
        Pod.Status, heads[0].metadata.name, {"status": status}, namespace=ns,
        patch_type=PatchType.MERGE,
    )  # fmt: skip
    wait_until(
        lambda: (
            (kube.client.get(RayCluster, cluster, namespace=ns).status or {}).get("state")
            == "ready"
        ),
        WAIT,
        f"RayCluster {cluster} ready",
    )


def end_submitter(kube: KubeSession, ns: str, name: str, succeeded: bool) -> None:
    """Do what the Job controller would when the submitter pod exits 0 (or not)."""
    now = "2026-01-01T00:00:00Z"
    if succeeded:
        conditions = [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
            {"type": "Complete", "status": "True", "lastTransitionTime": now},
        ]
        status = {"startTime": now, "completionTime": now, "succeeded": 1}
    else:
        message = "Job has reached the specified backoff limit"
        conditions = [
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
             "message": message, "lastTransitionTime": now},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
             "message": message, "lastTransitionTime": now},
        ]  # fmt: skip
        status = {"startTime": now, "failed": 1}
    status.update(conditions=conditions, uncountedTerminatedPods={})
    kube.client.patch(
        BatchJob.Status, name, {"status": status}, namespace=ns, patch_type=PatchType.MERGE
    )


def get_job(api: httpx.Client, ns: str, name: str) -> dict[str, Any]:
    return ok(api.get(f"{V1}/namespaces/{ns}/jobs/{name}"))


def test_walkthrough_makes_kuberays_objects(
    api: httpx.Client, kube: KubeSession, ns: str, operator: kopf.Memo
) -> None:
    seed(api, kube, ns)
    template = kube.client.get(ConfigMap, "default-template", namespace=ns)
    assert template.metadata.labels == {
        "ray.io/config-type": "compute-template",
        "ray.io/compute-template": "default-template",
    }
    assert template.data == {
        "name": "default-template", "namespace": ns, "cpu": "2", "memory": "4", "gpu": "0",
        "gpu_accelerator": "",
    }  # fmt: skip
    got = ok(api.get(f"{V1}/namespaces/{ns}/compute_templates/default-template"))
    assert got == {**walkthrough.TEMPLATE, "namespace": ns, "memoryUnit": "Gi", "gpu": 0,
                   "gpuAccelerator": "", "extendedResources": {}, "tolerations": []}  # fmt: skip
    listed = ok(api.get(f"{V1}/compute_templates"))["computeTemplates"]
    assert any(t["name"] == "default-template" and t["namespace"] == ns for t in listed)

    cr = kube.client.get(RayCluster, "test-cluster", namespace=ns).to_dict()
    labels = cr["metadata"]["labels"]
    assert labels["ray.io/user"] == "boris"
    assert labels["app.kubernetes.io/managed-by"] == "kuberay-apiserver"
    spec = cr["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    options = spec["autoscalerOptions"]
    assert (options["upscalingMode"], options["idleTimeoutSeconds"]) == ("Default", 30)
    assert options["resources"]["requests"] == options["resources"]["limits"] == {
        "cpu": "500m", "memory": "512Mi"
    }  # fmt: skip
    head = spec["headGroupSpec"]
    ray_head = head["template"]["spec"]["containers"][0]
    assert ray_head["resources"]["requests"] == ray_head["resources"]["limits"]
    assert ray_head["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    assert head["rayStartParams"]["num-cpus"] == "0"
    volume = next(v for v in head["template"]["spec"]["volumes"] if v["name"] == "code-sample")
    assert volume["configMap"]["name"] == "ray-example"
    assert {i["key"] for i in volume["configMap"]["items"]} == {
        "detached_actor.py", "terminate_detached_actor.py"
    }  # fmt: skip
    mount = ray_head["volumeMounts"][0]
    assert (mount["name"], mount["mountPath"]) == ("code-sample", "/home/ray/samples")
    worker = spec["workerGroupSpecs"][0]
    assert (worker["groupName"], worker["minReplicas"], worker["maxReplicas"]) == ("small-wg", 0, 5)
    assert worker["rayStartParams"] == {"node-ip-address": "$MY_POD_IP"}

    cluster = ok(api.get(f"{V1}/namespaces/{ns}/clusters/test-cluster"))
    assert (
        cluster["clusterSpec"]
        == ok(api.get(f"{V1}/namespaces/{ns}/clusters"))["clusters"][0]["clusterSpec"]
    )
    sent = in_ns(walkthrough.CLUSTER, ns)
    for key in ("name", "namespace", "user"):
        assert cluster[key] == sent[key]
    assert cluster["clusterSpec"]["workerGroupSpec"][0]["rayStartParams"] == {
        "node-ip-address": "$MY_POD_IP"
    }
    assert cluster["groups"] == [
        {"name": "small-wg", "min": 0, "max": 5, "desired": 0, "running": 0, "pending": 0}
    ]
    assert cluster["createdAt"].endswith("Z")

    head_ready(kube, ns, "test-cluster")
    cluster = ok(api.get(f"{V1}/namespaces/{ns}/clusters/test-cluster"))
    assert cluster["clusterState"] == "ready"
    assert cluster["serviceEndpoint"]["dashboard"] == "8265"

    # The create-actor job: a RayJob, then KubeRay's submitter Job.
    job = ok(api.post(f"{V1}/namespaces/{ns}/jobs", json=in_ns(walkthrough.CREATE_ACTOR, ns)))
    assert job["entrypoint"] == "python /home/ray/samples/detached_actor.py actor1"
    rayjob = kube.client.get(RayJob, "create-actor", namespace=ns).to_dict()
    assert rayjob["spec"]["clusterSelector"] == {"ray.io/cluster": "test-cluster"}
    assert rayjob["spec"]["entrypoint"] == walkthrough.CREATE_ACTOR["entrypoint"]
    assert rayjob["metadata"]["labels"]["ray.io/user"] == "boris"
    submitter = wait_until(
        lambda: _get_or_none(kube, BatchJob, "create-actor", ns), WAIT, "the submitter Job"
    ).to_dict()
    job = wait_until(
        lambda: (
            (j := get_job(api, ns, "create-actor")).get("jobDeploymentStatus") == "Running" and j
        ),
        WAIT,
        "the job Running",
    )
    assert job["jobStatus"] == "PENDING" and job["rayClusterName"] == "test-cluster"
    job_id = job["jobId"]
    assert job_id.startswith("create-actor-") and len(job_id) == len("create-actor-") + 5
    owner = submitter["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("RayJob", "create-actor", True)
    assert owner["uid"] == rayjob["metadata"]["uid"]
    assert submitter["metadata"]["labels"]["ray.io/originated-from-crd"] == "RayJob"
    pod = submitter["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "rayproject/ray:2.9.0-py310"  # the head's image
    assert container["command"] == ["/bin/bash", "-ce", "--"]
    address = f"http://test-cluster-head-svc.{ns}.svc.cluster.local:8265"
    assert container["args"][0].endswith(
        f"ray job submit --address {address} --submission-id {job_id} -- "
        "python /home/ray/samples/detached_actor.py actor1 & wait $!"
    )
    assert f"{address}/api/gcs_healthz" in container["args"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["RAY_AUTH_MODE"] == "token"
    assert env["RAY_AUTH_TOKEN_PATH"] == "/etc/ray/auth/auth_token"
    assert env["RAY_JOB_SUBMISSION_ID"] == job_id
    token = next(v for v in pod["volumes"] if v["name"] == "ray-auth-token")
    assert token["secret"]["secretName"] == "test-cluster-ray-token"
    assert pod["restartPolicy"] == "Never"

    end_submitter(kube, ns, "create-actor", succeeded=True)
    job = wait_until(
        lambda: (
            (j := get_job(api, ns, "create-actor")).get("jobDeploymentStatus") == "Complete" and j
        ),
        WAIT,
        "the job Complete",
    )
    assert job["jobStatus"] == "SUCCEEDED" and job["endTime"].endswith("Z")
    assert job["startTime"] <= job["endTime"]

    # delete-actor: its submitter fails -> FAILED, with the Job controller's message.
    ok(api.post(f"{V1}/namespaces/{ns}/jobs", json=in_ns(walkthrough.DELETE_ACTOR, ns)))
    wait_until(lambda: _get_or_none(kube, BatchJob, "delete-actor", ns), WAIT, "2nd submitter")
    end_submitter(kube, ns, "delete-actor", succeeded=False)
    job = wait_until(
        lambda: (j := get_job(api, ns, "delete-actor")).get("jobStatus") == "FAILED" and j,
        WAIT,
        "the job FAILED",
    )
    assert job["jobDeploymentStatus"] == "Failed"
    assert "backoff limit" in job["message"]
    names = [j["name"] for j in ok(api.get(f"{V1}/namespaces/{ns}/jobs"))["jobs"]]
    assert names == ["create-actor", "delete-actor"]
    # No Job controller runs here, so the submitter has no pod: no logs yet, and no error.
    logs = api.get(f"{V1}/namespaces/{ns}/jobs/create-actor/logs")
    assert (logs.status_code, logs.text) == (200, "")


def _get_or_none(kube: KubeSession, kind: Any, name: str, ns: str) -> Any:
    try:
        return kube.client.get(kind, name, namespace=ns)
    except ApiError as err:
        if err.status.code == 404:
            return None
        raise


def test_list_pages_and_delete(api: httpx.Client, kube: KubeSession, ns: str) -> None:
    seed(api, kube, ns)
    ok(api.post(f"{V1}/namespaces/{ns}/clusters", json=in_ns(walkthrough.cluster("second"), ns)))
    first = ok(api.get(f"{V1}/namespaces/{ns}/clusters", params={"limit": 1}))
    assert [c["name"] for c in first["clusters"]] == ["second"]  # the apiserver's key order
    assert first["continue"]
    second = ok(
        api.get(
            f"{V1}/namespaces/{ns}/clusters", params={"limit": 1, "continue": first["continue"]}
        )
    )
    assert [c["name"] for c in second["clusters"]] == ["test-cluster"]
    assert second.get("continue", "") == ""
    everything = ok(api.get(f"{V1}/namespaces/{ns}/clusters"))["clusters"]
    assert [c["name"] for c in everything] == ["second", "test-cluster"]

    ok(api.delete(f"{V1}/namespaces/{ns}/clusters/second"))
    assert _get_or_none(kube, RayCluster, "second", ns) is None
    error(api.get(f"{V1}/namespaces/{ns}/clusters/second"), 404)
    error(api.delete(f"{V1}/namespaces/{ns}/clusters/second"), 404)
    ok(api.delete(f"{V1}/namespaces/{ns}/compute_templates/default-template"))
    assert _get_or_none(kube, ConfigMap, "default-template", ns) is None
    error(api.get(f"{V1}/namespaces/{ns}/compute_templates/default-template"), 404)


def test_client_mistakes_are_4xx_never_5xx(api: httpx.Client, kube: KubeSession, ns: str) -> None:
    base = f"{V1}/namespaces/{ns}"
    template = in_ns(walkthrough.TEMPLATE, ns)
    body = error(api.post(f"{base}/clusters", json=in_ns(walkthrough.CLUSTER, ns)), 404)
    assert body["details"][0]["field"] == "clusterSpec.headGroupSpec.computeTemplate"
    assert "default-template" in body["message"]
    ok(api.post(f"{base}/compute_templates", json=template))
    assert error(api.post(f"{base}/compute_templates", json=template), 409)["code"] == 6
    body = error(api.post(f"{base}/compute_templates", json={**template, "cpu": 0}), 400)
    assert body["details"][0]["field"] == "cpu"
    body = error(api.post(f"{base}/clusters", json=in_ns(walkthrough.CLUSTER, ns)), 404)
    assert body["details"][0]["field"] == "clusterSpec.headGroupSpec.volumes[0].source"
    assert "ray-example" in body["message"]
    ray_example(kube, ns)
    # A ConfigMap that is not a compute template is not one through the API either.
    error(api.get(f"{base}/compute_templates/ray-example"), 404)
    error(api.delete(f"{base}/compute_templates/ray-example"), 404)
    assert _get_or_none(kube, ConfigMap, "ray-example", ns) is not None
    body = error(
        api.post(f"{base}/clusters", json=in_ns(walkthrough.CLUSTER, ns, user="not a label!")), 400
    )
    assert body["details"][0]["field"] == "user"
    ok(api.post(f"{base}/clusters", json=in_ns(walkthrough.CLUSTER, ns)))
    error(api.post(f"{base}/clusters", json=in_ns(walkthrough.CLUSTER, ns)), 409)
    resp = api.post(
        f"{base}/clusters", content=b'{"name": "x",', headers={"content-type": "application/json"}
    )
    assert "malformed JSON" in error(resp, 400)["message"]
    unknown = in_ns(walkthrough.CREATE_ACTOR, ns, clusterSelector={"ray.io/cluster": "nope"})
    body = error(api.post(f"{base}/jobs", json=unknown), 404)
    assert body["details"][0]["field"] == "clusterSelector.ray.io/cluster"
    error(
        api.post(f"{base}/jobs", json=in_ns(walkthrough.CREATE_ACTOR, ns, clusterSelector={})), 400
    )
    bad_env = in_ns(walkthrough.CREATE_ACTOR, ns, runtimeEnv="env_vars: [unclosed")
    assert error(api.post(f"{base}/jobs", json=bad_env), 400)["details"][0]["field"] == "runtimeEnv"
    ok(api.post(f"{base}/jobs", json=in_ns(walkthrough.CREATE_ACTOR, ns)))
    error(api.post(f"{base}/jobs", json=in_ns(walkthrough.CREATE_ACTOR, ns)), 409)
    for kind in ("compute_templates", "clusters", "jobs"):
        error(api.get(f"{base}/{kind}/missing"), 404)
        error(api.delete(f"{base}/{kind}/missing"), 404)
    body = error(api.get(f"{base}/clusters", params={"limit": 1, "continue": "garbage"}), 400)
    assert body["details"][0]["field"] == "continue"
    body = error(api.post(f"{base}/compute_templates", json=in_ns(template, "other")), 400)
    assert body["details"][0]["field"] == "namespace"
    body = error(api.post(f"{V1}/namespaces/no-such-ns/compute_templates", json=template | {
        "namespace": "no-such-ns"}), 404)  # fmt: skip
    assert "no-such-ns" in body["message"]


def test_deleting_a_rayjob_deletes_its_submitter(
    api: httpx.Client,
    kube: KubeSession,
    ns: str,
    operator: kopf.Memo,
    controller_manager: ControllerManager,
) -> None:
    seed(api, kube, ns)
    head_ready(kube, ns, "test-cluster")
    ok(api.post(f"{V1}/namespaces/{ns}/jobs", json=in_ns(walkthrough.CREATE_ACTOR, ns)))
    wait_until(lambda: _get_or_none(kube, BatchJob, "create-actor", ns), WAIT, "the submitter")
    ok(api.delete(f"{V1}/namespaces/{ns}/jobs/create-actor"))
    error(api.get(f"{V1}/namespaces/{ns}/jobs/create-actor"), 404)
    wait_until(
        lambda: _get_or_none(kube, BatchJob, "create-actor", ns) is None,
        WAIT,
        "the submitter Job garbage-collected",
    )


def test_an_unreachable_kube_apiserver_is_a_503(tmp_path: Path) -> None:
    port = processes.free_port()  # nothing listens there
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "gone", "user": {"token": "x"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}],
    }
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    server, client = start_apiserver(tmp_path, "--kubernetes", "--kubeconfig", str(kubeconfig))
    try:
        body = error(client.get(f"{V1}/compute_templates"), 503)
        assert (
            f"cannot reach the Kubernetes API server at http://127.0.0.1:{port}" in body["message"]
        )
        error(
            client.post(f"{V1}/namespaces/default/compute_templates", json=walkthrough.TEMPLATE),
            503,
        )
    finally:
        client.close()
        server.stop(timeout=10)

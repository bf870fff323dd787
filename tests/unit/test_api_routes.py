"""The API's routes and errors on the records-only local backend (no Ray): the walkthrough's
error cases, pagination, auth, metrics, and records surviving a restart."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rayscale.apiserver import walkthrough
from rayscale.apiserver.app import create_app
from rayscale.apiserver.backends.local import LocalBackend, apply_file

pytestmark = pytest.mark.unit

NS = "/apis/v1/namespaces/default"


def backend(home: Path) -> LocalBackend:
    b = LocalBackend(home, records_only=True)
    cm = home / "cm.yaml"
    cm.write_text(walkthrough.config_map_yaml())
    apply_file(b, cm)
    return b


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(backend(tmp_path))) as c:
        yield c


def seeded(client: TestClient) -> TestClient:
    assert client.post(f"{NS}/compute_templates", json=walkthrough.TEMPLATE).status_code == 200
    assert client.post(f"{NS}/clusters", json=walkthrough.CLUSTER).status_code == 200
    return client


def error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    assert set(body) == {"code", "message", "details"}, body
    return body


def test_walkthrough_requests_are_accepted_and_read_back(client: TestClient) -> None:
    seeded(client)
    cluster = client.get(f"{NS}/clusters/test-cluster").json()
    assert cluster["clusterState"] == "records-only"
    assert cluster["clusterSpec"]["workerGroupSpec"][0]["rayStartParams"] == {
        "node-ip-address": "$MY_POD_IP"
    }
    assert cluster["groups"] == [
        {"name": "small-wg", "min": 0, "max": 5, "desired": 0, "running": 0, "pending": 0}
    ]
    assert cluster["createdAt"].endswith("Z") and cluster["events"] == []
    job = client.post(f"{NS}/jobs", json=walkthrough.CREATE_ACTOR).json()
    assert (job["jobStatus"], job["jobDeploymentStatus"]) == ("PENDING", "Initializing")
    assert job["rayClusterName"] == "test-cluster"
    assert [t["name"] for t in client.get("/apis/v1/compute_templates").json()["computeTemplates"]]
    assert [j["name"] for j in client.get("/apis/v1/jobs").json()["jobs"]] == ["create-actor"]


def test_duplicate_template_is_409(client: TestClient) -> None:
    seeded(client)
    body = error(client.post(f"{NS}/compute_templates", json=walkthrough.TEMPLATE), 409)
    assert body["code"] == 6 and "default-template" in body["message"]
    error(client.post(f"{NS}/clusters", json=walkthrough.CLUSTER), 409)
    client.post(f"{NS}/jobs", json=walkthrough.CREATE_ACTOR)
    error(client.post(f"{NS}/jobs", json=walkthrough.CREATE_ACTOR), 409)


def test_cpu_zero_is_400_naming_the_field(client: TestClient) -> None:
    body = error(
        client.post(f"{NS}/compute_templates", json={**walkthrough.TEMPLATE, "cpu": 0}), 400
    )
    assert body["details"][0]["field"] == "cpu" and body["code"] == 3


def test_unknown_template_is_404_naming_it(client: TestClient) -> None:
    body = error(client.post(f"{NS}/clusters", json=walkthrough.CLUSTER), 404)
    assert "default-template" in body["message"]
    assert body["details"][0]["field"] == "clusterSpec.headGroupSpec.computeTemplate"
    error(client.get(f"{NS}/compute_templates/nope"), 404)


def test_missing_configmap_is_404_with_the_fix(tmp_path: Path) -> None:
    with TestClient(create_app(LocalBackend(tmp_path, records_only=True))) as c:
        c.post(f"{NS}/compute_templates", json=walkthrough.TEMPLATE)
        body = error(c.post(f"{NS}/clusters", json=walkthrough.CLUSTER), 404)
    assert "ray-example" in body["message"] and "rayscale apply" in body["message"]


@pytest.mark.parametrize("raw", [b'{"name": ', b"not json", b"[1, 2", b""])
def test_malformed_json_is_400(client: TestClient, raw: bytes) -> None:
    resp = client.post(
        f"{NS}/compute_templates", content=raw, headers={"Content-Type": "application/json"}
    )
    error(resp, 400)


def test_unknown_cluster_in_cluster_selector_is_404(client: TestClient) -> None:
    seeded(client)
    job = {**walkthrough.CREATE_ACTOR, "clusterSelector": {"ray.io/cluster": "nope"}}
    body = error(client.post(f"{NS}/jobs", json=job), 404)
    assert body["details"][0]["field"] == "clusterSelector.ray.io/cluster"


def test_deleting_unknown_objects_is_404(client: TestClient) -> None:
    for kind in ("compute_templates", "clusters", "jobs"):
        error(client.delete(f"{NS}/{kind}/nope"), 404)
        error(client.get(f"{NS}/{kind}/nope"), 404)


def test_delete_then_gone(client: TestClient) -> None:
    seeded(client)
    client.post(f"{NS}/jobs", json=walkthrough.CREATE_ACTOR)
    for path in (
        "jobs/create-actor",
        "clusters/test-cluster",
        "compute_templates/default-template",
    ):
        assert client.delete(f"{NS}/{path}").json() == {}
        error(client.get(f"{NS}/{path}"), 404)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda b: b["clusterSpec"]["workerGroupSpec"][0].update(minReplica=1),
         "clusterSpec.workerGroupSpec[0].minReplica"),
        (lambda b: b["clusterSpec"]["autoscalerOptions"].update(upscalingMode="Fast"),
         "clusterSpec.autoscalerOptions.upscalingMode"),
        (lambda b: b["clusterSpec"].pop("headGroupSpec"), "clusterSpec.headGroupSpec"),
        (lambda b: b.update(namespace="other"), "namespace"),
    ],
)  # fmt: skip
def test_bad_cluster_bodies_are_400_naming_the_field(
    client: TestClient, edit: Any, field: str
) -> None:
    seeded(client)
    body = copy.deepcopy(walkthrough.CLUSTER)
    body["name"] = "other-cluster"
    edit(body)
    reply = error(client.post(f"{NS}/clusters", json=body), 400)
    assert reply["details"][0]["field"] == field, reply


def test_job_options_the_local_backend_cannot_honour_are_400(client: TestClient) -> None:
    seeded(client)
    for extra, field in (
        ({"entrypointNumCpus": 1}, "entrypointNumCpus"),
        ({"runtimeEnv": "pip: [requests]"}, "runtimeEnv.pip"),
        ({"clusterSelector": {}}, "clusterSelector"),
        ({"entrypoint": "python 'unclosed"}, "entrypoint"),
    ):
        reply = error(client.post(f"{NS}/jobs", json={**walkthrough.CREATE_ACTOR, **extra}), 400)
        assert reply["details"][0]["field"] == field, reply
    ok = {**walkthrough.CREATE_ACTOR, "runtimeEnv": "env_vars:\n  A: b\n"}
    assert client.post(f"{NS}/jobs", json=ok).status_code == 200


def test_list_clusters_pages_with_limit_and_continue(client: TestClient) -> None:
    client.post(f"{NS}/compute_templates", json=walkthrough.TEMPLATE)
    names = [f"c-{i:02d}" for i in range(7)]
    for name in names:
        assert client.post(f"{NS}/clusters", json=walkthrough.cluster(name)).status_code == 200
    seen, token, pages = [], "", 0
    while True:
        params = {"limit": 3, **({"continue": token} if token else {})}
        page = client.get(f"{NS}/clusters", params=params).json()
        seen += [c["name"] for c in page["clusters"]]
        token, pages = page["continue"], pages + 1
        if not token:
            break
    assert (seen, pages) == (names, 3)
    assert len(client.get("/apis/v1/clusters").json()["clusters"]) == 7
    error(client.get(f"{NS}/clusters", params={"continue": "garbage"}), 400)
    error(client.get(f"{NS}/clusters", params={"limit": -1}), 400)


def test_bearer_token(tmp_path: Path) -> None:
    with TestClient(create_app(backend(tmp_path), auth_token="s3cret")) as c:
        assert c.get("/healthz").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong-token-xyz"}):
            resp = c.get(f"{NS}/compute_templates", headers=headers)
            assert resp.status_code == 401
            assert "wrong-token-xyz" not in resp.text and "s3cret" not in resp.text
        ok = c.get(f"{NS}/compute_templates", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


def test_metrics_count_requests_by_route_and_status(client: TestClient) -> None:
    seeded(client)
    client.get(f"{NS}/clusters/test-cluster")
    client.get(f"{NS}/clusters/nope")
    text = client.get("/metrics").text
    route = "/apis/v1/namespaces/{namespace}/clusters/{name}"
    assert (
        f'rayscale_apiserver_requests_total{{method="GET",route="{route}",status="200"}} 1.0'
        in text
    )
    assert f'route="{route}",status="404"}} 1.0' in text
    assert "rayscale_apiserver_request_seconds_bucket" in text


def test_records_survive_a_restart(tmp_path: Path) -> None:
    with TestClient(create_app(backend(tmp_path))) as c:
        seeded(c)
        c.post(f"{NS}/jobs", json=walkthrough.CREATE_ACTOR)
    with TestClient(create_app(LocalBackend(tmp_path, records_only=True))) as c:
        assert c.get(f"{NS}/compute_templates/default-template").json()["cpu"] == 2
        assert c.get(f"{NS}/clusters/test-cluster").json()["user"] == "boris"
        assert c.get(f"{NS}/jobs/create-actor").json()["jobStatus"] == "PENDING"


def test_openapi_document_is_served(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert "/apis/v1/namespaces/{namespace}/clusters" in doc["paths"]
    assert "ComputeTemplate" in doc["components"]["schemas"]


def test_apply_stores_configmaps_and_refuses_bad_files(tmp_path: Path) -> None:
    b = LocalBackend(tmp_path, records_only=True)
    good = tmp_path / "cm.yaml"
    good.write_text(walkthrough.config_map_yaml())
    assert apply_file(b, good, "team-a") == ["configmap/ray-example stored (namespace team-a)"]
    row = b.store.get("configmaps", "team-a", "ray-example")
    assert row is not None and "detached_actor.py" in row.body
    for text, problem in (
        ("kind: [", "not valid YAML"),
        ("kind: ConfigMap\ndata: {a: b}\n", "no metadata.name"),
        ("- 1\n- 2\n", "must be a mapping"),
    ):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ValueError, match=problem):
            apply_file(b, bad)
    b.close()


def test_openapi_documents_400_not_422(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    post = doc["paths"]["/apis/v1/namespaces/{namespace}/clusters"]["post"]["responses"]
    assert "400" in post and "404" in post and "409" in post and "422" not in post

"""``rayscale bench apiserver``: request latencies and rates of the API server (records only).

It starts ``rayscale apiserver --records-only`` as a separate process on a free port with a
fresh ``RAYSCALE_HOME`` (SQLite there), creates the walkthrough's compute template and N
copies of its cluster (records only: no Ray starts), then, over one keep-alive connection,
one request at a time:
- GET one cluster (p50/p99), list all clusters (p50/p99), list a page of 50 (p50/p99);
- create + delete compute templates (requests/s).
The client runs in this process and the server in its own, so on a 2-core machine both share
the cores with whatever else runs: the figures include the client's cost.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rayscale import processes
from rayscale.apiserver import walkthrough
from rayscale.apiserver.backends.local import LocalBackend, apply_file

NS = "/apis/v1/namespaces/default"


class Client:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        self.conn.request(method, path, body=data, headers=headers)
        resp = self.conn.getresponse()
        return resp.status, resp.read()


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50_ms": round(q[49] * 1000, 3), "p99_ms": round(q[98] * 1000, 3), "n": len(samples)}


def _time(client: Client, method: str, path: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        status, _ = client.call(method, path)
        out.append(time.perf_counter() - t0)
        if status != 200:
            raise RuntimeError(f"{method} {path} answered {status}")
    return out


def _wait_healthy(client_port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API server exited: {processes.read_tail(log)}")
        try:
            if Client(client_port).call("GET", "/healthz")[0] == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the API server did not answer /healthz within 60 s")


def run(clusters: int, requests: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="rs-bench-api-"))
    port = processes.free_port()
    env = {**os.environ, "RAYSCALE_HOME": str(home)}
    argv = [
        sys.executable,
        "-m",
        "rayscale.cli",
        "apiserver",
        "--records-only",
        "--port",
        str(port),
    ]
    cm_file = home / "ray-example.yaml"
    cm_file.write_text(walkthrough.config_map_yaml())
    store = LocalBackend(home, records_only=True)
    apply_file(store, cm_file)
    store.close()
    server = processes.spawn(argv, log_path=home / "apiserver.log", name="apiserver", env=env)
    try:
        _wait_healthy(port, server.popen, server.log_path)
        client = Client(port)
        client.call("POST", f"{NS}/compute_templates", walkthrough.TEMPLATE)
        client.call("PUT", "/none")  # warm the connection
        t0 = time.perf_counter()
        for i in range(clusters):
            status, body = client.call(
                "POST", f"{NS}/clusters", walkthrough.cluster(f"test-cluster-{i:04d}")
            )
            if status != 200:
                raise RuntimeError(f"create cluster answered {status}: {body[:300]!r}")
        create_s = time.perf_counter() - t0
        get = _time(client, "GET", f"{NS}/clusters/test-cluster-{clusters // 2:04d}", requests)
        list_all = _time(client, "GET", f"{NS}/clusters", max(20, requests // 20))
        page = _time(client, "GET", f"{NS}/clusters?limit=50", max(20, requests // 5))
        n = max(10, requests // 4)
        t0 = time.perf_counter()
        for i in range(n):
            template = {**walkthrough.TEMPLATE, "name": f"bench-{i}"}
            s1, _ = client.call("POST", f"{NS}/compute_templates", template)
            s2, _ = client.call("DELETE", f"{NS}/compute_templates/bench-{i}")
            if (s1, s2) != (200, 200):
                raise RuntimeError(f"template create/delete answered {s1}/{s2}")
        churn_s = time.perf_counter() - t0
        rss = processes.group_rss(server.pgid)
    finally:
        server.stop(timeout=10, term_group=True)
        import shutil

        shutil.rmtree(home, ignore_errors=True)
    return {
        "clusters": clusters,
        "create_cluster_per_s": round(clusters / create_s, 1),
        "get_cluster": _percentiles(get),
        "list_clusters_all": _percentiles(list_all),
        "list_clusters_limit50": _percentiles(page),
        "template_create_delete_req_per_s": round(2 * n / churn_s, 1),
        "server_rss_mb": round(rss / 2**20, 1),
    }


def main(clusters: int, requests: int, json_output: bool) -> int:
    try:
        result = run(clusters, requests)
    except (RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if json_output:
        print(json.dumps(result))
        return 0
    print(f"API server, records only, {clusters} clusters (one client, keep-alive, sequential):")
    for key in ("get_cluster", "list_clusters_all", "list_clusters_limit50"):
        r = result[key]
        print(f"  {key:<24} p50 {r['p50_ms']:8.2f} ms   p99 {r['p99_ms']:8.2f} ms   (n={r['n']})")
    print(f"  create cluster            {result['create_cluster_per_s']:8.1f} req/s")
    print(f"  template create+delete    {result['template_create_delete_req_per_s']:8.1f} req/s")
    print(f"  server RSS                {result['server_rss_mb']:8.1f} MB")
    return 0

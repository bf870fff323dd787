"""``rayscale up`` refuses bad input before starting anything, and never runs a cluster twice.

Each bad file (broken YAML, a ConfigMap without a RayCluster, minReplicas > maxReplicas, a
volume of a ConfigMap the file does not define) ends with exit code 2 and an error naming the
problem (the field, where there is one), without a traceback; no cluster is recorded, no run dir
is created and no process runs. ``up`` of a cluster that is already running exits 2 as well,
and leaves the running one untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from rayscale import processes
from tests.ray.runtime_helpers import (
    Cli,
    RuntimeFactory,
    describe,
    node_processes,
    run_dir_prefix,
    runtime_fixture,  # noqa: F401
    spec_docs,
    unique_name,
)

pytestmark = pytest.mark.ray

Doc = dict[str, Any]


def _min_over_max(docs: list[Doc]) -> None:
    group = docs[0]["spec"]["workerGroupSpecs"][0]
    group["minReplicas"], group["maxReplicas"] = 5, 2


def _drop_config_map(docs: list[Doc]) -> None:
    del docs[1:]


def _yaml(edit: Callable[[list[Doc]], None]) -> Callable[[str], str]:
    def text(name: str) -> str:
        docs = spec_docs("autoscaler")
        docs[0]["metadata"]["name"] = name
        edit(docs)
        return yaml.safe_dump_all(docs, sort_keys=False)

    return text


CASES: dict[str, tuple[Callable[[str], str], list[str]]] = {
    "broken-yaml": (
        lambda name: (
            f"apiVersion: ray.io/v1\nkind: RayCluster\nmetadata:\n  name: {name}\n"
            "spec:\n  headGroupSpec: [\n    rayStartParams: : {}\n"
        ),
        ["invalid YAML", "line 7"],
    ),
    "configmap-only": (
        lambda name: yaml.safe_dump(spec_docs("autoscaler")[1]),
        ["no RayCluster", "kind: RayCluster"],
    ),
    "min-over-max": (
        _yaml(_min_over_max),
        ["spec.workerGroupSpecs[0].minReplicas", "maxReplicas 2"],
    ),
    "missing-configmap": (_yaml(_drop_config_map), ["ConfigMap 'ray-example'"]),
}


def pids_by_node(run_dir: str) -> dict[str, list[int]]:
    return {name: sorted(p.pid for p in procs) for name, procs in node_processes(run_dir).items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_up_rejects_bad_input_and_starts_nothing(case: str, tmp_path: Path) -> None:
    make_text, expected = CASES[case]
    name = unique_name("bad")
    path = tmp_path / f"{case}.yaml"
    path.write_text(make_text(name))
    cli = Cli(tmp_path / "home")

    result = cli.run("up", str(path), "--detach", "--period", "0.5", timeout=120)

    assert result.returncode == 2, describe(result)
    message = " ".join(result.stderr.split())  # rich may wrap long lines
    assert "error" in message
    for text in expected:
        assert text in message, describe(result)
    assert "Traceback" not in result.stderr + result.stdout, describe(result)
    clusters = cli.home / "clusters"
    assert not clusters.exists() or not any(clusters.iterdir()), list(clusters.iterdir())
    prefix = run_dir_prefix(name)
    assert not list(Path(prefix).parent.glob(Path(prefix).name + "*")), "a run dir was made"
    assert processes.find_leftovers(markers=[prefix]) == []
    assert processes.find_leftovers(markers=[str(path)]) == [], "a supervisor was started"


def test_up_of_a_running_cluster_is_refused(runtime: RuntimeFactory) -> None:
    cluster = runtime("autoscaler", "twice")
    cluster.up()
    status = cluster.wait_workers(0, timeout=60)
    state = cluster.state()
    assert state is not None
    nodes = pids_by_node(state["run_dir"])
    assert len(nodes) == 1, nodes  # the head
    # The teardown's leak check sees the supervisor and the head's processes.
    seen = {info.pid for info in cluster.leftovers()}
    assert {state["pid"], *nodes[next(iter(nodes))]} <= seen

    result = cluster.cli.run("up", str(cluster.spec), "--detach", "--period", "0.5", timeout=120)

    assert result.returncode == 2, describe(result)
    message = " ".join(result.stderr.split())
    assert "already running" in message and cluster.name in message, message
    assert f"rayscale down {cluster.name}" in message
    assert "Traceback" not in result.stderr
    assert cluster.state() == state, "the running cluster's record must not change"
    assert cluster.leftover_dirs() == [state["run_dir"]], "no second run dir"
    assert pids_by_node(state["run_dir"]) == nodes, "its processes must not change"
    # Its supervisor is still alive and still iterating.
    later = cluster.wait_status(
        lambda s: s["updated_at"] > status["updated_at"] + 1, "a newer iteration", timeout=30
    )
    assert later["supervisor"]["alive"] is True
    assert later["supervisor"]["pid"] == state["pid"]

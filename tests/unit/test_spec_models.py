"""The RayCluster models: the shipped samples, KubeRay defaults, round trips and typed access."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from rayscale.spec import (
    INT32_MAX,
    RayCluster,
    WorkerGroupSpec,
    load_file,
    parse_cluster,
    sample_path,
)

pytestmark = pytest.mark.unit

Edit = Callable[..., dict[str, Any]]


# ---------------------------------------------------------------------------------------------
# The shipped samples


def test_autoscaler_sample_matches_kuberay_facts() -> None:
    loaded = load_file(sample_path("autoscaler"))
    cluster = loaded.cluster
    assert (cluster.api_version, cluster.kind, cluster.name) == (
        "ray.io/v1",
        "RayCluster",
        "raycluster-autoscaler",
    )
    spec = cluster.spec
    assert spec.ray_version == "2.60.0"
    assert spec.enable_in_tree_autoscaling is True
    assert spec.autoscaler_options.upscaling_mode == "Default"
    assert spec.autoscaler_options.idle_timeout_seconds == 60
    assert spec.head_group_spec.ray_start_params == {"num-cpus": "0"}
    head = spec.head_group_spec.ray_container
    assert head is not None and head.image == "rayproject/ray:2.60.0"
    assert head.volume_mounts[0].mount_path == "/home/ray/samples"
    (group,) = spec.worker_group_specs
    assert (group.group_name, group.replicas, group.min_replicas, group.max_replicas) == (
        "small-group",
        0,
        0,
        10,
    )
    worker = group.ray_container
    assert worker is not None and worker.image == "rayproject/ray:2.60.0"
    assert worker.resources.limits == {"cpu": "1", "memory": "1G"}


def test_autoscaler_sample_carries_the_seed_002_scripts() -> None:
    scripts = load_file(sample_path("autoscaler")).config_maps["ray-example"]
    assert set(scripts) == {"detached_actor.py", "terminate_detached_actor.py"}
    assert "@ray.remote(num_cpus=1)" in scripts["detached_actor.py"]
    assert 'lifetime="detached"' in scripts["detached_actor.py"]
    assert "ray.kill(detached_actor)" in scripts["terminate_detached_actor.py"]


def test_min1_sample_for_seeds_000_and_003() -> None:
    cluster = load_file(sample_path("autoscaler-min1")).cluster
    assert "num-cpus" not in cluster.head_group.ray_start_params
    (group,) = cluster.worker_groups
    assert (group.replicas, group.min_replicas, group.max_replicas) == (1, 1, 10)


@pytest.mark.parametrize("name", ["autoscaler", "autoscaler-min1"], ids=["kuberay", "min1"])
def test_sample_round_trips_unchanged(name: str) -> None:
    path = sample_path(name)
    raw = next(yaml.safe_load_all(path.read_text()))
    assert load_file(path).cluster.to_dict() == raw


def test_unknown_sample_name() -> None:
    with pytest.raises(FileNotFoundError, match="known samples"):
        sample_path("nope")


# ---------------------------------------------------------------------------------------------
# KubeRay defaults


def _minimal_group(**fields: Any) -> WorkerGroupSpec:
    data = {"groupName": "g", "template": {"spec": {"containers": [{"name": "ray"}]}}, **fields}
    return WorkerGroupSpec.model_validate(data)


DEFAULTS: list[tuple[str, str, object]] = [
    ("replicas", "replicas", 0),
    ("min-replicas", "min_replicas", 0),
    ("max-replicas", "max_replicas", INT32_MAX),
    ("num-of-hosts", "num_of_hosts", 1),
    ("no-idle-override", "idle_timeout_seconds", None),
    ("no-priority", "priority", None),
    ("not-suspended", "suspend", False),
    ("empty-ray-start-params", "ray_start_params", {}),
    ("empty-resources", "resources", {}),
    ("empty-labels", "labels", {}),
]


@pytest.mark.parametrize(
    ("attribute", "expected"), [d[1:] for d in DEFAULTS], ids=[d[0] for d in DEFAULTS]
)
def test_worker_group_defaults(attribute: str, expected: object) -> None:
    assert getattr(_minimal_group(), attribute) == expected


def test_workers_to_delete_default_empty() -> None:
    assert _minimal_group().scale_strategy.workers_to_delete == []


def test_cluster_and_autoscaler_defaults(spec_doc: dict[str, Any], spec_edit: Edit) -> None:
    spec_edit(spec_doc, [(("spec", "enableInTreeAutoscaling"), "<delete>")])
    spec_edit(spec_doc, [(("spec", "workerGroupSpecs"), "<delete>")])
    cluster = parse_cluster(spec_doc)
    assert cluster.namespace == "default"
    assert cluster.spec.enable_in_tree_autoscaling is False
    assert cluster.spec.suspend is False
    assert cluster.spec.managed_by is None
    assert cluster.worker_groups == []
    options = cluster.spec.autoscaler_options
    assert options.upscaling_mode == "Default"
    assert options.idle_timeout_seconds == 60
    assert options.image_pull_policy == "IfNotPresent"
    assert options.version is None
    assert options.resources is None
    assert options.image is None


def test_null_values_take_the_default() -> None:
    group = _minimal_group(replicas=None, maxReplicas=None)
    assert (group.replicas, group.max_replicas) == (0, INT32_MAX)


# ---------------------------------------------------------------------------------------------
# Desired replicas (KubeRay clamps replicas into [min, max])

DESIRED = [
    ("zero", {"replicas": 0, "minReplicas": 0, "maxReplicas": 10}, 0),
    ("inside", {"replicas": 5, "minReplicas": 0, "maxReplicas": 10}, 5),
    ("above-max", {"replicas": 20, "minReplicas": 0, "maxReplicas": 10}, 10),
    ("below-min", {"replicas": 0, "minReplicas": 2, "maxReplicas": 10}, 2),
    ("min-greater-than-max-uses-max", {"replicas": 3, "minReplicas": 5, "maxReplicas": 2}, 2),
    ("suspended", {"replicas": 4, "minReplicas": 1, "maxReplicas": 10, "suspend": True}, 0),
    ("defaults", {}, 0),
]


@pytest.mark.parametrize(
    ("fields", "expected"), [d[1:] for d in DESIRED], ids=[d[0] for d in DESIRED]
)
def test_desired_replicas(fields: dict[str, Any], expected: int) -> None:
    assert _minimal_group(**fields).desired_replicas == expected


def test_desired_pods_counts_hosts() -> None:
    group = _minimal_group(replicas=3, maxReplicas=5, numOfHosts=4)
    assert (group.desired_replicas, group.desired_pods) == (3, 12)


# ---------------------------------------------------------------------------------------------
# Unknown fields are preserved, not rejected

UNKNOWN = [
    (
        "pod-spec",
        ("spec", "workerGroupSpecs", 0, "template", "spec", "tolerations"),
        [{"key": "x"}],
    ),
    (
        "container",
        ("spec", "workerGroupSpecs", 0, "template", "spec", "containers", 0, "livenessProbe"),
        {"exec": {"command": ["true"]}},
    ),
    ("template-metadata", ("spec", "headGroupSpec", "template", "metadata", "labels"), {"a": "b"}),
    ("newer-kuberay-spec-field", ("spec", "gcsFaultToleranceOptions"), {"redisAddress": "r:6379"}),
    ("worker-group-field", ("spec", "workerGroupSpecs", 0, "serviceAccountName"), "sa"),
    ("metadata", ("metadata", "resourceVersion"), "42"),
    ("status", ("status",), {"state": "ready", "desiredWorkerReplicas": 1}),
]


@pytest.mark.parametrize(("path", "value"), [u[1:] for u in UNKNOWN], ids=[u[0] for u in UNKNOWN])
def test_unknown_fields_survive_a_round_trip(
    spec_doc: dict[str, Any], spec_edit: Edit, path: tuple[str | int, ...], value: object
) -> None:
    spec_edit(spec_doc, [(path, value)])
    assert parse_cluster(spec_doc).to_dict() == spec_doc


def test_extras_are_reachable(spec_doc: dict[str, Any], spec_edit: Edit) -> None:
    spec_edit(spec_doc, [(("spec", "workerGroupSpecs", 0, "template", "spec", "tolerations"), [])])
    pod_spec = parse_cluster(spec_doc).worker_groups[0].template.spec
    assert pod_spec.model_extra == {"tolerations": []}


# ---------------------------------------------------------------------------------------------
# Typed access to the Ray container


def test_ray_container_is_the_first_container(spec_doc: dict[str, Any], spec_edit: Edit) -> None:
    containers = [
        {
            "name": "main",
            "resources": {"limits": {"cpu": "2"}, "requests": {"memory": "1Gi"}},
            "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {}}}],
            "volumeMounts": [{"name": "logs", "mountPath": "/tmp/ray"}],
        },
        {"name": "ray-worker"},
    ]
    path = ("spec", "workerGroupSpecs", 0, "template", "spec", "containers")
    spec_edit(spec_doc, [(path, containers)])
    container = parse_cluster(spec_doc).worker_groups[0].ray_container
    assert container is not None
    assert container.name == "main"  # KubeRay's RayContainerIndex is 0, whatever the names
    assert container.resources.limits == {"cpu": "2"}
    assert container.resources.requests == {"memory": "1Gi"}
    assert container.env_value("A") == "1"
    assert container.env_value("B") is None and container.has_env("B")
    assert container.volume_mounts[0].mount_path == "/tmp/ray"


def test_worker_group_lookup(spec_doc: dict[str, Any]) -> None:
    cluster = parse_cluster(spec_doc)
    assert cluster.worker_group("small-group").max_replicas == 10
    with pytest.raises(KeyError):
        cluster.worker_group("missing")


# ---------------------------------------------------------------------------------------------
# Which autoscaler version runs

HEAD_ENV = ("spec", "headGroupSpec", "template", "spec", "containers", 0, "env")
VERSIONS = [
    ("explicit-v1-beats-new-ray", [(("spec", "autoscalerOptions", "version"), "v1")], "v1", False),
    ("explicit-v2", [(("spec", "autoscalerOptions", "version"), "v2")], "v2", True),
    (
        "head-env-var",
        [
            (("spec", "rayVersion"), "2.9.0"),
            (HEAD_ENV, [{"name": "RAY_enable_autoscaler_v2", "value": "1"}]),
        ],
        "v2",
        True,
    ),
    ("ray-2.60-defaults-to-v2", [], "v2", False),
    ("ray-2.46-defaults-to-v1", [(("spec", "rayVersion"), "2.46.0")], "v1", False),
    ("no-ray-version", [(("spec", "rayVersion"), "<delete>")], "v1", False),
]


@pytest.mark.parametrize(
    ("edits", "version", "requested"), [v[1:] for v in VERSIONS], ids=[v[0] for v in VERSIONS]
)
def test_autoscaler_version(
    spec_doc: dict[str, Any], spec_edit: Edit, edits: list[Any], version: str, requested: bool
) -> None:
    cluster = parse_cluster(spec_edit(spec_doc, edits))
    assert cluster.autoscaler_version == version
    assert cluster.autoscaler_v2_requested is requested


def test_model_validate_checks_types_only() -> None:
    cluster = RayCluster.model_validate(
        {"metadata": {"name": "UPPER"}, "spec": {"headGroupSpec": {"template": {}}}}
    )
    assert cluster.name == "UPPER"

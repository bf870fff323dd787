"""Ray resources of a group: KubeRay's precedence, rounding, GPU/TPU keys and custom resources."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from rayscale.spec import (
    SpecError,
    WorkerGroupSpec,
    group_resources,
    head_resources,
    is_gpu_resource_key,
    load_file,
    parse_resources_param,
    sample_path,
)

pytestmark = pytest.mark.unit

GI = 2**30


def group(
    *,
    limits: dict[str, Any] | None = None,
    requests: dict[str, Any] | None = None,
    params: dict[str, str] | None = None,
    resources: dict[str, str] | None = None,
) -> WorkerGroupSpec:
    """A worker group with the given Ray container resources, rayStartParams and resources."""
    container: dict[str, Any] = {"name": "ray-worker", "resources": {}}
    if limits is not None:
        container["resources"]["limits"] = limits
    if requests is not None:
        container["resources"]["requests"] = requests
    return WorkerGroupSpec.model_validate(
        {
            "groupName": "g",
            "rayStartParams": params or {},
            "resources": resources or {},
            "template": {"spec": {"containers": [container]}},
        }
    )


# (id, group, expected resources)
PRECEDENCE: list[tuple[str, WorkerGroupSpec, dict[str, float]]] = [
    ("limits", group(limits={"cpu": "2", "memory": "4Gi"}), {"CPU": 2, "memory": 4 * GI}),
    ("requests-only", group(requests={"cpu": "3", "memory": "1G"}), {"CPU": 3, "memory": 1e9}),
    (
        "limits-beat-requests",
        group(limits={"cpu": "2", "memory": "2Gi"}, requests={"cpu": "1", "memory": "1Gi"}),
        {"CPU": 2, "memory": 2 * GI},
    ),
    (
        "each-resource-falls-back-separately",
        group(limits={"cpu": "2"}, requests={"cpu": "1", "memory": "1Gi"}),
        {"CPU": 2, "memory": GI},
    ),
    (
        "ray-start-params-beat-limits",
        group(limits={"cpu": "2", "memory": "4Gi"}, params={"num-cpus": "6", "memory": "1000"}),
        {"CPU": 6, "memory": 1000},
    ),
    (
        "top-level-beats-ray-start-params",
        group(limits={"cpu": "2"}, params={"num-cpus": "6"}, resources={"CPU": "8"}),
        {"CPU": 8},
    ),
    (
        "top-level-per-resource",
        group(limits={"cpu": "2", "memory": "1Gi"}, resources={"CPU": "4"}),
        {"CPU": 4, "memory": GI},
    ),
    (
        "top-level-lowercase-cpu",
        group(resources={"cpu": "3", "Memory": "2Gi"}),
        {"CPU": 3, "memory": 2 * GI},
    ),
    ("head-num-cpus-zero", group(limits={"cpu": "1"}, params={"num-cpus": "0"}), {"CPU": 0}),
    # rounding
    ("cpu-500m-rounds-up", group(limits={"cpu": "500m"}), {"CPU": 1}),
    ("cpu-1500m-rounds-up", group(limits={"cpu": "1500m"}), {"CPU": 2}),
    ("cpu-yaml-float", group(limits={"cpu": 0.25}), {"CPU": 1}),
    ("top-level-cpu-rounds-up", group(resources={"CPU": "2.5"}), {"CPU": 3}),
    ("memory-bytes-exact", group(limits={"cpu": 1, "memory": "1.5Ki"}), {"CPU": 1, "memory": 1536}),
    ("memory-rounds-up", group(limits={"cpu": 1, "memory": "1500m"}), {"CPU": 1, "memory": 2}),
    # GPUs
    ("nvidia-gpu", group(limits={"cpu": "4", "nvidia.com/gpu": "2"}), {"CPU": 4, "GPU": 2}),
    ("amd-gpu", group(limits={"cpu": "4", "amd.com/gpu": 1}), {"CPU": 4, "GPU": 1}),
    ("mig-slice", group(limits={"cpu": "4", "nvidia.com/mig-1g.5gb": 1}), {"CPU": 4, "GPU": 1}),
    ("zero-gpu-is-skipped", group(limits={"cpu": "4", "nvidia.com/gpu": 0}), {"CPU": 4}),
    (
        "first-gpu-key-in-sorted-order",
        group(limits={"cpu": "1", "nvidia.com/gpu": 4, "amd.com/gpu": 2}),
        {"CPU": 1, "GPU": 2},
    ),
    (
        "gpu-from-requests",
        group(limits={"cpu": "1"}, requests={"nvidia.com/gpu": 1}),
        {"CPU": 1, "GPU": 1},
    ),
    (
        "num-gpus-beats-limits",
        group(limits={"cpu": "1", "nvidia.com/gpu": 4}, params={"num-gpus": "1"}),
        {"CPU": 1, "GPU": 1},
    ),
    (
        "num-gpus-zero-kept",
        group(limits={"cpu": "1"}, params={"num-gpus": "0"}),
        {"CPU": 1, "GPU": 0},
    ),
    ("top-level-gpu", group(resources={"CPU": "1", "GPU": "2"}), {"CPU": 1, "GPU": 2}),
    (
        "top-level-gpu-by-k8s-name",
        group(resources={"CPU": "1", "nvidia.com/gpu": "1"}),
        {"CPU": 1, "GPU": 1},
    ),
    # TPU and other accelerators
    ("tpu", group(limits={"cpu": "1", "google.com/tpu": "4"}), {"CPU": 1, "TPU": 4}),
    (
        "tpu-from-requests",
        group(limits={"cpu": "1"}, requests={"google.com/tpu": 4}),
        {"CPU": 1, "TPU": 4},
    ),
    (
        "tpu-in-ray-start-resources-wins",
        group(limits={"cpu": "1", "google.com/tpu": "4"}, params={"resources": '{"TPU": 8}'}),
        {"CPU": 1, "TPU": 8},
    ),
    ("top-level-tpu", group(resources={"CPU": "1", "TPU": "4"}), {"CPU": 1, "TPU": 4}),
    (
        "neuron-cores",
        group(limits={"cpu": "1", "aws.amazon.com/neuroncore": 2}),
        {"CPU": 1, "neuron_cores": 2},
    ),
    # custom resources
    (
        "custom-json-kuberay-quoting",
        group(
            limits={"cpu": "1"},
            params=yaml.safe_load("""resources: '"{\\"Custom1\\": 1, \\"Custom2\\": 5}"'"""),
        ),
        {"CPU": 1, "Custom1": 1, "Custom2": 5},
    ),
    (
        "custom-json-single-quoted",
        group(limits={"cpu": "1"}, params={"resources": "'{\"Custom1\": 0.5}'"}),
        {"CPU": 1, "Custom1": 0.5},
    ),
    (
        "custom-json-plain",
        group(limits={"cpu": "1"}, params={"resources": '{"A": 2}'}),
        {"CPU": 1, "A": 2},
    ),
    (
        "top-level-custom-is-exclusive",
        group(
            limits={"cpu": "1"}, resources={"Custom": "500m"}, params={"resources": '{"Other": 1}'}
        ),
        {"CPU": 1, "Custom": 0.5},
    ),
    # object_store_memory is not a planning resource
    (
        "object-store-memory-ignored",
        group(limits={"cpu": "1"}, params={"object-store-memory": "100000000"}),
        {"CPU": 1},
    ),
]


@pytest.mark.parametrize(
    ("spec", "expected"), [p[1:] for p in PRECEDENCE], ids=[p[0] for p in PRECEDENCE]
)
def test_group_resources(spec: WorkerGroupSpec, expected: dict[str, float]) -> None:
    resources = group_resources(spec)
    assert resources == expected
    assert all(isinstance(value, float) for value in resources.values())


def test_no_cpu_anywhere_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as caught:
        group_resources(group(limits={"memory": "1Gi"}), ("spec", "workerGroupSpecs", 2))
    (problem,) = caught.value.problems
    assert problem.path == "spec.workerGroupSpecs[2]"
    assert "num-cpus" in problem.fix


def test_bad_quantity_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="lots"):
        group_resources(group(limits={"cpu": "lots"}))


def test_bad_resources_json_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as caught:
        group_resources(group(limits={"cpu": "1"}, params={"resources": "{A: 1}"}))
    assert caught.value.problems[0].path == "spec.workerGroupSpecs.g.rayStartParams.resources"


def test_sample_head_and_worker() -> None:
    cluster = load_file(sample_path("autoscaler")).cluster
    assert head_resources(cluster) == {"CPU": 0, "memory": 2e9}
    assert group_resources(cluster.worker_groups[0]) == {"CPU": 1, "memory": 1e9}


def test_min1_sample_head_has_one_cpu() -> None:
    cluster = load_file(sample_path("autoscaler-min1")).cluster
    assert head_resources(cluster)["CPU"] == 1


RESOURCES_PARAM = [
    ("kuberay-form", '"{\\"Custom1\\": 1, \\"Custom2\\": 5}"', {"Custom1": 1, "Custom2": 5}),
    ("single-quoted", "'{\"A\": 1}'", {"A": 1}),
    ("plain", '{"A": 1.5}', {"A": 1.5}),
    ("double-encoded", '"{\\"A\\": 2}"', {"A": 2}),
    ("spaces", '  {"A": 1}  ', {"A": 1}),
    ("empty-object", "{}", {}),
]


@pytest.mark.parametrize(
    ("text", "expected"), [r[1:] for r in RESOURCES_PARAM], ids=[r[0] for r in RESOURCES_PARAM]
)
def test_parse_resources_param(text: str, expected: dict[str, float]) -> None:
    assert parse_resources_param(text) == expected


RESOURCES_PARAM_ERRORS = [
    ("not-json", "{A: 1}", "not valid JSON"),
    ("list", "[1]", "JSON object"),
    ("negative", '{"A": -1}', "non-negative"),
    ("string-amount", '{"A": "1"}', "non-negative number"),
    ("bool-amount", '{"A": true}', "non-negative number"),
]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [r[1:] for r in RESOURCES_PARAM_ERRORS],
    ids=[r[0] for r in RESOURCES_PARAM_ERRORS],
)
def test_parse_resources_param_errors(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_resources_param(text)


GPU_KEYS = [
    ("nvidia", "nvidia.com/gpu", True),
    ("amd", "amd.com/gpu", True),
    ("mig", "nvidia.com/mig-2g.32gb", True),
    ("cpu", "cpu", False),
    ("tpu", "google.com/tpu", False),
    ("upper-case-is-not", "nvidia.com/GPU", False),
]


@pytest.mark.parametrize(
    ("key", "expected"), [g[1:] for g in GPU_KEYS], ids=[g[0] for g in GPU_KEYS]
)
def test_gpu_resource_key(key: str, expected: bool) -> None:
    assert is_gpu_resource_key(key) is expected

"""From a RayCluster to the planner's GroupConfigs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rayscale.planner import GroupConfig
from rayscale.spec import (
    SpecError,
    head_resources,
    load_file,
    parse_cluster,
    sample_path,
    to_group_configs,
)

pytestmark = pytest.mark.unit

Edit = Callable[..., dict[str, Any]]
W0 = ("spec", "workerGroupSpecs", 0)
OPTIONS = ("spec", "autoscalerOptions")


def test_kuberay_sample() -> None:
    cluster = load_file(sample_path("autoscaler")).cluster
    assert to_group_configs(cluster) == (
        GroupConfig(
            name="small-group",
            resources={"CPU": 1.0, "memory": 1e9},
            min_replicas=0,
            max_replicas=10,
            num_of_hosts=1,
            idle_timeout_s=60.0,
            upscaling_mode="Default",
        ),
    )
    assert head_resources(cluster) == {"CPU": 0.0, "memory": 2e9}


def test_min1_sample() -> None:
    (config,) = to_group_configs(load_file(sample_path("autoscaler-min1")).cluster)
    assert (config.min_replicas, config.max_replicas, dict(config.resources)) == (
        1,
        10,
        {"CPU": 1.0, "memory": 1e9},
    )


# (id, edits, GroupConfig attribute, expected)
FIELDS = [
    ("idle-default", [], "idle_timeout_s", 60.0),
    (
        "idle-from-autoscaler-options",
        [((*OPTIONS, "idleTimeoutSeconds"), 120)],
        "idle_timeout_s",
        120.0,
    ),
    (
        "idle-group-override-wins",
        [
            ((*OPTIONS, "version"), "v2"),
            ((*OPTIONS, "idleTimeoutSeconds"), 120),
            ((*W0, "idleTimeoutSeconds"), 15),
        ],
        "idle_timeout_s",
        15.0,
    ),
    (
        "idle-zero-override",
        [((*OPTIONS, "version"), "v2"), ((*W0, "idleTimeoutSeconds"), 0)],
        "idle_timeout_s",
        0.0,
    ),
    ("mode-default", [], "upscaling_mode", "Default"),
    (
        "mode-conservative",
        [((*OPTIONS, "upscalingMode"), "Conservative")],
        "upscaling_mode",
        "Conservative",
    ),
    (
        "mode-aggressive",
        [((*OPTIONS, "upscalingMode"), "Aggressive")],
        "upscaling_mode",
        "Aggressive",
    ),
    ("min", [((*W0, "minReplicas"), 2)], "min_replicas", 2),
    ("max-default", [((*W0, "maxReplicas"), "<delete>")], "max_replicas", 2**31 - 1),
    ("hosts", [((*W0, "numOfHosts"), 4)], "num_of_hosts", 4),
    (
        "suspended-group-is-pinned-at-zero",
        [
            (("spec", "enableInTreeAutoscaling"), False),
            ((*W0, "minReplicas"), 1),
            ((*W0, "suspend"), True),
        ],
        "max_replicas",
        0,
    ),
    (
        "resources",
        [
            (
                (*W0, "template", "spec", "containers", 0, "resources"),
                {"limits": {"cpu": "2", "nvidia.com/gpu": 1}},
            )
        ],
        "resources",
        {"CPU": 2.0, "GPU": 1.0},
    ),
]


@pytest.mark.parametrize(
    ("edits", "attribute", "expected"), [f[1:] for f in FIELDS], ids=[f[0] for f in FIELDS]
)
def test_group_config_fields(
    spec_doc: dict[str, Any], spec_edit: Edit, edits: list[Any], attribute: str, expected: object
) -> None:
    (config,) = to_group_configs(parse_cluster(spec_edit(spec_doc, edits)))
    assert getattr(config, attribute) == expected


def test_suspended_group_min_is_zero_too(spec_doc: dict[str, Any], spec_edit: Edit) -> None:
    edits = [
        (("spec", "enableInTreeAutoscaling"), False),
        ((*W0, "minReplicas"), 1),
        ((*W0, "suspend"), True),
    ]
    (config,) = to_group_configs(parse_cluster(spec_edit(spec_doc, edits)))
    assert (config.min_replicas, config.max_replicas) == (0, 0)


def test_groups_keep_spec_order(spec_doc: dict[str, Any], spec_edit: Edit) -> None:
    gpu = {
        "groupName": "gpu-group",
        "maxReplicas": 2,
        "template": {
            "spec": {
                "containers": [
                    {"name": "w", "resources": {"limits": {"cpu": "8", "nvidia.com/gpu": "1"}}}
                ]
            }
        },
    }
    configs = to_group_configs(
        parse_cluster(spec_edit(spec_doc, [(("spec", "workerGroupSpecs", 1), gpu)]))
    )
    assert [c.name for c in configs] == ["small-group", "gpu-group"]
    assert dict(configs[1].resources) == {"CPU": 8.0, "GPU": 1.0}


def test_no_worker_groups(spec_doc: dict[str, Any], spec_edit: Edit) -> None:
    assert (
        to_group_configs(parse_cluster(spec_edit(spec_doc, [(("spec", "workerGroupSpecs"), [])])))
        == ()
    )


def test_unresolvable_resources_name_the_group(spec_doc: dict[str, Any], spec_edit: Edit) -> None:
    edits: list[Any] = [((*W0, "template", "spec", "containers", 0, "resources"), {})]
    cluster = parse_cluster(spec_edit(spec_doc, edits), validate=False)
    with pytest.raises(SpecError) as caught:
        to_group_configs(cluster)
    assert caught.value.problems[0].path == "spec.workerGroupSpecs[0]"

"""Shared fixtures for the unit tier.

``spec_doc`` is a minimal valid autoscaling RayCluster as a raw mapping (as parsed from YAML);
``spec_edit`` applies ``(path, value)`` edits to such a mapping (``"<delete>"`` removes a key).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest

DELETE = "<delete>"
"""Edit value that removes the key instead of setting it (tables write the literal)."""

Edit = tuple[Sequence[str | int], Any]

_MINIMAL_CLUSTER: dict[str, Any] = {
    "apiVersion": "ray.io/v1",
    "kind": "RayCluster",
    "metadata": {"name": "demo"},
    "spec": {
        "rayVersion": "2.60.0",
        "enableInTreeAutoscaling": True,
        "headGroupSpec": {
            "rayStartParams": {"num-cpus": "0"},
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "ray-head",
                            "image": "rayproject/ray:2.60.0",
                            "resources": {"limits": {"cpu": "1", "memory": "2G"}},
                        }
                    ]
                }
            },
        },
        "workerGroupSpecs": [
            {
                "groupName": "small-group",
                "replicas": 0,
                "minReplicas": 0,
                "maxReplicas": 10,
                "rayStartParams": {},
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "ray-worker",
                                "image": "rayproject/ray:2.60.0",
                                "resources": {"limits": {"cpu": "1", "memory": "1G"}},
                            }
                        ]
                    }
                },
            }
        ],
    },
}


def apply_edits(doc: dict[str, Any], edits: Iterable[Edit]) -> dict[str, Any]:
    """Apply ``(path, value)`` edits in place, creating intermediate mappings as needed."""
    for path, value in edits:
        target: Any = doc
        for part in path[:-1]:
            if isinstance(part, str) and part not in target:
                target[part] = {}
            target = target[part]
        last = path[-1]
        if value == DELETE:
            del target[last]
        elif isinstance(target, list) and last == len(target):
            target.append(value)
        else:
            target[last] = value
    return doc


@pytest.fixture
def spec_doc() -> dict[str, Any]:
    """A fresh minimal valid RayCluster mapping (autoscaling on, one worker group)."""
    return copy.deepcopy(_MINIMAL_CLUSTER)


@pytest.fixture
def spec_edit() -> Callable[..., dict[str, Any]]:
    """``spec_edit(doc, [(path, value), ...])`` -> the edited doc."""
    return apply_edits

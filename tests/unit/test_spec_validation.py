"""Validation: each rule on its own, then many problems reported at once by ONE SpecError."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from rayscale.spec import (
    Problem,
    SpecError,
    find_problems,
    load_file,
    load_text,
    parse_cluster,
    sample_path,
)

pytestmark = pytest.mark.unit

Edit = Callable[..., dict[str, Any]]

W0 = ("spec", "workerGroupSpecs", 0)
HEAD = ("spec", "headGroupSpec")
W0_CONTAINER = (*W0, "template", "spec", "containers", 0)
HEAD_CONTAINER = (*HEAD, "template", "spec", "containers", 0)
OPTIONS = ("spec", "autoscalerOptions")
AUTOSCALING = ("spec", "enableInTreeAutoscaling")
SECOND_GROUP = {
    "groupName": "small-group",
    "template": {"spec": {"containers": [{"name": "w", "resources": {"limits": {"cpu": "1"}}}]}},
}

# (id, edits, path of the one expected problem, fragment of its message)
RULES: list[tuple[str, list[Any], str, str]] = [
    # replicas
    (
        "min-greater-than-max",
        [((*W0, "minReplicas"), 5), ((*W0, "maxReplicas"), 2)],
        "spec.workerGroupSpecs[0].minReplicas",
        "minReplicas 5 is greater than maxReplicas 2",
    ),
    (
        "negative-min",
        [((*W0, "minReplicas"), -1)],
        "spec.workerGroupSpecs[0].minReplicas",
        "negative",
    ),
    (
        "negative-max",
        [((*W0, "maxReplicas"), -3)],
        "spec.workerGroupSpecs[0].maxReplicas",
        "negative",
    ),
    (
        "negative-replicas",
        [((*W0, "replicas"), -1)],
        "spec.workerGroupSpecs[0].replicas",
        "negative",
    ),
    (
        "max-beyond-int32",
        [((*W0, "maxReplicas"), 2**31)],
        "spec.workerGroupSpecs[0].maxReplicas",
        "int32",
    ),
    ("zero-hosts", [((*W0, "numOfHosts"), 0)], "spec.workerGroupSpecs[0].numOfHosts", "at least 1"),
    (
        "replicas-as-string",
        [((*W0, "replicas"), "3")],
        "spec.workerGroupSpecs[0].replicas",
        "must be a whole number",
    ),
    (
        "min-max-required-without-autoscaling",
        [(AUTOSCALING, False), ((*W0, "maxReplicas"), "<delete>")],
        "spec.workerGroupSpecs[0].maxReplicas",
        "required when enableInTreeAutoscaling is not true",
    ),
    # group names
    (
        "duplicate-group-name",
        [(("spec", "workerGroupSpecs", 1), SECOND_GROUP)],
        "spec.workerGroupSpecs[1].groupName",
        "already used by workerGroupSpecs[0]",
    ),
    (
        "group-named-headgroup",
        [((*W0, "groupName"), "headgroup")],
        "spec.workerGroupSpecs[0].groupName",
        "head group",
    ),
    (
        "group-name-not-a-label-value",
        [((*W0, "groupName"), "small group!")],
        "spec.workerGroupSpecs[0].groupName",
        "not a valid Kubernetes label value",
    ),
    (
        "group-name-missing",
        [((*W0, "groupName"), "<delete>")],
        "spec.workerGroupSpecs[0].groupName",
        "groupName is required",
    ),
    # quantities
    (
        "cpu-lots",
        [((*W0_CONTAINER, "resources", "limits", "cpu"), "lots")],
        "spec.workerGroupSpecs[0].template.spec.containers[0].resources.limits.cpu",
        '"lots" is not a Kubernetes quantity',
    ),
    (
        "memory-1GB",
        [((*HEAD_CONTAINER, "resources", "limits", "memory"), "1GB")],
        "spec.headGroupSpec.template.spec.containers[0].resources.limits.memory",
        "not a Kubernetes quantity",
    ),
    (
        "negative-quantity",
        [((*W0_CONTAINER, "resources", "requests", "memory"), "-1Gi")],
        "spec.workerGroupSpecs[0].template.spec.containers[0].resources.requests.memory",
        "negative",
    ),
    (
        "gpu-key-quoted-in-path",
        [((*W0_CONTAINER, "resources", "limits", "nvidia.com/gpu"), "one")],
        'spec.workerGroupSpecs[0].template.spec.containers[0].resources.limits["nvidia.com/gpu"]',
        "not a Kubernetes quantity",
    ),
    (
        "request-above-limit",
        [((*W0_CONTAINER, "resources", "requests", "cpu"), "2")],
        "spec.workerGroupSpecs[0].template.spec.containers[0].resources.requests.cpu",
        "more than its limit",
    ),
    (
        "quantity-wrong-type",
        [((*W0_CONTAINER, "resources", "limits", "cpu"), True)],
        "spec.workerGroupSpecs[0].template.spec.containers[0].resources.limits.cpu",
        "must be a quantity",
    ),
    (
        "top-level-resource-bad-quantity",
        [((*W0, "resources"), {"CPU": "two"})],
        "spec.workerGroupSpecs[0].resources.CPU",
        "not a Kubernetes quantity",
    ),
    (
        "autoscaler-container-bad-quantity",
        [((*OPTIONS, "resources"), {"limits": {"cpu": "half"}})],
        "spec.autoscalerOptions.resources.limits.cpu",
        "not a Kubernetes quantity",
    ),
    # metadata and type meta
    (
        "name-54-chars",
        [(("metadata", "name"), "a" * 54)],
        "metadata.name",
        "54 characters long; KubeRay allows at most 53",
    ),
    ("name-uppercase", [(("metadata", "name"), "Demo")], "metadata.name", "not a DNS-1035 label"),
    ("name-starts-with-digit", [(("metadata", "name"), "1demo")], "metadata.name", "DNS-1035"),
    ("name-missing", [(("metadata", "name"), "<delete>")], "metadata.name", "required"),
    (
        "namespace-invalid",
        [(("metadata", "namespace"), "My_NS")],
        "metadata.namespace",
        "not a valid Kubernetes namespace",
    ),
    ("api-version-v1alpha1", [(("apiVersion",), "ray.io/v1alpha1")], "apiVersion", "not supported"),
    ("api-version-missing", [(("apiVersion",), "<delete>")], "apiVersion", "required"),
    ("kind-wrong", [(("kind",), "RayJob")], "kind", 'kind "RayJob" is not RayCluster'),
    # autoscaler options
    (
        "unknown-upscaling-mode",
        [((*OPTIONS, "upscalingMode"), "Fast")],
        "spec.autoscalerOptions.upscalingMode",
        '"Fast" is not one of Default, Aggressive, Conservative',
    ),
    (
        "unknown-autoscaler-version",
        [((*OPTIONS, "version"), "v3")],
        "spec.autoscalerOptions.version",
        "is not one of v1, v2",
    ),
    (
        "negative-idle-timeout",
        [((*OPTIONS, "idleTimeoutSeconds"), -5)],
        "spec.autoscalerOptions.idleTimeoutSeconds",
        "negative",
    ),
    (
        "bad-image-pull-policy",
        [((*OPTIONS, "imagePullPolicy"), "Sometimes")],
        "spec.autoscalerOptions.imagePullPolicy",
        "not one of Always, IfNotPresent, Never",
    ),
    (
        "generated-start-cmd-overridden",
        [((*OPTIONS, "env"), [{"name": "KUBERAY_GEN_AUTOSCALER_START_CMD", "value": "x"}])],
        "spec.autoscalerOptions.env[0].name",
        "set by KubeRay",
    ),
    (
        "version-and-env-var",
        [
            ((*OPTIONS, "version"), "v2"),
            ((*HEAD_CONTAINER, "env"), [{"name": "RAY_enable_autoscaler_v2", "value": "1"}]),
        ],
        "spec.autoscalerOptions.version",
        "both autoscalerOptions.version and the head env var",
    ),
    (
        "v2-env-without-autoscaling",
        [
            (AUTOSCALING, False),
            ((*HEAD_CONTAINER, "env"), [{"name": "RAY_enable_autoscaler_v2", "value": "true"}]),
        ],
        "spec.headGroupSpec.template.spec.containers[0].env",
        "enableInTreeAutoscaling is not true",
    ),
    # per-group idle timeout, priority, suspend, restart policy
    (
        "group-idle-timeout-without-v2",
        [((*W0, "idleTimeoutSeconds"), 30)],
        "spec.workerGroupSpecs[0].idleTimeoutSeconds",
        "needs autoscaler v2 semantics",
    ),
    (
        "priority-without-v2",
        [((*W0, "priority"), 5)],
        "spec.workerGroupSpecs[0].priority",
        "only honoured by autoscaler v2",
    ),
    (
        "priority-on-old-ray",
        [(("spec", "rayVersion"), "2.50.0"), ((*OPTIONS, "version"), "v2"), ((*W0, "priority"), 5)],
        "spec.workerGroupSpecs[0].priority",
        "needs Ray 2.56.0 or later",
    ),
    (
        "suspended-group-with-autoscaling",
        [((*W0, "suspend"), True)],
        "spec.workerGroupSpecs[0].suspend",
        "not allowed together with enableInTreeAutoscaling",
    ),
    (
        "restart-policy-with-v2",
        [((*OPTIONS, "version"), "v2"), ((*W0, "template", "spec", "restartPolicy"), "Always")],
        "spec.workerGroupSpecs[0].template.spec.restartPolicy",
        "not allowed with autoscaler v2",
    ),
    # containers, rayStartParams, resources, labels
    (
        "head-without-containers",
        [((*HEAD, "template", "spec", "containers"), [])],
        "spec.headGroupSpec.template.spec.containers",
        "no containers",
    ),
    (
        "worker-template-missing",
        [((*W0, "template"), "<delete>")],
        "spec.workerGroupSpecs[0].template",
        "template is required",
    ),
    (
        "num-cpus-fraction",
        [((*W0, "rayStartParams"), {"num-cpus": "0.5"})],
        "spec.workerGroupSpecs[0].rayStartParams.num-cpus",
        "must be a whole number",
    ),
    (
        "num-cpus-unquoted",
        [((*HEAD, "rayStartParams", "num-cpus"), 0)],
        "spec.headGroupSpec.rayStartParams.num-cpus",
        "must be a string",
    ),
    (
        "resources-json-invalid",
        [((*W0, "rayStartParams"), {"resources": "{Custom1: 1}"})],
        "spec.workerGroupSpecs[0].rayStartParams.resources",
        "not valid JSON",
    ),
    (
        "resources-json-names-cpu",
        [((*W0, "rayStartParams"), {"resources": '{"CPU": 2}'})],
        "spec.workerGroupSpecs[0].rayStartParams.resources",
        "cannot be a custom resource",
    ),
    (
        "resources-in-both-places",
        [((*W0, "resources"), {"CPU": "2"}), ((*W0, "rayStartParams"), {"num-cpus": "2"})],
        "spec.workerGroupSpecs[0].resources",
        "set both here and in rayStartParams",
    ),
    (
        "object-store-memory-as-resource",
        [((*W0, "resources"), {"object_store_memory": "1Gi"})],
        "spec.workerGroupSpecs[0].resources.object_store_memory",
        "cannot be a Ray resource",
    ),
    (
        "ray-start-labels",
        [((*W0, "rayStartParams"), {"labels": "zone=a"})],
        "spec.workerGroupSpecs[0].rayStartParams.labels",
        "not supported by KubeRay",
    ),
    (
        "bad-label-key",
        [((*W0, "labels"), {"bad key": "x"})],
        'spec.workerGroupSpecs[0].labels["bad key"]',
        "not a valid label key",
    ),
    (
        "cpu-unknown-with-autoscaling",
        [((*W0_CONTAINER, "resources"), {"limits": {"memory": "1Gi"}})],
        "spec.workerGroupSpecs[0].template.spec.containers[0].resources",
        "number of CPUs of this group cannot be determined",
    ),
    # misc spec fields
    ("bad-managed-by", [(("spec", "managedBy"), "me")], "spec.managedBy", "is not one of"),
    (
        "bad-service-type",
        [((*HEAD, "serviceType"), "Nodeport")],
        "spec.headGroupSpec.serviceType",
        "not one of ClusterIP",
    ),
    (
        "autoscaling-flag-as-string",
        [(AUTOSCALING, "true")],
        "spec.enableInTreeAutoscaling",
        "must be true or false",
    ),
    (
        "ray-version-as-number",
        [(("spec", "rayVersion"), 2.6)],
        "spec.rayVersion",
        "must be a string",
    ),
    ("spec-is-a-list", [(("spec",), [])], "spec", "must be a mapping"),
    (
        "runtime-env-agent-annotation-not-a-boolean",
        [(("metadata", "annotations"), {"rayscale.io/runtime-env-agent": "yes"})],
        'metadata.annotations["rayscale.io/runtime-env-agent"]',
        'must be "true"',
    ),
]


@pytest.mark.parametrize(
    ("edits", "path", "fragment"), [r[1:] for r in RULES], ids=[r[0] for r in RULES]
)
def test_each_rule_reports_one_problem(
    spec_doc: dict[str, Any], spec_edit: Edit, edits: list[Any], path: str, fragment: str
) -> None:
    with pytest.raises(SpecError) as caught:
        parse_cluster(spec_edit(spec_doc, edits))
    problems = caught.value.problems
    assert [p.path for p in problems] == [path], caught.value.format()
    assert fragment in problems[0].message
    assert problems[0].fix, "every problem carries a fix"


# (id, edits) of specs that are valid although they look close to a rule
ALLOWED = [
    ("sample-defaults", []),
    ("name-53-chars", [(("metadata", "name"), "a" * 53)]),
    ("min-equals-max", [((*W0, "minReplicas"), 3), ((*W0, "maxReplicas"), 3)]),
    ("replicas-above-max-is-clamped", [((*W0, "replicas"), 50)]),
    ("min-max-optional-with-autoscaling", [((*W0, "minReplicas"), "<delete>")]),
    (
        "group-idle-timeout-with-version-v2",
        [((*OPTIONS, "version"), "v2"), ((*W0, "idleTimeoutSeconds"), 30)],
    ),
    (
        "group-idle-timeout-with-head-env",
        [
            ((*HEAD_CONTAINER, "env"), [{"name": "RAY_enable_autoscaler_v2", "value": "true"}]),
            ((*W0, "idleTimeoutSeconds"), 30),
        ],
    ),
    ("priority-with-v2", [((*OPTIONS, "version"), "v2"), ((*W0, "priority"), 3)]),
    ("priority-zero-is-unset", [((*W0, "priority"), 0)]),
    ("suspended-without-autoscaling", [(AUTOSCALING, False), ((*W0, "suspend"), True)]),
    ("cpu-unknown-without-autoscaling", [(AUTOSCALING, False), ((*W0_CONTAINER, "resources"), {})]),
    (
        "cpu-from-num-cpus",
        [((*W0_CONTAINER, "resources"), {}), ((*W0, "rayStartParams"), {"num-cpus": "2"})],
    ),
    (
        "cpu-from-top-level",
        [((*W0_CONTAINER, "resources"), {}), ((*W0, "resources"), {"CPU": "2"})],
    ),
    (
        "kuberay-quoted-resources",
        [((*W0, "rayStartParams"), {"resources": '"{\\"Custom1\\": 1}"'})],
    ),
    ("aggressive-mode", [((*OPTIONS, "upscalingMode"), "Aggressive")]),
    ("conservative-mode", [((*OPTIONS, "upscalingMode"), "Conservative")]),
    ("valid-labels", [((*W0, "labels"), {"ray.io/zone": "us-east-1a", "tier": ""})]),
    ("managed-by-kueue", [(("spec", "managedBy"), "kueue.x-k8s.io/multikueue")]),
    ("no-worker-groups", [(("spec", "workerGroupSpecs"), [])]),
    (
        "runtime-env-agent-on",
        [(("metadata", "annotations"), {"rayscale.io/runtime-env-agent": "true"})],
    ),
]


@pytest.mark.parametrize("edits", [a[1] for a in ALLOWED], ids=[a[0] for a in ALLOWED])
def test_valid_specs_have_no_problems(
    spec_doc: dict[str, Any], spec_edit: Edit, edits: list[Any]
) -> None:
    assert find_problems(spec_edit(spec_doc, edits)) == []


@pytest.mark.parametrize("name", ["autoscaler", "autoscaler-min1"], ids=["kuberay", "min1"])
def test_samples_are_valid(name: str) -> None:
    assert find_problems(load_file(sample_path(name)).cluster) == []


def test_upscaling_mode_case_fix(spec_doc: dict[str, Any], spec_edit: Edit) -> None:
    (problem,) = find_problems(spec_edit(spec_doc, [((*OPTIONS, "upscalingMode"), "aggressive")]))
    assert problem.fix == "write upscalingMode: Aggressive (values are case-sensitive)"


def test_long_name_fix_proposes_a_valid_name(spec_doc: dict[str, Any], spec_edit: Edit) -> None:
    problems = find_problems(spec_edit(spec_doc, [(("metadata", "name"), "My_Cluster" * 6)]))
    assert len(problems) == 2  # too long, and not a DNS-1035 label
    suggestion = problems[0].fix.split('"')[1]
    assert find_problems(spec_edit(spec_doc, [(("metadata", "name"), suggestion)])) == []


def test_memory_param_fix_gives_bytes(spec_doc: dict[str, Any], spec_edit: Edit) -> None:
    (problem,) = find_problems(spec_edit(spec_doc, [((*W0, "rayStartParams"), {"memory": "1Gi"})]))
    assert problem.fix == 'write memory: "1073741824" (bytes)'


# ---------------------------------------------------------------------------------------------
# Many problems, ONE error

MANY_PROBLEMS = """\
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: a-cluster-name-that-is-definitely-longer-than-fifty-three-chars
spec:
  enableInTreeAutoscaling: true
  autoscalerOptions:
    upscalingMode: Turbo
  headGroupSpec:
    rayStartParams: {num-cpus: "0"}
    template:
      spec:
        containers:
        - name: ray-head
          resources: {limits: {cpu: "1"}}
  workerGroupSpecs:
  - groupName: cpu
    minReplicas: 5
    maxReplicas: 2
    template:
      spec:
        containers:
        - name: ray-worker
          resources:
            limits: {cpu: lots}
  - groupName: cpu
    replicas: -1
    template:
      spec:
        containers:
        - name: ray-worker
          resources: {limits: {cpu: "1"}}
"""

EXPECTED = {
    ("metadata.name", 4, "53"),
    ("spec.autoscalerOptions.upscalingMode", 8, "Turbo"),
    ("spec.workerGroupSpecs[0].minReplicas", 18, "greater than maxReplicas"),
    ("spec.workerGroupSpecs[0].template.spec.containers[0].resources.limits.cpu", 25, "lots"),
    ("spec.workerGroupSpecs[1].groupName", 26, "already used"),
    ("spec.workerGroupSpecs[1].replicas", 27, "negative"),
}


def test_several_problems_one_error_with_paths_and_lines() -> None:
    with pytest.raises(SpecError) as caught:
        load_text(MANY_PROBLEMS, source="many.yaml")
    error = caught.value
    assert {(p.path, p.line) for p in error.problems} == {
        (path, line) for path, line, _ in EXPECTED
    }
    for path, _, fragment in EXPECTED:
        (problem,) = [p for p in error.problems if p.path == path]
        assert fragment in problem.message
    assert [p.line for p in error.problems] == sorted(p.line or 0 for p in error.problems)
    report = error.format()
    assert report.startswith("many.yaml: invalid RayCluster spec (6 problems):")
    for path, line, _ in EXPECTED:
        assert f"{path} (line {line})" in report
    assert report.count("fix:") == 6
    assert str(error) == report


def test_several_problems_from_a_mapping(spec_doc: dict[str, Any], spec_edit: Edit) -> None:
    edits = [
        ((*W0, "minReplicas"), 5),
        ((*W0, "maxReplicas"), 2),
        ((*W0_CONTAINER, "resources", "limits", "cpu"), "lots"),
        ((*W0, "replicas"), "many"),
        (("metadata", "name"), "x" * 60),
    ]
    with pytest.raises(SpecError) as caught:
        parse_cluster(spec_edit(spec_doc, edits))
    assert {p.path for p in caught.value.problems} == {
        "spec.workerGroupSpecs[0].minReplicas",
        "spec.workerGroupSpecs[0].template.spec.containers[0].resources.limits.cpu",
        "spec.workerGroupSpecs[0].replicas",
        "metadata.name",
    }


JUNK = [
    ("spec-string", {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {}, "spec": "x"}),
    ("metadata-list", {"metadata": [], "spec": {}}),
    ("groups-mapping", {"metadata": {"name": "a"}, "spec": {"workerGroupSpecs": {"a": 1}}}),
    ("template-number", {"metadata": {"name": "a"}, "spec": {"headGroupSpec": {"template": 3}}}),
    ("containers-mapping", {"spec": {"headGroupSpec": {"template": {"spec": {"containers": {}}}}}}),
    ("group-is-string", {"spec": {"workerGroupSpecs": ["g"]}}),
    (
        "env-not-list",
        {"spec": {"headGroupSpec": {"template": {"spec": {"containers": [{"env": 1}]}}}}},
    ),
    ("empty", {}),
]


@pytest.mark.parametrize("doc", [j[1] for j in JUNK], ids=[j[0] for j in JUNK])
def test_junk_never_leaks_a_pydantic_error(doc: dict[str, Any]) -> None:
    with pytest.raises(SpecError) as caught:
        parse_cluster(doc)
    assert not isinstance(caught.value, ValidationError)
    assert caught.value.problems
    assert all(isinstance(p, Problem) and p.message and p.fix for p in caught.value.problems)


def test_not_a_mapping() -> None:
    with pytest.raises(SpecError, match="expected a Kubernetes object"):
        parse_cluster(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_find_problems_accepts_a_model(spec_doc: dict[str, Any]) -> None:
    cluster = parse_cluster(spec_doc)
    broken = cluster.model_copy(
        update={"metadata": cluster.metadata.model_copy(update={"name": "Bad_Name"})}
    )
    assert [p.path for p in find_problems(broken)] == ["metadata.name"]


def test_validate_false_checks_types_only(spec_doc: dict[str, Any], spec_edit: Edit) -> None:
    doc = spec_edit(spec_doc, [((*W0, "minReplicas"), 5), ((*W0, "maxReplicas"), 2)])
    assert parse_cluster(doc, validate=False).worker_groups[0].min_replicas == 5
    with pytest.raises(SpecError):
        parse_cluster(spec_edit(doc, [((*W0, "replicas"), "x")]), validate=False)


def test_problem_str() -> None:
    problem = Problem("spec.x", "is wrong", "set it right", line=3)
    assert str(problem) == "spec.x (line 3): is wrong. Fix: set it right"


@pytest.mark.parametrize(("value", "on"), [(None, False), ("false", False), ("true", True)])
def test_runtime_env_agent_annotation(
    spec_doc: dict[str, Any], spec_edit: Edit, value: str | None, on: bool
) -> None:
    annotations = {} if value is None else {"rayscale.io/runtime-env-agent": value}
    cluster = parse_cluster(spec_edit(spec_doc, [(("metadata", "annotations"), annotations)]))
    assert cluster.runtime_env_agent is on

"""Loading YAML: multi-document files, ConfigMaps, and every way a file can be wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from rayscale.spec import LoadedSpec, SpecError, load_file, load_text, sample_path

pytestmark = pytest.mark.unit

CLUSTER = """\
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: {name}
spec:
  headGroupSpec:
    rayStartParams: {{}}
    template:
      spec:
        containers:
        - name: ray-head
          resources: {{limits: {{cpu: "1"}}}}
"""

CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
data:
  run.py: |
    print("hello")
"""

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: extra
"""


def cluster(name: str = "demo") -> str:
    return CLUSTER.format(name=name)


def config_map(name: str) -> str:
    return CONFIG_MAP.format(name=name)


def test_sample_is_multi_document() -> None:
    loaded = load_file(sample_path("autoscaler"))
    assert isinstance(loaded, LoadedSpec)
    assert loaded.cluster.name == "raycluster-autoscaler"
    assert list(loaded.config_maps) == ["ray-example"]
    assert loaded.others == ()
    assert loaded.source == str(sample_path("autoscaler"))


MULTI_DOC = [
    ("cluster-only", [cluster()], [], 0),
    ("cluster-then-configmaps", [cluster(), config_map("a"), config_map("b")], ["a", "b"], 0),
    ("configmap-first", [config_map("a"), cluster()], ["a"], 0),
    ("other-objects-kept", [cluster(), SERVICE, config_map("a")], ["a"], 1),
    ("empty-documents-skipped", ["", cluster(), ""], [], 0),
]


@pytest.mark.parametrize(
    ("documents", "config_maps", "others"),
    [m[1:] for m in MULTI_DOC],
    ids=[m[0] for m in MULTI_DOC],
)
def test_multi_document(documents: list[str], config_maps: list[str], others: int) -> None:
    loaded = load_text("---\n".join(documents))
    assert loaded.cluster.name == "demo"
    assert list(loaded.config_maps) == config_maps
    assert len(loaded.others) == others
    for name in config_maps:
        assert loaded.config_maps[name] == {"run.py": 'print("hello")\n'}


# (id, text, fragment of the one problem's message, its line or None)
BAD_FILES = [
    ("empty-text", "", "no RayCluster document", None),
    ("only-a-configmap", config_map("a"), "no RayCluster document (found: ConfigMap a)", None),
    (
        "two-clusters",
        cluster("one") + "---\n" + cluster("two"),
        'found 2 RayCluster documents ("one" in document 1, "two" in document 2)',
        None,
    ),
    ("unclosed-flow", "apiVersion: ray.io/v1\nspec: {a: [\n", "invalid YAML", 3),
    ("tab-indent", "spec:\n\theadGroupSpec: {}\n", "invalid YAML", 2),
    ("bad-indent", "a: 1\n  b: 2\n", "invalid YAML", 2),
    ("a-list", "- 1\n- 2\n", "expected a Kubernetes object", None),
    ("a-scalar", "just words\n", "got a str", None),
    (
        "duplicate-key",
        cluster().replace("metadata:\n", "metadata:\n  name: first\n"),
        'the key "name" appears twice (lines 4 and 5)',
        5,
    ),
    (
        "configmap-number-value",
        cluster() + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  n: 1\n",
        "ConfigMap values must be strings",
        18,
    ),
    (
        "configmap-twice",
        cluster() + "---\n" + config_map("c") + "---\n" + config_map("c"),
        'ConfigMap "c" is defined twice',
        None,
    ),
]


@pytest.mark.parametrize(
    ("text", "fragment", "line"), [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES]
)
def test_bad_files_raise_one_spec_error(text: str, fragment: str, line: int | None) -> None:
    with pytest.raises(SpecError) as caught:
        load_text(text, source="f.yaml")
    problems = [p for p in caught.value.problems if fragment in p.message]
    assert problems, caught.value.format()
    assert problems[0].line == line
    assert problems[0].fix
    assert caught.value.source == "f.yaml"


def test_list_document_problem_names_the_document() -> None:
    with pytest.raises(SpecError) as caught:
        load_text(cluster() + "---\n- a\n")
    (problem,) = caught.value.problems
    assert problem.path == "document[2]"


def test_tab_gets_a_tab_fix() -> None:
    with pytest.raises(SpecError) as caught:
        load_text("spec:\n\theadGroupSpec: {}\n")
    assert "tab" in caught.value.problems[0].fix


def test_problems_of_the_cluster_carry_lines() -> None:
    text = cluster().replace('cpu: "1"', "cpu: lots")
    with pytest.raises(SpecError) as caught:
        load_text(text)
    (problem,) = caught.value.problems
    assert (problem.path, problem.line) == (
        "spec.headGroupSpec.template.spec.containers[0].resources.limits.cpu",
        12,
    )


def test_missing_field_points_at_its_parent_line() -> None:
    text = cluster().replace("  name: demo\n", "  labels: {}\n")
    with pytest.raises(SpecError) as caught:
        load_text(text)
    (problem,) = caught.value.problems
    assert (problem.path, problem.line) == ("metadata.name", 3)


def test_validate_false_skips_value_rules() -> None:
    text = cluster("Not_A_DNS_Name")
    with pytest.raises(SpecError):
        load_text(text)
    assert load_text(text, validate=False).cluster.name == "Not_A_DNS_Name"


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(cluster() + "---\n" + config_map("scripts"))
    loaded = load_file(path)
    assert (loaded.cluster.name, list(loaded.config_maps), loaded.source) == (
        "demo",
        ["scripts"],
        str(path),
    )


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_file(tmp_path / "nope.yaml")
    assert "cannot read the file" in caught.value.problems[0].message
    assert caught.value.format().startswith(f"{tmp_path / 'nope.yaml'}: ")


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "blob.yaml"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_file(path)


def test_json_is_yaml() -> None:
    text = (
        '{"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "j"}, '
        '"spec": {"headGroupSpec": {"template": {"spec": {"containers": '
        '[{"name": "h", "resources": {"limits": {"cpu": 1}}}]}}}}}'
    )
    assert load_text(text).cluster.name == "j"

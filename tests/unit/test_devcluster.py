"""The process kubelet's pure parts: env and volume resolution, path and service-name
rewriting, the exec record and the log endpoint's tail."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from rayscale.devcluster import execrecord
from rayscale.devcluster.containers import resolve_command, venv_bin
from rayscale.devcluster.logserver import tail_lines
from rayscale.devcluster.podenv import (
    SERVICE_ACCOUNT_MOUNT,
    ContainerConfigError,
    container_mounts,
    expand,
    materialise_volumes,
    resolve_env,
)
from rayscale.devcluster.raypods import is_ray_container, resolve_service_names
from rayscale.local.kubelet import rewrite_paths, rewrite_text

pytestmark = pytest.mark.unit


class DictLookup:
    """ConfigMaps and Secrets from dicts (the kubelet's real lookup is the API server)."""

    def __init__(self, cms: Mapping[str, Mapping[str, str]], secrets: Mapping[str, Any]) -> None:
        self.cms, self.secrets = cms, secrets

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self.cms.get(name)

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        return self.secrets.get(name)


POD: dict[str, Any] = {
    "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "a"}, "uid": "u1"},
    "spec": {"nodeName": "n1", "containers": []},
}
LOOKUP = DictLookup({"cm": {"k": "v", "other": "o"}}, {"sec": {"pw": b"s3"}})


def test_env_resolves_values_field_refs_config_maps_secrets_and_env_from() -> None:
    container = {
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
        "env": [
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "GREETING", "value": "hi $(NAME) $$(NAME) $(UNKNOWN)"},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
            {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
            {
                "name": "OPT",
                "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x", "optional": True}},
            },
        ],
    }
    env = resolve_env(POD, container, LOOKUP, {"BASE": "1"})
    assert env == {
        "BASE": "1", "CM_k": "v", "CM_other": "o", "NAME": "p",
        "GREETING": "hi p $(NAME) $(UNKNOWN)", "NODE": "n1", "APP": "a", "IP": "127.0.0.1",
        "PW": "s3", "K": "v",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("var", "needle"),
    [
        ({"secretKeyRef": {"name": "sec", "key": "missing"}}, "key 'missing' of Secret ns/sec"),
        ({"configMapKeyRef": {"name": "gone", "key": "k"}}, "ConfigMap ns/gone"),
    ],
)
def test_a_missing_reference_is_a_config_error_naming_it(var: Any, needle: str) -> None:
    container = {"env": [{"name": "X", "valueFrom": var}]}
    with pytest.raises(ContainerConfigError, match=needle):
        resolve_env(POD, container, LOOKUP)


def test_volumes_become_files_and_mounts_map_container_paths(tmp_path: Path) -> None:
    pod = {
        **POD,
        "spec": {
            "volumes": [
                {
                    "name": "c",
                    "configMap": {"name": "cm", "items": [{"key": "k", "path": "a/k.txt"}]},
                },
                {"name": "s", "secret": {"secretName": "sec"}},
                {"name": "e", "emptyDir": {}},
            ]
        },
    }
    sa = tmp_path / "sa"
    volumes = materialise_volumes(pod, tmp_path, LOOKUP, sa)
    assert (volumes["c"] / "a" / "k.txt").read_text() == "v"
    assert not (volumes["c"] / "other").exists()  # items select keys
    assert (volumes["s"] / "pw").read_bytes() == b"s3"
    assert volumes["e"].is_dir()
    container = {
        "volumeMounts": [
            {"name": "c", "mountPath": "/etc/c"},
            {"name": "s", "mountPath": "/etc/s/pw", "subPath": "pw"},
        ]
    }
    mounts = container_mounts(container, volumes)
    assert mounts == {
        SERVICE_ACCOUNT_MOUNT: sa, "/etc/c": volumes["c"], "/etc/s/pw": volumes["s"] / "pw"
    }  # fmt: skip
    with pytest.raises(ContainerConfigError, match="hostPath"):
        materialise_volumes(
            {**POD, "spec": {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}},
            tmp_path, LOOKUP, None,
        )  # fmt: skip


def test_paths_are_rewritten_inside_arguments_and_only_at_path_boundaries() -> None:
    mounts = {"/home/ray/samples": Path("/tmp/x"), "/etc/cfg/": Path("/tmp/c")}
    assert rewrite_paths(["/home/ray/samples/a.py", "/home/ray/samplesX"], mounts) == [
        "/tmp/x/a.py",
        "/home/ray/samplesX",
    ]
    text = "python /home/ray/samples/a.py; open('/etc/cfg/k') /a/etc/cfg/k"
    assert rewrite_text(text, mounts) == "python /tmp/x/a.py; open('/tmp/c/k') /a/etc/cfg/k"
    assert expand("$(A)-$(B)", {"A": "1"}) == "1-$(B)"


def test_head_service_names_resolve_to_the_real_gcs_address_or_loopback() -> None:
    key = ("ns1", "rc")
    gcs = "127.0.0.1:40001"
    assert resolve_service_names("--address=rc-head-svc.ns1.svc.cluster.local:6379", key, gcs) == (
        "--address=127.0.0.1:40001"
    )
    assert resolve_service_names("http://rc-head-svc:8265/x", key, gcs) == "http://127.0.0.1:8265/x"
    assert resolve_service_names("xrc-head-svc:6379 rc-head-svc.ns2", key, gcs) == (
        "xrc-head-svc:6379 rc-head-svc.ns2"
    )


def test_ray_containers_are_recognised_and_venv_commands_resolved() -> None:
    ray = {"command": ["/bin/bash", "-lc", "--"], "args": ["ulimit -n 1; ray start --head"]}
    assert is_ray_container(POD, ray)
    assert not is_ray_container(POD, {"command": ["python3", "-c", "print('ray start')"]})
    assert resolve_command(["rayscale", "autoscaler"])[0] == str(venv_bin() / "rayscale")
    assert resolve_command(["/bin/echo", "x"]) == ["/bin/echo", "x"]


def test_exec_record_round_trip_and_errors(tmp_path: Path) -> None:
    path = execrecord.record_path(tmp_path, "ns", "pod", "c")
    record = execrecord.ExecRecord(env={"A": "1"}, mounts={"/m": "/tmp/m"}, cwd=None)
    execrecord.write_record(path, record)
    assert execrecord.read_record(path) == record
    assert path.stat().st_mode & 0o777 == 0o600
    assert record.argv(["cat", "/m/f"]) == ["cat", "/tmp/m/f"]
    with pytest.raises(execrecord.ExecRecordError, match="no exec record"):
        execrecord.read_record(tmp_path / "missing.exec.json")


def test_tail_lines() -> None:
    assert tail_lines(b"a\nb\nc\n", 2) == b"b\nc\n"
    assert tail_lines(b"a\nb", 5) == b"a\nb"
    assert tail_lines(b"a\n", 0) == b""

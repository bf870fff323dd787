"""Read a Ray pod manifest (from :mod:`rayscale.builders.pods`) as a local ``ray start``.

Pure. This is the local runtime's stand-in for a kubelet: it executes the same pod spec the
operator would apply, translated to one machine:

- the Ray container's ``ray start`` command line is parsed back from its args; resource flags
  become :class:`NodeResources`, and flags that name in-cluster addresses or fixed ports
  (``--address``, ``--dashboard-host``, port flags, ``--node-ip-address``) are dropped, since
  the local runtime gives every node free loopback ports and the head's real GCS address;
- the container env is resolved (literal values and ``fieldRef`` to the pod's name,
  namespace and labels); ``RAY_ADDRESS`` is replaced by the local head's address;
- ConfigMap volumes mounted into the container become directories on disk; a path under a
  mountPath (e.g. ``/home/ray/samples/detached_actor.py``) maps to its local copy.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rayscale.local.raynodes import NodeResources
from rayscale.protocol import GROUP_LABEL

# Flags the local runtime owns: in-cluster addresses, fixed ports, its own start options.
_LOCAL_FLAGS = frozenset(
    {
        "address", "block", "head", "dashboard-host", "node-ip-address", "port",
        "dashboard-port", "ray-client-server-port", "node-manager-port", "object-manager-port",
        "metrics-export-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
        "runtime-env-agent-port", "min-worker-port", "max-worker-port", "temp-dir",
        "object-store-memory", "no-monitor", "include-dashboard", "disable-usage-stats",
        "log-style", "log-color",
    }
)  # fmt: skip
_RESOURCE_FLAGS = frozenset({"num-cpus", "num-gpus", "memory", "resources"})
_FIELD_LABEL = re.compile(r"metadata\.labels\['([^']+)'\]")


class PodSpecError(ValueError):
    """The pod manifest has no runnable ``ray start`` command."""


@dataclass(frozen=True)
class LocalPod:
    name: str
    group: str
    head: bool
    resources: NodeResources
    extra_args: tuple[str, ...]
    env: Mapping[str, str]


def ray_start_argv(pod: Mapping[str, Any]) -> list[str]:
    """The ``ray start ...`` argv inside the pod's Ray container command."""
    container = pod["spec"]["containers"][0]
    script = " ".join([*container.get("command", []), *container.get("args", [])])
    for part in script.split(";"):
        argv = shlex.split(part)
        for i in range(len(argv) - 1):
            if Path(argv[i]).name == "ray" and argv[i + 1] == "start":
                return argv[i:]
    raise PodSpecError(f"pod {pod['metadata']['name']}: no `ray start` in the Ray container")


def _flags(argv: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for arg in argv[2:]:
        if not arg.startswith("--"):
            raise PodSpecError(f"unexpected argument {arg!r} in `ray start`")
        key, _, value = arg[2:].partition("=")
        out[key] = value or "true"
    return out


def _resources(flags: Mapping[str, str]) -> NodeResources:
    custom = json.loads(flags["resources"]) if "resources" in flags else {}
    return NodeResources(
        num_cpus=int(float(flags["num-cpus"])) if "num-cpus" in flags else None,
        num_gpus=int(float(flags["num-gpus"])) if "num-gpus" in flags else None,
        memory=int(float(flags["memory"])) if "memory" in flags else None,
        custom={str(k): float(v) for k, v in custom.items()},
    )


_FIELD_ANNOTATION = re.compile(r"metadata\.annotations\['([^']+)'\]")
LOCAL_IP = "127.0.0.1"  # every pod's (and the node's) address on one machine


def field_value(pod: Mapping[str, Any], path: str) -> str | None:
    """A downward-API ``fieldRef`` value of the pod (None if the field is unknown or unset)."""
    meta, spec = pod["metadata"], pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace", "default"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": LOCAL_IP,
        "status.podIPs": LOCAL_IP,
        "status.hostIP": LOCAL_IP,
        "status.hostIPs": LOCAL_IP,
    }
    if path in simple:
        value = simple[path]
        return None if value is None else str(value)
    for pattern, key in ((_FIELD_LABEL, "labels"), (_FIELD_ANNOTATION, "annotations")):
        match = pattern.fullmatch(path)
        if match:
            found = (meta.get(key) or {}).get(match.group(1))
            return None if found is None else str(found)
    if path in ("metadata.labels", "metadata.annotations"):
        items = (meta.get(path.split(".")[1]) or {}).items()
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items))
    return None


def container_env(pod: Mapping[str, Any], head_address: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for var in pod["spec"]["containers"][0].get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif "fieldRef" in var.get("valueFrom", {}):
            value = field_value(pod, var["valueFrom"]["fieldRef"]["fieldPath"])
            if value is not None:
                env[var["name"]] = value
    env["RAY_ADDRESS"] = head_address
    return env


def config_map_mounts(pod: Mapping[str, Any]) -> dict[str, tuple[str, dict[str, str]]]:
    """mountPath -> (ConfigMap name, {key: relative path}) for the Ray container."""
    volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    out: dict[str, tuple[str, dict[str, str]]] = {}
    for mount in pod["spec"]["containers"][0].get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        cm = volume.get("configMap")
        if cm:
            items = {i["key"]: i.get("path", i["key"]) for i in cm.get("items", [])}
            out[mount["mountPath"]] = (cm["name"], items)
    return out


def local_pod(pod: Mapping[str, Any], head_address: str = "") -> LocalPod:
    argv = ray_start_argv(pod)
    flags = _flags(argv)
    extra = tuple(
        f"--{k}" if v == "true" else f"--{k}={v}"
        for k, v in sorted(flags.items())
        if k not in _LOCAL_FLAGS and k not in _RESOURCE_FLAGS
    )
    labels = pod["metadata"].get("labels", {})
    return LocalPod(
        name=pod["metadata"]["name"],
        group=labels.get(GROUP_LABEL, ""),
        head="head" in flags,
        resources=_resources(flags),
        extra_args=extra,
        env=container_env(pod, head_address),
    )


def check_config_maps(pod: Mapping[str, Any], config_maps: Mapping[str, Mapping[str, str]]) -> None:
    """Every ConfigMap the pod mounts must be defined; the error names it and the fix."""
    for mount_path, (cm_name, _items) in config_map_mounts(pod).items():
        if cm_name not in config_maps:
            raise PodSpecError(
                f"volume mount {mount_path} needs ConfigMap {cm_name!r}, which the file does "
                "not define; add it as another YAML document (---) in the same file"
            )


def materialise_config_maps(
    pod: Mapping[str, Any], config_maps: Mapping[str, Mapping[str, str]], root: Path
) -> dict[str, Path]:
    """Write the pod's ConfigMap mounts under ``root``; return mountPath -> local dir.

    A mount of a ConfigMap the file does not define is an error naming the ConfigMap.
    """
    check_config_maps(pod, config_maps)
    out: dict[str, Path] = {}
    for mount_path, (cm_name, items) in config_map_mounts(pod).items():
        target = root / "volumes" / cm_name
        write_volume_files(config_maps[cm_name], items, target, 0o755)
        out[mount_path] = target
    return out


def write_volume_files(
    data: Mapping[str, str | bytes], items: Mapping[str, str], target: Path, mode: int
) -> None:
    """Write a ConfigMap's or Secret's keys as files under ``target``, as a kubelet projects
    them: with ``items`` (key -> relative path) only those keys, at those paths."""
    target.mkdir(parents=True, exist_ok=True)
    for key, content in data.items():
        if items and key not in items:
            continue
        path = target / (items.get(key, key) if items else key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        path.chmod(mode)


def rewrite_paths(argv: Sequence[str], mounts: Mapping[str, Path]) -> list[str]:
    """Map container paths under a mountPath to their local copies (longest mount first),
    wherever they appear in an argument (``bash -c "python /home/ray/x.py"`` too)."""
    return [rewrite_text(arg, mounts) for arg in argv]


def rewrite_text(text: str, mounts: Mapping[str, Path]) -> str:
    """Replace every absolute path under a mountPath in ``text`` by its local copy: a mount
    path matches where it starts a path (not inside a longer one) and ends at ``/`` or at the
    end of the path."""
    prefixes = sorted((m.rstrip("/") for m in mounts if m.rstrip("/")), key=len, reverse=True)
    if not prefixes:
        return text
    local = {m.rstrip("/"): str(p) for m, p in mounts.items()}
    pattern = re.compile(
        r"(?<![\w./-])(" + "|".join(re.escape(p) for p in prefixes) + r")(?=/|$|[^\w.-])"
    )
    return pattern.sub(lambda m: local[m.group(1)], text)

"""What a kubelet gives a container before it starts: its environment and its volumes.

Resolved from the pod object and the ConfigMaps/Secrets it names (through a :class:`Lookup`),
the way the kubelet does it:
- env: ``value`` (with ``$(VAR)`` expansion of earlier variables), ``valueFrom.fieldRef``
  (the downward API: :func:`rayscale.local.kubelet.field_value`), ``configMapKeyRef``,
  ``secretKeyRef`` and ``envFrom`` (with ``prefix``), honouring ``optional``;
  ``resourceFieldRef`` is not supported (left unset);
- volumes: ConfigMap and Secret volumes (with ``items``) become files in a per-pod directory,
  ``emptyDir`` an empty directory, and the service account's token directory is mounted
  where Kubernetes mounts it. Other volume types are not supported and are reported.

A reference to a missing ConfigMap, Secret or key raises :class:`ContainerConfigError`, which
the kubelet reports as Kubernetes does (``CreateContainerConfigError``) and retries.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from rayscale.local.kubelet import field_value, write_volume_files

SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")

Manifest = Mapping[str, Any]


class ContainerConfigError(RuntimeError):
    """A container cannot be configured yet (a missing ConfigMap, Secret, key or account)."""


class Lookup(Protocol):
    """Reads what a pod refers to; None when it does not exist."""

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None: ...

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | None: ...


def decode_secret(data: Mapping[str, str] | None) -> dict[str, bytes]:
    """A Secret's ``data`` (base64 values) as bytes."""
    return {k: base64.b64decode(v) for k, v in (data or {}).items()}


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined variables are replaced, ``$$`` is ``$``,
    unknown references stay as written."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR_REF.sub(sub, text)


def resolve_env(
    pod: Manifest, container: Manifest, lookup: Lookup, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The container's environment: ``base`` (what the kubelet adds), then ``envFrom``, then
    ``env`` (later entries win, as in Kubernetes)."""
    namespace = pod["metadata"].get("namespace", "default")
    env: dict[str, str] = dict(base or {})
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        data = _env_source(namespace, source, lookup)
        env.update({f"{prefix}{k}": v for k, v in data.items()})
    for var in container.get("env") or []:
        value = _env_value(pod, namespace, var, lookup, env)
        if value is not None:
            env[var["name"]] = value
    return env


def _env_source(namespace: str, source: Manifest, lookup: Lookup) -> dict[str, str]:
    if "configMapRef" in source:
        ref = source["configMapRef"]
        cm = lookup.config_map(namespace, ref["name"])
        if cm is None:
            _missing(ref, f"ConfigMap {namespace}/{ref['name']} (envFrom)")
            return {}
        return dict(cm)
    if "secretRef" in source:
        ref = source["secretRef"]
        secret = lookup.secret(namespace, ref["name"])
        if secret is None:
            _missing(ref, f"Secret {namespace}/{ref['name']} (envFrom)")
            return {}
        return {k: v.decode(errors="replace") for k, v in secret.items()}
    return {}


def _env_value(
    pod: Manifest, namespace: str, var: Manifest, lookup: Lookup, env: Mapping[str, str]
) -> str | None:
    if "value" in var:
        return expand(str(var["value"]), env)
    source = var.get("valueFrom") or {}
    if "fieldRef" in source:
        return field_value(pod, source["fieldRef"]["fieldPath"])
    if "configMapKeyRef" in source:
        ref = source["configMapKeyRef"]
        cm = lookup.config_map(namespace, ref["name"])
        if cm is None or ref["key"] not in cm:
            _missing(ref, f"key {ref['key']!r} of ConfigMap {namespace}/{ref['name']}")
            return None
        return cm[ref["key"]]
    if "secretKeyRef" in source:
        ref = source["secretKeyRef"]
        secret = lookup.secret(namespace, ref["name"])
        if secret is None or ref["key"] not in secret:
            _missing(ref, f"key {ref['key']!r} of Secret {namespace}/{ref['name']}")
            return None
        return secret[ref["key"]].decode(errors="replace")
    return None


def _missing(ref: Manifest, what: str) -> None:
    if not ref.get("optional", False):
        raise ContainerConfigError(f"{what} not found (env of the container)")


# -- volumes ---------------------------------------------------------------------------------


def materialise_volumes(
    pod: Manifest, pod_dir: Path, lookup: Lookup, service_account_dir: Path | None
) -> dict[str, Path]:
    """Write the pod's volumes under ``<pod_dir>/volumes``; return volume name -> local dir.

    The service account's directory (already written by the kubelet) is returned under the
    name ``SERVICE_ACCOUNT_MOUNT``; :func:`container_mounts` mounts it where Kubernetes does.
    """
    namespace = pod["metadata"].get("namespace", "default")
    out: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        target = pod_dir / "volumes" / name
        if "configMap" in volume:
            source = volume["configMap"]
            cm = lookup.config_map(namespace, source["name"])
            if cm is None:
                _missing(source, f"ConfigMap {namespace}/{source['name']} (volume {name!r})")
            mode = int(source.get("defaultMode", 0o644))
            write_volume_files(cm or {}, _items(source), target, mode)
        elif "secret" in volume:
            source = volume["secret"]
            secret = lookup.secret(namespace, source["secretName"])
            if secret is None:
                _missing(source, f"Secret {namespace}/{source['secretName']} (volume {name!r})")
            mode = int(source.get("defaultMode", 0o644)) | 0o600  # we run as the same user
            write_volume_files(secret or {}, _items(source), target, mode)
        elif "emptyDir" in volume:
            target.mkdir(parents=True, exist_ok=True)
        else:
            kinds = sorted(k for k in volume if k != "name")
            raise ContainerConfigError(
                f"volume {name!r}: type {kinds} is not supported by the process kubelet "
                "(configMap, secret and emptyDir are)"
            )
        out[name] = target
    if service_account_dir is not None:
        out[SERVICE_ACCOUNT_MOUNT] = service_account_dir
    return out


def _items(source: Manifest) -> dict[str, str]:
    return {i["key"]: i.get("path", i["key"]) for i in source.get("items") or []}


def container_mounts(container: Manifest, volumes: Mapping[str, Path]) -> dict[str, Path]:
    """mountPath -> local path for one container (``subPath`` included)."""
    out: dict[str, Path] = {}
    if SERVICE_ACCOUNT_MOUNT in volumes:
        out[SERVICE_ACCOUNT_MOUNT] = volumes[SERVICE_ACCOUNT_MOUNT]
    for mount in container.get("volumeMounts") or []:
        local = volumes.get(mount["name"])
        if local is None:
            raise ContainerConfigError(
                f"volumeMount {mount['mountPath']!r} names volume {mount['name']!r}, which the "
                "pod does not define"
            )
        sub = mount.get("subPath")
        out[mount["mountPath"]] = local / sub if sub else local
    return out

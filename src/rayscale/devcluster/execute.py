"""``rayscale exec --kubernetes NAME -- CMD``: what ``kubectl exec`` into the head would do.

The process kubelet has no streaming exec, so this finds the RayCluster's head pod through
the API server, follows its ``spec.nodeName`` to the process kubelet that runs it (the Node
carries the kubelet's state directory in an annotation), reads the container's exec record
(:mod:`rayscale.devcluster.execrecord`) and runs CMD locally with that container's
environment, its working directory, and container paths (``/home/ray/samples/...``) mapped to
their local copies.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rayscale.devcluster.execrecord import (
    STATE_DIR_ANNOTATION,
    ExecRecord,
    read_record,
    record_path,
)
from rayscale.protocol import CLUSTER_LABEL, NODE_TYPE_LABEL

# Names a container command uses for the interpreter and Ray's CLIs in Ray's image; here they
# are this installation's (the same ``ray`` the nodes run).
_IMAGE_COMMANDS = ("python", "python3", "ray", "rayscale")


class ExecError(RuntimeError):
    """The head, its container or its kubelet cannot be found; the message says how to check."""


def local_command(argv: Sequence[str]) -> list[str]:
    """``argv`` with the image's interpreter and Ray CLIs resolved to this installation's."""
    if not argv or argv[0] not in _IMAGE_COMMANDS:
        return list(argv)
    if argv[0] in ("python", "python3"):
        return [sys.executable, *argv[1:]]
    return [str(Path(sys.executable).with_name(argv[0])), *argv[1:]]


def head_record(
    client: Any, namespace: str, cluster: str, container: str | None
) -> tuple[str, ExecRecord]:
    """The head pod's name and the exec record of ``container`` (default: its first)."""
    from lightkube.resources.core_v1 import Node, Pod

    labels = {CLUSTER_LABEL: cluster, NODE_TYPE_LABEL: "head"}
    pods = [p for p in client.list(Pod, namespace=namespace, labels=labels)]
    pods = [p for p in pods if p.metadata.deletionTimestamp is None]
    if not pods:
        raise ExecError(
            f"no head pod of RayCluster {cluster!r} in namespace {namespace!r} "
            f"(check: kubectl get pods -n {namespace} -l {CLUSTER_LABEL}={cluster})"
        )
    pod = pods[0]
    name = pod.metadata.name
    names = [c.name for c in pod.spec.containers]
    chosen = container or names[0]
    if chosen not in names:
        raise ExecError(f"pod {name} has no container {chosen!r}; it has {', '.join(names)}")
    phase = pod.status.phase if pod.status else None
    if phase != "Running":
        raise ExecError(f"pod {name} is {phase or 'not scheduled'}, not Running yet")
    node = client.get(Node, pod.spec.nodeName)
    state_dir = (node.metadata.annotations or {}).get(STATE_DIR_ANNOTATION)
    if not state_dir:
        raise ExecError(
            f"pod {name} runs on node {pod.spec.nodeName}, which is not a rayscale process "
            "kubelet: use `kubectl exec` there"
        )
    return name, read_record(record_path(Path(state_dir), namespace, name, chosen))


def exec_environ(record: ExecRecord) -> dict[str, str]:
    """The container's env; PATH falls back to ours (a container without PATH gets the
    image's default; here that is this machine's)."""
    env = dict(record.env)
    env.setdefault("PATH", os.environ.get("PATH", "/usr/bin:/bin"))
    return env

"""``rayscale operator``: kopf watches RayClusters, RayJobs and their submitter Jobs;
handlers stay thin.

Every event only *triggers* a reconciler: :class:`ClusterReconciler` for a cluster (a
RayCluster event from kopf by its name, a pod change from the
:class:`~rayscale.kube.pods.PodInformer`, the pods' LIST+WATCH that passes read their pods
from, by its ``ray.io/cluster`` label) and :class:`JobReconciler` for a RayJob (by its name,
a submitter Job by its ``ray.io/originated-from-cr-name`` label, a RayCluster event for the
RayJobs waiting on it). The reconcilers decide with pure functions and coalesce bursts of
events into passes, per object and concurrently across objects. kopf runs standalone (no
peering objects) and keeps no state on the objects.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kopf
import yaml
from lightkube import AsyncClient, KubeConfig

from rayscale.builders.pods import CREATED_BY
from rayscale.builders.rayjob import ORIGIN_CRD_LABEL, ORIGIN_NAME_LABEL
from rayscale.kube.jobs import JobReconciler
from rayscale.kube.pods import PodInformer
from rayscale.kube.reconciler import ClusterReconciler

log = logging.getLogger("rayscale.kube.operator")


def connection_from_kubeconfig(path: Path) -> kopf.ConnectionInfo:
    """kopf credentials from a kubeconfig's current context (embedded or file certs, token)."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    current = doc.get("current-context")
    context = next(c["context"] for c in doc["contexts"] if c["name"] == current)
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in doc["users"] if u["name"] == context["user"])

    def data(key: str) -> bytes | None:
        value = cluster.get(key) if key.startswith("certificate-authority") else user.get(key)
        return base64.b64decode(value) if value else None

    return kopf.ConnectionInfo(
        server=cluster["server"],
        ca_data=data("certificate-authority-data"),
        ca_path=cluster.get("certificate-authority"),
        certificate_data=data("client-certificate-data"),
        certificate_path=user.get("client-certificate"),
        private_key_data=data("client-key-data"),
        private_key_path=user.get("client-key"),
        token=user.get("token"),
        default_namespace=context.get("namespace"),
    )


def build_registry(
    kubeconfig: Path | None, namespaces: tuple[str, ...] = ()
) -> kopf.OperatorRegistry:
    """The operator's handlers; ``kubeconfig`` None means in-cluster credentials, no
    ``namespaces`` all of them."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if kubeconfig is None:
            return kopf.login_with_service_account(**kwargs)
        return connection_from_kubeconfig(kubeconfig)

    @kopf.on.startup(registry=registry)
    async def startup(memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False  # our own Events say what matters
        settings.scanning.disabled = True
        config = (
            KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_service_account()
        )
        memo.client = AsyncClient(config=config, field_manager=CREATED_BY)
        memo.pods = PodInformer(
            memo.client, namespaces, on_change=lambda ns, name: memo.reconciler.trigger(ns, name)
        )
        memo.reconciler = ClusterReconciler(memo.client, pods=memo.pods)
        memo.jobs = JobReconciler(memo.client)
        memo.pods.start()

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        await memo.reconciler.close()
        await memo.jobs.close()
        await memo.pods.close()
        await memo.client.close()

    @kopf.on.event("ray.io", "v1", "rayclusters", registry=registry)
    async def cluster_event(name: str, namespace: str | None, memo: Any, **_: Any) -> None:
        memo.reconciler.trigger(namespace or "default", name)
        memo.jobs.cluster_changed(namespace or "default", name)

    @kopf.on.event("ray.io", "v1", "rayjobs", registry=registry)
    async def job_event(name: str, namespace: str | None, memo: Any, **_: Any) -> None:
        memo.jobs.trigger(namespace or "default", name)

    @kopf.on.event("batch", "v1", "jobs", labels={ORIGIN_CRD_LABEL: "RayJob"}, registry=registry)
    async def submitter_event(
        labels: Mapping[str, str], namespace: str | None, memo: Any, **_: Any
    ) -> None:
        memo.jobs.trigger(namespace or "default", labels.get(ORIGIN_NAME_LABEL, ""))

    return registry


async def run(
    kubeconfig: Path | None,
    *,
    namespaces: tuple[str, ...] = (),
    stop_flag: threading.Event | asyncio.Event | None = None,
    ready_flag: threading.Event | None = None,
    memo: kopf.Memo | None = None,
) -> None:
    """Run the operator until ``stop_flag`` is set (or forever)."""
    await kopf.operator(
        registry=build_registry(kubeconfig, namespaces),
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        memo=memo if memo is not None else kopf.Memo(),
    )


def default_kubeconfig() -> Path | None:
    """$KUBECONFIG, else ~/.kube/config, else None (in-cluster service account)."""
    env = os.environ.get("KUBECONFIG")
    if env:
        return Path(env.split(os.pathsep)[0])
    home = Path.home() / ".kube" / "config"
    if home.is_file() and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        return home
    return None

"""``rayscale autoscaler``: the autoscaler sidecar of a RayCluster's head pod.

A composition root (like the local supervisor): the same loop and planner as locally, with
Ray's GCS as the :class:`RayView` (:mod:`rayscale.ray.gcs`) and the RayCluster CR as the
backend (:mod:`rayscale.kube`). The CR and its pods come from a watch-fed cache, so the loop
may read several times a second without loading the API server.

Its log carries every decision with its reason (the loop logs them) and the ``ray status``
style block whenever it changes, and at least every minute, as Ray's sidecar does.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightkube import Client, KubeConfig

from rayscale.autoscaler.loop import Autoscaler, TickReport
from rayscale.autoscaler.scale import RayView
from rayscale.autoscaler.status import build_status, format_status, ray_status_payload
from rayscale.kube.backend import KubeBackend
from rayscale.kube.cache import ClusterCache
from rayscale.kube.resources import cluster_spec
from rayscale.planner import GroupConfig
from rayscale.spec import SpecError, to_group_configs
from rayscale.waiting import StopWaiting, wait_until

log = logging.getLogger("rayscale.sidecar")

STATUS_EVERY_S = 60.0
RAY_STATUS_REFRESH_S = 10.0
DEFAULT_GCS = "127.0.0.1:6379"  # the sidecar shares the head pod's network


SERVICE_ACCOUNT_DIR_ENV = "RAYSCALE_SERVICE_ACCOUNT_DIR"  # set by the process kubelet


def kube_config(kubeconfig: Path | None) -> KubeConfig:
    """A kubeconfig file, else the pod's service account (in-cluster). Under the process
    kubelet (``rayscale.devcluster``) the account's files are in ``$RAYSCALE_SERVICE_ACCOUNT_DIR``
    instead of ``/var/run/secrets/kubernetes.io/serviceaccount``."""
    if kubeconfig:
        return KubeConfig.from_file(kubeconfig)
    account = os.environ.get(SERVICE_ACCOUNT_DIR_ENV)
    if account:
        return KubeConfig.from_service_account(service_account=account)
    return KubeConfig.from_service_account()


@dataclass
class StatusLog:
    """Logs the status block when it changes (or every ``every_s``) and publishes Ray's own
    ``ray status`` document; one per sidecar."""

    name: str
    address: str
    view: RayView
    loop_errors: Callable[[], int]
    every_s: float = STATUS_EVERY_S
    clock: Callable[[], float] = time.monotonic
    _logged: tuple[float, Any] = (float("-inf"), None)
    _published: tuple[float, Any] = (float("-inf"), None)
    lines: list[str] = field(default_factory=list)

    def __call__(self, report: TickReport) -> None:
        status = build_status(
            self.name, self.address, report.groups, report, (), self.loop_errors()
        )
        key = status.model_dump(exclude={"updated_at", "iteration_seconds", "plan_seconds"})
        now = self.clock()
        if key != self._logged[1] or now - self._logged[0] >= self.every_s:
            text = format_status(status)
            log.info("\n%s", text)
            self.lines = text.splitlines()
            self._logged = (now, key)
        if key != self._published[1] or now - self._published[0] >= RAY_STATUS_REFRESH_S:
            try:
                self.view.publish_status(ray_status_payload(status))
                self._published = (now, key)
            except Exception as exc:
                log.warning("could not publish ray status: %s", exc)


class SpecGroups:
    """The worker groups of the cached RayCluster, parsed again when its generation changes
    (a user edited the spec), for :class:`Autoscaler`'s ``groups_source``.

    An edit that does not validate (say minReplicas > maxReplicas, which the CRD admits and
    KubeRay's operator rejects) is logged once with each field and its fix, and the groups in
    force stay until a valid edit.
    """

    def __init__(self, cache: ClusterCache, raw: Mapping[str, Any]) -> None:
        self.cache = cache
        self.generation = _generation(raw)
        self.groups = to_group_configs(cluster_spec(raw))  # at start, a bad spec is fatal
        self._error = ""  # the problem last logged, so it is logged once

    def __call__(self) -> tuple[GroupConfig, ...]:
        raw = self.cache.cluster()
        if raw is None or _generation(raw) == self.generation:
            return self.groups
        self.generation = _generation(raw)
        meta = raw["metadata"]
        try:
            self.groups = to_group_configs(cluster_spec(raw))
        except SpecError as err:
            # Our own patches bump the generation too: say it again only if it changed.
            if err.format() != self._error:
                self._error = err.format()
                log.warning(
                    "RayCluster %s/%s generation %s is invalid; autoscaling goes on with the "
                    "groups in force until it is fixed:\n%s",
                    meta.get("namespace"), meta.get("name"), self.generation, self._error,
                )  # fmt: skip
        else:
            self._error = ""
        return self.groups


def _generation(raw: Mapping[str, Any]) -> int:
    return int(raw.get("metadata", {}).get("generation") or 0)


def connect_gcs(address: str, stop: threading.Event, timeout: float) -> RayView:
    """Ray's GCS at ``address``, once it answers (the sidecar may start before Ray).

    Through the lean gRPC client: importing Ray's own client would cost about 40 MB of the
    sidecar's 100 MB budget (``rayscale bench sidecar``).
    """
    from rayscale.ray.gcs import GcsView
    from rayscale.ray.gcs_grpc import GrpcGcsClient

    view = GcsView(address, client=GrpcGcsClient(address))  # the channel reconnects itself

    def attempt() -> RayView | None:
        if stop.is_set():
            raise StopWaiting("stopped before Ray's GCS answered")
        try:
            view.nodes_and_demand()
            return view
        except Exception as exc:
            log.info("waiting for Ray's GCS at %s: %s", address, exc)
            return None

    return wait_until(attempt, timeout, f"Ray's GCS at {address}", interval=1.0)


def run(
    name: str,
    namespace: str,
    *,
    config: KubeConfig,
    view: Callable[[threading.Event], RayView],
    stop: threading.Event,
    period: float = 1.0,
    read_period: float = 0.1,
    on_ready: Callable[[Autoscaler, StatusLog], None] | None = None,
    address: str = DEFAULT_GCS,
) -> None:
    """Run the sidecar until ``stop`` is set."""
    client = Client(config=config, field_manager="rayscale-autoscaler")
    with ClusterCache(config, name, namespace) as cache:
        raw = cache.cluster()
        if raw is None:
            raise LookupError(
                f"RayCluster {namespace}/{name} not found: check --cluster/--namespace "
                "(RAY_CLUSTER_NAME/RAY_CLUSTER_NAMESPACE)"
            )
        spec_groups = SpecGroups(cache, raw)
        groups = spec_groups.groups
        ray = view(stop)
        backend = KubeBackend(client, cache)
        loop: Autoscaler | None = None
        status = StatusLog(name, address, ray, lambda: loop.failures if loop else 0)
        loop = Autoscaler(groups, ray, backend, on_tick=status, groups_source=spec_groups)
        log.info(
            "autoscaling RayCluster %s/%s: groups %s", namespace, name,
            ", ".join(f"{g.name} [{g.min_replicas}..{g.max_replicas}]" for g in groups),
        )  # fmt: skip
        if on_ready is not None:
            on_ready(loop, status)
        try:
            loop.run(stop, read_period, period)
        finally:
            client.close()

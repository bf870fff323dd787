"""`rayscale autoscaler` (rayscale.sidecar) against a real kube-apiserver: the composed
sidecar (watch-fed cache, KubeBackend, the loop, the status log) patches the CR on demand
and logs its decision and the status block. Ray's GCS is stood in for (no Ray in this tier).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from lightkube.codecs import from_dict

from rayscale.autoscaler.loop import Autoscaler
from rayscale.kube.resources import RayCluster
from rayscale.planner import BundleDemand, Demand
from rayscale.sidecar import StatusLog, run
from rayscale.testing.kube import KubeSession
from rayscale.testing.kube_ray import retry_not_found, sample_cluster
from rayscale.waiting import wait_until
from tests.k8s.ray_fixtures import FakeGcs, ns, ray_crds

__all__ = ["ns", "ray_crds"]

pytestmark = pytest.mark.k8s

NAME = "raycluster-autoscaler"


def test_the_sidecar_scales_the_cr_and_logs_decisions_and_status(
    kube: KubeSession, ns: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    doc = sample_cluster("autoscaler")
    retry_not_found(lambda: kube.client.create(from_dict(doc), namespace=ns))
    gcs = FakeGcs(f"{NAME}-head-aaaaa")
    stop, ready = threading.Event(), threading.Event()
    parts: dict[str, Any] = {}

    def on_ready(loop: Autoscaler, status: StatusLog) -> None:
        parts.update(loop=loop, status=status)
        ready.set()

    errors: list[BaseException] = []

    def main() -> None:
        try:
            run(
                NAME, ns, config=kube.config(), view=lambda s: gcs, stop=stop,
                period=0.2, read_period=0.05, on_ready=on_ready,
            )  # fmt: skip
        except BaseException as exc:
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=main, name="sidecar", daemon=True)
    thread.start()
    try:
        assert ready.wait(30) and not errors, errors
        gcs.demand = Demand(bundles=(BundleDemand({"CPU": 1.0}, 2),))
        wait_until(
            lambda: (
                kube.client.get(RayCluster, NAME, namespace=ns).spec["workerGroupSpecs"][0][
                    "replicas"
                ]
                == 2
            ),
            30,
            "replicas 2 in the CR",
        )
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive() and not errors, errors
    text = caplog.text
    assert "launch:" in text  # the decision, with its reason
    lines = parts["status"].lines
    assert lines[0].startswith("======== Autoscaler status:")
    assert " {'CPU': 1.0}: 2+ pending tasks/actors" in lines
    assert any(line.startswith(" small-group: desired 2 ") for line in lines), lines
    assert parts["loop"].failures == 0

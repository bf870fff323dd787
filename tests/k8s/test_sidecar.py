"""`rayscale autoscaler` (rayscale.sidecar) against a real kube-apiserver: the composed
sidecar (watch-fed cache, KubeBackend, the loop, the status log) patches the CR on demand,
logs its decision and the status block, and follows edits of the CR's worker groups. Ray's
GCS is stood in for (no Ray in this tier).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from lightkube.codecs import from_dict
from lightkube.types import PatchType

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


@dataclass
class Sidecar:
    gcs: FakeGcs
    loop: Autoscaler | None = None
    status: StatusLog | None = None
    errors: list[BaseException] = field(default_factory=list)


@pytest.fixture
def sidecar(kube: KubeSession, ns: str) -> Iterator[Sidecar]:
    """The walkthrough's RayCluster in ``ns`` and the sidecar on it, in a thread."""
    retry_not_found(
        lambda: kube.client.create(from_dict(sample_cluster("autoscaler")), namespace=ns)
    )
    parts = Sidecar(FakeGcs(f"{NAME}-head-aaaaa"))
    stop, ready = threading.Event(), threading.Event()

    def on_ready(loop: Autoscaler, status: StatusLog) -> None:
        parts.loop, parts.status = loop, status
        ready.set()

    def main() -> None:
        try:
            run(
                NAME, ns, config=kube.config(), view=lambda s: parts.gcs, stop=stop,
                period=0.2, read_period=0.05, on_ready=on_ready,
            )  # fmt: skip
        except BaseException as exc:
            parts.errors.append(exc)
            ready.set()

    thread = threading.Thread(target=main, name="sidecar", daemon=True)
    thread.start()
    try:
        assert ready.wait(30) and not parts.errors, parts.errors
        yield parts
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive() and not parts.errors, parts.errors


def _replicas(kube: KubeSession, ns: str) -> int:
    group = kube.client.get(RayCluster, NAME, namespace=ns).spec["workerGroupSpecs"][0]
    return int(group["replicas"])


def _edit(kube: KubeSession, ns: str, **fields: Any) -> None:
    """A user's edit of small-group (a JSON patch, as `kubectl patch --type json` sends)."""
    ops = [
        {"op": "replace", "path": f"/spec/workerGroupSpecs/0/{key}", "value": value}
        for key, value in fields.items()
    ]
    kube.client.patch(RayCluster, NAME, ops, namespace=ns, patch_type=PatchType.JSON)


def _status_line(sidecar: Sidecar, prefix: str) -> str:
    assert sidecar.status is not None
    return next((line for line in sidecar.status.lines if line.startswith(prefix)), "")


def test_the_sidecar_scales_the_cr_and_logs_decisions_and_status(
    kube: KubeSession, ns: str, sidecar: Sidecar, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    sidecar.gcs.demand = Demand(bundles=(BundleDemand({"CPU": 1.0}, 2),))
    wait_until(lambda: _replicas(kube, ns) == 2, 30, "replicas 2 in the CR")
    assert "launch:" in caplog.text  # the decision, with its reason
    assert sidecar.status is not None
    lines = sidecar.status.lines
    assert lines[0].startswith("======== Autoscaler status:")
    assert " {'CPU': 1.0}: 2+ pending tasks/actors" in lines
    assert _status_line(sidecar, " small-group: desired 2 "), lines
    assert sidecar.loop is not None and sidecar.loop.failures == 0


def test_the_sidecar_follows_edits_of_the_groups_and_survives_a_bad_one(
    kube: KubeSession, ns: str, sidecar: Sidecar, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    sidecar.gcs.demand = Demand(bundles=(BundleDemand({"CPU": 1.0}, 3),))
    wait_until(lambda: _replicas(kube, ns) == 3, 30, "replicas 3 in the CR")

    # maxReplicas 10 -> 2: the sidecar plans 2 and holds the third back. (Both runtimes read
    # replicas clamped to [min, max], as the operator applies them, so the CR's 3 is not
    # rewritten: it already means 2.)
    _edit(kube, ns, maxReplicas=2)
    wait_until(
        lambda: _status_line(sidecar, " small-group: desired 2 "), 30, "desired 2 in the status"
    )
    assert "worker groups changed: small-group [0..10] -> [0..2]" in caplog.text
    assert "held back: small-group is at maxReplicas=2" in caplog.text

    # maxReplicas 2 -> 5 and demand for 4: the sidecar's patch raises replicas to 4.
    _edit(kube, ns, maxReplicas=5)
    sidecar.gcs.demand = Demand(bundles=(BundleDemand({"CPU": 1.0}, 4),))
    wait_until(lambda: _replicas(kube, ns) == 4, 30, "replicas 4 after maxReplicas 5")

    # minReplicas 0 -> 5: planned with at once (the operator, clamping, makes the 5th pod).
    _edit(kube, ns, minReplicas=5)
    wait_until(
        lambda: _status_line(sidecar, " small-group: desired 5 "), 30, "desired 5 in the status"
    )
    assert "small-group [0..5] -> [5..5]" in caplog.text

    # A bad edit: minReplicas 9 > maxReplicas 5 (the CRD admits it, as KubeRay's does). The
    # sidecar says why, once, and goes on planning with [5..5]: demand for 6 is held back at 5.
    _edit(kube, ns, minReplicas=9)
    wait_until(lambda: "is invalid; autoscaling goes on" in caplog.text, 30, "the warning")
    assert "minReplicas 9 is greater than maxReplicas 5" in caplog.text
    sidecar.gcs.demand = Demand(bundles=(BundleDemand({"CPU": 1.0}, 6),))
    wait_until(
        lambda: "held back: small-group is at maxReplicas=5" in caplog.text, 30, "held back at 5"
    )
    assert sidecar.loop is not None
    assert [(g.min_replicas, g.max_replicas) for g in sidecar.loop.groups] == [(5, 5)]

    # Fixed: the sidecar takes the valid edit and its patch raises replicas to 6.
    _edit(kube, ns, minReplicas=1, maxReplicas=6)
    wait_until(lambda: _replicas(kube, ns) == 6, 30, "replicas 6 after the fix")
    assert [(g.min_replicas, g.max_replicas) for g in sidecar.loop.groups] == [(1, 6)]
    assert caplog.text.count("is invalid; autoscaling goes on") == 1
    assert sidecar.loop.failures == 0

"""The pure reconciler: one case per rule, plus a convergence property.

The operator and the local runtime both call :func:`rayscale.builders.reconcile.reconcile`,
so these rules hold on both runtimes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rayscale.builders.reconcile import DeleteCause, ObservedPod, Reconciliation, reconcile
from rayscale.spec import parse_cluster
from rayscale.spec.models import RayCluster
from tests.unit.conftest import _MINIMAL_CLUSTER, apply_edits

pytestmark = pytest.mark.unit

HEAD = ObservedPod("demo-head-abcde", "headgroup", "Running")


def cluster(
    doc: dict[str, Any],
    edit: Callable[..., dict[str, Any]],
    edits: Sequence[tuple[Sequence[str | int], Any]] = (),
) -> RayCluster:
    return parse_cluster(edit(doc, edits))


def pod(name: str, phase: str = "Running", replica: str | None = None, group: str = "small-group"):  # type: ignore[no-untyped-def]
    return ObservedPod(name, group, phase, replica)  # type: ignore[arg-type]


def deleted(result: Reconciliation) -> dict[str, DeleteCause]:
    return {d.name: d.cause for d in result.delete}


G = ("spec", "workerGroupSpecs", 0)


def test_scale_up_creates_missing_replicas(spec_doc, spec_edit) -> None:  # type: ignore[no-untyped-def]
    c = cluster(spec_doc, spec_edit, [((*G, "replicas"), 3)])
    result = reconcile(c, [HEAD, pod("w1")])
    assert result.create == {"small-group": 2} and not result.delete and not result.create_head


def test_head_created_when_missing_and_failed_head_replaced(spec_doc, spec_edit) -> None:  # type: ignore[no-untyped-def]
    c = cluster(spec_doc, spec_edit)
    assert reconcile(c, []).create_head
    failed = ObservedPod("demo-head-x", "headgroup", "Failed")
    result = reconcile(c, [failed])
    assert result.create_head and deleted(result) == {"demo-head-x": DeleteCause.FAILED}


def test_with_autoscaling_surplus_is_never_deleted_at_random(spec_doc, spec_edit) -> None:  # type: ignore[no-untyped-def]
    c = cluster(spec_doc, spec_edit, [((*G, "replicas"), 1)])
    result = reconcile(c, [HEAD, pod("w1"), pod("w2"), pod("w3", "Pending")])
    assert not result.delete and result.create == {"small-group": 0}


def test_without_autoscaling_surplus_goes_booting_first(spec_doc, spec_edit) -> None:  # type: ignore[no-untyped-def]
    c = cluster(
        spec_doc, spec_edit, [(("spec", "enableInTreeAutoscaling"), False), ((*G, "replicas"), 1)]
    )
    result = reconcile(c, [HEAD, pod("w1"), pod("w2"), pod("w3", "Pending")])
    assert deleted(result) == {"w3": DeleteCause.SURPLUS, "w1": DeleteCause.SURPLUS}


def test_workers_to_delete_honoured_first(spec_doc, spec_edit) -> None:  # type: ignore[no-untyped-def]
    c = cluster(
        spec_doc,
        spec_edit,
        [((*G, "replicas"), 1), ((*G, "scaleStrategy"), {"workersToDelete": ["w2", "gone"]})],
    )
    result = reconcile(c, [HEAD, pod("w1"), pod("w2")])
    assert deleted(result) == {"w2": DeleteCause.WORKERS_TO_DELETE}
    assert result.create == {"small-group": 0}


def test_workers_to_delete_then_replacement_up_to_replicas(spec_doc, spec_edit) -> None:  # type: ignore[no-untyped-def]
    c = cluster(
        spec_doc,
        spec_edit,
        [((*G, "replicas"), 2), ((*G, "scaleStrategy"), {"workersToDelete": ["w2"]})],
    )
    result = reconcile(c, [HEAD, pod("w1"), pod("w2")])
    assert deleted(result) == {"w2": DeleteCause.WORKERS_TO_DELETE}
    assert result.create == {"small-group": 1}


def test_failed_pods_replaced(spec_doc, spec_edit) -> None:  # type: ignore[no-untyped-def]
    c = cluster(spec_doc, spec_edit, [((*G, "replicas"), 2)])
    result = reconcile(c, [HEAD, pod("w1"), pod("w2", "Failed")])
    assert deleted(result) == {"w2": DeleteCause.FAILED} and result.create == {"small-group": 1}


def test_pods_already_deleting_are_not_counted_or_deleted_again(spec_doc, spec_edit) -> None:  # type: ignore[no-untyped-def]
    c = cluster(spec_doc, spec_edit, [((*G, "replicas"), 1)])
    going = ObservedPod("w1", "small-group", "Running", deleting=True)
    result = reconcile(c, [HEAD, going])
    assert not result.delete and result.create == {"small-group": 1}


def test_multi_host_replicas_created_and_failed_as_a_whole(spec_doc, spec_edit) -> None:  # type: ignore[no-untyped-def]
    c = cluster(spec_doc, spec_edit, [((*G, "replicas"), 2), ((*G, "numOfHosts"), 2)])
    pods = [HEAD, pod("a1", replica="A"), pod("a2", "Failed", replica="A")]
    pods += [pod("b1", replica="B"), pod("b2", replica="B")]
    result = reconcile(c, pods)
    assert deleted(result) == {"a1": DeleteCause.REPLICA_BROKEN, "a2": DeleteCause.FAILED}
    assert result.create == {"small-group": 1}
    assert result.groups[0].desired == 4


def test_multi_host_workers_to_delete_takes_the_whole_replica(spec_doc, spec_edit) -> None:  # type: ignore[no-untyped-def]
    c = cluster(
        spec_doc,
        spec_edit,
        [
            ((*G, "replicas"), 0),
            ((*G, "numOfHosts"), 2),
            ((*G, "scaleStrategy"), {"workersToDelete": ["a1"]}),
        ],
    )
    result = reconcile(c, [HEAD, pod("a1", replica="A"), pod("a2", replica="A")])
    assert deleted(result) == {
        "a1": DeleteCause.WORKERS_TO_DELETE,
        "a2": DeleteCause.REPLICA_BROKEN,
    }


def test_suspend_deletes_everything_and_creates_nothing(spec_doc, spec_edit) -> None:  # type: ignore[no-untyped-def]
    c = cluster(spec_doc, spec_edit, [(("spec", "suspend"), True), ((*G, "replicas"), 2)])
    result = reconcile(c, [HEAD, pod("w1")])
    assert set(deleted(result)) == {HEAD.name, "w1"} and not result.create_head
    assert result.state == "suspending"
    assert reconcile(c, []).state == "suspended"


def test_suspended_group_goes_to_zero(spec_doc, spec_edit) -> None:  # type: ignore[no-untyped-def]
    c = cluster(
        spec_doc,
        spec_edit,
        [
            (("spec", "enableInTreeAutoscaling"), False),
            ((*G, "replicas"), 2),
            ((*G, "suspend"), True),
        ],
    )
    result = reconcile(c, [HEAD, pod("w1")])
    assert deleted(result) == {"w1": DeleteCause.SURPLUS} and result.create == {"small-group": 0}


@pytest.mark.parametrize(
    ("replicas", "minimum", "maximum", "created"),
    [(0, 2, 5, 2), (9, 0, 5, 5), (3, 1, 5, 3)],
    ids=["below-min", "above-max", "inside"],
)
def test_min_max_clamping(spec_doc, spec_edit, replicas, minimum, maximum, created) -> None:  # type: ignore[no-untyped-def]
    c = cluster(
        spec_doc,
        spec_edit,
        [
            ((*G, "replicas"), replicas),
            ((*G, "minReplicas"), minimum),
            ((*G, "maxReplicas"), maximum),
        ],
    )
    assert reconcile(c, [HEAD]).create == {"small-group": created}


def test_pods_of_a_removed_group_are_deleted(spec_doc, spec_edit) -> None:  # type: ignore[no-untyped-def]
    c = cluster(spec_doc, spec_edit)
    result = reconcile(c, [HEAD, pod("x1", group="gone-group")])
    assert deleted(result) == {"x1": DeleteCause.UNKNOWN_GROUP}


def test_status_ready_only_when_everything_runs(spec_doc, spec_edit) -> None:  # type: ignore[no-untyped-def]
    c = cluster(spec_doc, spec_edit, [((*G, "replicas"), 1)])
    assert reconcile(c, [HEAD, pod("w1")]).state == "ready"
    assert reconcile(c, [HEAD, pod("w1", "Pending")]).state == "provisioning"


# -- convergence ---------------------------------------------------------------------------


def _apply(result: Reconciliation, pods: list[ObservedPod], hosts: int) -> list[ObservedPod]:
    """What the adapters do with a reconciliation: delete, then create Pending pods."""
    gone = {d.name for d in result.delete}
    out = [p for p in pods if p.name not in gone]
    if result.create_head:
        out.append(ObservedPod("head-new", "headgroup", "Pending"))
    n = 0
    for group, replicas in result.create.items():
        for r in range(replicas):
            for _host in range(hosts):
                n += 1
                out.append(
                    ObservedPod(f"new-{n}", group, "Pending", f"new-r{r}" if hosts > 1 else None)
                )
    return out


_phases = st.sampled_from(["Pending", "Running", "Failed", "Succeeded"])


@settings(max_examples=300, deadline=None)
@given(
    replicas=st.integers(0, 6),
    minimum=st.integers(0, 3),
    hosts=st.integers(1, 3),
    autoscaling=st.booleans(),
    suspend=st.booleans(),
    observed=st.lists(
        st.tuples(
            _phases, st.integers(0, 4), st.booleans(), st.sampled_from(["small-group", "old"])
        ),
        max_size=10,
    ),
    listed=st.lists(st.integers(0, 9), max_size=3),
)
def test_reconcile_converges_in_one_step(
    replicas, minimum, hosts, autoscaling, suspend, observed, listed
) -> None:  # type: ignore[no-untyped-def]
    """From any observed pods, applying the output and reconciling again changes nothing."""
    spec_doc, spec_edit = copy.deepcopy(_MINIMAL_CLUSTER), apply_edits
    names = [f"p{i}" for i in range(len(observed))]
    edits = [
        (("spec", "enableInTreeAutoscaling"), autoscaling),
        (("spec", "suspend"), suspend),
        ((*G, "replicas"), replicas),
        ((*G, "minReplicas"), minimum),
        ((*G, "numOfHosts"), hosts),
        ((*G, "scaleStrategy"), {"workersToDelete": [names[i] for i in listed if i < len(names)]}),
    ]
    c = parse_cluster(spec_edit(spec_doc, edits))
    pods = [HEAD] + [
        ObservedPod(names[i], group, phase, f"r{rep}" if hosts > 1 else None, deleting)  # type: ignore[arg-type]
        for i, (phase, rep, deleting, group) in enumerate(observed)
    ]
    first = reconcile(c, pods)
    after = _apply(first, pods, hosts)
    second = reconcile(c, after)
    assert not second.delete, second.delete
    assert not any(second.create.values()) and not second.create_head

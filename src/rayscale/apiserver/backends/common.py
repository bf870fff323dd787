"""What both backends check the same way: the body's namespace against the path's, the
``clusterSelector`` of a job, and that a mapped cluster makes a valid RayCluster."""

from __future__ import annotations

from typing import Any

from rayscale.apiserver import errors
from rayscale.apiserver.errors import invalid_field
from rayscale.apiserver.models import Job

CLUSTER_LABEL = "ray.io/cluster"


def check_namespace(body_namespace: str | None, namespace: str) -> None:
    if body_namespace not in (None, "", namespace):
        raise invalid_field(
            "namespace",
            f"the body says {body_namespace!r} but the path says {namespace!r}",
            "make them equal or leave namespace out of the body",
        )


def selected_cluster(job: Job, backend: str) -> str:
    """The cluster a job runs on (``clusterSelector``); a 400 naming the field otherwise."""
    if job.cluster_spec is not None:
        raise invalid_field(
            "clusterSpec",
            f"a job that creates its own cluster is not supported by the {backend} backend",
            "create the cluster first and name it in clusterSelector",
        )
    if CLUSTER_LABEL not in job.cluster_selector:
        raise invalid_field(
            "clusterSelector",
            f"needs {CLUSTER_LABEL!r}: the cluster to run the job on",
            'set clusterSelector: {"ray.io/cluster": "<cluster name>"}',
        )
    other = sorted(set(job.cluster_selector) - {CLUSTER_LABEL})
    if other:
        raise invalid_field(
            f"clusterSelector.{other[0]}",
            "unsupported selector key",
            f"select the cluster by {CLUSTER_LABEL} only",
        )
    return job.cluster_selector[CLUSTER_LABEL]


def check_ray_cluster(cr: dict[str, Any]) -> None:
    """A 400 listing every field of the mapped RayCluster that the spec module rejects."""
    from rayscale.spec import SpecError, parse_cluster

    try:
        parse_cluster(cr)
    except SpecError as exc:
        details = [errors.field_detail(p.path, f"{p.message}; {p.fix}") for p in exc.problems]
        raise errors.InvalidError(
            "the cluster does not make a valid RayCluster: "
            + "; ".join(f"{p.path}: {p.message}" for p in exc.problems),
            details,
        ) from None

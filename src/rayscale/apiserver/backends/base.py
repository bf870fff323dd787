"""The interface both backends implement: the local runtime (:mod:`.local`) and Kubernetes
(:mod:`.kube`).

Backends take and return the wire models of :mod:`rayscale.apiserver.models`, already
validated; they raise :mod:`rayscale.apiserver.errors` for a missing (404), duplicate (409) or
unacceptable (400) object, and an UnavailableError (503) when what they stand on cannot be
reached. Calls may block (the app runs them in a thread pool). The Kubernetes backend maps
templates to labelled ConfigMaps and clusters/jobs to RayCluster/RayJob CRs (see
:func:`rayscale.apiserver.mapping.template_config_map`, ``ray_cluster`` and ``ray_job``).
"""

from __future__ import annotations

from typing import Protocol

from rayscale.apiserver.models import Cluster, ComputeTemplate, Job


class Backend(Protocol):
    name: str

    def start(self) -> None:
        """Begin background work (reconciling jobs); called once before serving."""

    def close(self) -> None:
        """Stop background work; running clusters and jobs are left running."""

    # compute templates
    def create_template(self, namespace: str, template: ComputeTemplate) -> ComputeTemplate: ...
    def get_template(self, namespace: str, name: str) -> ComputeTemplate: ...
    def list_templates(self, namespace: str | None) -> list[ComputeTemplate]: ...
    def delete_template(self, namespace: str, name: str) -> None: ...

    # clusters
    def create_cluster(self, namespace: str, cluster: Cluster) -> Cluster: ...
    def get_cluster(self, namespace: str, name: str) -> Cluster: ...
    def list_clusters(
        self, namespace: str | None, limit: int | None, continue_token: str | None
    ) -> tuple[list[Cluster], str]:
        """A page of clusters ordered by (namespace, name) and the token for the next ("": end)."""
        ...

    def delete_cluster(self, namespace: str, name: str) -> None: ...

    # jobs
    def create_job(self, namespace: str, job: Job) -> Job: ...
    def get_job(self, namespace: str, name: str) -> Job: ...
    def list_jobs(self, namespace: str | None) -> list[Job]: ...
    def delete_job(self, namespace: str, name: str) -> None: ...
    def job_logs(self, namespace: str, name: str, max_bytes: int) -> str: ...

"""The Kubernetes backend: templates are labelled ConfigMaps, clusters and jobs ray.io CRs.

- A compute template is a ConfigMap named after it, labelled ``ray.io/config-type:
  compute-template`` and ``ray.io/compute-template: <name>`` (:func:`mapping.template_config_map`,
  KubeRay's data keys). Only ConfigMaps so labelled are templates.
- A cluster is the RayCluster CR :func:`mapping.ray_cluster` builds (the one the local backend
  starts), with the request kept in the annotation ``rayscale.io/api-cluster`` so it reads
  back as sent. Its output comes from the CR's status (``state``, ``endpoints``), its pods
  (``groups``) and its Events (``events``, on GET of one cluster).
- A job is a RayJob CR with ``clusterSelector`` (:func:`mapping.ray_job`); the operator runs it
  (:mod:`rayscale.kube.jobs`). Its status is the CR's (``jobStatus``, ``jobDeploymentStatus``,
  ``message``, ``startTime``, ``endTime``); its logs are the submitter pod's.
- ``limit``/``continue`` are the kube-apiserver's own list ``limit``/``continue``.

Errors: Kubernetes' NotFound/AlreadyExists/Invalid become 404/409/400 naming the object or
field; an unreachable kube-apiserver, refused credentials or missing CRDs are a 503 saying so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

import httpx2 as httpx
from lightkube import ALL_NS, ApiError, Client, KubeConfig, operators
from lightkube.codecs import from_dict
from lightkube.resources.core_v1 import ConfigMap, Event, Pod

from rayscale.apiserver import errors, mapping
from rayscale.apiserver.backends import common
from rayscale.apiserver.backends.common import CLUSTER_LABEL, check_namespace, selected_cluster
from rayscale.apiserver.errors import invalid_field, not_found
from rayscale.apiserver.models import (
    OUTPUT_ONLY_CLUSTER,
    Cluster,
    ClusterEvent,
    ClusterSpec,
    ComputeTemplate,
    GroupStatus,
    HeadGroupSpec,
    Job,
    JobStatus,
    WorkerGroupSpec,
)
from rayscale.builders.rayjob import ORIGIN_CRD_LABEL, ORIGIN_NAME_LABEL, RayJobSpecError
from rayscale.builders.rayjob import runtime_env_json as _runtime_env_json
from rayscale.kube.backend import observed_targets
from rayscale.kube.resources import RayCluster, RayJob, warm_decoders
from rayscale.protocol import GROUP_LABEL, NODE_TYPE_LABEL

API_ANNOTATION = "rayscale.io/api-cluster"
FIELD_MANAGER = "rayscale-apiserver"
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_CRDS_FIX = "install them with `rayscale crds | kubectl apply -f -`"


def _stamp(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _check_label_value(field: str, value: str) -> None:
    """user/version become label values: refuse what Kubernetes would (a 400, not its 422)."""
    if len(value) > 63 or not LABEL_VALUE.match(value):
        raise invalid_field(
            field,
            f"{value!r} cannot be a Kubernetes label value",
            "use at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric",
        )


class KubeBackend:
    name = "kubernetes"

    def __init__(self, client: Client, server: str = "") -> None:
        self.client = client
        self.server = server or "the Kubernetes API server"
        warm_decoders((ConfigMap, Pod, Event))  # before the thread pool decodes them at once

    @classmethod
    def from_kubeconfig(cls, path: Path | None) -> KubeBackend:
        """From a kubeconfig's current context, or the pod's service account (``None``)."""
        config = KubeConfig.from_file(path) if path else KubeConfig.from_service_account()
        single = config.get()
        server = single.cluster.server if single is not None else ""
        return cls(Client(config=config, field_manager=FIELD_MANAGER), server)

    def start(self) -> None:
        """Nothing runs in the background: the operator does the work."""

    def close(self) -> None:
        self.client.close()

    # -- Kubernetes errors -> API errors ---------------------------------------------------
    @contextlib.contextmanager
    def _calls(self) -> Iterator[None]:
        try:
            yield
        except httpx.TransportError as exc:
            raise errors.UnavailableError(
                f"cannot reach the Kubernetes API server at {self.server}: {exc}; check that it "
                "runs and that --kubeconfig points at it"
            ) from None
        except ApiError as err:
            self._raise(err)

    def _raise(self, err: ApiError) -> NoReturn:
        status = err.status
        code, message = int(status.code or 500), str(status.message or status.reason or "")
        if code in (401, 403):
            raise errors.UnavailableError(
                f"the Kubernetes API server refused this API server's credentials ({code}): "
                f"{message}; give its kubeconfig or service account access"
            ) from None
        if code == 404:
            details = status.details
            if details is None or not details.name:  # the resource type itself is not served
                raise errors.UnavailableError(
                    f"the Kubernetes API server does not serve this resource ({message}): are "
                    f"the ray.io CRDs installed? {_CRDS_FIX}"
                ) from None
            raise errors.NotFoundError(message) from None
        if code == 409:
            raise errors.ConflictError(message, [errors.field_detail("name", "already exists")])
        if code in (400, 422):
            causes = (status.details.causes if status.details else None) or []
            fields = [errors.field_detail(c.field or "body", c.message or "") for c in causes]
            raise errors.InvalidError(f"Kubernetes refused it: {message}", fields) from None
        if code == 410:
            raise invalid_field(
                "continue", "the token has expired", "list again from the first page"
            ) from None
        raise errors.UnavailableError(
            f"the Kubernetes API server answered {code}: {message}; try again"
        ) from None

    def _get(
        self, kind: Any, name: str, namespace: str, what: str, field: str | None = None
    ) -> Any:
        """GET one object; a 404 names ``what`` (and the request ``field`` that named it)."""
        try:
            with self._calls():
                return self.client.get(kind, name, namespace=namespace)
        except errors.NotFoundError:
            raise not_found(what, name, namespace, field) from None

    def _create(self, manifest: dict[str, Any], what: str) -> Any:
        meta = manifest["metadata"]
        try:
            with self._calls():
                client: Any = self.client  # kinds vary: lightkube's overloads cannot be picked
                return client.create(from_dict(manifest), namespace=meta["namespace"])
        except errors.ConflictError:
            raise errors.ConflictError(
                f"{what} {meta['name']!r} already exists in namespace {meta['namespace']!r}",
                [errors.field_detail("name", "already exists")],
            ) from None

    def _delete(self, kind: Any, name: str, namespace: str, what: str) -> None:
        try:
            with self._calls():
                self.client.delete(kind, name, namespace=namespace)
        except errors.NotFoundError:
            raise not_found(what, name, namespace) from None

    # -- compute templates -------------------------------------------------------------------
    def create_template(self, namespace: str, template: ComputeTemplate) -> ComputeTemplate:
        check_namespace(template.namespace, namespace)
        out = template.model_copy(update={"namespace": namespace})
        self._create(mapping.template_config_map(out, namespace), "compute template")
        return out

    def _template(self, namespace: str, name: str, field: str | None = None) -> ComputeTemplate:
        cm = self._get(ConfigMap, name, namespace, "compute template", field)
        labels = cm.metadata.labels or {}
        if labels.get("ray.io/config-type") != "compute-template":
            raise not_found("compute template", name, namespace, field)
        return self._template_of(cm)

    @staticmethod
    def _template_of(cm: Any) -> ComputeTemplate:
        meta = cm.metadata
        try:
            return mapping.template_from_config_map(meta.name, meta.namespace, cm.data or {})
        except ValueError as exc:
            raise errors.PreconditionError(
                f"ConfigMap {meta.namespace}/{meta.name} is labelled as a compute template but "
                f"{exc}; fix it (kubectl edit configmap {meta.name}) or delete it"
            ) from None

    def get_template(self, namespace: str, name: str) -> ComputeTemplate:
        return self._template(namespace, name)

    def list_templates(self, namespace: str | None) -> list[ComputeTemplate]:
        with self._calls():
            selector: dict[str, Any] = dict(mapping.TEMPLATE_LABELS)
            listed: list[Any] = list(
                self.client.list(ConfigMap, namespace=namespace or ALL_NS, labels=selector)
            )
        out = []
        for cm in listed:
            with contextlib.suppress(errors.PreconditionError):  # a broken one: left out of lists
                out.append(self._template_of(cm))
        return out

    def delete_template(self, namespace: str, name: str) -> None:
        self._template(namespace, name)  # only a template's ConfigMap is deleted
        self._delete(ConfigMap, name, namespace, "compute template")

    # -- clusters ----------------------------------------------------------------------------
    def _cluster_manifest(self, namespace: str, cluster: Cluster) -> dict[str, Any]:
        templates: dict[str, ComputeTemplate] = {}
        for field, name in mapping.template_names(cluster):
            if name not in templates:
                templates[name] = self._template(namespace, name, field)
        for field, name in mapping.config_map_sources(cluster):
            self._get(ConfigMap, name, namespace, "ConfigMap", field)
        cr = mapping.ray_cluster(cluster, namespace, templates)
        common.check_ray_cluster(cr)
        body = cluster.model_dump(by_alias=True, exclude=set(OUTPUT_ONLY_CLUSTER))
        body["namespace"] = namespace
        annotations = cr["metadata"].setdefault("annotations", {})
        annotations[API_ANNOTATION] = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return cr

    def create_cluster(self, namespace: str, cluster: Cluster) -> Cluster:
        check_namespace(cluster.namespace, namespace)
        _check_label_value("user", cluster.user)
        _check_label_value("version", cluster.version)
        created = self._create(self._cluster_manifest(namespace, cluster), "cluster")
        return self._cluster_view(created.to_dict(), {}, [])

    def get_cluster(self, namespace: str, name: str) -> Cluster:
        raw = self._get(RayCluster, name, namespace, "cluster").to_dict()
        return self._cluster_view(raw, self._pods(namespace, name), self._events(namespace, name))

    def list_clusters(
        self, namespace: str | None, limit: int | None, continue_token: str | None
    ) -> tuple[list[Cluster], str]:
        params: dict[str, Any] = {"limit": limit or None, "continue": continue_token or None}
        generic = self.client._client  # one page: lightkube's list() would follow every page
        br = generic.prepare_request(
            "list", res=RayCluster, namespace=namespace or ALL_NS, params=params
        )
        try:
            with self._calls():
                more, _version, items = generic.handle_response(
                    "list", generic.send(generic.build_adapter_request(br)), br
                )
        except errors.InvalidError as exc:
            if continue_token:
                raise invalid_field(
                    "continue",
                    "not a token this server handed out",
                    "pass the previous page's continue",
                ) from exc
            raise
        token = str(br.params.get("continue") or "") if more else ""
        pods = self._pods(namespace, None) if items else {}
        return [self._cluster_view(item.to_dict(), pods, []) for item in items], token

    def delete_cluster(self, namespace: str, name: str) -> None:
        self._delete(RayCluster, name, namespace, "cluster")

    def _pods(
        self, namespace: str | None, cluster: str | None
    ) -> dict[tuple[str, str, str], list[str]]:
        """(namespace, cluster, group) -> phases of the live worker pods."""
        labels: dict[str, Any] = {
            CLUSTER_LABEL: cluster or operators.exists(),
            NODE_TYPE_LABEL: "worker",
        }
        with self._calls():
            listed: list[Any] = list(
                self.client.list(Pod, namespace=namespace or ALL_NS, labels=labels)
            )
        out: dict[tuple[str, str, str], list[str]] = {}
        for pod in listed:
            if pod.metadata.deletionTimestamp is not None:
                continue
            pod_labels = pod.metadata.labels or {}
            key = (
                pod.metadata.namespace,
                pod_labels.get(CLUSTER_LABEL, ""),
                pod_labels.get(GROUP_LABEL, ""),
            )
            out.setdefault(key, []).append((pod.status.phase if pod.status else None) or "Pending")
        return out

    def _events(self, namespace: str, name: str) -> list[ClusterEvent]:
        fields: dict[str, Any] = {"involvedObject.kind": "RayCluster", "involvedObject.name": name}
        with self._calls():
            listed: list[Any] = list(self.client.list(Event, namespace=namespace, fields=fields))
        out = []
        for i, e in enumerate(listed):
            first = _stamp(e.firstTimestamp or e.eventTime or e.metadata.creationTimestamp) or ""
            out.append(
                ClusterEvent(
                    id=e.metadata.uid or f"{name}-{i}",
                    name=e.metadata.name or "",
                    created_at=_stamp(e.metadata.creationTimestamp) or first,
                    first_timestamp=first,
                    last_timestamp=_stamp(e.lastTimestamp) or first,
                    reason=e.reason or "",
                    message=e.message or "",
                    type="Warning" if e.type == "Warning" else "Normal",
                    count=int(e.count or 1),
                )
            )
        return out

    def _cluster_view(
        self,
        raw: Mapping[str, Any],
        pods: Mapping[tuple[str, str, str], list[str]],
        events: list[ClusterEvent],
    ) -> Cluster:
        meta, spec = raw["metadata"], raw.get("spec") or {}
        status = raw.get("status") or {}
        cluster = _request_of(raw)
        targets = observed_targets(spec)
        groups = []
        for group in spec.get("workerGroupSpecs") or []:
            name = str(group.get("groupName", ""))
            phases = pods.get((meta["namespace"], meta["name"], name), [])
            groups.append(
                GroupStatus(
                    name=name,
                    min=int(group.get("minReplicas", 0)),
                    max=int(group.get("maxReplicas", 0)),
                    desired=targets[name].replicas if name in targets else 0,
                    running=sum(p == "Running" for p in phases),
                    pending=sum(p in ("Pending", "Unknown") for p in phases),
                )
            )
        state = status.get("state") or ("failed" if status.get("reason") else "starting")
        return cluster.model_copy(
            update={
                "namespace": meta["namespace"],
                "created_at": _stamp(meta.get("creationTimestamp")),
                "deleted_at": _stamp(meta.get("deletionTimestamp")),
                "cluster_state": state,
                "events": events,
                "service_endpoint": {
                    str(k): str(v) for k, v in (status.get("endpoints") or {}).items()
                },
                "groups": groups,
            }
        )

    # -- jobs --------------------------------------------------------------------------------
    def create_job(self, namespace: str, job: Job) -> Job:
        check_namespace(job.namespace, namespace)
        cluster = selected_cluster(job, self.name)
        _check_label_value("user", job.user)
        try:
            _runtime_env_json({"runtimeEnvYAML": job.runtime_env})
        except RayJobSpecError as exc:
            raise invalid_field("runtimeEnv", exc.problem) from None
        self._get(RayCluster, cluster, namespace, "cluster", f"clusterSelector.{CLUSTER_LABEL}")
        created = self._create(mapping.ray_job(job, namespace), "job")
        return _job_view(created.to_dict())

    def get_job(self, namespace: str, name: str) -> Job:
        return _job_view(self._get(RayJob, name, namespace, "job").to_dict())

    def list_jobs(self, namespace: str | None) -> list[Job]:
        with self._calls():
            listed: list[Any] = list(self.client.list(RayJob, namespace=namespace or ALL_NS))
        return [_job_view(j.to_dict()) for j in listed]

    def delete_job(self, namespace: str, name: str) -> None:
        self._delete(RayJob, name, namespace, "job")

    def job_logs(self, namespace: str, name: str, max_bytes: int) -> str:
        """The newest submitter pod's log ("" before the submitter has a pod)."""
        self._get(RayJob, name, namespace, "job")
        labels: dict[str, Any] = {ORIGIN_NAME_LABEL: name, ORIGIN_CRD_LABEL: "RayJob"}
        with self._calls():
            pods: list[Any] = list(self.client.list(Pod, namespace=namespace, labels=labels))
        if not pods:
            return ""
        pod = max(pods, key=lambda p: _stamp(p.metadata.creationTimestamp) or "")
        try:
            with self._calls():
                lines = list(self.client.log(pod.metadata.name, namespace=namespace))
        except (errors.InvalidError, errors.NotFoundError) as exc:
            raise errors.PreconditionError(
                f"the submitter pod {pod.metadata.name} has no logs yet: {exc.message}"
            ) from None
        return "".join(lines)[-max_bytes:]


def _request_of(raw: Mapping[str, Any]) -> Cluster:
    """The cluster as it was requested (annotation), else read off the CR (created with kubectl)."""
    meta = raw["metadata"]
    annotations = meta.get("annotations") or {}
    with contextlib.suppress(ValueError):
        if API_ANNOTATION in annotations:
            return Cluster.model_validate(json.loads(annotations[API_ANNOTATION]))
    labels = meta.get("labels") or {}
    spec = raw.get("spec") or {}

    def image(group: Mapping[str, Any]) -> str:
        containers = ((group.get("template") or {}).get("spec") or {}).get("containers") or [{}]
        return str(containers[0].get("image") or "")

    head = spec.get("headGroupSpec") or {}
    workers = [
        WorkerGroupSpec.model_construct(
            group_name=str(g.get("groupName", "")),
            compute_template="",
            image=image(g),
            replicas=int(g.get("replicas", 0)),
            min_replicas=int(g.get("minReplicas", 0)),
            max_replicas=int(g.get("maxReplicas", 0)),
            ray_start_params=dict(g.get("rayStartParams") or {}),
        )
        for g in spec.get("workerGroupSpecs") or []
    ]
    environment = labels.get("ray.io/environment", "DEV")
    return Cluster.model_construct(
        name=meta["name"],
        namespace=meta.get("namespace"),
        user=labels.get("ray.io/user", ""),
        version=labels.get("ray.io/version", ""),
        environment=environment
        if environment in ("DEV", "TESTING", "STAGING", "PRODUCTION")
        else "DEV",
        cluster_spec=ClusterSpec.model_construct(
            head_group_spec=HeadGroupSpec.model_construct(
                compute_template="",
                image=image(head),
                ray_start_params=dict(head.get("rayStartParams") or {}),
            ),
            worker_group_spec=workers,
            enable_in_tree_autoscaling=bool(spec.get("enableInTreeAutoscaling")),
        ),
    )


def _job_view(raw: Mapping[str, Any]) -> Job:
    """A RayJob CR in the API's shape, as KubeRay's converter reads it."""
    meta, spec = raw["metadata"], raw.get("spec") or {}
    status = raw.get("status") or {}
    labels = meta.get("labels") or {}
    job_status = status.get("jobStatus")
    return Job.model_construct(
        name=meta["name"],
        namespace=meta.get("namespace"),
        user=labels.get("ray.io/user", ""),
        entrypoint=str(spec.get("entrypoint") or ""),
        metadata=dict(spec.get("metadata") or {}),
        runtime_env=str(spec.get("runtimeEnvYAML") or ""),
        job_id=str(status.get("jobId") or spec.get("jobId") or ""),
        shutdown_after_job_finishes=bool(spec.get("shutdownAfterJobFinishes")),
        cluster_selector=dict(spec.get("clusterSelector") or {}),
        ttl_seconds_after_finished=int(spec.get("ttlSecondsAfterFinished") or 0),
        entrypoint_num_cpus=float(spec.get("entrypointNumCpus") or 0),
        entrypoint_num_gpus=float(spec.get("entrypointNumGpus") or 0),
        entrypoint_resources=str(spec.get("entrypointResources") or ""),
        active_deadline_seconds=int(spec.get("activeDeadlineSeconds") or 0),
        created_at=_stamp(meta.get("creationTimestamp")),
        delete_at=_stamp(meta.get("deletionTimestamp")),
        job_status=JobStatus(job_status) if job_status in JobStatus.__members__ else None,
        job_deployment_status=status.get("jobDeploymentStatus") or None,
        message=status.get("message") or None,
        start_time=_stamp(status.get("startTime")),
        end_time=_stamp(status.get("endTime")),
        ray_cluster_name=status.get("rayClusterName") or None,
    )

"""The process kubelet's calls to kube-apiserver (a sync lightkube client): the Node, pod
binding, pod status, deletion, Events, and what containers need (ConfigMaps, Secrets,
service-account tokens through the TokenRequest API)."""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from lightkube import ApiError, Client, KubeConfig
from lightkube.codecs import from_dict
from lightkube.config.kubeconfig import SingleConfig
from lightkube.models.authentication_v1 import BoundObjectReference, TokenRequestSpec
from lightkube.models.core_v1 import ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import (
    ConfigMap,
    Event,
    Node,
    NodeStatus,
    Pod,
    PodBinding,
    PodStatus,
    Secret,
    ServiceAccountToken,
)
from lightkube.types import PatchType

from rayscale.devcluster.podenv import ContainerConfigError, decode_secret
from rayscale.local.kubelet import LOCAL_IP

log = logging.getLogger("rayscale.kubelet")

TOKEN_SECONDS = 7 * 24 * 3600  # a dev cluster's session; the apiserver may shorten it
FIELD_MANAGER = "rayscale-kubelet"


def now() -> str:
    """RFC 3339 time, as Kubernetes writes it."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ApiServer:
    """Where containers reach kube-apiserver, and the CA that signs its certificate."""

    host: str
    port: int
    ca_pem: bytes

    @classmethod
    def of(cls, config: SingleConfig) -> ApiServer:
        url = urlsplit(config.cluster.server)
        cluster = config.cluster
        if cluster.certificate_auth_data:
            ca = base64.b64decode(cluster.certificate_auth_data)
        elif cluster.certificate_auth:
            ca = Path(config.abs_file(cluster.certificate_auth)).read_bytes()
        else:
            ca = b""
        return cls(url.hostname or LOCAL_IP, url.port or 443, ca)

    def env(self) -> dict[str, str]:
        """The variables a kubelet gives every container (the ``kubernetes`` service)."""
        return {
            "KUBERNETES_SERVICE_HOST": self.host,
            "KUBERNETES_SERVICE_PORT": str(self.port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.port),
        }


class KubeletApi:
    """Every API call of the kubelet; also the :class:`~rayscale.devcluster.podenv.Lookup`."""

    def __init__(self, config: KubeConfig, node_name: str) -> None:
        single = config.get()
        if single is None:
            raise ValueError("the kubeconfig has no current context")
        self.server = ApiServer.of(single)
        self.node_name = node_name
        self.client = Client(config=config, field_manager=FIELD_MANAGER)
        self._ready_since = now()

    def close(self) -> None:
        self.client.close()

    # -- node ------------------------------------------------------------------------------
    def register_node(self, log_port: int, annotations: Mapping[str, str] | None = None) -> None:
        """Create (or take over) the Node and report it Ready."""
        labels = {
            "kubernetes.io/hostname": self.node_name,
            "kubernetes.io/os": "linux",
            "node.rayscale.io/process-kubelet": "true",
        }
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": labels,
                "annotations": dict(annotations or {}),
            },
        }
        try:
            self.client.create(from_dict(body))
        except ApiError as err:
            if err.status.code != 409:
                raise
        self.heartbeat(log_port)

    def heartbeat(self, log_port: int) -> None:
        stamp = now()
        # Generous capacity: nothing is refused for resources on a dev machine.
        capacity = {"cpu": "256", "memory": "1Ti", "pods": "1000", "ephemeral-storage": "1Ti"}
        status = {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "rayscale process kubelet is posting ready status",
                    "lastHeartbeatTime": stamp,
                    "lastTransitionTime": self._ready_since,
                }
            ],
            "addresses": [
                {"type": "InternalIP", "address": LOCAL_IP},
                {"type": "Hostname", "address": self.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": log_port}},
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": "",
                "osImage": "local processes",
                "containerRuntimeVersion": "process://rayscale",
                "kubeletVersion": "rayscale-process-kubelet",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }
        self.client.patch(
            NodeStatus, self.node_name, {"status": status}, patch_type=PatchType.MERGE
        )

    def delete_node(self) -> None:
        try:
            self.client.delete(Node, self.node_name)
        except ApiError as err:
            if err.status.code != 404:
                raise

    # -- pods ------------------------------------------------------------------------------
    def bind(self, namespace: str, name: str, uid: str | None) -> None:
        """Bind a pod to this node through ``pods/binding`` (there is no kube-scheduler)."""
        binding = PodBinding(
            metadata=ObjectMeta(name=name, namespace=namespace, uid=uid),
            target=ObjectReference(apiVersion="v1", kind="Node", name=self.node_name),
        )
        self.client.create(binding, name, namespace=namespace)

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.client.patch(
            PodStatus,
            name,
            {"status": dict(status)},
            namespace=namespace,
            patch_type=PatchType.STRATEGIC,
        )

    def delete_pod(self, namespace: str, name: str) -> None:
        """Delete with grace period 0, as a kubelet does once the containers are stopped."""
        try:
            self.client.delete(Pod, name, namespace=namespace, grace_period=0)
        except ApiError as err:
            if err.status.code != 404:
                raise

    def event(self, pod: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        meta = pod["metadata"]
        stamp = now()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": kind,
            "reason": reason,
            "message": message,
            "source": {"component": "kubelet", "host": self.node_name},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            event = cast(Event, Event.from_dict(body))
            self.client.create(event, namespace=meta["namespace"])
        except ApiError as err:
            log.warning("could not record event %s on %s: %s", reason, meta["name"], err)

    # -- what containers need --------------------------------------------------------------
    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        try:
            cm = self.client.get(ConfigMap, name, namespace=namespace)
        except ApiError as err:
            if err.status.code == 404:
                return None
            raise
        return dict(cm.data or {})

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        try:
            secret = self.client.get(Secret, name, namespace=namespace)
        except ApiError as err:
            if err.status.code == 404:
                return None
            raise
        out = decode_secret(secret.data)
        out.update({k: v.encode() for k, v in (secret.stringData or {}).items()})
        return out

    def service_account_token(self, pod: Mapping[str, Any]) -> str:
        """A token for the pod's service account, bound to the pod (TokenRequest API)."""
        meta = pod["metadata"]
        named = pod["spec"].get("serviceAccountName")
        account = named or "default"
        # Bound to the pod (invalid once it is gone) when the pod names its account: the API
        # server refuses to bind to a pod whose spec names none (ServiceAccount admission,
        # which fills in "default", is off in the test tier).
        bound = (
            BoundObjectReference(
                apiVersion="v1", kind="Pod", name=meta["name"], uid=meta.get("uid")
            )
            if named
            else None
        )
        request = ServiceAccountToken(
            metadata=ObjectMeta(name=account, namespace=meta["namespace"]),
            spec=TokenRequestSpec(
                audiences=[], expirationSeconds=TOKEN_SECONDS, boundObjectRef=bound
            ),
        )
        try:
            answer = self.client.create(request, account, namespace=meta["namespace"])
        except ApiError as err:
            if err.status.code == 404:
                raise ContainerConfigError(
                    f"ServiceAccount {meta['namespace']}/{account} not found: create it, or run "
                    "kube-controller-manager (its ServiceAccount controller creates 'default')"
                ) from None
            raise
        if answer.status is None or not answer.status.token:
            raise ContainerConfigError(f"TokenRequest for ServiceAccount {account}: no token")
        return answer.status.token

"""A lean GCS client over gRPC, for processes that must stay small (the autoscaler sidecar).

Ray's own ``ray._raylet.GcsClient`` can only be imported with the whole ``ray`` package
(about 40 MB of RSS, on a sidecar whose budget is 100 MB). The sidecar needs four calls, so
this client makes them with grpcio and Ray's own generated messages
(:mod:`rayscale.ray.protos`), with the signatures of ``GcsClient``'s methods, so
:class:`rayscale.ray.gcs.GcsView` works on either.

Token auth (Ray 2.60): with ``RAY_AUTH_MODE=token`` every call carries
``authorization: Bearer <token>``, the token looked up as Ray looks it up: ``RAY_AUTH_TOKEN``,
else the file ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc

from rayscale.protocol import AUTH_MODE_ENV, AUTH_TOKEN_ENV, AUTH_TOKEN_PATH_ENV

_AUTOSCALER = "/ray.rpc.autoscaler.AutoscalerStateService/"
_KV = "/ray.rpc.InternalKVGcsService/"
_MAX_MESSAGE = 512 * 2**20  # a ClusterResourceState of thousands of nodes is large


class GcsCallError(RuntimeError):
    """The GCS answered a KV call with a non-OK status."""


def auth_metadata(environ: Mapping[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    """The gRPC metadata Ray's token auth expects (empty when token auth is off)."""
    env = os.environ if environ is None else environ
    if env.get(AUTH_MODE_ENV, "").lower() != "token":
        return ()
    token = env.get(AUTH_TOKEN_ENV, "").strip()
    if not token:
        path = Path(env.get(AUTH_TOKEN_PATH_ENV) or Path.home() / ".ray" / "auth_token")
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise PermissionError(
                f"{AUTH_MODE_ENV}=token but the token file {path} cannot be read ({exc}); "
                f"set {AUTH_TOKEN_PATH_ENV} to the cluster's token file"
            ) from exc
    return (("authorization", f"Bearer {token}"),)


def _pb(name: str) -> Any:
    return importlib.import_module(f"rayscale.ray.protos.{name}")


class GrpcGcsClient:
    """The subset of ``ray._raylet.GcsClient`` the autoscaler uses, over plain gRPC."""

    def __init__(self, address: str, environ: Mapping[str, str] | None = None) -> None:
        self.address = address
        self._metadata = auth_metadata(environ)
        self._channel = grpc.insecure_channel(
            address,
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE),
                ("grpc.max_send_message_length", _MAX_MESSAGE),
            ],
        )
        self._autoscaler = _pb("autoscaler_pb2")
        self._gcs = _pb("gcs_service_pb2")

    def _call(self, method: str, request: Any, reply_type: Any, timeout: float | None) -> Any:
        rpc = self._channel.unary_unary(
            method,
            request_serializer=type(request).SerializeToString,
            response_deserializer=reply_type.FromString,
        )
        return rpc(request, timeout=timeout, metadata=self._metadata)

    def get_cluster_resource_state(self, timeout_s: float | None = None) -> bytes:
        """The serialized ``ClusterResourceState`` reply, as ``GcsClient`` returns it."""
        a = self._autoscaler
        reply = self._call(
            _AUTOSCALER + "GetClusterResourceState",
            a.GetClusterResourceStateRequest(),
            a.GetClusterResourceStateReply,
            timeout_s,
        )
        out: bytes = reply.SerializeToString()
        return out

    def internal_kv_get(
        self, key: bytes, namespace: bytes | None, timeout: float | None = None
    ) -> bytes | None:
        g = self._gcs
        request = g.InternalKVGetRequest(key=key, namespace=namespace or b"")
        reply = self._call(_KV + "InternalKVGet", request, g.InternalKVGetReply, timeout)
        if reply.status.code == _NOT_FOUND:
            return None
        _check(reply.status, f"get {key!r}")
        value: bytes = reply.value
        return value

    def internal_kv_put(
        self,
        key: bytes,
        value: bytes,
        overwrite: bool,
        namespace: bytes | None,
        timeout: float | None = None,
    ) -> int:
        g = self._gcs
        request = g.InternalKVPutRequest(
            key=key, value=value, overwrite=overwrite, namespace=namespace or b""
        )
        reply = self._call(_KV + "InternalKVPut", request, g.InternalKVPutReply, timeout)
        _check(reply.status, f"put {key!r}")
        return int(reply.added)

    def drain_node(
        self,
        node_id: str,
        reason: int,
        reason_message: str,
        deadline_timestamp_ms: int,
        timeout: float | None = None,
    ) -> tuple[bool, str]:
        a = self._autoscaler
        request = a.DrainNodeRequest(
            node_id=bytes.fromhex(node_id),
            reason=reason,
            reason_message=reason_message,
            deadline_timestamp_ms=deadline_timestamp_ms,
        )
        reply = self._call(_AUTOSCALER + "DrainNode", request, a.DrainNodeReply, timeout)
        return bool(reply.is_accepted), str(reply.rejection_reason_message)

    def close(self) -> None:
        self._channel.close()


_NOT_FOUND = 17  # ray::StatusCode::NotFound


def _check(status: Any, what: str) -> None:
    if status.code != 0:
        raise GcsCallError(f"GCS KV {what}: status {status.code}: {status.message}")

"""The FastAPI app: KubeRay's ``/apis/v1`` routes over a :class:`~.backends.base.Backend`.

Besides the resources: ``/openapi.json`` (and ``/docs``), ``/healthz`` (always open) and
``/metrics`` (Prometheus: request counts by route and status, latency histogram). With a bearer
token configured every other route needs ``Authorization: Bearer <token>``; a wrong or missing
one gets a 401 whose body repeats nothing from the request.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Body, FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from rayscale.apiserver import errors
from rayscale.apiserver.backends.base import Backend
from rayscale.apiserver.models import (
    DNS_LABEL,
    Cluster,
    ClusterList,
    ComputeTemplate,
    ComputeTemplateList,
    ErrorBody,
    Job,
    JobList,
)

PREFIX = "/apis/v1"
JSON = "application/json"
OPEN_PATHS = frozenset({"/healthz"})
NS = Annotated[str, Path(min_length=1, max_length=63, pattern=DNS_LABEL)]
NAME = Annotated[str, Path(min_length=1, max_length=63, pattern=DNS_LABEL)]
Limit = Annotated[int | None, Query(ge=0, le=10_000, description="page size (0: all)")]
Continue = Annotated[
    str | None, Query(alias="continue", max_length=2000, description="next page token")
]
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "invalid request (the field is named)"},
    401: {"model": ErrorBody, "description": "missing or wrong bearer token"},
    404: {"model": ErrorBody, "description": "not found"},
    409: {"model": ErrorBody, "description": "already exists"},
}
# Errors of a text/plain route are still JSON: document that explicitly.
TEXT_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {
        "description": spec["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    for code, spec in ERRORS.items()
}


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    """A validation error's location as the client wrote it: ``clusterSpec.workerGroupSpec[0]``."""
    parts = list(loc)
    where = parts.pop(0) if parts and parts[0] in ("body", "query", "path", "header") else "body"
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    if where != "body":
        return f"{out} ({where})" if out else where
    return out or "body"


def _validation_error(exc: RequestValidationError) -> JSONResponse:
    details = []
    for e in exc.errors():
        kind = str(e.get("type", ""))
        if kind == "json_invalid":
            ctx = e.get("ctx") or {}
            problem = f"malformed JSON: {ctx.get('error', 'cannot parse')}"
            details.append(errors.field_detail("body", problem))
            continue
        field = _field(e.get("loc", ()))
        msg = str(e.get("msg", "invalid"))
        if kind == "extra_forbidden":
            msg = "unknown field (check its spelling against the API)"
        elif kind == "missing":
            msg = "required"
        details.append(errors.field_detail(field, msg))
    message = "invalid request: " + "; ".join(f"{d['field']}: {d['problem']}" for d in details)
    body = {"code": errors.INVALID_ARGUMENT, "message": message, "details": details}
    return JSONResponse(body, status_code=400)


def _json(model: BaseModel) -> Response:
    """The model as the response body, camelCase, without unset output fields. Returning a
    Response skips FastAPI's second validation of the (already validated) model."""
    return Response(model.model_dump_json(by_alias=True, exclude_none=True), media_type=JSON)


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "details": []}, status_code=status)


_GRPC_BY_STATUS = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 409: 6, 415: 3, 422: 3}


def create_app(backend: Backend, auth_token: str | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backend.start()
        try:
            yield
        finally:
            backend.close()

    app = FastAPI(
        lifespan=lifespan,
        title="rayscale API server",
        version="v1",
        description="KubeRay v1 REST API (compute templates, clusters, jobs) on "
        f"rayscale's {backend.name} backend.",
    )
    registry = CollectorRegistry()
    requests = Counter(
        "rayscale_apiserver_requests",
        "HTTP requests",
        ["method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "rayscale_apiserver_request_seconds",
        "HTTP request latency",
        ["method", "route"],
        registry=registry,
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
    )
    token = auth_token.encode() if auth_token else None

    @app.middleware("http")
    async def measure_and_auth(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        t0 = time.perf_counter()
        if token is not None and request.url.path not in OPEN_PATHS:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, b"Bearer " + token):
                response: Response = _error(401, errors.UNAUTHENTICATED, "unauthorized")
                response.headers["WWW-Authenticate"] = "Bearer"
                requests.labels(request.method, "(unauthorized)", "401").inc()
                return response
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "(unmatched)")
        requests.labels(request.method, path, str(response.status_code)).inc()
        latency.labels(request.method, path).observe(time.perf_counter() - t0)
        return response

    @app.exception_handler(errors.ApiError)
    async def api_error(request: Request, exc: errors.ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _GRPC_BY_STATUS.get(exc.status_code, errors.INTERNAL)
        message = str(exc.detail) if exc.status_code != 404 else f"no route {request.url.path}"
        return _error(exc.status_code, code, message)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, errors.INTERNAL, f"internal error ({type(exc).__name__}); see the log")

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "backend": backend.name}

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    # -- compute templates --
    @app.post(
        f"{PREFIX}/namespaces/{{namespace}}/compute_templates",
        tags=["compute templates"],
        response_model=ComputeTemplate,
        response_model_exclude_none=True,
        responses=ERRORS,
    )
    def create_template(namespace: NS, body: Annotated[ComputeTemplate, Body()]) -> Response:
        return _json(backend.create_template(namespace, body))

    @app.get(
        f"{PREFIX}/namespaces/{{namespace}}/compute_templates",
        tags=["compute templates"],
        response_model=ComputeTemplateList,
        response_model_exclude_none=True,
        responses=ERRORS,
    )
    def list_templates(namespace: NS) -> Response:
        return _json(ComputeTemplateList(compute_templates=backend.list_templates(namespace)))

    @app.get(
        f"{PREFIX}/compute_templates",
        tags=["compute templates"],
        response_model=ComputeTemplateList,
        response_model_exclude_none=True,
        responses=ERRORS,
    )
    def list_all_templates() -> Response:
        return _json(ComputeTemplateList(compute_templates=backend.list_templates(None)))

    @app.get(
        f"{PREFIX}/namespaces/{{namespace}}/compute_templates/{{name}}",
        tags=["compute templates"],
        response_model=ComputeTemplate,
        response_model_exclude_none=True,
        responses=ERRORS,
    )
    def get_template(namespace: NS, name: NAME) -> Response:
        return _json(backend.get_template(namespace, name))

    @app.delete(
        f"{PREFIX}/namespaces/{{namespace}}/compute_templates/{{name}}",
        tags=["compute templates"],
        responses=ERRORS,
    )
    def delete_template(namespace: NS, name: NAME) -> dict[str, Any]:
        backend.delete_template(namespace, name)
        return {}

    # -- clusters --
    @app.post(
        f"{PREFIX}/namespaces/{{namespace}}/clusters",
        tags=["clusters"],
        response_model=Cluster,
        response_model_exclude_none=True,
        responses=ERRORS,
    )
    def create_cluster(namespace: NS, body: Annotated[Cluster, Body()]) -> Response:
        return _json(backend.create_cluster(namespace, body))

    def _page(namespace: str | None, limit: int | None, cont: str | None) -> Response:
        clusters, token = backend.list_clusters(namespace, limit, cont)
        return _json(ClusterList.model_construct(clusters=clusters, continue_=token))

    @app.get(
        f"{PREFIX}/namespaces/{{namespace}}/clusters",
        tags=["clusters"],
        response_model=ClusterList,
        response_model_exclude_none=True,
        responses=ERRORS,
    )
    def list_clusters(namespace: NS, limit: Limit = None, cont: Continue = None) -> Response:
        return _page(namespace, limit, cont)

    @app.get(
        f"{PREFIX}/clusters",
        tags=["clusters"],
        response_model=ClusterList,
        response_model_exclude_none=True,
        responses=ERRORS,
    )
    def list_all_clusters(limit: Limit = None, cont: Continue = None) -> Response:
        return _page(None, limit, cont)

    @app.get(
        f"{PREFIX}/namespaces/{{namespace}}/clusters/{{name}}",
        tags=["clusters"],
        response_model=Cluster,
        response_model_exclude_none=True,
        responses=ERRORS,
    )
    def get_cluster(namespace: NS, name: NAME) -> Response:
        return _json(backend.get_cluster(namespace, name))

    @app.delete(
        f"{PREFIX}/namespaces/{{namespace}}/clusters/{{name}}", tags=["clusters"], responses=ERRORS
    )
    def delete_cluster(namespace: NS, name: NAME) -> dict[str, Any]:
        backend.delete_cluster(namespace, name)
        return {}

    # -- jobs --
    @app.post(
        f"{PREFIX}/namespaces/{{namespace}}/jobs",
        tags=["jobs"],
        response_model=Job,
        response_model_exclude_none=True,
        responses=ERRORS,
    )
    def create_job(namespace: NS, body: Annotated[Job, Body()]) -> Response:
        return _json(backend.create_job(namespace, body))

    @app.get(
        f"{PREFIX}/namespaces/{{namespace}}/jobs",
        tags=["jobs"],
        response_model=JobList,
        response_model_exclude_none=True,
        responses=ERRORS,
    )
    def list_jobs(namespace: NS) -> Response:
        return _json(JobList.model_construct(jobs=backend.list_jobs(namespace), continue_=""))

    @app.get(
        f"{PREFIX}/jobs",
        tags=["jobs"],
        response_model=JobList,
        response_model_exclude_none=True,
        responses=ERRORS,
    )
    def list_all_jobs() -> Response:
        return _json(JobList.model_construct(jobs=backend.list_jobs(None), continue_=""))

    @app.get(
        f"{PREFIX}/namespaces/{{namespace}}/jobs/{{name}}",
        tags=["jobs"],
        response_model=Job,
        response_model_exclude_none=True,
        responses=ERRORS,
    )
    def get_job(namespace: NS, name: NAME) -> Response:
        return _json(backend.get_job(namespace, name))

    @app.get(
        f"{PREFIX}/namespaces/{{namespace}}/jobs/{{name}}/logs",
        tags=["jobs"],
        response_class=PlainTextResponse,
        responses=TEXT_ERRORS,
    )
    def job_logs(
        namespace: NS,
        name: NAME,
        max_bytes: Annotated[int, Query(alias="maxBytes", ge=1, le=64 << 20)] = 1 << 20,
    ) -> PlainTextResponse:
        return PlainTextResponse(backend.job_logs(namespace, name, max_bytes))

    @app.delete(f"{PREFIX}/namespaces/{{namespace}}/jobs/{{name}}", tags=["jobs"], responses=ERRORS)
    def delete_job(namespace: NS, name: NAME) -> dict[str, Any]:
        backend.delete_job(namespace, name)
        return {}

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI documents a 422 for validation errors; this API answers 400 instead."""
        schema = generate()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.backend = backend
    return app

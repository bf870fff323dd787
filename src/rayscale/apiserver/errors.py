"""Errors as KubeRay's API server returns them: ``{"code": <gRPC code>, "message", "details"}``.

Backends raise :class:`ApiError` subclasses; the app turns them, request validation errors and
malformed JSON into that body with the matching HTTP status. A client's mistake is never a 500.
"""

from __future__ import annotations

from typing import Any

# gRPC status codes (google.rpc.Code), as KubeRay's grpc-gateway puts them in ``code``.
INVALID_ARGUMENT = 3
NOT_FOUND = 5
ALREADY_EXISTS = 6
FAILED_PRECONDITION = 9
INTERNAL = 13
UNAVAILABLE = 14
UNAUTHENTICATED = 16


class ApiError(Exception):
    status = 500
    code = INTERNAL

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidError(ApiError):
    status = 400
    code = INVALID_ARGUMENT


class NotFoundError(ApiError):
    status = 404
    code = NOT_FOUND


class ConflictError(ApiError):
    status = 409
    code = ALREADY_EXISTS


class PreconditionError(ApiError):
    """The request is valid but the object's state forbids it (e.g. a job on a failed cluster)."""

    status = 409
    code = FAILED_PRECONDITION


class UnavailableError(ApiError):
    status = 503
    code = UNAVAILABLE


def field_detail(field: str, problem: str) -> dict[str, Any]:
    """One detail entry: which field, what is wrong with it."""
    return {"field": field, "problem": problem}


def invalid_field(field: str, problem: str, fix: str = "") -> InvalidError:
    message = f"{field}: {problem}" + (f"; {fix}" if fix else "")
    return InvalidError(message, [field_detail(field, problem)])


def not_found(kind: str, name: str, namespace: str, field: str | None = None) -> NotFoundError:
    where = f" (named by {field})" if field else ""
    details = [field_detail(field, f"{kind} {name!r} not found")] if field else []
    return NotFoundError(f"{kind} {name!r} not found in namespace {namespace!r}{where}", details)

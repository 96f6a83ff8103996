"""The one place errors become answers: RFC 9457 application/problem+json, with the request id.

Unexpected exceptions answer a bare 500 problem; their stack goes to the log only.
"""

import logging
from http import HTTPStatus
from typing import Any

from asyncpg.exceptions import PostgresConnectionError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from opsconductor.errors import DependencyUnavailable, FieldProblem, InputInvalid, OpsConductorError

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://opsconductor.dev/problems/"
HTTP_ERROR_SLUGS = {404: "not-found", 405: "method-not-allowed", 413: "content-too-large"}


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


class Problem(BaseModel):
    """An RFC 9457 problem; some carry more members (`errors`, `jobs`, ...)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str
    request_id: str | None


_PROBLEM_CONTENT = {PROBLEM_MEDIA_TYPE: {"schema": Problem.model_json_schema()}}
# Documented for every API route, so clients (and schemathesis) know error answers'
# media type and shape; "4XX" also stands in for FastAPI's default 422 schema.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"description": "A problem with the request", "content": _PROBLEM_CONTENT},
    "5XX": {"description": "A dependency is unavailable", "content": _PROBLEM_CONTENT},
}


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def problem(
    request: Request,
    *,
    status: int,
    title: str,
    detail: str,
    type_uri: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    request_id = request_id_of(request)
    body: dict[str, Any] = {
        "type": type_uri,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": request_id,
        **extra,
    }
    response_headers = dict(headers or {})
    if request_id:
        response_headers["X-Request-ID"] = request_id
    return ProblemResponse(body, status_code=status, headers=response_headers)


def field_path(location: tuple[int | str, ...] | list[int | str]) -> str:
    return ".".join(str(part) for part in location)


async def _domain_error(request: Request, error: Exception) -> ProblemResponse:
    assert isinstance(error, OpsConductorError)
    extra = dict(error.extra)
    if isinstance(error, InputInvalid):
        extra["errors"] = [item.as_dict() for item in error.problems]
    return problem(
        request,
        status=error.status,
        title=error.title,
        detail=error.detail,
        type_uri=error.type_uri,
        headers=error.headers,
        **extra,
    )


async def _validation_error(request: Request, error: Exception) -> ProblemResponse:
    assert isinstance(error, RequestValidationError)
    problems = [
        FieldProblem(
            path=field_path(item["loc"]),
            message=item["msg"].removeprefix("Value error, "),
            type=item["type"],
        )
        for item in error.errors()
    ]
    paths = ", ".join(item.path for item in problems)
    return await _domain_error(request, InputInvalid(f"invalid input at: {paths}", problems))


async def http_error_problem(request: Request, error: Exception) -> ProblemResponse:
    assert isinstance(error, StarletteHTTPException)
    slug = {404: "not-found", 405: "method-not-allowed", 413: "content-too-large"}.get(
        error.status_code, "http-error"
    )
    return problem(
        request,
        status=error.status_code,
        title=_reason(error.status_code),
        detail=str(error.detail),
        type_uri=PROBLEM_BASE + slug,
        headers=dict(error.headers or {}),
    )


async def _database_unreachable(request: Request, error: Exception) -> ProblemResponse:
    if isinstance(error, DBAPIError) and not _is_connection_problem(error):
        return await _unexpected_error(request, error)
    logger.warning("database unreachable", extra={"error": type(error).__name__})
    return await _domain_error(
        request, DependencyUnavailable("the database is unreachable; retry shortly")
    )


async def _database_busy(request: Request, error: Exception) -> ProblemResponse:
    # Every connection of this process's pool stayed in use for the pool's whole timeout: the
    # database is reachable but this process is at its limit of connections.
    logger.warning("no database connection came free", extra={"error": str(error)[:200]})
    return await _domain_error(
        request,
        DependencyUnavailable("every database connection is in use; retry shortly"),
    )


async def _unexpected_error(request: Request, error: Exception) -> ProblemResponse:
    logger.error("unhandled error", exc_info=error, extra={"path": request.url.path})
    return problem(
        request,
        status=500,
        title="Internal error",
        detail="an unexpected error occurred; the request id locates it in the logs",
        type_uri=PROBLEM_BASE + "internal",
    )


def _is_connection_problem(error: DBAPIError) -> bool:
    if error.connection_invalidated or isinstance(error, OperationalError):
        return True
    return isinstance(error.orig, (PostgresConnectionError, OSError, ConnectionError))


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(OpsConductorError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error_problem)
    app.add_exception_handler(DBAPIError, _database_unreachable)
    app.add_exception_handler(PoolTimeout, _database_busy)
    app.add_exception_handler(ConnectionError, _database_unreachable)
    app.add_exception_handler(Exception, _unexpected_error)

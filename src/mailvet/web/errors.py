"""Exception handlers: every error leaves the app as JSON `{"error": "..."}`."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import (
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_500_INTERNAL_SERVER_ERROR,
)
from litestar.types import ExceptionHandlersMap

from mailvet.domain.ports import JobNotFound
from mailvet.pipeline.submit import ResultNotReady

log = structlog.get_logger(__name__)


class ErrorBody(msgspec.Struct):
    error: str


def error_response(
    status_code: int, message: str, headers: dict[str, str] | None = None
) -> Response[ErrorBody]:
    return Response(ErrorBody(error=message), status_code=status_code, headers=headers)


def _job_not_found(_: Request[Any, Any, Any], exc: JobNotFound) -> Response[ErrorBody]:
    job_id = str(exc.args[0]) if exc.args else ""
    return error_response(HTTP_404_NOT_FOUND, f"no such job: {job_id}" if job_id else "no such job")


def _result_not_ready(_: Request[Any, Any, Any], exc: ResultNotReady) -> Response[ErrorBody]:
    return error_response(HTTP_409_CONFLICT, exc.brief)  # the job's error is in its status


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    """Litestar's own errors (400 validation, 404 route, 405, 413 ...) in our shape."""
    message = exc.detail
    if isinstance(exc, ValidationException) and (details := _details(exc.extra)):
        message = f"{message}: {details}"
    return error_response(exc.status_code, message, exc.headers)


def _details(extra: object) -> str:
    """Litestar's validation details (`[{"key": ..., "message": ...}]`) on one line."""
    if not isinstance(extra, list):
        return ""
    found = []
    for item in extra:
        if isinstance(item, dict) and item.get("message"):
            key = item.get("key")
            found.append(f"{key}: {item['message']}" if key else str(item["message"]))
    return "; ".join(found)


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.error(
        "web_request_failed",
        method=request.method,
        path=request.url.path,
        error=type(exc).__name__,
        exc_info=exc,
    )
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal error")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    JobNotFound: _job_not_found,
    ResultNotReady: _result_not_ready,
    HTTPException: _http_error,
    Exception: _internal_error,
}

"""Exception handlers: JSON `{"error": "..."}` for /api and JSON clients, an HTML page for
browsers, RFC 9457 problem details (`application/problem+json`) under /api/v1.

The keyed API's routes answer their own refusals as problems (web/api/auth.py); what
reaches these app-level handlers from a /api/v1 path (an unknown path's 404, a wrong
method's 405 with its Allow header, the 500 of an unexpected error) is a problem too
(`status_problem`), so an API client parses one error shape.

A request gets the HTML page when it is not under /api/ and its Accept header asks for
text/html (browsers do; httpx, curl and fetch() without one do not); an htmx request gets
an HTML fragment (errors/fragment.html) to swap in. Everything else keeps
the JSON shape the job API has always had. Both carry the status and, for 429, the
Retry-After of the refusal. `LoginRequired` (web/sessions.py) sends a browser to /login
with where it was going; a JSON client gets 401.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, PermissionDeniedException, ValidationException
from litestar.response import Redirect, Template
from litestar.status_codes import (
    HTTP_303_SEE_OTHER,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_500_INTERNAL_SERVER_ERROR,
)
from litestar.types import ExceptionHandlersMap

from mailvet.domain.ports import JobNotFound
from mailvet.pipeline.submit import ResultNotReady
from mailvet.web.forms import is_htmx
from mailvet.web.security import API_PREFIX
from mailvet.web.sessions import LoginRequired

log = structlog.get_logger(__name__)

ERROR_TEMPLATE = "errors/error.html"
ERROR_FRAGMENT = "errors/fragment.html"  # htmx requests: swapped into the page
TITLES = {
    400: "Bad request",
    401: "Sign in required",
    403: "Forbidden",
    404: "Page not found",
    405: "Method not allowed",
    408: "Request timeout",
    409: "Conflict",
    413: "Too large",
    429: "Too many requests",
    500: "Something went wrong",
}
CSRF_FAILED = "CSRF token verification failed"


class ErrorBody(msgspec.Struct):
    error: str


def error_response(
    status_code: int, message: str, headers: dict[str, str] | None = None
) -> Response[ErrorBody]:
    return Response(ErrorBody(error=message), status_code=status_code, headers=headers)


def wants_html(request: Request[Any, Any, Any]) -> bool:
    if request.url.path.startswith(API_PREFIX):
        return False
    return is_htmx(request) or "text/html" in request.headers.get("accept", "")


def _answer(
    request: Request[Any, Any, Any],
    status_code: int,
    message: str,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    # the keyed API: RFC 9457 problems, whatever failed (imported here: the API's package
    # imports its routes, which may use this module)
    from mailvet.web.api.auth import status_problem, under_api_v1

    if under_api_v1(request.url.path):
        return status_problem(status_code, message, headers)
    if not wants_html(request) or request.app.template_engine is None:
        return error_response(status_code, message, headers)
    return Template(
        ERROR_FRAGMENT if is_htmx(request) else ERROR_TEMPLATE,
        context={
            "status_code": status_code,
            "title": TITLES.get(status_code, "Error"),
            "message": _page_message(status_code, message),
            "retry_after": _seconds((headers or {}).get("Retry-After", "")),
        },
        status_code=status_code,
        headers=headers,
    )


def _seconds(retry_after: str) -> int:
    """A Retry-After in seconds (0 when absent or an HTTP date: the page then names no wait)."""
    return int(retry_after) if retry_after.isdigit() else 0


def _page_message(status_code: int, message: str) -> str:
    """What a person reads: the API's wording where it is plain, a sentence where not."""
    if message == CSRF_FAILED:
        return (
            "This form has expired or did not come from this site. Reload the page and try again."
        )
    if status_code == HTTP_404_NOT_FOUND:
        return "There is nothing at this address."
    if status_code == HTTP_500_INTERNAL_SERVER_ERROR:
        return "The server failed to answer. It has been logged; please try again."
    return message


def _job_not_found(request: Request[Any, Any, Any], exc: JobNotFound) -> Response[Any]:
    job_id = str(exc.args[0]) if exc.args else ""
    message = f"no such job: {job_id}" if job_id else "no such job"
    return _answer(request, HTTP_404_NOT_FOUND, message)


def _result_not_ready(request: Request[Any, Any, Any], exc: ResultNotReady) -> Response[Any]:
    return _answer(request, HTTP_409_CONFLICT, exc.brief)  # the job's error is in its status


def _login_required(request: Request[Any, Any, Any], exc: LoginRequired) -> Response[Any]:
    if wants_html(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(f"/login?next={quote(target, safe='')}", status_code=HTTP_303_SEE_OTHER)
    return _answer(request, exc.status_code, exc.detail, exc.headers)


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Litestar's own errors (400 validation, 403 CSRF, 404 route, 405, 413, 429 ...)."""
    message = exc.detail
    if isinstance(exc, ValidationException) and (details := _details(exc.extra)):
        message = f"{message}: {details}"
    if isinstance(exc, PermissionDeniedException) and message == CSRF_FAILED:
        log.info("web_csrf_refused", method=request.method, path=request.url.path)
    return _answer(request, exc.status_code, message, exc.headers)


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


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error(
        "web_request_failed",
        method=request.method,
        path=request.url.path,
        error=type(exc).__name__,
        exc_info=exc,
    )
    return _answer(request, HTTP_500_INTERNAL_SERVER_ERROR, "internal error")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    JobNotFound: _job_not_found,
    ResultNotReady: _result_not_ready,
    LoginRequired: _login_required,
    HTTPException: _http_error,
    Exception: _internal_error,
}

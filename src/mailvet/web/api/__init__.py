"""The public API, /api/v1: every route behind an API key (web/api/auth.py), its answers
JSON and its refusals RFC 9457 problem details.

`api_router()` is the area for `create_app(..., areas=[...])` (web/site.py). Each module
here owns its routes and lists them in `ROUTES` (credits.py: `GET /api/v1/credits`; v1.py:
`POST /api/v1/validate` and `/validate/batch`; jobs.py: `/api/v1/jobs` and its routes,
`jobs.routes(max_upload_bytes)` since the upload has its own body limit); a new module adds
its `ROUTES` to `route_handlers` below and uses
`Principal`, `requires_scope` and `ApiProblem` from auth.py. The router's guard authenticates
every request before any handler or dependency runs; `principal` is then the key's
`ApiPrincipal`.
"""

from __future__ import annotations

from collections.abc import Sequence

from litestar import Router
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.types import ControllerRouterHandler

from mailvet.web.api import credits, jobs, v1
from mailvet.web.api.auth import (
    ApiProblem,
    authenticate_api_key,
    problem_response,
    provide_principal,
)
from mailvet.web.jobs.upload import MAX_UPLOAD_BYTES

__all__ = ["API_V1", "api_router"]

API_V1 = "/api/v1"


def api_router(
    extra: Sequence[ControllerRouterHandler] = (), *, max_upload_bytes: int = MAX_UPLOAD_BYTES
) -> Router:
    """/api/v1 with its modules' routes, and `extra` ones (tests: a route needing a scope);
    `max_upload_bytes`: the largest list POST /api/v1/jobs takes."""
    return Router(
        path=API_V1,
        route_handlers=[*credits.ROUTES, *v1.ROUTES, *jobs.routes(max_upload_bytes), *extra],
        guards=[authenticate_api_key],
        dependencies={"principal": Provide(provide_principal, sync_to_thread=False)},
        exception_handlers={ApiProblem: problem_response, HTTPException: problem_response},
    )

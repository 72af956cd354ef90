"""GET /health and GET /metrics of the web role: mailvet.health's answers, served by Litestar.

The back-end roles serve the same answers without Litestar (mailvet.health.health_app).
"""

from __future__ import annotations

from collections.abc import Sequence

from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from mailvet.bootstrap import Deps
from mailvet.health import PING_TIMEOUT, Health, check, metrics_text


def health_routes(
    deps: Deps, roles: Sequence[str] = ("web",), *, within: float = PING_TIMEOUT
) -> list[HTTPRouteHandler]:
    """The two handlers, over `deps`, answering for the `roles` this process runs."""

    @get("/health")
    async def health() -> Response[Health]:
        answer = await check(deps, roles, within)
        status = HTTP_200_OK if answer.status == "ok" else HTTP_503_SERVICE_UNAVAILABLE
        return Response(answer, status_code=status)

    @get("/metrics", include_in_schema=False)
    async def metrics() -> Response[bytes]:
        body, content_type = await metrics_text(deps)
        return Response(body, media_type=content_type)

    return [health, metrics]

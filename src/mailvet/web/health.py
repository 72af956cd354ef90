"""GET /health on the web role's public port: the status of mailvet.health.healthy() alone.

The public port (compose binds it to 0.0.0.0) answers load balancers with `{"status": ...}`
(200 or 503) and nothing else: which ports failed, the roles and the Prometheus figures are
served only by the health server (mailvet.health.health_app on MAILVET_HEALTH_HOST, 127.0.0.1
by default), which `mailvet run web` starts too. There is no /metrics here.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from mailvet.bootstrap import Deps
from mailvet.health import PING_TIMEOUT, healthy


class PublicHealth(msgspec.Struct):
    status: str  # "ok" or "unavailable"


def health_routes(
    deps: Deps, roles: Sequence[str] = ("web",), *, within: float = PING_TIMEOUT
) -> list[HTTPRouteHandler]:
    """GET /health over `deps`, answering for the `roles` this process runs."""

    @get("/health")
    async def health() -> Response[PublicHealth]:
        answer = await healthy(deps, roles, within)
        status = HTTP_200_OK if answer.status == "ok" else HTTP_503_SERVICE_UNAVAILABLE
        return Response(PublicHealth(answer.status), status_code=status)

    return [health]

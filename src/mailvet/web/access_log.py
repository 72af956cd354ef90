"""The web server's access log: one structlog line per HTTP request, with nothing personal.

uvicorn's own access line holds the full request target (a password-reset link's token, a
`?email=` address, a signed download link's signature) and the client's IP address; the log
at info level must hold neither (mailvet.logs). This ASGI wrapper logs instead, when the
response has ended (or the app failed): `http_request` with the method, the path without
its query string (cut to 200 characters), the status and the duration in milliseconds.

serve.py wraps the web app in it and turns uvicorn's access log off.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from litestar.enums import ScopeType

from mailvet.logs import logger

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

MAX_PATH = 200


class AccessLog:
    """`AccessLog(app)`: `app` with one access line per HTTP request (lifespan and
    websockets pass through unlogged)."""

    def __init__(self, app: ASGIApp | Any) -> None:
        self.app = app
        self._log = logger("mailvet.web.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except BaseException:
            status = status or 500
            raise
        finally:
            self._log.info(
                "http_request",
                method=str(scope.get("method", "")),
                path=str(scope.get("path", ""))[:MAX_PATH],  # the query string is elsewhere
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )

"""GET /health: is this web process able to do its work (its message bus answers)?"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

import msgspec
import structlog
from litestar import Response, get
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from mailvet.web.deps import Bus

log = structlog.get_logger(__name__)

ROLE = "web"
PING_TIMEOUT = 5.0  # seconds


class Health(msgspec.Struct, omit_defaults=True):
    status: str
    role: str
    error: str = ""


@runtime_checkable
class Pingable(Protocol):
    """A bus that can tell whether its broker answers (RabbitBus); MemoryBus cannot fail."""

    async def ping(self) -> bool: ...


async def bus_answers(bus: object) -> bool:
    if not isinstance(bus, Pingable):
        return True
    try:
        async with asyncio.timeout(PING_TIMEOUT):
            return await bus.ping() is not False
    except Exception as exc:  # a health check reports, it does not raise
        log.warning("health_bus_ping_failed", error=type(exc).__name__)
        return False


@get("/health")
async def health(bus: Bus) -> Response[Health]:
    if await bus_answers(bus):
        return Response(Health(status="ok", role=ROLE), status_code=HTTP_200_OK)
    return Response(
        Health(status="unavailable", role=ROLE, error="the message bus does not answer"),
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
    )

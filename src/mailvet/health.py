"""Is this process able to do its work? One answer for every role, and the small HTTP app
that gives it (and the metrics) to a back-end role.

`healthy(deps, roles)` asks, at once and each within `within` seconds, the ports the roles use:
the message bus (`ping()`, only a True answer counts), the job database and the object
storage. It is the one answer: every `mailvet run <role>` process (web included) serves it
with `health_app()` (uvicorn on MAILVET_HEALTH_HOST:MAILVET_HEALTH_PORT, 127.0.0.1:9464 by
default), which answers only `GET /health` (200 or 503, JSON) and `GET /metrics` (Prometheus
text). The web role's public port answers `GET /health` with the status alone
(mailvet.web.health, for load balancers) and has no /metrics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec

from mailvet import metrics
from mailvet.logs import logger

if TYPE_CHECKING:
    from mailvet.bootstrap import Deps

PING_TIMEOUT = 5.0  # seconds for the whole check
HEALTH_PROBE_KEY = "health/probe"  # looked up (never written) in object storage

# the ports each role needs to do its work
NEEDS: Mapping[str, frozenset[str]] = {
    "web": frozenset({"bus", "database", "storage"}),
    "intake": frozenset({"bus", "database", "storage"}),
    "publisher": frozenset({"bus", "database", "storage"}),
    "orchestrator": frozenset({"bus", "database"}),
    "worker": frozenset({"bus"}),
    "resultgen": frozenset({"bus", "database", "storage"}),
}

OK = "ok"
FAILED = "failed"
TIMEOUT = "timeout"


class Health(msgspec.Struct, omit_defaults=True):
    status: str  # "ok" or "unavailable"
    roles: list[str]
    checks: dict[str, str]  # port -> ok | failed | timeout
    error: str = ""


@runtime_checkable
class KnowsDepths(Protocol):
    """A bus that can count the messages waiting in the queues it uses."""

    async def queue_depths(self) -> dict[str, int]: ...


def needs(roles: Iterable[str]) -> frozenset[str]:
    wanted: set[str] = set()
    for role in roles:
        wanted |= NEEDS.get(role, frozenset({"bus"}))
    return frozenset(wanted)


async def _bus(deps: Deps) -> bool:
    return await deps.bus.ping() is True  # None or any other answer is not an answer


async def _database(deps: Deps) -> bool:
    await deps.jobs.list_jobs(limit=1)
    return True


async def _storage(deps: Deps) -> bool:
    await deps.storage.exists(HEALTH_PROBE_KEY)
    return True


PROBES: Mapping[str, Callable[[Deps], Awaitable[bool]]] = {
    "bus": _bus,
    "database": _database,
    "storage": _storage,
}
ERRORS = {
    "bus": "the message bus does not answer",
    "database": "the job database does not answer",
    "storage": "the object storage does not answer",
}


async def _probe(name: str, deps: Deps, within: float) -> str:
    """ok, failed or timeout; logged at info (the 503 is the report: an outage probed every
    few seconds must not write a warning each time)."""
    try:
        async with asyncio.timeout(within):
            return OK if await PROBES[name](deps) else FAILED
    except TimeoutError:
        logger(__name__).info("health_check_failed", check=name, error="timeout")
        return TIMEOUT
    except Exception as exc:  # a health check reports, it does not raise
        logger(__name__).info("health_check_failed", check=name, error=type(exc).__name__)
        return FAILED


async def healthy(deps: Deps, roles: Iterable[str], within: float = PING_TIMEOUT) -> Health:
    """Ask every port the roles need, concurrently, each within `within` seconds; the
    answer's status is "ok" only when every one answered."""
    roles = list(roles)
    names = sorted(needs(roles))
    answers = await asyncio.gather(*(_probe(name, deps, within) for name in names))
    checks = dict(zip(names, answers, strict=True))
    failed = [name for name in names if checks[name] != OK]
    if not failed:
        return Health(status="ok", roles=roles, checks=checks)
    error = "; ".join(ERRORS[name] for name in failed)
    return Health(status="unavailable", roles=roles, checks=checks, error=error)


async def metrics_text(deps: Deps) -> tuple[bytes, str]:
    """The Prometheus exposition, with the queue depths asked of the bus just now."""
    bus = deps.bus
    if isinstance(bus, KnowsDepths):
        try:
            async with asyncio.timeout(PING_TIMEOUT):
                metrics.queue_depths(await bus.queue_depths())
        except Exception as exc:  # the rest of the figures are still worth serving
            logger(__name__).warning("queue_depths_failed", error=type(exc).__name__)
    return metrics.exposition()


# --- the back-end roles' HTTP app (ASGI, served by uvicorn) ------------------------------

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON = "application/json"


def health_app(deps: Deps, roles: Iterable[str], within: float = PING_TIMEOUT) -> ASGIApp:
    """`GET /health` and `GET /metrics`; 405 for another method on them, 404 elsewhere."""
    roles = list(roles)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # served with lifespan="off": no other kind comes
            return
        path, method = scope["path"], scope["method"]
        if path not in ("/health", "/metrics"):
            await _respond(send, 404, JSON, b'{"error":"not found"}')
        elif method != "GET":
            await _respond(send, 405, JSON, b'{"error":"method not allowed"}', allow="GET")
        elif path == "/health":
            health = await healthy(deps, roles, within)
            status = 200 if health.status == "ok" else 503
            await _respond(send, status, JSON, msgspec.json.encode(health))
        else:
            body, content_type = await metrics_text(deps)
            await _respond(send, 200, content_type, body)

    return app


async def _respond(
    send: Send, status: int, content_type: str, body: bytes, *, allow: str = ""
) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(body))]
    if allow:
        headers.append((b"allow", allow.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

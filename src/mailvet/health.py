"""Is this process able to do its work? One answer for every role, and the small HTTP app
that gives it (and the metrics) to a back-end role.

`healthy(deps, roles)` asks, at once and each within `within` seconds, the ports the roles use:
the message bus (`ping()`, only a True answer counts), the job database and the object
storage. It is the one answer: every `mailvet run <role>` process (web included) serves it
with `health_app()` (uvicorn on MAILVET_HEALTH_HOST:MAILVET_HEALTH_PORT, 127.0.0.1:9464 by
default), which answers only `GET /health` (200 or 503, JSON) and `GET /metrics` (Prometheus
text). The web role's public port answers `GET /health` with the status alone
(mailvet.web.health, for load balancers) and has no /metrics.

A running process (serve.py) opens `shared_answers(deps)`: while it is open, `healthy(deps,
...)` serves one probe's answer for FRESH seconds to every caller (both ports, any number
of load balancers and monitors), with at most one probe of the same roles in flight; callers
that come while it runs wait for it. So a busy /health costs no database or bus round trip
per request, and an outage still shows within FRESH seconds plus the probe's own limit.
Without it (tests, one-off calls) every call probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec

from mailvet import metrics
from mailvet.logs import logger

if TYPE_CHECKING:
    from mailvet.bootstrap import Deps

PING_TIMEOUT = 5.0  # seconds for the whole check
FRESH = 1.0  # seconds a shared answer is served before the next probe (shared_answers)
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
    answer's status is "ok" only when every one answered. Inside `shared_answers(deps)`,
    an answer at most FRESH seconds old (see there)."""
    roles = list(roles)
    shared = _SHARED.get(id(deps))
    if shared is not None and shared.deps is deps:
        return await shared.answer(roles, within)
    return await _probe_all(deps, roles, within)


async def _probe_all(deps: Deps, roles: list[str], within: float) -> Health:
    names = sorted(needs(roles))
    answers = await asyncio.gather(*(_probe(name, deps, within) for name in names))
    checks = dict(zip(names, answers, strict=True))
    failed = [name for name in names if checks[name] != OK]
    if not failed:
        return Health(status="ok", roles=roles, checks=checks)
    error = "; ".join(ERRORS[name] for name in failed)
    return Health(status="unavailable", roles=roles, checks=checks, error=error)


class SharedAnswers:
    """One process's health answers (see the module's docstring): per (roles, within), the
    last probe's answer while it is younger than `fresh` seconds (`clock`: monotonic
    seconds), else the probe in flight, else a new one. A probe runs in a task of its own,
    so a caller that gives up (a cancelled request) does not cancel it for the others."""

    def __init__(
        self, deps: Deps, *, fresh: float = FRESH, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.deps = deps
        self.probes = 0  # probes started: what a test counts
        self._fresh = fresh
        self._clock = clock
        self._answers: dict[tuple[tuple[str, ...], float], tuple[float, Health]] = {}
        self._running: dict[tuple[tuple[str, ...], float], asyncio.Task[Health]] = {}

    async def answer(self, roles: list[str], within: float) -> Health:
        key = (tuple(roles), within)
        last = self._answers.get(key)
        if last is not None and self._clock() - last[0] < self._fresh:
            return last[1]
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(self._probe(key, roles, within))
            self._running[key] = running
        return await asyncio.shield(running)

    async def _probe(
        self, key: tuple[tuple[str, ...], float], roles: list[str], within: float
    ) -> Health:
        self.probes += 1
        try:
            answer = await _probe_all(self.deps, roles, within)
            self._answers[key] = (self._clock(), answer)
            return answer
        finally:
            del self._running[key]


# the processes' shared answers, by id(deps) (shared_answers adds and removes them)
_SHARED: dict[int, SharedAnswers] = {}


@contextlib.contextmanager
def shared_answers(
    deps: Deps, *, fresh: float = FRESH, clock: Callable[[], float] = time.monotonic
) -> Iterator[SharedAnswers]:
    """While open, `healthy(deps, ...)` answers from SharedAnswers (serve.py opens it for the
    life of a `mailvet run` process)."""
    shared = SharedAnswers(deps, fresh=fresh, clock=clock)
    _SHARED[id(deps)] = shared
    try:
        yield shared
    finally:
        if _SHARED.get(id(deps)) is shared:
            del _SHARED[id(deps)]


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

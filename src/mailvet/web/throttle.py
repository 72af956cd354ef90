"""Rate limits in the web role: the app-wide limit per IP, and helpers for per-form limits.

The counters are rows of the database every replica shares (services/throttle.py says why
not Redis), so two web processes behind one load balancer count one client once. A refusal
is `TooManyRequestsException` with `Retry-After`; web/errors.py renders it as an HTML page
for browsers and as JSON for /api and JSON clients.

`PerIpLimit` (MAILVET_WEB_RATE_LIMIT, default `200/minute,400/hour`) counts every request
but /static, /health and the keyed API (/api/v1 and the original's two compatibility
routes), which is limited per key instead (MAILVET_API_RATE_LIMIT, services/api_limits.py):
an integration's calls must not use up its office's page quota, nor the pages its calls'.
The client is `request.client.host`, an IPv6 one counted by its
/64 (`client_ip`): behind a reverse proxy, let uvicorn take it from X-Forwarded-For
(`--forwarded-allow-ips`), never trust the header here.

Per-form limits (login, sign-up, forgot password, the home page's demo check) are
`services.throttle.Limit`s: `await count(context, SIGNUP_PER_IP, client_ip(request))` in a
transaction of its own (`enforce(...)` raises the 429 itself), or `await rule.hit(session,
subject, now)` inside the caller's unit of work (begun with `write_intent`, as every writer).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

import structlog
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import TooManyRequestsException
from litestar.middleware import ASGIMiddleware
from litestar.types import Scope

from mailvet.adapters.db.database import write_intent
from mailvet.domain.throttle import Rate, Throttle, parse_rates
from mailvet.services import throttle
from mailvet.services.throttle import Limit

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Receive, Send

    from mailvet.web.context import WebContext

log = structlog.get_logger(__name__)

# the keyed API (web/api/): limited per key, not per IP
KEYED_API_PREFIX = "/api/v1/"
KEYED_API_PATHS = frozenset({"/api/validate-email", "/api/get-credit-balance"})
EXEMPT_PREFIXES = ("/static/", KEYED_API_PREFIX)
EXEMPT_PATHS = frozenset({"/health"}) | KEYED_API_PATHS


def _exempt(scope: Scope) -> bool:
    path = str(scope.get("path", ""))
    return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


IPV6_PREFIX = 64  # an IPv6 client is counted by its /64: one site's subnet, one client


def remote_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The client's address as the connection gives it (for a captcha's `remoteip`)."""
    client = connection.client
    return client.host if client is not None else "unknown"


def client_ip(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The client as the per-IP limits count it: an IPv4 address, or the /64 network of an
    IPv6 one (`2001:db8:1:2::/64`; an IPv4-mapped address counts as its IPv4). A site gets
    a /64 (or more) for itself and can rotate through its 2**64 source addresses: keyed by
    the full address, each request would be a new client."""
    return rate_subject(remote_address(connection))


def rate_subject(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:100]  # not an address (a test client's name, "unknown")
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)


def raise_if_refused(answer: Throttle) -> None:
    if not answer.allowed:
        raise TooManyRequestsException(
            "too many requests: try again later",
            headers={"Retry-After": str(answer.retry_after)},
        )


async def count(context: WebContext, rule: Limit, subject: str) -> Throttle:
    """Count one hit of `rule` for `subject` in a transaction of its own (a refused form
    still counts; the caller's own unit of work may roll back)."""
    async with context.database.session_maker() as session, session.begin():
        await write_intent(session)  # SQLite: BEGIN IMMEDIATE
        return await rule.hit(session, subject, context.clock())


async def enforce(context: WebContext, key: str, *, limit: int, window_seconds: int) -> Throttle:
    """Count one hit of `key` in a transaction of its own; 429 when over `limit`."""
    answer = await count(context, Limit(key, limit, window_seconds), "")
    raise_if_refused(answer)
    return answer


async def hit_rates(context: WebContext, key: str, rates: tuple[Rate, ...]) -> Throttle | None:
    """One hit of `key` against each rate, in one transaction; the first refusal (the
    longest wait) or None when every rate allows it."""
    refused: Throttle | None = None
    async with context.database.session_maker() as session, session.begin():
        await write_intent(session)  # SQLite: BEGIN IMMEDIATE
        now = context.clock()
        for rate in rates:
            answer = await throttle.hit(
                session,
                f"{key}:{rate.window_seconds}",
                limit=rate.limit,
                window_seconds=rate.window_seconds,
                now=now,
            )
            if not answer.allowed and (refused is None or answer.retry_after > refused.retry_after):
                refused = answer
    return refused


class PerIpLimit(ASGIMiddleware):
    """MAILVET_WEB_RATE_LIMIT per client IP, on every route but /static, /health and the
    keyed API."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, context: WebContext) -> None:
        self.should_bypass_for_scope = _exempt
        self.context = context
        self.rates = parse_rates(context.settings.web.web_rate_limit)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if self.rates:
            ip = client_ip(ASGIConnection[Any, Any, Any, Any](scope))
            refused = await hit_rates(self.context, f"web-ip:{ip}", self.rates)
            if refused is not None:  # the address is personal data: not logged
                log.info("web_rate_limited", limit=refused.limit, retry_after=refused.retry_after)
                raise_if_refused(refused)
        await next_app(scope, receive, send)

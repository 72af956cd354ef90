"""DNS through dnspython's async resolver: MX routes (Null MX, implicit MX) and host addresses.

Only NXDOMAIN and a clean "no MX and no A/AAAA" (NODATA) can make an address undeliverable;
SERVFAIL, refusals, malformed answers and timeouts come back as FAILED/TIMEOUT (unknown).
Answers are remembered per name no longer than their DNS TTL (a route built from several
lookups: the smallest; NXDOMAIN/NODATA: the SOA's negative TTL) and never longer than
`DnsSettings.max_ttl`; failures (and host lists left empty by one) only `failure_ttl` seconds,
so a long-running worker is not stuck with a transient timeout.  Concurrent lookups of the
same name share one query.  MX hosts of equal preference come back in a fresh random order
on every call (RFC 5321 5.1), so the load spreads over them.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import dns.asyncresolver
import dns.exception
import dns.message
import dns.nameserver
import dns.rdatatype
import dns.resolver
import structlog

from mailvet import metrics
from mailvet.domain.ports import MailRoute, RouteKind
from mailvet.memo import Memo
from mailvet.settings import DnsSettings

log = structlog.get_logger(__name__)

NEGATIVE_TTL_DEFAULT = 300.0
"""Seconds a negative answer is remembered when its SOA cannot be read (bounded by max_ttl)."""

_FAILURES = (RouteKind.TIMEOUT, RouteKind.FAILED)
ROUTE_SHARE = 3  # route lookups hold at most 1/ROUTE_SHARE of `max_in_flight` (hosts the rest)

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"(?=[^\n]{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
"""An MX target as a host name (RFC 1123 letters, digits and inner hyphens; "_" allowed):
what dnspython's text of any other name holds ("=", "|", "\\DDD" escapes...) may be a
spreadsheet formula, and is no server to talk to."""

T = TypeVar("T")


def parse_server(spec: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]:port` or a bare IPv6 address -> (host, port)."""
    spec = spec.strip()
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        return host, int(rest.lstrip(":") or 53)
    if spec.count(":") == 1:
        host, port = spec.split(":")
        return host, int(port)
    return spec, 53


def make_resolver(settings: DnsSettings) -> dns.asyncresolver.Resolver:
    if not settings.servers:
        resolver = dns.asyncresolver.Resolver()
    else:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(host, port)
            for host, port in map(parse_server, settings.servers)
        ]
    resolver.lifetime = settings.timeout
    resolver.timeout = max(settings.timeout / 2, 0.2)
    resolver.cache = None  # we cache answers ourselves, per name and outcome
    return resolver


@dataclass(frozen=True, slots=True)
class _Known(Generic[T]):
    """A value as remembered, with the seconds it may be remembered."""

    value: T
    ttl: float


@dataclass(frozen=True, slots=True)
class _Sorted:
    """A route in preference order, with the spans (start, end) of equal-preference runs."""

    route: MailRoute
    ties: tuple[tuple[int, int], ...]


def _ties(preferences: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    spans: list[tuple[int, int]] = []
    start = 0
    for index in range(1, len(preferences) + 1):
        if index == len(preferences) or preferences[index] != preferences[start]:
            if index - start > 1:
                spans.append((start, index))
            start = index
    return tuple(spans)


def _answer_ttl(answer: dns.resolver.Answer) -> float:
    """The smallest TTL of the answer (CNAMEs included), or of its SOA when it is NODATA."""
    return float(answer.chaining_result.minimum_ttl)


def _nxdomain_ttl(exc: dns.resolver.NXDOMAIN) -> float:
    """The negative TTL of an NXDOMAIN (min of the SOA's TTL and MINIMUM), if readable."""
    ttls: list[float] = []
    try:
        for response in exc.responses().values():  # type: ignore[no-untyped-call]
            if isinstance(response, dns.message.QueryMessage):
                ttls.append(float(response.resolve_chaining().minimum_ttl))
    except (dns.exception.DNSException, KeyError, AttributeError, TypeError):
        pass
    return min(ttls, default=NEGATIVE_TTL_DEFAULT)


class DnsResolver:
    """The Resolver port on dnspython."""

    def __init__(
        self,
        settings: DnsSettings,
        resolver: dns.asyncresolver.Resolver | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resolver = resolver or make_resolver(settings)
        # a chunk asks for thousands of names at once; resolvers (and their UDP buffers) drop
        # such bursts, and a dropped query is a timeout: keep a bounded number outstanding
        self._in_flight = asyncio.Semaphore(max(1, settings.max_in_flight))
        # a job's first chunks ask for thousands of new routes at once; the host lookups (the
        # step right before a domain's first RCPT) must not queue behind all of them: route
        # lookups that need a query take at most a share of the queries outstanding (a known
        # route, or one another caller is already looking up, takes no slot)
        self._route_slots = asyncio.Semaphore(max(1, settings.max_in_flight // ROUTE_SHARE))
        self._failure_ttl = settings.failure_ttl
        self._max_ttl = settings.max_ttl
        # shuffles MX hosts of equal preference (RFC 5321 5.1): no secret, no need of a CSPRNG
        self._random = random.Random()  # noqa: S311
        self._routes: Memo[str, _Known[_Sorted]] = Memo(
            settings.cache_size, ttl=_ttl_of, clock=clock
        )
        self._hosts: Memo[str, _Known[tuple[str, ...]]] = Memo(
            settings.cache_size, ttl=_ttl_of, clock=clock
        )

    async def mail_route(self, domain: str) -> MailRoute:
        domain = domain.lower().rstrip(".")
        metrics.dns_lookup("route")
        known = await self._routes.get(domain, lambda: self._lookup_route(domain))
        route, ties = known.value.route, known.value.ties
        if not ties:
            return route
        hosts = list(route.hosts)
        for start, end in ties:  # equal preferences: a fresh order every time
            run = hosts[start:end]
            self._random.shuffle(run)
            hosts[start:end] = run
        return MailRoute(route.kind, tuple(hosts), route.preferences)

    async def host_addresses(self, host: str) -> list[str]:
        host = host.lower().rstrip(".")
        metrics.dns_lookup("host")
        known = await self._hosts.get(host, lambda: self._lookup_host(host))
        return list(known.value)

    def _keep(self, ttl: float) -> float:
        return max(0.0, min(ttl, self._max_ttl))

    async def _query(self, name: str, rdtype: str) -> tuple[RouteKind | None, list[Any], float]:
        """(None, records, ttl) on an answer; (NO_MX, [], negative ttl) on NODATA;
        (NO_DOMAIN, [], negative ttl) on NXDOMAIN; else (failure kind, [], failure_ttl)."""
        metrics.dns_query(rdtype)
        try:
            async with self._in_flight:
                answer = await self._resolver.resolve(
                    name, rdtype, search=False, raise_on_no_answer=False
                )
        except dns.resolver.NXDOMAIN as exc:
            return RouteKind.NO_DOMAIN, [], _nxdomain_ttl(exc)
        except dns.resolver.NoAnswer:  # not raised with raise_on_no_answer=False; kept for safety
            return RouteKind.NO_MX, [], NEGATIVE_TTL_DEFAULT
        except dns.resolver.LifetimeTimeout:
            return RouteKind.TIMEOUT, [], self._failure_ttl
        except (dns.resolver.NoNameservers, dns.exception.DNSException) as exc:
            log.debug("dns_failed", name=name, rdtype=rdtype, error=type(exc).__name__)
            return RouteKind.FAILED, [], self._failure_ttl
        if answer.rrset is None:
            return RouteKind.NO_MX, [], _answer_ttl(answer)
        return None, list(answer), _answer_ttl(answer)

    async def _lookup_route(self, domain: str) -> _Known[_Sorted]:
        metrics.dns_cache_miss("route")
        async with self._route_slots:
            return await self._route_queries(domain)

    async def _route_queries(self, domain: str) -> _Known[_Sorted]:
        kind, records, ttl = await self._query(domain, "MX")
        if kind is None:
            mx = sorted(
                (int(r.preference), r.exchange.to_text(omit_final_dot=True).lower())
                for r in records  # MX rdata
            )
            best: dict[str, int] = {}
            malformed = False
            for preference, host in mx:  # a host listed twice keeps its best preference
                if host in ("", "."):
                    continue
                if _HOST_NAME.fullmatch(host) is None:  # "=cmd|..." is no host: never a cell
                    malformed = True
                    continue
                best.setdefault(host, preference)
            if not best and malformed:  # only names no server can have: a malformed answer
                log.debug("dns_malformed_mx", rdtype="MX", records=len(mx))
                return self._route(MailRoute(RouteKind.FAILED), ttl)
            if not best:  # RFC 7505: a single "0 ." (any set of only root targets)
                return self._route(MailRoute(RouteKind.NULL_MX), ttl)
            preferences = tuple(best.values())
            route = MailRoute(RouteKind.MX, tuple(best), preferences)
            return _Known(_Sorted(route, _ties(preferences)), self._keep(ttl))
        if kind is not RouteKind.NO_MX:
            return self._route(MailRoute(kind), ttl)
        # NODATA for MX: RFC 5321 5.1 implicit MX, the domain's own A/AAAA (preference 0).
        implicit = MailRoute(RouteKind.IMPLICIT, (domain,), (0,))
        a_kind, _, a_ttl = await self._query(domain, "A")
        if a_kind is None:
            return self._route(implicit, min(ttl, a_ttl))
        aaaa_kind, _, aaaa_ttl = await self._query(domain, "AAAA")
        if aaaa_kind is None:
            return self._route(implicit, min(ttl, a_ttl, aaaa_ttl))
        for failed in (a_kind, aaaa_kind):  # a failed lookup leaves the question open
            if failed in _FAILURES:
                return self._route(MailRoute(failed), self._failure_ttl)
        return self._route(MailRoute(RouteKind.NO_MX), min(ttl, a_ttl, aaaa_ttl))

    def _route(self, route: MailRoute, ttl: float) -> _Known[_Sorted]:
        if route.kind in _FAILURES:
            return _Known(_Sorted(route, ()), self._failure_ttl)
        return _Known(_Sorted(route, ()), self._keep(ttl))

    async def _lookup_host(self, host: str) -> _Known[tuple[str, ...]]:
        metrics.dns_cache_miss("host")
        addresses: list[str] = []
        ttls: list[float] = []
        failed = False
        for rdtype in ("A", "AAAA"):
            kind, records, ttl = await self._query(host, rdtype)
            ttls.append(ttl)
            if kind is None:
                addresses.extend(r.to_text() for r in records)
            elif kind in _FAILURES:
                failed = True
            elif kind is RouteKind.NO_DOMAIN:
                break
        # a failure (even beside some addresses) is remembered only briefly
        return _Known(tuple(addresses), self._failure_ttl if failed else self._keep(min(ttls)))


def _ttl_of(known: _Known[T]) -> float:
    return known.ttl

"""DNS through dnspython's async resolver: MX routes (Null MX, implicit MX) and host addresses.

Only NXDOMAIN and a clean "no MX and no A/AAAA" (NODATA) can make an address undeliverable;
SERVFAIL, refusals, malformed answers and timeouts come back as FAILED/TIMEOUT (unknown).
Every answer is cached per name for the life of the resolver, and concurrent lookups of the
same name share one query.
"""

from __future__ import annotations


import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver
import structlog

from mailvet.domain.ports import MailRoute, RouteKind
from mailvet.memo import Memo
from mailvet.settings import DnsSettings

log = structlog.get_logger(__name__)


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


class DnsResolver:
    """The Resolver port on dnspython."""

    def __init__(self, settings: DnsSettings, resolver: dns.asyncresolver.Resolver | None = None):
        self._resolver = resolver or make_resolver(settings)
        self._routes: Memo[str, MailRoute] = Memo(settings.cache_size)
        self._hosts: Memo[str, list[str]] = Memo(settings.cache_size)

    async def mail_route(self, domain: str) -> MailRoute:
        domain = domain.lower().rstrip(".")
        return await self._routes.get(domain, lambda: self._lookup_route(domain))

    async def host_addresses(self, host: str) -> list[str]:
        host = host.lower().rstrip(".")
        return await self._hosts.get(host, lambda: self._lookup_host(host))

    async def _query(self, name: str, rdtype: str) -> tuple[RouteKind | None, list[object]]:
        """(None, records) on an answer; (NO_MX, []) on NODATA; else the failure kind."""
        try:
            answer = await self._resolver.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            return RouteKind.NO_DOMAIN, []
        except dns.resolver.NoAnswer:
            return RouteKind.NO_MX, []
        except dns.resolver.LifetimeTimeout:
            return RouteKind.TIMEOUT, []
        except (dns.resolver.NoNameservers, dns.exception.DNSException) as exc:
            log.debug("dns_failed", name=name, rdtype=rdtype, error=type(exc).__name__)
            return RouteKind.FAILED, []
        return None, list(answer)

    async def _lookup_route(self, domain: str) -> MailRoute:
        kind, records = await self._query(domain, "MX")
        if kind is None:
            mx = sorted(
                ((int(r.preference), r.exchange.to_text(omit_final_dot=True).lower()) for r in records),  # type: ignore[attr-defined]
                key=lambda item: item[0],
            )
            hosts = tuple(dict.fromkeys(host for _, host in mx if host not in ("", ".")))
            if not hosts:  # RFC 7505: a single "0 ." (any set of only root targets)
                return MailRoute(RouteKind.NULL_MX)
            return MailRoute(RouteKind.MX, hosts)
        if kind is not RouteKind.NO_MX:
            return MailRoute(kind)
        # NODATA for MX: RFC 5321 5.1 implicit MX, the domain's own A/AAAA.
        a_kind, _ = await self._query(domain, "A")
        if a_kind is None:
            return MailRoute(RouteKind.IMPLICIT, (domain,))
        aaaa_kind, _ = await self._query(domain, "AAAA")
        if aaaa_kind is None:
            return MailRoute(RouteKind.IMPLICIT, (domain,))
        for kind in (a_kind, aaaa_kind):  # a failed lookup leaves the question open
            if kind in (RouteKind.TIMEOUT, RouteKind.FAILED):
                return MailRoute(kind)
        return MailRoute(RouteKind.NO_MX)

    async def _lookup_host(self, host: str) -> list[str]:
        addresses: list[str] = []
        for rdtype in ("A", "AAAA"):
            kind, records = await self._query(host, rdtype)
            if kind is None:
                addresses.extend(r.to_text() for r in records)  # type: ignore[attr-defined]
            elif kind is RouteKind.NO_DOMAIN:
                break
        return addresses

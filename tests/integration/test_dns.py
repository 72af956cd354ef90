"""The DNS adapter against the mail world's DNS server, and against broken DNS answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import dns.asyncresolver
import dns.nameserver
import pytest

from mailvet.adapters.dns import DnsResolver, make_resolver, parse_server
from mailvet.domain.ports import MailRoute, RouteKind
from mailvet.settings import DnsSettings
from tests.mailworld.dns_server import DEFAULT_TTL, DnsTestServer, Zone
from tests.mailworld.world import MailWorld

pytestmark = pytest.mark.integration


def resolver_for(port: int, timeout: float = 1.0) -> DnsResolver:
    return DnsResolver(DnsSettings(servers=(f"127.0.0.1:{port}",), timeout=timeout))


@pytest.mark.parametrize(
    ("domain", "kind", "hosts"),
    [
        ("good-mail.com", RouteKind.MX, ("mx.good-mail.com",)),
        ("backup-mail.com", RouteKind.MX, ("mx1.backup-mail.com", "mx2.backup-mail.com")),
        ("GOOD-MAIL.COM.", RouteKind.MX, ("mx.good-mail.com",)),
        ("aonly-mail.com", RouteKind.IMPLICIT, ("aonly-mail.com",)),
        ("nullmx-mail.com", RouteKind.NULL_MX, ()),
        ("nomail-mail.com", RouteKind.NO_MX, ()),
        ("no-such-domain-zz.com", RouteKind.NO_DOMAIN, ()),
        ("servfail-mail.com", RouteKind.FAILED, ()),
        ("dnstimeout-mail.com", RouteKind.TIMEOUT, ()),
    ],
)
async def test_mail_routes(
    mail_world: MailWorld, domain: str, kind: RouteKind, hosts: tuple[str, ...]
) -> None:
    route = await resolver_for(mail_world.dns_port).mail_route(domain)
    assert (route.kind, route.hosts) == (kind, hosts)


async def test_lookups_are_cached_and_shared(mail_world: MailWorld) -> None:
    resolver = resolver_for(mail_world.dns_port)
    routes = await asyncio.gather(*(resolver.mail_route("good-mail.com") for _ in range(20)))
    assert len({id(r) for r in routes}) == 1  # one query answered all twenty
    assert await resolver.host_addresses("mx.good-mail.com") == ["127.0.0.2"]
    assert await resolver.host_addresses("nowhere.no-such-domain-zz.com") == []


class _Garbage(asyncio.DatagramProtocol):
    """Answers every query with the given bytes (or an answer with a wrong id)."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.reply if self.reply is not None else b"\xff\xff" + data[2:]  # wrong id
        self.transport.sendto(reply, addr)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "reply",
    [b"\x00", b"garbage that is no DNS message at all", b"\x12\x34\x81\x80" + b"\x00" * 4, None],
    ids=["one-byte", "text", "truncated-header", "wrong-id"],
)
async def test_broken_answers_leave_the_question_open(reply: bytes | None) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Garbage(reply), local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    try:
        route = await resolver_for(port, timeout=0.5).mail_route("example-broken.com")
    finally:
        transport.close()
    assert route.kind in (RouteKind.FAILED, RouteKind.TIMEOUT)


def test_parse_server() -> None:
    assert parse_server("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_server("10.0.0.1") == ("10.0.0.1", 53)
    assert parse_server("[::1]:5300") == ("::1", 5300)
    assert parse_server("::1") == ("::1", 53)


# --- lifetimes of remembered answers -------------------------------------------------------
# Each test serves its own zone from its own event loop, so it may change the records and
# point the resolver elsewhere while it runs.  The mail world's server gives every record
# and every SOA the same TTL (DEFAULT_TTL, 60 s), so the memo's clock is a fake one.


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def own_dns() -> AsyncIterator[DnsTestServer]:
    server = DnsTestServer(Zone())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def lifetimes(
    port: int, clock: FakeClock, *, failure_ttl: float = 5.0, max_ttl: float = 3600.0
) -> tuple[DnsResolver, dns.asyncresolver.Resolver]:
    """The adapter on a memo clock of the test's, and the dnspython resolver under it."""
    settings = DnsSettings(
        servers=(f"127.0.0.1:{port}",), timeout=0.5, failure_ttl=failure_ttl, max_ttl=max_ttl
    )
    upstream = make_resolver(settings)
    return DnsResolver(settings, upstream, clock=clock), upstream


def point_at(upstream: dns.asyncresolver.Resolver, port: int) -> None:
    """The name server recovers (or is replaced): later queries go to `port`."""
    upstream.nameservers = [dns.nameserver.Do53Nameserver("127.0.0.1", port)]


class _Silent(asyncio.DatagramProtocol):
    """A name server that never answers: every query times out."""


async def test_a_servfail_is_remembered_only_failure_ttl(own_dns: DnsTestServer) -> None:
    broken = DnsTestServer(Zone())
    broken.zone.servfail("recovering.com")
    await broken.start()
    broken.zone.servfail("mx.recovering.com")
    own_dns.zone.add("recovering.com", mx=[(10, "mx.recovering.com")])
    own_dns.zone.add("mx.recovering.com", a=["127.0.0.14"])
    clock = FakeClock()
    resolver, upstream = lifetimes(broken.port, clock, failure_ttl=0.5)
    try:
        assert (await resolver.mail_route("recovering.com")).kind is RouteKind.FAILED
        assert await resolver.host_addresses("mx.recovering.com") == []
        point_at(upstream, own_dns.port)
        assert (await resolver.mail_route("recovering.com")).kind is RouteKind.FAILED  # remembered
        assert await resolver.host_addresses("mx.recovering.com") == []
        clock.now += 0.4
        assert (await resolver.mail_route("recovering.com")).kind is RouteKind.FAILED  # still
        clock.now += 0.2  # past failure_ttl
        route = await resolver.mail_route("recovering.com")
        assert (route.kind, route.hosts) == (RouteKind.MX, ("mx.recovering.com",))
        assert await resolver.host_addresses("mx.recovering.com") == ["127.0.0.14"]
    finally:
        await broken.stop()


async def test_a_timeout_is_remembered_only_failure_ttl(own_dns: DnsTestServer) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_Silent, local_addr=("127.0.0.1", 0))
    silent_port = transport.get_extra_info("sockname")[1]
    own_dns.zone.add("slowdns.com", mx=[(10, "mx.slowdns.com")])
    own_dns.zone.add("mx.slowdns.com", a=["127.0.0.9"])
    clock = FakeClock()
    resolver, upstream = lifetimes(silent_port, clock, failure_ttl=5.0)
    try:
        assert (await resolver.mail_route("slowdns.com")).kind is RouteKind.TIMEOUT
        assert await resolver.host_addresses("mx.slowdns.com") == []
    finally:
        transport.close()
    point_at(upstream, own_dns.port)
    clock.now = 4.9
    assert (await resolver.mail_route("slowdns.com")).kind is RouteKind.TIMEOUT
    assert await resolver.host_addresses("mx.slowdns.com") == []
    clock.now = 5.0
    assert (await resolver.mail_route("slowdns.com")).hosts == ("mx.slowdns.com",)
    assert await resolver.host_addresses("mx.slowdns.com") == ["127.0.0.9"]


async def test_an_answer_is_asked_again_after_its_ttl(own_dns: DnsTestServer) -> None:
    zone = own_dns.zone
    zone.add("moving.com", mx=[(10, "mx1.moving.com")])
    zone.add("mx1.moving.com", a=["127.0.0.10"])
    clock = FakeClock()
    resolver, _ = lifetimes(own_dns.port, clock)  # max_ttl 3600: the records' own TTL rules
    assert (await resolver.mail_route("moving.com")).hosts == ("mx1.moving.com",)
    assert await resolver.host_addresses("mx1.moving.com") == ["127.0.0.10"]
    zone.add("moving.com", mx=[(5, "mx0.moving.com")])
    zone.add("mx1.moving.com", a=["127.0.0.11"])
    clock.now = DEFAULT_TTL - 0.1
    assert (await resolver.mail_route("moving.com")).hosts == ("mx1.moving.com",)
    assert await resolver.host_addresses("mx1.moving.com") == ["127.0.0.10"]
    clock.now = DEFAULT_TTL
    route = await resolver.mail_route("moving.com")
    assert (route.hosts, route.preferences) == (("mx0.moving.com", "mx1.moving.com"), (5, 10))
    assert await resolver.host_addresses("mx1.moving.com") == ["127.0.0.10", "127.0.0.11"]


async def test_negative_answers_last_their_soa_ttl(own_dns: DnsTestServer) -> None:
    zone = own_dns.zone
    zone.add("later.com", txt=["v=spf1 -all"])  # exists, no MX and no address: NODATA
    clock = FakeClock()
    resolver, _ = lifetimes(own_dns.port, clock)
    assert (await resolver.mail_route("later.com")).kind is RouteKind.NO_MX
    assert (await resolver.mail_route("born-later.com")).kind is RouteKind.NO_DOMAIN
    assert await resolver.host_addresses("mx.born-later.com") == []
    zone.add("later.com", a=["127.0.0.12"])
    zone.add("born-later.com", mx=[(10, "mx.born-later.com")])
    zone.add("mx.born-later.com", a=["127.0.0.13"])
    clock.now = DEFAULT_TTL - 0.1
    assert (await resolver.mail_route("later.com")).kind is RouteKind.NO_MX
    assert (await resolver.mail_route("born-later.com")).kind is RouteKind.NO_DOMAIN
    clock.now = DEFAULT_TTL  # the SOA's 60 s, not a longer default
    route = await resolver.mail_route("later.com")
    assert (route.kind, route.hosts, route.preferences) == (
        RouteKind.IMPLICIT,
        ("later.com",),
        (0,),
    )
    assert (await resolver.mail_route("born-later.com")).kind is RouteKind.MX
    assert await resolver.host_addresses("mx.born-later.com") == ["127.0.0.13"]


async def test_max_ttl_caps_every_answer(own_dns: DnsTestServer) -> None:
    zone = own_dns.zone
    zone.add("capped.com", mx=[(10, "mx.capped.com")])
    clock = FakeClock()
    resolver, _ = lifetimes(own_dns.port, clock, max_ttl=10.0)
    await resolver.mail_route("capped.com")
    assert (await resolver.mail_route("nothing-yet.com")).kind is RouteKind.NO_DOMAIN
    zone.add("capped.com", mx=[(20, "mx2.capped.com")])
    zone.add("nothing-yet.com", mx=[(10, "mx.nothing-yet.com")])
    clock.now = 9.9
    assert (await resolver.mail_route("capped.com")).hosts == ("mx.capped.com",)
    assert (await resolver.mail_route("nothing-yet.com")).kind is RouteKind.NO_DOMAIN
    clock.now = 10.0
    assert (await resolver.mail_route("capped.com")).hosts == ("mx.capped.com", "mx2.capped.com")
    assert (await resolver.mail_route("nothing-yet.com")).kind is RouteKind.MX


async def test_equal_preferences_come_in_random_order(own_dns: DnsTestServer) -> None:
    mx = [
        (20, "d.spread.com"),
        (10, "a.spread.com"),
        (10, "b.spread.com"),
        (10, "c.spread.com"),
        (30, "e.spread.com"),
        (30, "f.spread.com"),
    ]
    own_dns.zone.add("spread.com", mx=mx)
    own_dns.zone.add(
        "ordered.com", mx=[(30, "c.ordered.com"), (10, "a.ordered.com"), (20, "b.ordered.com")]
    )
    resolver, _ = lifetimes(own_dns.port, FakeClock())
    routes: list[MailRoute] = [await resolver.mail_route("spread.com") for _ in range(40)]
    assert {route.preferences for route in routes} == {(10, 10, 10, 20, 30, 30)}
    assert {frozenset(route.hosts[:3]) for route in routes} == {
        frozenset({"a.spread.com", "b.spread.com", "c.spread.com"})
    }
    assert {route.hosts[3] for route in routes} == {"d.spread.com"}
    assert len({route.hosts[:3] for route in routes}) > 1
    assert len({route.hosts[4:] for route in routes}) > 1
    ordered = {await resolver.mail_route("ordered.com") for _ in range(20)}
    assert ordered == {
        MailRoute(RouteKind.MX, ("a.ordered.com", "b.ordered.com", "c.ordered.com"), (10, 20, 30))
    }


async def test_a_host_listed_twice_keeps_its_best_preference(own_dns: DnsTestServer) -> None:
    own_dns.zone.add(
        "twice.com", mx=[(20, "mx.twice.com"), (10, "mx.twice.com"), (15, "other.twice.com")]
    )
    route = await lifetimes(own_dns.port, FakeClock())[0].mail_route("twice.com")
    assert (route.hosts, route.preferences) == (("mx.twice.com", "other.twice.com"), (10, 15))

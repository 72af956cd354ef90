"""The DNS adapter against the mail world's DNS server, and against broken DNS answers."""

from __future__ import annotations

import asyncio

import pytest

from mailvet.adapters.dns import DnsResolver, parse_server
from mailvet.domain.ports import RouteKind
from mailvet.settings import DnsSettings
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
async def test_mail_routes(mail_world: MailWorld, domain: str, kind: RouteKind, hosts: tuple[str, ...]) -> None:
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
    transport, _ = await loop.create_datagram_endpoint(lambda: _Garbage(reply), local_addr=("127.0.0.1", 0))
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

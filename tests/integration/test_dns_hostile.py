"""The DNS adapter takes MX targets that are host names only (issue 7 §3): a name such as
"=cmd|..." is no server to talk to, and must never become a mailvet_mx cell."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mailvet.adapters.dns import DnsResolver
from mailvet.domain.ports import RouteKind
from mailvet.settings import DnsSettings
from tests.mailworld.dns_server import DnsTestServer, Zone

pytestmark = pytest.mark.integration


@pytest.fixture
async def hostile_dns() -> AsyncIterator[DnsTestServer]:
    zone = Zone()
    zone.add("formula.example", mx=[(10, "=cmd|x.formula.example")])
    zone.add("mixed.example", mx=[(5, "+sum.mixed.example"), (10, "mx.mixed.example")])
    zone.add("hyphen.example", mx=[(10, "-lead.hyphen.example")])
    zone.add("fine.example", mx=[(10, "mx_1.fine.example"), (20, "xn--bcher-kva.fine.example")])
    server = DnsTestServer(zone)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("domain", "kind", "hosts"),
    [
        ("formula.example", RouteKind.FAILED, ()),  # only a name no host can have: malformed
        ("mixed.example", RouteKind.MX, ("mx.mixed.example",)),  # the host name is kept
        ("hyphen.example", RouteKind.FAILED, ()),
        ("fine.example", RouteKind.MX, ("mx_1.fine.example", "xn--bcher-kva.fine.example")),
    ],
)
async def test_mx_targets_must_be_host_names(
    hostile_dns: DnsTestServer, domain: str, kind: RouteKind, hosts: tuple[str, ...]
) -> None:
    resolver = DnsResolver(DnsSettings(servers=(f"127.0.0.1:{hostile_dns.port}",), timeout=1.0))
    route = await resolver.mail_route(domain)
    assert (route.kind, route.hosts) == (kind, hosts)

"""How many queries the DNS adapter keeps outstanding, and for what: route lookups (MX) take
at most a share of the slots, so a host lookup (the step right before a domain's first RCPT)
never queues behind a job's thousands of new domains; known routes take no slot at all."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, cast

import dns.asyncresolver
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from mailvet.adapters.dns import ROUTE_SHARE, DnsResolver
from mailvet.domain.ports import RouteKind
from mailvet.settings import DnsSettings

pytestmark = pytest.mark.unit


class _Chaining:
    minimum_ttl = 300


class _Answer:
    """What DnsResolver reads of a dnspython Answer: rrset, the records, the chain's TTL."""

    chaining_result = _Chaining()

    def __init__(self, records: list[Any]) -> None:
        self.rrset = records or None
        self._records = records

    def __iter__(self) -> Any:
        return iter(self._records)


class HeldDns:
    """A stand-in for dnspython's async resolver: MX queries wait until released, A/AAAA
    queries are answered at once; records how many of each were outstanding at most."""

    def __init__(self) -> None:
        self.outstanding: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.asked: Counter[str] = Counter()
        self.release = asyncio.Event()

    async def resolve(self, name: str, rdtype: str, **_: object) -> _Answer:
        self.asked[rdtype] += 1
        self.outstanding[rdtype] += 1
        self.peak[rdtype] = max(self.peak[rdtype], self.outstanding[rdtype])
        try:
            if rdtype == "MX":
                await self.release.wait()
                text = f"10 mx.{name}."
            elif rdtype == "A":
                text = "192.0.2.7"
            else:
                return _Answer([])
            rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), text)
            return _Answer([rdata])
        finally:
            self.outstanding[rdtype] -= 1


def _resolver(fake: HeldDns, max_in_flight: int) -> DnsResolver:
    settings = DnsSettings(max_in_flight=max_in_flight)
    return DnsResolver(settings, cast(dns.asyncresolver.Resolver, fake))


async def test_route_lookups_leave_room_for_host_lookups() -> None:
    fake = HeldDns()
    resolver = _resolver(fake, max_in_flight=30)
    share = 30 // ROUTE_SHARE
    routes = [asyncio.ensure_future(resolver.mail_route(f"d{n}.com")) for n in range(5 * share)]
    try:
        # every MX query in flight is held: the host lookups are answered all the same
        hosts = await asyncio.wait_for(
            asyncio.gather(*(resolver.host_addresses(f"mx{n}.example") for n in range(40))), 10
        )
        assert all(found == ["192.0.2.7"] for found in hosts)
        assert fake.peak["MX"] == share  # the rest of the new domains wait for a slot
        assert fake.asked["MX"] == share
    finally:
        fake.release.set()
    found = await asyncio.gather(*routes)
    assert {route.kind for route in found} == {RouteKind.MX}
    assert fake.asked["MX"] == 5 * share and fake.peak["MX"] == share


async def test_a_known_route_takes_no_slot() -> None:
    fake = HeldDns()
    resolver = _resolver(fake, max_in_flight=3)  # one route slot
    fake.release.set()
    assert (await resolver.mail_route("known.com")).hosts == ("mx.known.com",)
    fake.release.clear()
    held = asyncio.ensure_future(resolver.mail_route("new.com"))
    try:
        # the only route slot is held by new.com's query; known.com needs none
        again = await asyncio.wait_for(resolver.mail_route("known.com"), 10)
        assert again.hosts == ("mx.known.com",)
        shared = [asyncio.ensure_future(resolver.mail_route("new.com")) for _ in range(5)]
    finally:
        fake.release.set()
    assert {(await task).hosts for task in [held, *shared]} == {("mx.new.com",)}
    assert fake.asked["MX"] == 2  # the five callers of new.com shared one query

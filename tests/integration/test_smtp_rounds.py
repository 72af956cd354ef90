"""Catch-all probes share round trips: several transactions in one pipelined write.

Every domain gets a catch-all probe in a transaction of its own (a random mailbox). A server
hosting many small domains answered one such probe per round trip: in the world bench the
last hundred small domains of a 285 ms server took 7 s after their mailboxes were answered,
about ten RCPTs a second on three sessions, and that server finished the job. Pipelined
(RFC 2920: a group of commands may go on after RSET), several of those transactions go in
one write, and the catch-all probe taken first rides along with the next batch of queued
recipients; each stays a transaction of its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import pytest

from mailvet.adapters.dns import DnsResolver
from mailvet.adapters.smtp import ROUND_TRANSACTIONS, SmtpProber
from mailvet.domain.verdict import Check, Reason
from mailvet.pipeline.engine import Engine
from mailvet.settings import load_settings
from tests.mailworld.smtp_server import SmtpBehaviour
from tests.mailworld.world import MailWorld

pytestmark = pytest.mark.integration

OK = "250 2.1.5 OK"
IP = "127.0.0.92"
LATENCY = 0.05
DOMAINS = 30


@pytest.fixture
def world() -> Iterator[MailWorld]:
    world = MailWorld()
    world.zone.add("mx.shared-host.net", a=[IP])
    for n in range(DOMAINS):
        world.zone.add(f"small{n}.com", mx=[(10, "mx.shared-host.net")])
    users = {f"user{n}": OK for n in range(DOMAINS)} | {"postmaster": OK}
    world.add_smtp(IP, SmtpBehaviour(mailboxes=users, max_connections=1, latency=LATENCY))
    world.start()
    yield world
    world.stop()


async def test_catch_all_probes_of_small_domains_share_round_trips(world: MailWorld) -> None:
    settings = load_settings({**world.env(), "MAILVET_SMTP_PER_HOST_CONNECTIONS": "1"})
    resolver = DnsResolver(settings.dns)
    engine = Engine(resolver, SmtpProber(settings.smtp, resolver))
    addresses = [f"user{n}@small{n}.com" for n in range(DOMAINS)]
    try:
        verdicts = await engine.check_many(addresses, Check.SMTP)
    finally:
        await engine.close()
    assert [v.reason for v in verdicts] == [Reason.ACCEPTED] * DOMAINS  # none is catch-all
    stats = world.smtp(IP).stats
    assert stats.protocol_errors == 0 and stats.max_concurrent == 1
    log = stats.rcpt_log
    probes = [e for e in log if e.address.startswith("mailvet-")]
    assert len(probes) == DOMAINS and {e.code for e in probes} == {550}
    # each catch-all probe alone in its transaction, as before
    by_transaction: dict[int, list[str]] = defaultdict(list)
    for event in log:
        by_transaction[event.transaction].append(event.address)
    for event in probes:
        assert by_transaction[event.transaction] == [event.address]
    # round trips: the server decides a pipelined write's RCPTs at once, a round trip apart
    round_trips = 1 + sum(
        later.at - earlier.at > LATENCY / 2 for earlier, later in zip(log, log[1:], strict=False)
    )
    # one session, 30 catch-all probes, 30 mailboxes and their controls: before, one round
    # trip per catch-all probe and per batch (32)
    assert round_trips <= 2 + DOMAINS // ROUND_TRANSACTIONS + 2, round_trips


async def test_an_error_limit_drop_part_way_through_a_round_loses_no_probe() -> None:
    # Postfix drops a client after N refused RCPTs; the catch-all probes of a round are all
    # refused (no domain here is catch-all): the transactions after the drop go back
    world = MailWorld()
    world.zone.add("mx.strict-host.net", a=["127.0.0.93"])
    for n in range(DOMAINS):
        world.zone.add(f"small{n}.com", mx=[(10, "mx.strict-host.net")])
    users = {f"user{n}": OK for n in range(DOMAINS)} | {"postmaster": OK}
    world.add_smtp("127.0.0.93", SmtpBehaviour(mailboxes=users, max_connections=1, error_limit=4))
    with world:
        settings = load_settings({**world.env(), "MAILVET_SMTP_PER_HOST_CONNECTIONS": "1"})
        resolver = DnsResolver(settings.dns)
        engine = Engine(resolver, SmtpProber(settings.smtp, resolver))
        addresses = [f"user{n}@small{n}.com" for n in range(DOMAINS)]
        try:
            verdicts = await engine.check_many(addresses, Check.SMTP)
        finally:
            await engine.close()
        stats = world.smtp("127.0.0.93").stats
    assert [v.reason for v in verdicts] == [Reason.ACCEPTED] * DOMAINS
    assert stats.protocol_errors == 0
    probes = [e for e in stats.rcpt_log if e.address.startswith("mailvet-")]
    assert len(probes) == DOMAINS  # each asked once: none lost, none asked twice
    assert {e.code for e in probes} == {550}

"""Greylisted addresses are retried together, soon after they fall due, not one by one.

The world bench's greylisting servers (C=10 sessions, R=25 RCPTs a transaction) answered
about 10 RCPTs a second for 25 s: a domain's first transaction, all 450, ran into the
server's RCPT limit, and the prober learned a limit of 1 from it (greylisted replies were
not counted as taken), so every retry went in a transaction of its own. Measured here on
the mail world's own record of each RCPT (stats.rcpt_log), not on the test's clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import pytest

from mailvet.adapters.dns import DnsResolver
from mailvet.adapters.smtp import SmtpProber
from mailvet.domain.verdict import Check, Reason
from mailvet.pipeline.engine import Engine
from mailvet.settings import load_settings
from tests.mailworld.smtp_server import RcptEvent, SmtpBehaviour
from tests.mailworld.world import MailWorld

pytestmark = pytest.mark.integration

OK = "250 2.1.5 OK"
IP = "127.0.0.91"
CAP = 5  # sessions the server allows
LIMIT = 25  # RCPTs a transaction may hold
LATENCY = 0.1
RETRY_DELAY = 0.5
GREYLIST_DELAY = 0.4  # the server's: a retry sooner than this is greylisted again
ADDRESSES = 200


@pytest.fixture
def world() -> Iterator[MailWorld]:
    world = MailWorld()
    users = {f"user{i}": OK for i in range(ADDRESSES) if i % 10} | {"postmaster": OK}
    world.zone.add("grey.com", mx=[(10, "mx.grey.com")])
    world.zone.add("mx.grey.com", a=[IP])
    world.add_smtp(
        IP,
        SmtpBehaviour(
            mailboxes=users,
            greylist_attempts=1,
            greylist_delay=GREYLIST_DELAY,
            max_connections=CAP,
            max_recipients=LIMIT,
            latency=LATENCY,
        ),
    )
    world.start()
    yield world
    world.stop()


def by_address(log: list[RcptEvent]) -> dict[str, list[RcptEvent]]:
    events: dict[str, list[RcptEvent]] = defaultdict(list)
    for event in log:
        events[event.address].append(event)
    return events


async def test_greylisted_addresses_of_a_domain_are_retried_together_when_due(
    world: MailWorld,
) -> None:
    settings = load_settings(
        {
            **world.env(),
            "MAILVET_SMTP_PER_HOST_CONNECTIONS": str(CAP),
            "MAILVET_SMTP_RETRY_DELAY": str(RETRY_DELAY),
        }
    )
    engine = Engine(DnsResolver(settings.dns), SmtpProber(settings.smtp, DnsResolver(settings.dns)))
    addresses = [f"user{i}@grey.com" for i in range(ADDRESSES)]
    try:
        verdicts = await engine.check_many(addresses, Check.SMTP)
    finally:
        await engine.close()
    # every verdict right: greylisting passed on the retry, the catch-all answer is "no"
    assert [v.reason for v in verdicts] == [
        Reason.MAILBOX_NOT_FOUND if i % 10 == 0 else Reason.ACCEPTED for i in range(ADDRESSES)
    ]
    stats = world.smtp(IP).stats
    assert stats.max_concurrent <= CAP and stats.violations == 0
    assert stats.protocol_errors == 0
    events = by_address(stats.rcpt_log)
    # no mailbox asked again before the server's delay (the control, postmaster, is asked
    # once per session: a session opened soon after another finds it greylisted still)
    controls = events.pop("postmaster@grey.com")
    assert stats.greylisted_early == sum(event.code == 450 for event in controls[1:])
    lateness = []
    for address in addresses:
        first, *rest = events[address]
        assert first.code == 450 and len(rest) == 1, (address, events[address])
        (retry,) = rest
        assert retry.code != 450
        # RFC-friendly: asked again only after the retry delay, counted from the 450
        assert retry.at - first.at >= RETRY_DELAY
        lateness.append(retry.at - (first.at + RETRY_DELAY))
    # ...and then soon: the server takes CAP x LIMIT RCPTs a round trip; the 200 retries
    # need a new session (greeting, EHLO) and a round trip or two, about 4 latencies, not a
    # round trip each (before: 3.5 s late, 40 round trips on each of the 5 sessions)
    assert max(lateness) < 10 * LATENCY, sorted(lateness)[-5:]
    # in few transactions and sessions: 2 x 200 RCPTs and the controls at LIMIT each
    assert stats.transactions <= 2 * (ADDRESSES // LIMIT + CAP) + 4, stats.transactions
    assert stats.connections_total <= 3 * CAP, stats.connections_total
    # the RCPT limit learned once, not a 452 round per transaction
    assert stats.rcpt_total - len(stats.recipients) <= 2 * ADDRESSES // 5

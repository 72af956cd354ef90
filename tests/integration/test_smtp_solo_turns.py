"""Catch-all probes and queued recipients take turns at a server.

Every domain gets one catch-all probe (a random mailbox, a transaction of one RCPT). A
server hosting hundreds of domains gets hundreds of them, one as each domain comes up;
served before everything else they held the server's queued recipients for most of a job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from mailvet.adapters.dns import DnsResolver
from mailvet.adapters.smtp import SmtpProber
from mailvet.settings import load_settings
from tests.mailworld.smtp_server import SmtpBehaviour
from tests.mailworld.world import MailWorld

pytestmark = pytest.mark.integration

OK = "250 2.1.5 OK"
IP = "127.0.0.90"


@pytest.fixture
def world() -> Iterator[MailWorld]:
    world = MailWorld()
    users = {f"user{i}": OK for i in range(100)} | {"postmaster": OK}
    world.zone.add("mx.turns.com", a=[IP])
    world.add_smtp(IP, SmtpBehaviour(mailboxes=users, max_connections=1, latency=0.005))
    world.start()
    yield world
    world.stop()


async def test_catch_all_probes_do_not_hold_back_queued_recipients(world: MailWorld) -> None:
    settings = load_settings(
        {**world.env(), "MAILVET_SMTP_PER_HOST_CONNECTIONS": "1", "MAILVET_SMTP_RETRY_DELAY": "0"}
    )
    prober = SmtpProber(settings.smtp, DnsResolver(settings.dns))
    try:
        solos = [
            prober.probe(["mx.turns.com"], [f"mailvet-random{n}@d{n}.com"], solo=True)
            for n in range(10)
        ]
        real = prober.probe(["mx.turns.com"], [f"user{i}@turns.com" for i in range(20)])
        *caught, results = await asyncio.gather(*solos, real)
    finally:
        await prober.close()
    assert all(r.reply is not None and r.reply.code == 250 for r in results)
    assert all(r.reply is not None for (r,) in caught)
    order = world.smtp(IP).stats.recipients
    assert order[0] == "mailvet-random0@d0.com"  # a catch-all probe still goes first
    # the recipients' transaction came second, not after all ten catch-all probes
    first_real = next(n for n, rcpt in enumerate(order) if rcpt.startswith("user"))
    solos_before = [rcpt for rcpt in order[:first_real] if rcpt.startswith("mailvet-")]
    assert len(solos_before) == 1
    assert world.smtp(IP).stats.transactions == 11

"""The SMTP prober against scripted servers: limits, batching, fallbacks, retries."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from mailvet.adapters.dns import DnsResolver
from mailvet.adapters.smtp import SmtpProber
from mailvet.domain.ports import ProbeFailure
from mailvet.domain.smtp_reply import Outcome, classify_rcpt
from mailvet.settings import load_settings
from tests.mailworld.smtp_server import SmtpBehaviour
from tests.mailworld.world import MailWorld

pytestmark = pytest.mark.integration

OK = "250 2.1.5 OK"


@pytest.fixture(scope="module")
def world() -> Iterator[MailWorld]:
    world = MailWorld()
    users = {f"user{i}": OK for i in range(200)}
    servers = {
        "solo": ("127.0.0.30", SmtpBehaviour(mailboxes=users, max_connections=1)),
        "batch": ("127.0.0.31", SmtpBehaviour(mailboxes=users, latency=0.02)),
        "slowgrey": ("127.0.0.32", SmtpBehaviour(mailboxes=users, greylist_attempts=1)),
        "helo": ("127.0.0.33", SmtpBehaviour(mailboxes=users, ehlo=False, pipelining=False)),
        "mailfrom": ("127.0.0.34", SmtpBehaviour(mailboxes=users, mail_from_reply="550 5.7.1 Sender blocked")),
        "tempfrom": ("127.0.0.35", SmtpBehaviour(mailboxes=users, mail_from_reply="451 4.3.0 Try later")),
    }
    for name, (ip, behaviour) in servers.items():
        world.zone.add(f"mx.{name}.com", a=[ip])
        world.add_smtp(ip, behaviour)
    world.zone.add("mx.nowhere.com")  # an MX host without addresses
    world.start()
    yield world
    world.stop()


def make_prober(world: MailWorld, **env: str) -> SmtpProber:
    settings = load_settings({**world.env(), "MAILVET_SMTP_RETRY_DELAY": "0.05", **env})
    return SmtpProber(settings.smtp, DnsResolver(settings.dns))


async def test_server_allowing_one_connection_gets_one(world: MailWorld) -> None:
    prober = make_prober(world)
    recipients = [f"user{i}@solo.com" for i in range(60)]
    results = await prober.probe(["mx.solo.com"], recipients)
    await prober.close()
    assert [classify_rcpt(r.reply) for r in results if r.reply] == [Outcome.ACCEPTED] * 60
    stats = world.smtp("127.0.0.30").stats
    assert stats.max_concurrent == 1
    assert stats.protocol_errors == 0


async def test_many_recipients_share_few_pipelined_transactions(world: MailWorld) -> None:
    prober = make_prober(world, MAILVET_SMTP_RECIPIENTS_PER_TRANSACTION="25")
    recipients = [f"user{i}@batch.com" for i in range(150)] + ["nobody@batch.com"]
    results = await prober.probe(["mx.batch.com"], recipients)
    await prober.close()
    stats = world.smtp("127.0.0.31").stats
    assert [r.reply.code for r in results if r.reply] == [250] * 150 + [550]
    assert stats.transactions <= 8  # 151 recipients / 25 per transaction, not one each
    assert stats.connections_total <= 3
    assert stats.protocol_errors == 0
    # one round trip per transaction, not per command: every RCPT of a transaction was sent
    # before the reply to the command ahead of it
    assert stats.pipelined_commands >= len(recipients)


async def test_helo_fallback_without_pipelining(world: MailWorld) -> None:
    prober = make_prober(world)
    results = await prober.probe(["mx.helo.com"], ["user1@helo.com", "user2@helo.com", "zz@helo.com"])
    await prober.close()
    assert [r.reply.code for r in results if r.reply] == [250, 250, 550]
    assert world.smtp("127.0.0.33").stats.protocol_errors == 0
    assert world.smtp("127.0.0.33").stats.pipelined_commands == 0


async def test_greylisted_recipient_is_asked_again_after_the_delay(world: MailWorld) -> None:
    prober = make_prober(world, MAILVET_SMTP_RETRY_DELAY="0.2")
    started = time.monotonic()
    (result,) = await prober.probe(["mx.slowgrey.com"], ["user7@slowgrey.com"])
    await prober.close()
    assert result.reply is not None and result.reply.code == 250
    assert time.monotonic() - started >= 0.2
    assert world.smtp("127.0.0.32").stats.recipients.count("user7@slowgrey.com") == 2


async def test_refused_sender_is_an_smtp_error_not_a_mailbox_verdict(world: MailWorld) -> None:
    prober = make_prober(world)
    results = await prober.probe(["mx.mailfrom.com"], ["user1@mailfrom.com"])
    temp = await prober.probe(["mx.tempfrom.com"], ["user1@tempfrom.com"])
    await prober.close()
    assert results[0].failure is ProbeFailure.SMTP_ERROR
    assert temp[0].failure is ProbeFailure.SMTP_ERROR and temp[0].reply and temp[0].reply.code == 451
    assert world.smtp("127.0.0.35").stats.transactions == 0


async def test_host_without_address_falls_back_to_next_mx(world: MailWorld) -> None:
    prober = make_prober(world)
    results = await prober.probe(["mx.nowhere.com", "mx.batch.com"], ["user3@batch.com"])
    lost = await prober.probe(["mx.nowhere.com"], ["user3@batch.com"])
    await prober.close()
    assert results[0].mx == "mx.batch.com" and results[0].reply and results[0].reply.code == 250
    assert lost[0].failure is ProbeFailure.CONNECTION_FAILED


@pytest.fixture(scope="module")
def rude_world() -> Iterator[MailWorld]:
    world = MailWorld()
    users = {f"user{i}": OK for i in range(100)}
    world.zone.add("mx.rude.com", a=["127.0.0.40"])
    world.add_smtp("127.0.0.40", SmtpBehaviour(mailboxes=users, close_after_rcpts=7))
    world.zone.add("mx.garbage.com", a=["127.0.0.41"])
    world.add_smtp("127.0.0.41", SmtpBehaviour(greeting="HELLO I AM NOT SMTP"))
    world.start()
    yield world
    world.stop()


async def test_421_mid_session_puts_the_rest_back_on_a_new_connection(rude_world: MailWorld) -> None:
    prober = make_prober(rude_world, MAILVET_SMTP_RECIPIENTS_PER_TRANSACTION="5")
    recipients = [f"user{i}@rude.com" for i in range(40)]
    results = await prober.probe(["mx.rude.com"], recipients)
    await prober.close()
    assert [r.reply.code if r.reply else r.failure for r in results] == [250] * 40
    stats = rude_world.smtp("127.0.0.40").stats
    assert stats.connections_total >= 40 // 7
    assert sorted(set(stats.recipients)) == sorted(recipients)


async def test_garbage_greeting_is_not_a_mailbox_verdict(rude_world: MailWorld) -> None:
    prober = make_prober(rude_world)
    (result,) = await prober.probe(["mx.garbage.com"], ["user1@garbage.com"])
    await prober.close()
    assert result.reply is None and result.failure is ProbeFailure.CONNECTION_FAILED

"""The SMTP prober against scripted servers: limits, batching, fallbacks, retries."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Iterator

import pytest

from mailvet.adapters.dns import DnsResolver
from mailvet.adapters.smtp import SmtpProber, is_public_address
from mailvet.domain.ports import ProbeFailure
from mailvet.domain.smtp_reply import Outcome, classify_rcpt
from mailvet.domain.work import current_job
from mailvet.settings import load_settings
from tests.mailworld.smtp_server import SmtpBehaviour
from tests.mailworld.world import MailWorld

pytestmark = pytest.mark.integration

OK = "250 2.1.5 OK"


@pytest.fixture(scope="module")
def world() -> Iterator[MailWorld]:
    world = MailWorld()
    users = {f"user{i}": OK for i in range(200)} | {"postmaster": OK}
    servers = {
        "solo": ("127.0.0.30", SmtpBehaviour(mailboxes=users, max_connections=1)),
        "batch": ("127.0.0.31", SmtpBehaviour(mailboxes=users, latency=0.02)),
        "slowgrey": ("127.0.0.32", SmtpBehaviour(mailboxes=users, greylist_attempts=1)),
        "helo": ("127.0.0.33", SmtpBehaviour(mailboxes=users, ehlo=False, pipelining=False)),
        "mailfrom": (
            "127.0.0.34",
            SmtpBehaviour(mailboxes=users, mail_from_reply="550 5.7.1 Sender blocked"),
        ),
        "tempfrom": (
            "127.0.0.35",
            SmtpBehaviour(mailboxes=users, mail_from_reply="451 4.3.0 Try later"),
        ),
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
    results = await prober.probe(
        ["mx.helo.com"], ["user1@helo.com", "user2@helo.com", "zz@helo.com"]
    )
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
    assert (
        temp[0].failure is ProbeFailure.SMTP_ERROR and temp[0].reply and temp[0].reply.code == 451
    )
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
    users = {f"user{i}": OK for i in range(100)} | {"postmaster": OK}
    world.zone.add("mx.rude.com", a=["127.0.0.40"])
    world.add_smtp("127.0.0.40", SmtpBehaviour(mailboxes=users, close_after_rcpts=7))
    world.zone.add("mx.garbage.com", a=["127.0.0.41"])
    world.add_smtp("127.0.0.41", SmtpBehaviour(greeting="HELLO I AM NOT SMTP"))
    world.start()
    yield world
    world.stop()


async def test_421_mid_session_puts_the_rest_back_on_a_new_connection(
    rude_world: MailWorld,
) -> None:
    prober = make_prober(rude_world, MAILVET_SMTP_RECIPIENTS_PER_TRANSACTION="5")
    recipients = [f"user{i}@rude.com" for i in range(40)]
    results = await prober.probe(["mx.rude.com"], recipients)
    await prober.close()
    assert [r.reply.code if r.reply else r.failure for r in results] == [250] * 40
    stats = rude_world.smtp("127.0.0.40").stats
    assert stats.connections_total >= 40 // 7
    assert sorted(set(stats.recipients) - {"postmaster@rude.com"}) == sorted(recipients)


async def test_garbage_greeting_is_not_a_mailbox_verdict(rude_world: MailWorld) -> None:
    prober = make_prober(rude_world)
    (result,) = await prober.probe(["mx.garbage.com"], ["user1@garbage.com"])
    await prober.close()
    assert result.reply is None and result.failure is ProbeFailure.CONNECTION_FAILED


# --- safe, bounded and polite probing ---------------------------------------------------


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.9", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),  # noqa: S104 - data
        ("224.0.0.251", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("not-an-ip", False),
        ("8.8.8.8", True),
        ("2607:f8b0:4004:c07::1a", True),
        ("::ffff:8.8.8.8", True),
    ],
)
def test_only_public_addresses_are_probed(address: str, public: bool) -> None:
    assert is_public_address(address) is public


@pytest.fixture(scope="module")
def polite_world() -> Iterator[MailWorld]:
    world = MailWorld()
    users = {f"user{i}": OK for i in range(400)} | {"postmaster": OK}
    # one shared provider server; twenty domains each name their own MX host for it
    world.add_smtp("127.0.0.60", SmtpBehaviour(mailboxes=users, max_connections=3, latency=0.01))
    for d in range(20):
        world.zone.add(f"mx.shared{d}.com", a=["127.0.0.60"])
    world.add_smtp("127.0.0.61", SmtpBehaviour(mailboxes=users))  # takes any number of RCPTs
    world.zone.add("mx.big.com", a=["127.0.0.61"])
    world.add_smtp("127.0.0.62", SmtpBehaviour(mailboxes=users))
    world.zone.add("mx.few.com", a=["127.0.0.62"])
    world.add_smtp("127.0.0.63", SmtpBehaviour(mailboxes=users, greeting_failures=1))
    world.zone.add("mx.busyonce.com", a=["127.0.0.63"])
    world.add_smtp("127.0.0.64", SmtpBehaviour(mailboxes=users, error_limit=5))
    world.zone.add("mx.strict.com", a=["127.0.0.64"])
    world.add_smtp("127.0.0.65", SmtpBehaviour(mailboxes=users))
    world.zone.add("mx.solo.com", a=["127.0.0.65"])
    world.add_smtp("127.0.0.66", SmtpBehaviour(mailboxes=users, garble_rcpt={"user5"}))
    world.zone.add("mx.garble.com", a=["127.0.0.66"])
    world.add_smtp("127.0.0.67", SmtpBehaviour(mailboxes=users, latency=0.05))
    world.zone.add("mx.queue.com", a=["127.0.0.67"])
    world.add_smtp("127.0.0.59", SmtpBehaviour(mailboxes=users, max_connections=1, latency=0.1))
    world.zone.add("mx.onecap.com", a=["127.0.0.59"])
    world.add_smtp("127.0.0.69", SmtpBehaviour(mailboxes=users, max_connections=1, latency=0.01))
    world.zone.add("mx.fair.com", a=["127.0.0.69"])
    world.add_smtp("127.0.0.68", SmtpBehaviour(mailboxes=users, max_connections=2, latency=0.02))
    world.zone.add("mx.twocap.com", a=["127.0.0.68"])
    # three domains on one server that drops each session after 20 RCPTs: several sessions
    world.add_smtp("127.0.0.58", SmtpBehaviour(mailboxes=users, close_after_rcpts=20))
    for d in range(3):
        world.zone.add(f"mx.control{d}.com", a=["127.0.0.58"])
    for i in range(10):  # ten black holes behind sixty MX names
        world.add_smtp(f"127.0.0.{70 + i}", SmtpBehaviour(blackhole=True))
    for h in range(60):
        world.zone.add(f"mx{h}.deep.com", a=[f"127.0.0.{70 + h % 10}"])
    world.start()
    yield world
    world.stop()


async def test_politeness_is_per_server_address_not_per_mx_name(polite_world: MailWorld) -> None:
    prober = make_prober(polite_world, MAILVET_SMTP_RECIPIENTS_PER_TRANSACTION="5")
    batches = [
        prober.probe([f"mx.shared{d}.com"], [f"user{i}@shared{d}.com" for i in range(20)])
        for d in range(20)
    ]
    results = [r for batch in await asyncio.gather(*batches) for r in batch]
    await prober.close()
    assert [r.reply.code if r.reply else r.failure for r in results] == [250] * 400
    stats = polite_world.smtp("127.0.0.60").stats
    assert stats.max_concurrent <= 3
    assert stats.violations == 0  # no 421 "too many connections" drawn


async def test_batches_grow_toward_what_the_server_takes(polite_world: MailWorld) -> None:
    prober = make_prober(polite_world)
    recipients = [f"user{i}@big.com" for i in range(400)]
    results = await prober.probe(["mx.big.com"], recipients)
    await prober.close()
    assert [r.reply.code for r in results if r.reply] == [250] * 400
    stats = polite_world.smtp("127.0.0.61").stats
    # 20, 40, 80, 100, ... per transaction (per session) instead of 20 every time
    assert stats.transactions <= 10
    assert stats.rcpt_total <= 400 + stats.connections_total + 8


async def test_only_the_sessions_the_work_needs(polite_world: MailWorld) -> None:
    prober = make_prober(polite_world)
    results = await prober.probe(["mx.few.com"], [f"user{i}@few.com" for i in range(5)])
    await prober.close()
    assert [r.reply.code for r in results if r.reply] == [250] * 5
    stats = polite_world.smtp("127.0.0.62").stats
    assert stats.connections_total == 1
    assert stats.idle_sessions == 0


async def test_a_busy_greeting_is_retried_after_the_delay(polite_world: MailWorld) -> None:
    prober = make_prober(polite_world)
    results = await prober.probe(["mx.busyonce.com"], ["user1@busyonce.com", "user2@busyonce.com"])
    await prober.close()
    assert [r.reply.code if r.reply else r.failure for r in results] == [250, 250]
    assert polite_world.smtp("127.0.0.63").stats.connections_total == 2


async def test_error_limit_disconnects_do_not_lose_recipients(polite_world: MailWorld) -> None:
    prober = make_prober(polite_world)
    recipients = [f"nobody{i}@strict.com" for i in range(30)] + ["user1@strict.com"]
    results = await prober.probe(["mx.strict.com"], recipients)
    await prober.close()
    assert [r.reply.code if r.reply else r.failure for r in results] == [550] * 30 + [250]
    stats = polite_world.smtp("127.0.0.64").stats
    # learned after the first drop: later sessions stay under the limit
    assert stats.connections_total <= 30 // 3 + 2


async def test_catch_all_probe_has_a_transaction_of_its_own(polite_world: MailWorld) -> None:
    prober = make_prober(polite_world)
    solo = prober.probe(["mx.solo.com"], ["mailvet-random@solo.com"], solo=True)
    real = prober.probe(["mx.solo.com"], [f"user{i}@solo.com" for i in range(10)])
    (catch_all,), results = await asyncio.gather(solo, real)
    await prober.close()
    assert catch_all.reply is not None and catch_all.reply.code == 550
    assert [r.reply.code for r in results if r.reply] == [250] * 10
    stats = polite_world.smtp("127.0.0.65").stats
    assert stats.transactions == 2  # the random mailbox never shares a transaction
    assert stats.recipients[0] == "mailvet-random@solo.com"  # and it goes first


async def test_the_control_is_asked_once_per_domain_and_session(polite_world: MailWorld) -> None:
    """postmaster@ (the control) goes with the first transaction of a session for each
    domain, never again in that session however many transactions and rounds follow, and
    again in the next session; never in a catch-all probe's transaction."""
    prober = make_prober(
        polite_world,
        MAILVET_SMTP_PER_HOST_CONNECTIONS="2",
        MAILVET_SMTP_RECIPIENTS_PER_TRANSACTION="3",
        MAILVET_SMTP_MAX_RECIPIENTS_PER_TRANSACTION="3",
    )
    domains = [f"control{d}.com" for d in range(3)]
    calls = [
        prober.probe([f"mx.{domain}"], [f"user{i}@{domain}" for i in range(k, k + 10)])
        for k in (0, 10, 20)  # three probe calls a domain, as the engine's desks make them
        for domain in domains
    ]
    solos = [prober.probe([f"mx.{d}"], [f"mailvet-random@{d}"], solo=True) for d in domains]
    batches = await asyncio.gather(*calls, *solos)
    await prober.close()
    replies = [r.reply.code if r.reply else r.failure for batch in batches for r in batch]
    assert replies == [250] * 90 + [550] * 3
    log = polite_world.smtp("127.0.0.58").stats.rcpt_log
    sessions = {event.session for event in log}
    transactions = {event.transaction for event in log}
    assert len(sessions) >= 3 and len(transactions) >= 2 * len(sessions)  # the case in question
    controls = Counter(
        (event.session, event.address.partition("@")[2])
        for event in log
        if event.address.startswith("postmaster@")
    )
    asked = {
        (event.session, event.address.partition("@")[2])
        for event in log
        if event.address.startswith("user")
    }
    # each session asked the control of each domain it asked about (the control goes first:
    # a session dropped right after one has no recipient of that domain) ...
    assert asked <= set(controls)
    assert set(controls.values()) == {1}  # ... and exactly once
    by_transaction: dict[int, list[str]] = defaultdict(list)
    for event in log:
        by_transaction[event.transaction].append(event.address)
    for event in log:
        if event.address.startswith("mailvet-"):
            assert by_transaction[event.transaction] == [event.address]


async def test_a_garbled_reply_spoils_only_its_recipient(polite_world: MailWorld) -> None:
    prober = make_prober(polite_world)
    recipients = [f"user{i}@garble.com" for i in range(12)]
    results = await prober.probe(["mx.garble.com"], recipients)
    await prober.close()
    got = [r.reply.code if r.reply else r.failure for r in results]
    assert got == [250] * 5 + [ProbeFailure.SMTP_ERROR] + [250] * 6
    # the ones after it were asked once more on a new session, not round after round
    stats = polite_world.smtp("127.0.0.66").stats
    assert stats.recipients.count("user7@garble.com") <= 2
    assert stats.connections_total == 2


async def test_sixty_dead_mx_hosts_cost_five_attempts(polite_world: MailWorld) -> None:
    prober = make_prober(polite_world, MAILVET_SMTP_ADDRESS_DEADLINE="30")
    hosts = [f"mx{h}.deep.com" for h in range(60)]
    (result,) = await prober.probe(hosts, ["user1@deep.com"])
    await prober.close()
    assert result.failure is ProbeFailure.TIMEOUT
    tried = sum(polite_world.smtp(f"127.0.0.{70 + i}").stats.connections_total for i in range(10))
    assert tried <= 5  # RFC 5321 5.1: at most five MX hosts per domain


async def test_the_address_deadline_bounds_a_black_hole(polite_world: MailWorld) -> None:
    prober = make_prober(
        polite_world, MAILVET_SMTP_ADDRESS_DEADLINE="0.5", MAILVET_SMTP_TIMEOUT="5"
    )
    started = time.monotonic()
    (result,) = await prober.probe(["mx7.deep.com"], ["user1@deep.com"])
    elapsed = time.monotonic() - started
    await prober.close()
    assert result.failure is ProbeFailure.TIMEOUT
    assert elapsed < 5  # the deadline ended it, not the 5 s socket timeout


async def test_waiting_behind_a_live_server_is_not_a_timeout(polite_world: MailWorld) -> None:
    """The deadline is for servers that stop answering, not for a long queue to one that
    answers all along (about 3 s of work here, against a 1 s deadline)."""
    prober = make_prober(
        polite_world,
        MAILVET_SMTP_ADDRESS_DEADLINE="1",
        MAILVET_SMTP_PER_HOST_CONNECTIONS="1",
        MAILVET_SMTP_RECIPIENTS_PER_TRANSACTION="5",
        MAILVET_SMTP_MAX_RECIPIENTS_PER_TRANSACTION="5",
    )
    recipients = [f"user{i}@queue.com" for i in range(300)]
    results = await asyncio.gather(*(prober.probe(["mx.queue.com"], [r]) for r in recipients))
    await prober.close()
    assert [r.reply.code if r.reply else r.failure for (r,) in results] == [250] * 300


async def test_private_mx_addresses_are_never_contacted(polite_world: MailWorld) -> None:
    prober = make_prober(polite_world, MAILVET_SMTP_ALLOW_PRIVATE="false")
    before = polite_world.smtp("127.0.0.62").stats.connections_total
    (result,) = await prober.probe(["mx.few.com"], ["user1@few.com"])
    await prober.close()
    assert result.reply is None and result.failure is ProbeFailure.CONNECTION_FAILED
    assert polite_world.smtp("127.0.0.62").stats.connections_total == before


async def test_sessions_start_slowly_so_a_lower_cap_costs_one_421(polite_world: MailWorld) -> None:
    # we would open 5 sessions, the server takes 2: opened all at once, 3 would be turned away
    prober = make_prober(
        polite_world,
        MAILVET_SMTP_PER_HOST_CONNECTIONS="5",
        MAILVET_SMTP_RECIPIENTS_PER_TRANSACTION="5",
        MAILVET_SMTP_MAX_RECIPIENTS_PER_TRANSACTION="5",
    )
    recipients = [f"user{i}@twocap.com" for i in range(300)]
    results = await prober.probe(["mx.twocap.com"], recipients)
    await prober.close()
    assert [r.reply.code if r.reply else r.failure for r in results] == [250] * 300
    stats = polite_world.smtp("127.0.0.68").stats
    assert stats.max_concurrent == 2  # the cap was reached, and kept
    assert stats.violations == 1  # the one 421 that told us the cap


async def test_a_small_job_does_not_wait_behind_a_big_one_at_a_server(
    polite_world: MailWorld,
) -> None:
    prober = make_prober(
        polite_world,
        MAILVET_SMTP_PER_HOST_CONNECTIONS="1",
        MAILVET_SMTP_RECIPIENTS_PER_TRANSACTION="5",
        MAILVET_SMTP_MAX_RECIPIENTS_PER_TRANSACTION="5",
    )

    async def job(job_id: str, recipients: list[str]) -> None:
        current_job.set(job_id)  # what the worker does around a chunk
        results = await prober.probe(["mx.fair.com"], recipients)
        assert [r.reply.code if r.reply else r.failure for r in results] == [250] * len(recipients)

    big = [f"user{i}@fair.com" for i in range(200)]
    small = [f"user{i}@fair.com" for i in range(300, 305)]
    await asyncio.gather(job("big", big), job("small", small))
    await prober.close()
    sent = [
        r
        for r in polite_world.smtp("127.0.0.69").stats.recipients
        if not r.startswith("postmaster@")
    ]
    assert sorted(sent) == sorted(big + small)
    # one session, 5 RCPTs a transaction: the small job's batch comes second, not 41st
    assert max(sent.index(r) for r in small) < 15


async def test_no_new_session_while_one_is_still_closing(polite_world: MailWorld) -> None:
    # the server takes one session; ours ends (QUIT, answered one latency later) just as new
    # work comes: opening the next one before the QUIT is answered would draw a 421
    prober = make_prober(polite_world, MAILVET_SMTP_PER_HOST_CONNECTIONS="1")
    for round_ in range(3):
        recipients = [f"user{i}@onecap.com" for i in range(5 * round_, 5 * round_ + 5)]
        results = await prober.probe(["mx.onecap.com"], recipients)
        assert [r.reply.code if r.reply else r.failure for r in results] == [250] * 5
    await prober.close()
    stats = polite_world.smtp("127.0.0.59").stats
    assert stats.violations == 0
    assert stats.max_concurrent == 1

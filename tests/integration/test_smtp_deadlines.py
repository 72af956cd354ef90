"""MAILVET_SMTP_ADDRESS_DEADLINE as a bound on wall time, in the mail world: a chunk with
tar-pit domains beside normal ones (the normal rows are reported at once, the chunk ends
about one deadline after it started), and a domain of sixty black-holed MX hosts (about one
deadline, whatever the socket timeout). The deadlines are short and the bounds generous:
these are behaviour bounds, not benchmarks."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from mailvet.adapters.dns import DnsResolver
from mailvet.adapters.smtp import SmtpProber
from mailvet.domain.ports import ProbeFailure
from mailvet.domain.verdict import Check, Reason, Status, Verdict
from mailvet.pipeline.engine import Engine
from mailvet.settings import load_settings
from tests.mailworld.smtp_server import SmtpBehaviour
from tests.mailworld.world import MailWorld

pytestmark = pytest.mark.integration

OK = "250 2.1.5 OK"
DEADLINE = 2.0
SLACK = 2.0  # the bound is DEADLINE + SLACK: room for a loaded machine, far below a timeout
NORMAL = ("fine-mail.com", "also-fine.com")
TARPITS = ("trickle-pit.com", "silent-pit.com", "stall-pit.com")


@pytest.fixture(scope="module")
def world() -> Iterator[MailWorld]:
    world = MailWorld()
    users = {f"user{i}": OK for i in range(20)} | {"postmaster": OK}
    servers = {
        "fine-mail.com": ("127.0.0.130", SmtpBehaviour(mailboxes=users)),
        "also-fine.com": ("127.0.0.131", SmtpBehaviour(mailboxes=users, latency=0.02)),
        # the greeting, 100 lines, one every second: each line within the socket timeout
        "trickle-pit.com": ("127.0.0.132", SmtpBehaviour(mailboxes=users, trickle=1.0)),
        # takes the connection and never says a word
        "silent-pit.com": ("127.0.0.133", SmtpBehaviour(blackhole=True)),
        # greets, answers EHLO and MAIL, then never answers again (the control goes first)
        "stall-pit.com": ("127.0.0.134", SmtpBehaviour(mailboxes=users, stall_rcpt={"postmaster"})),
    }
    for domain, (ip, behaviour) in servers.items():
        world.zone.add(f"mx.{domain}", a=[ip])
        world.zone.add(domain, mx=[(10, f"mx.{domain}")])
        world.add_smtp(ip, behaviour)
    for i in range(10):  # ten black holes behind sixty MX names
        world.add_smtp(f"127.0.0.{140 + i}", SmtpBehaviour(blackhole=True))
    for h in range(60):
        world.zone.add(f"mx{h}.deep-pit.com", a=[f"127.0.0.{140 + h % 10}"])
    world.start()
    yield world
    world.stop()


async def test_tar_pits_do_not_hold_back_the_other_domains_of_a_chunk(world: MailWorld) -> None:
    # a socket timeout longer than the deadline: only the address deadline can end a tar-pit
    settings = load_settings(
        {
            **world.env(),
            "MAILVET_SMTP_ADDRESS_DEADLINE": str(DEADLINE),
            "MAILVET_SMTP_TIMEOUT": "30",
        }
    )
    resolver = DnsResolver(settings.dns)
    engine = Engine(resolver, SmtpProber(settings.smtp, resolver))
    # one chunk, the domains' rows interleaved as in a real list
    addresses = [f"user{i}@{domain}" for i in range(6) for domain in (*NORMAL, *TARPITS)]
    reported: dict[int, float] = {}
    started = time.monotonic()

    def reached(indexes: list[int], verdicts: list[Verdict]) -> None:
        for index in indexes:
            reported[index] = time.monotonic() - started

    try:
        verdicts = await engine.check_many(addresses, Check.SMTP, reached=reached)
        elapsed = time.monotonic() - started
    finally:
        await engine.close()

    normal = [i for i, a in enumerate(addresses) if a.endswith(NORMAL)]
    pits = [i for i, a in enumerate(addresses) if a.endswith(TARPITS)]
    assert [(verdicts[i].status, verdicts[i].reason) for i in normal] == [
        (Status.DELIVERABLE, Reason.ACCEPTED)
    ] * len(normal)
    assert [(verdicts[i].status, verdicts[i].reason) for i in pits] == [
        (Status.UNKNOWN, Reason.TIMEOUT)
    ] * len(pits)
    # the normal domains' rows were reported well before the tar-pits' deadline came ...
    assert max(reported[i] for i in normal) < DEADLINE - 0.5, reported
    # ... and the chunk, tar-pits included, ended about one deadline after it started
    assert DEADLINE <= elapsed < DEADLINE + SLACK, elapsed
    assert sorted(reported) == list(range(len(addresses)))  # every row reported


@pytest.mark.parametrize("socket_timeout", ["0.5", "30"])
async def test_sixty_black_holed_mx_hosts_end_in_about_one_deadline(
    world: MailWorld, socket_timeout: str
) -> None:
    """A short socket timeout: host after host times out until the deadline (at most five
    hosts); a long one: the first host's silence is cut short by the deadline."""
    settings = load_settings(
        {
            **world.env(),
            "MAILVET_SMTP_ADDRESS_DEADLINE": str(DEADLINE),
            "MAILVET_SMTP_TIMEOUT": socket_timeout,
        }
    )
    prober = SmtpProber(settings.smtp, DnsResolver(settings.dns))
    hosts = [f"mx{h}.deep-pit.com" for h in range(60)]
    before = sum(world.smtp(f"127.0.0.{140 + i}").stats.connections_total for i in range(10))
    started = time.monotonic()
    try:
        (result,) = await prober.probe(hosts, ["user1@deep-pit.com"])
        elapsed = time.monotonic() - started
    finally:
        await prober.close()
    assert result.failure is ProbeFailure.TIMEOUT
    assert DEADLINE <= elapsed < DEADLINE + SLACK, elapsed
    tried = sum(world.smtp(f"127.0.0.{140 + i}").stats.connections_total for i in range(10))
    assert 1 <= tried - before <= 5

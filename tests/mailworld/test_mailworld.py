"""Tests of the test mail world itself: DNS answers and scripted SMTP behaviour."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Callable, Iterator

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import dns.resolver
import pytest

from mailvet.domain.verdict import Reason, Status
from tests.waiting import until

from .smtp_server import GARBAGE, SmtpBehaviour, SmtpServer, SmtpStats
from .world import EXPECTED_MX, SCENARIOS, MailWorld, standard_world

pytestmark = pytest.mark.integration

OK = "250 2.1.5 OK"
READ_GUARD = 2.0  # seconds a raw client waits for a reply before the test fails


# -- fixtures and helpers -----------------------------------------------------


@pytest.fixture(scope="module")
def world() -> Iterator[MailWorld]:
    """The standard scenario world, shared by the read-only tests of this module."""
    with standard_world() as running:
        yield running
        assert running.dns.errors == []


@pytest.fixture
def make_world() -> Iterator[Callable[[dict[str, SmtpBehaviour]], MailWorld]]:
    """Factory of small started worlds (servers by IP), all stopped at teardown."""
    started: list[MailWorld] = []

    def make(servers: dict[str, SmtpBehaviour]) -> MailWorld:
        fresh = MailWorld()
        for host, behaviour in servers.items():
            fresh.add_smtp(host, behaviour)
        fresh.start()
        started.append(fresh)
        return fresh

    yield make
    for fresh in started:
        fresh.stop()


def resolver_for(world: MailWorld, lifetime: float = 1.0) -> dns.asyncresolver.Resolver:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = world.dns_port
    resolver.lifetime = lifetime
    return resolver


async def query(
    world: MailWorld,
    name: str,
    rdtype: str,
    *,
    tcp: bool = False,
    timeout: float = 1.0,  # noqa: ASYNC109 - dnspython's own per-query limit, passed on
) -> dns.message.Message:
    """Send one raw query to the world's DNS server."""
    request = dns.message.make_query(name, rdtype)
    send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    return await send(request, "127.0.0.1", timeout=timeout, port=world.dns_port)


class RawSmtp:
    """A deliberately dumb SMTP client: send raw lines, read raw replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int) -> RawSmtp:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def reply(self) -> list[str]:
        """Read one (possibly multi-line) reply (within READ_GUARD seconds)."""
        lines: list[str] = []
        async with asyncio.timeout(READ_GUARD):
            while True:
                raw = await self.reader.readline()
                if not raw:
                    raise ConnectionError(f"closed after {lines!r}")
                line = raw.decode().rstrip("\r\n")
                lines.append(line)
                if len(line) < 4 or line[3] != "-":
                    return lines

    async def send(self, *commands: str) -> None:
        """Send *commands* in one write (pipelined when there are several)."""
        self.writer.write("".join(f"{c}\r\n" for c in commands).encode())
        await self.writer.drain()

    async def command(self, command: str) -> str:
        """Send one command and return the last line of its reply."""
        await self.send(command)
        return (await self.reply())[-1]

    async def starttls(self) -> None:
        """Upgrade to TLS (after the server's 220), trusting any certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        await self.writer.start_tls(context)

    async def raw_line(self) -> bytes:
        async with asyncio.timeout(READ_GUARD):
            return await self.reader.readline()

    async def at_eof(self) -> bool:
        async with asyncio.timeout(READ_GUARD):
            return await self.reader.read() == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def greeted(host: str, port: int, helo: str = "EHLO probe.example.com") -> RawSmtp:
    """Connect, read the greeting and say EHLO (or the given HELO)."""
    client = await RawSmtp.connect(host, port)
    assert (await client.reply())[0].startswith("220")
    assert (await client.command(helo)).startswith("250")
    return client


# -- DNS ------------------------------------------------------------------------


async def test_mx_answer_carries_exchange_names(world: MailWorld) -> None:
    answer = await resolver_for(world).resolve("good-mail.com", "MX")
    assert [(r.preference, r.exchange.to_text()) for r in answer] == [(10, "mx.good-mail.com.")]
    a = await resolver_for(world).resolve("mx.good-mail.com", "A")
    assert [r.address for r in a] == ["127.0.0.2"]


async def test_backup_domain_lists_both_exchanges(world: MailWorld) -> None:
    answer = await resolver_for(world).resolve("backup-mail.com", "MX")
    assert sorted((r.preference, r.exchange.to_text()) for r in answer) == [
        (10, "mx1.backup-mail.com."),
        (20, "mx2.backup-mail.com."),
    ]


async def test_names_are_case_insensitive_with_optional_trailing_dot(world: MailWorld) -> None:
    response = await query(world, "GOOD-Mail.COM.", "MX")
    assert response.rcode() == dns.rcode.NOERROR
    assert len(response.answer) == 1


async def test_nodata_is_noerror_with_soa(world: MailWorld) -> None:
    response = await query(world, "aonly-mail.com", "MX")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer == []
    assert [rrset.rdtype for rrset in response.authority] == [dns.rdatatype.SOA]
    with pytest.raises(dns.resolver.NoAnswer):
        await resolver_for(world).resolve("aonly-mail.com", "MX")


async def test_txt_only_name_exists(world: MailWorld) -> None:
    txt = await resolver_for(world).resolve("nomail-mail.com", "TXT")
    assert [r.to_text() for r in txt] == ['"v=spf1 -all"']
    for rdtype in ("MX", "A", "AAAA"):
        response = await query(world, "nomail-mail.com", rdtype)
        assert response.rcode() == dns.rcode.NOERROR and response.answer == []


async def test_nxdomain_has_soa(world: MailWorld) -> None:
    response = await query(world, "no-such-domain-zz.com", "MX")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert [rrset.rdtype for rrset in response.authority] == [dns.rdatatype.SOA]
    with pytest.raises(dns.resolver.NXDOMAIN):
        await resolver_for(world).resolve("gmial.com", "A")


async def test_null_mx(world: MailWorld) -> None:
    answer = await resolver_for(world).resolve("nullmx-mail.com", "MX")
    assert [(r.preference, r.exchange.to_text()) for r in answer] == [(0, ".")]


async def test_servfail(world: MailWorld) -> None:
    response = await query(world, "servfail-mail.com", "MX")
    assert response.rcode() == dns.rcode.SERVFAIL
    with pytest.raises(dns.resolver.NoNameservers):
        await resolver_for(world).resolve("servfail-mail.com", "MX")


async def test_blackhole_times_out_over_udp_and_tcp(world: MailWorld) -> None:
    with pytest.raises(dns.exception.Timeout):
        await resolver_for(world, lifetime=0.3).resolve("dnstimeout-mail.com", "MX")
    with pytest.raises(dns.exception.Timeout):
        await query(world, "dnstimeout-mail.com", "A", tcp=True, timeout=0.3)


async def test_tcp_answers_like_udp(world: MailWorld) -> None:
    response = await query(world, "grey-mail.com", "MX", tcp=True)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer[0][0].exchange.to_text() == "mx.grey-mail.com."


async def test_add_empty_answers_nodata_for_everything() -> None:
    with MailWorld() as fresh:
        fresh.zone.add_empty("empty-mail.com")
        for rdtype in ("MX", "A", "AAAA", "TXT"):
            response = await query(fresh, "empty-mail.com", rdtype)
            assert response.rcode() == dns.rcode.NOERROR
            assert response.answer == [] and len(response.authority) == 1
        assert (await query(fresh, "other-mail.com", "A")).rcode() == dns.rcode.NXDOMAIN


# -- SMTP -------------------------------------------------------------------------


async def test_greeting_and_ehlo_advertisement(world: MailWorld) -> None:
    client = await RawSmtp.connect("127.0.0.2", world.smtp_port)
    assert await client.reply() == ["220 mx.good-mail.com ESMTP mailworld"]
    await client.send("EHLO probe.example.com")
    lines = await client.reply()
    assert lines[0] == "250-mx.good-mail.com Hello probe.example.com"
    assert [line[:4] for line in lines] == ["250-"] * (len(lines) - 1) + ["250 "]
    keywords = {line[4:].split()[0] for line in lines[1:]}
    assert {"PIPELINING", "SIZE", "ENHANCEDSTATUSCODES"} <= keywords
    assert await client.command("QUIT") == "221 2.0.0 Bye"
    assert await client.at_eof()
    await client.close()


async def test_mailbox_replies(world: MailWorld) -> None:
    client = await greeted("127.0.0.2", world.smtp_port)
    assert await client.command("MAIL FROM:<verify@mailvet-test.com> SIZE=100") == "250 2.1.0 OK"
    assert await client.command("RCPT TO:<Alice@good-mail.com>") == OK
    assert await client.command("RCPT TO:<full@good-mail.com>") == "552 5.2.2 Mailbox full"
    assert await client.command("RCPT TO:<nobody@good-mail.com>") == (
        "550 5.1.1 <nobody@good-mail.com>: Recipient address rejected: User unknown"
    )
    assert await client.command("VRFY alice") == ("252 2.0.0 Cannot VRFY user, but will accept")
    assert await client.command("FROB") == "500 5.5.2 Error: command not recognized"
    await client.close()


async def test_no_ehlo_falls_back_to_helo(world: MailWorld) -> None:
    client = await RawSmtp.connect("127.0.0.13", world.smtp_port)
    await client.reply()
    assert await client.command("EHLO probe.example.com") == "502 5.5.2 Command not recognized"
    assert await client.command("HELO probe.example.com") == "250 mx.nopipe-mail.com"
    assert await client.command("MAIL FROM:<>") == "250 2.1.0 OK"
    assert await client.command("RCPT TO:<gina@nopipe-mail.com>") == OK
    await client.close()


async def test_catch_all_and_refused(world: MailWorld) -> None:
    client = await greeted("127.0.0.3", world.smtp_port)
    await client.command("MAIL FROM:<>")
    assert await client.command("RCPT TO:<zz9-random@catchall-mail.com>") == OK
    await client.close()
    for refused in ("127.0.0.7", "127.0.0.9"):
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(refused, world.smtp_port)


async def test_backup_mx_serves(world: MailWorld) -> None:
    client = await greeted("127.0.0.8", world.smtp_port)
    await client.command("MAIL FROM:<>")
    assert await client.command("RCPT TO:<frank@backup-mail.com>") == OK
    await client.close()


async def test_busy_greeting_closes(world: MailWorld) -> None:
    client = await RawSmtp.connect("127.0.0.11", world.smtp_port)
    assert await client.reply() == ["421 4.3.2 Service busy, try later"]
    assert await client.at_eof()
    await client.close()


async def test_blackhole_never_answers(world: MailWorld) -> None:
    client = await RawSmtp.connect("127.0.0.10", world.smtp_port)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await client.reply()
    await client.send("EHLO probe.example.com")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await client.reply()
    await client.close()


async def test_greylisting_then_accept(make_world: Callable[..., MailWorld]) -> None:
    fresh = make_world({"127.0.0.4": SmtpBehaviour(mailboxes={"carol": OK}, greylist_attempts=2)})
    replies = []
    for _ in range(3):  # attempts are counted across connections
        client = await greeted("127.0.0.4", fresh.smtp_port)
        await client.command("MAIL FROM:<>")
        replies.append(await client.command("RCPT TO:<carol@grey-mail.com>"))
        await client.command("QUIT")
        await client.close()
    greylisted = (
        "450 4.2.0 <carol@grey-mail.com>: Recipient address rejected: Greylisted, try again later"
    )
    assert replies == [greylisted, greylisted, OK]


async def test_greylisting_refuses_retries_sooner_than_its_delay(
    make_world: Callable[..., MailWorld],
) -> None:
    delay = 0.3
    fresh = make_world(
        {
            "127.0.0.4": SmtpBehaviour(
                mailboxes={"carol": OK}, greylist_attempts=1, greylist_delay=delay
            )
        }
    )
    client = await greeted("127.0.0.4", fresh.smtp_port)
    await client.command("MAIL FROM:<>")
    replies: list[str] = []

    async def ask() -> bool:
        replies.append(await client.command("RCPT TO:<carol@grey-mail.com>"))
        return replies[-1] == OK

    started = time.monotonic()
    while not await ask():  # retried at once, again and again, until the delay has passed
        assert time.monotonic() - started < 5 * delay + READ_GUARD
    await client.command("QUIT")
    await client.close()
    stats = fresh.smtp("127.0.0.4").stats
    assert len(replies) >= 3 and all(r.startswith("450 4.2.0") for r in replies[:-1])
    assert stats.greylisted_early == len(replies) - 2  # all but the first 450 came too soon
    log = stats.rcpt_log
    assert [event.code for event in log] == [450] * (len(replies) - 1) + [250]
    assert {event.session for event in log} == {1}
    assert {event.transaction for event in log} == {1}  # one MAIL FROM for them all
    assert {event.address for event in log} == {"carol@grey-mail.com"}
    assert log[-1].at - log[0].at >= delay
    assert log[-2].at - log[0].at < delay
    assert started <= log[0].at <= log[-1].at <= time.monotonic()  # the test's own clock


async def test_recipient_limit_per_transaction(make_world: Callable[..., MailWorld]) -> None:
    fresh = make_world({"127.0.0.12": SmtpBehaviour(default_reply=OK, max_recipients=2)})
    client = await greeted("127.0.0.12", fresh.smtp_port)
    await client.send("MAIL FROM:<>", *(f"RCPT TO:<u{i}@limit-mail.com>" for i in range(1, 5)))
    replies = [(await client.reply())[-1] for _ in range(5)]
    assert replies[1:] == [OK, OK, "452 4.5.3 Too many recipients", "452 4.5.3 Too many recipients"]
    assert await client.command("RSET") == "250 2.0.0 OK"
    assert await client.command("MAIL FROM:<>") == "250 2.1.0 OK"
    assert await client.command("RCPT TO:<u3@limit-mail.com>") == OK
    await client.close()
    stats = fresh.smtp("127.0.0.12").stats
    assert stats.rcpt_total == 5
    assert stats.recipients == ["u1@limit-mail.com", "u2@limit-mail.com", "u3@limit-mail.com"]
    assert stats.transactions == 2
    assert stats.protocol_errors == 0


async def test_max_connections_violation(make_world: Callable[..., MailWorld]) -> None:
    fresh = make_world({"127.0.0.2": SmtpBehaviour(max_connections=2)})
    held = [await greeted("127.0.0.2", fresh.smtp_port) for _ in range(2)]
    extra = await RawSmtp.connect("127.0.0.2", fresh.smtp_port)
    assert await extra.reply() == ["421 4.7.0 Too many connections"]
    assert await extra.at_eof()
    await extra.close()
    await held[0].command("QUIT")
    await held[0].close()
    again = await greeted("127.0.0.2", fresh.smtp_port)  # a slot is free again
    for client in (again, held[1]):
        await client.close()
    stats = fresh.smtp("127.0.0.2").stats
    assert (stats.violations, stats.max_concurrent, stats.connections_total) == (1, 2, 4)


async def test_sequence_errors_are_counted(make_world: Callable[..., MailWorld]) -> None:
    fresh = make_world({"127.0.0.2": SmtpBehaviour()})
    client = await RawSmtp.connect("127.0.0.2", fresh.smtp_port)
    await client.reply()
    bad = "503 5.5.1 Bad sequence of commands"
    assert await client.command("MAIL FROM:<>") == bad  # before EHLO
    assert await client.command("EHLO probe.example.com") == "250 ENHANCEDSTATUSCODES"
    assert await client.command("RCPT TO:<a@good-mail.com>") == bad  # before MAIL
    assert await client.command("MAIL FROM:<>") == "250 2.1.0 OK"
    assert await client.command("MAIL FROM:<>") == bad  # twice without RSET
    assert (await client.command("RCPT TO:a@good-mail.com")).startswith("501")  # no <>
    assert await client.command("NOOP") == "250 2.0.0 OK"
    await client.close()
    assert fresh.smtp("127.0.0.2").stats.protocol_errors == 4


async def test_rejected_mail_from_does_not_blame_pipelined_rcpts(
    make_world: Callable[..., MailWorld],
) -> None:
    fresh = make_world({"127.0.0.2": SmtpBehaviour(mail_from_reply="550 5.7.1 Sender rejected")})
    client = await greeted("127.0.0.2", fresh.smtp_port)
    await client.send("MAIL FROM:<spam@x.com>", "RCPT TO:<a@good-mail.com>")
    assert (await client.reply())[-1] == "550 5.7.1 Sender rejected"
    assert (await client.reply())[-1] == "503 5.5.1 Bad sequence of commands"
    await client.close()
    stats = fresh.smtp("127.0.0.2").stats
    assert (stats.transactions, stats.protocol_errors) == (0, 0)


async def test_stats_record_the_dialogue(make_world: Callable[..., MailWorld]) -> None:
    fresh = make_world({"127.0.0.2": SmtpBehaviour(mailboxes={"alice": OK})})
    client = await greeted("127.0.0.2", fresh.smtp_port, helo="EHLO probe.mailvet-test.com")
    await client.send(
        "MAIL FROM:<verify@mailvet-test.com>",
        "RCPT TO:<alice@good-mail.com>",
        "RCPT TO:<nobody@good-mail.com>",
    )
    for _ in range(3):
        await client.reply()
    await client.command("QUIT")
    await client.close()
    stats = fresh.smtp("127.0.0.2").stats.snapshot()
    assert stats.connections_total == 1 and stats.max_concurrent == 1
    assert stats.helo_names == ["probe.mailvet-test.com"]
    assert stats.mail_from == ["verify@mailvet-test.com"]
    assert stats.recipients == ["alice@good-mail.com", "nobody@good-mail.com"]
    assert (stats.rcpt_total, stats.transactions, stats.protocol_errors) == (2, 1, 0)


def ehlo_keywords(lines: list[str]) -> set[str]:
    return {line[4:].split()[0] for line in lines[1:]}


async def test_starttls_offered_then_required_before_mail(
    make_world: Callable[..., MailWorld],
) -> None:
    behaviour = SmtpBehaviour(default_reply=OK, starttls=True, require_tls=True)
    fresh = make_world({"127.0.0.2": behaviour})
    client = await RawSmtp.connect("127.0.0.2", fresh.smtp_port)
    await client.reply()
    await client.send("EHLO probe.example.com")
    assert "STARTTLS" in ehlo_keywords(await client.reply())
    assert await client.command("MAIL FROM:<>") == "530 5.7.0 Must issue a STARTTLS command first"
    assert await client.command("RSET") == "250 2.0.0 OK"
    assert await client.command("STARTTLS") == "220 2.0.0 Ready to start TLS"
    await client.starttls()
    assert await client.command("MAIL FROM:<>") == "503 5.5.1 Bad sequence of commands"  # no EHLO
    await client.send("EHLO probe.example.com")
    assert "STARTTLS" not in ehlo_keywords(await client.reply())  # not offered twice
    assert await client.command("MAIL FROM:<>") == "250 2.1.0 OK"
    assert await client.command("RCPT TO:<a@x.com>") == OK
    assert await client.command("QUIT") == "221 2.0.0 Bye"
    await client.close()
    stats = fresh.smtp("127.0.0.2").stats
    assert (stats.tls_sessions, stats.transactions, stats.protocol_errors) == (1, 1, 1)


async def test_starttls_not_offered_is_not_recognized(make_world: Callable[..., MailWorld]) -> None:
    fresh = make_world({"127.0.0.2": SmtpBehaviour()})
    client = await greeted("127.0.0.2", fresh.smtp_port)
    assert await client.command("STARTTLS") == "502 5.5.2 Command not recognized"
    await client.close()
    assert fresh.smtp("127.0.0.2").stats.tls_sessions == 0


async def test_smtputf8_advertised_and_required_for_unicode(
    make_world: Callable[..., MailWorld],
) -> None:
    fresh = make_world(
        {
            "127.0.0.2": SmtpBehaviour(smtputf8=True, mailboxes={"jörg": OK}),
            "127.0.0.3": SmtpBehaviour(),
        }
    )
    client = await RawSmtp.connect("127.0.0.2", fresh.smtp_port)
    await client.reply()
    await client.send("EHLO probe.example.com")
    assert "SMTPUTF8" in ehlo_keywords(await client.reply())
    assert await client.command("MAIL FROM:<>") == "250 2.1.0 OK"
    utf8_required = "553 5.6.7 Must declare SMTPUTF8 to send unicode address"
    assert await client.command("RCPT TO:<jörg@x.com>") == utf8_required
    assert await client.command("RSET") == "250 2.0.0 OK"
    assert await client.command("MAIL FROM:<> SMTPUTF8") == "250 2.1.0 OK"
    assert await client.command("RCPT TO:<Jörg@x.com>") == OK
    await client.close()
    assert fresh.smtp("127.0.0.2").stats.recipients == ["Jörg@x.com"]

    plain = await greeted("127.0.0.3", fresh.smtp_port)
    assert await plain.command("MAIL FROM:<> SMTPUTF8") == "555 5.5.4 Unsupported option: SMTPUTF8"
    await plain.close()
    assert fresh.smtp("127.0.0.3").stats.protocol_errors == 1


async def test_garbled_rcpt_reply_is_garbage_in_step(make_world: Callable[..., MailWorld]) -> None:
    fresh = make_world({"127.0.0.2": SmtpBehaviour(default_reply=OK, garble_rcpt={"Bad"})})
    client = await greeted("127.0.0.2", fresh.smtp_port)
    await client.send(
        "MAIL FROM:<>", "RCPT TO:<a@x.com>", "RCPT TO:<bad@x.com>", "RCPT TO:<b@x.com>"
    )
    lines = [await client.raw_line() for _ in range(4)]
    assert lines == [b"250 2.1.0 OK\r\n", f"{OK}\r\n".encode(), GARBAGE, f"{OK}\r\n".encode()]
    await client.close()


async def test_truncated_rcpt_reply_then_hang_up(make_world: Callable[..., MailWorld]) -> None:
    fresh = make_world({"127.0.0.2": SmtpBehaviour(default_reply=OK, truncate_rcpt={"cut"})})
    client = await greeted("127.0.0.2", fresh.smtp_port)
    await client.send(
        "MAIL FROM:<>", "RCPT TO:<a@x.com>", "RCPT TO:<cut@x.com>", "RCPT TO:<b@x.com>"
    )
    assert await client.raw_line() == b"250 2.1.0 OK\r\n"
    assert await client.raw_line() == f"{OK}\r\n".encode()
    assert await asyncio.wait_for(client.reader.read(), 2.0) == OK.encode()  # no CRLF, then EOF
    await client.close()
    assert fresh.smtp("127.0.0.2").stats.recipients == ["a@x.com", "cut@x.com"]


async def test_stalled_rcpt_reply_silences_the_session(
    make_world: Callable[..., MailWorld],
) -> None:
    fresh = make_world({"127.0.0.2": SmtpBehaviour(default_reply=OK, stall_rcpt={"slow"})})
    client = await greeted("127.0.0.2", fresh.smtp_port)
    await client.send(
        "MAIL FROM:<>", "RCPT TO:<a@x.com>", "RCPT TO:<slow@x.com>", "RCPT TO:<b@x.com>"
    )
    assert await client.raw_line() == b"250 2.1.0 OK\r\n"
    assert await client.raw_line() == f"{OK}\r\n".encode()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await client.raw_line()
    await client.close()


async def test_trickled_greeting_banner(make_world: Callable[..., MailWorld]) -> None:
    trickle, count = 0.01, 30
    fresh = make_world({"127.0.0.2": SmtpBehaviour(trickle=trickle, trickle_lines=count)})
    client = await RawSmtp.connect("127.0.0.2", fresh.smtp_port)
    started = time.perf_counter()
    lines = await client.reply()
    elapsed = time.perf_counter() - started
    assert len(lines) == count
    assert [line[:4] for line in lines] == ["220-"] * (count - 1) + ["220 "]
    assert lines[-1] == "220 127.0.0.2 ESMTP mailworld"
    assert elapsed >= 0.9 * (count - 1) * trickle
    assert (await client.command("EHLO probe.example.com")).startswith("250")
    await client.close()


async def test_first_connections_fail_at_greeting(make_world: Callable[..., MailWorld]) -> None:
    fresh = make_world({"127.0.0.2": SmtpBehaviour(greeting_failures=2)})
    for _ in range(2):
        client = await RawSmtp.connect("127.0.0.2", fresh.smtp_port)
        assert await client.reply() == ["421 4.3.2 try again later"]
        assert await client.at_eof()
        await client.close()
    client = await greeted("127.0.0.2", fresh.smtp_port)
    await client.close()
    stats = fresh.smtp("127.0.0.2").stats
    assert (stats.greeting_failures, stats.connections_total) == (2, 3)


async def test_error_limit_hangs_up_after_n_refusals(make_world: Callable[..., MailWorld]) -> None:
    fresh = make_world({"127.0.0.2": SmtpBehaviour(mailboxes={"ok": OK}, error_limit=2)})
    client = await greeted("127.0.0.2", fresh.smtp_port)
    await client.send(
        "MAIL FROM:<>",
        "RCPT TO:<x@x.com>",
        "RCPT TO:<ok@x.com>",
        "RCPT TO:<y@x.com>",
        "RCPT TO:<ok@x.com>",
    )
    replies = [(await client.reply())[-1][:3] for _ in range(5)]
    assert replies == ["250", "550", "250", "550", "421"]
    assert await client.at_eof()
    await client.close()
    assert fresh.smtp("127.0.0.2").stats.recipients == ["x@x.com", "ok@x.com", "y@x.com"]


async def test_idle_sessions_are_counted(make_world: Callable[..., MailWorld]) -> None:
    fresh = make_world({"127.0.0.2": SmtpBehaviour(default_reply=OK)})
    stats: SmtpStats = fresh.smtp("127.0.0.2").stats
    idle = await greeted("127.0.0.2", fresh.smtp_port)
    assert await idle.command("QUIT") == "221 2.0.0 Bye"
    await idle.close()
    await until(lambda: stats.idle_sessions == 1, timeout=2.0)  # updated as a session ends
    busy = await greeted("127.0.0.2", fresh.smtp_port)
    assert await busy.command("MAIL FROM:<>") == "250 2.1.0 OK"
    await busy.close()
    await until(
        lambda: stats.connections_total == 2 and not fresh.smtp("127.0.0.2")._tasks, timeout=2.0
    )
    assert stats.idle_sessions == 1


# -- latency model ----------------------------------------------------------------


async def rcpt_phase(client: RawSmtp, count: int, *, pipelined: bool) -> float:
    """Run MAIL + *count* RCPTs and return how long it took."""
    commands = ["MAIL FROM:<>", *(f"RCPT TO:<u{i}@x.com>" for i in range(count))]
    started = time.perf_counter()
    if pipelined:
        await client.send(*commands)
        replies = [(await client.reply())[-1] for _ in commands]
    else:
        replies = [await client.command(command) for command in commands]
    elapsed = time.perf_counter() - started
    assert replies[1:] == [OK] * count
    assert await client.command("RSET") == "250 2.0.0 OK"
    return elapsed


async def test_latency_model_rewards_pipelining(make_world: Callable[..., MailWorld]) -> None:
    latency, count = 0.05, 20
    fresh = make_world({"127.0.0.2": SmtpBehaviour(default_reply=OK, latency=latency)})
    connected = time.perf_counter()
    client = await greeted("127.0.0.2", fresh.smtp_port)
    assert time.perf_counter() - connected >= 2 * latency  # greeting and EHLO each wait
    batch = await rcpt_phase(client, count, pipelined=True)
    sequential = await rcpt_phase(client, count, pipelined=False)
    await client.close()
    assert latency <= batch < 4 * latency
    assert 0.9 * (count + 1) * latency <= sequential < 3 * (count + 1) * latency
    assert fresh.smtp("127.0.0.2").stats.protocol_errors == 0


async def test_pipelining_without_permission_is_a_protocol_error(
    make_world: Callable[..., MailWorld],
) -> None:
    nopipe = SmtpBehaviour(default_reply=OK, ehlo=False, pipelining=False, latency=0.02)
    fresh = make_world({"127.0.0.13": nopipe, "127.0.0.2": SmtpBehaviour(latency=0.02)})
    client = await greeted("127.0.0.13", fresh.smtp_port, helo="HELO probe.example.com")
    await client.send("MAIL FROM:<>", "RCPT TO:<a@x.com>", "RCPT TO:<b@x.com>")
    assert [(await client.reply())[-1] for _ in range(3)] == ["250 2.1.0 OK", OK, OK]
    await client.close()
    assert fresh.smtp("127.0.0.13").stats.protocol_errors == 2

    early = await RawSmtp.connect("127.0.0.2", fresh.smtp_port)
    await early.send("EHLO probe.example.com")  # before the greeting: never allowed
    await early.reply()
    await early.reply()
    await early.close()
    assert fresh.smtp("127.0.0.2").stats.protocol_errors == 1


# -- the world ----------------------------------------------------------------------


def test_env_points_at_the_world(world: MailWorld) -> None:
    env = world.env()
    assert env["MAILVET_DNS_SERVERS"] == f"127.0.0.1:{world.dns_port}"
    assert env["MAILVET_SMTP_PORT"] == str(world.smtp_port)
    assert env["MAILVET_HELO_NAME"] == "probe.mailvet-test.com"
    assert env["MAILVET_MAIL_FROM"] == "verify@mailvet-test.com"


def test_usable_from_sync_code(world: MailWorld) -> None:
    with socket.create_connection(("127.0.0.6", world.smtp_port), timeout=2) as sock:
        assert sock.recv(1024).startswith(b"220 aonly-mail.com")


def test_scenario_table_is_consistent(world: MailWorld) -> None:
    assert set(EXPECTED_MX) <= set(SCENARIOS)
    assert len(SCENARIOS) >= 33  # the table grows; it never loses a scenario
    for status, reason in SCENARIOS.values():  # every expectation names a real verdict
        assert Status(status) and Reason(reason)
    for address in SCENARIOS:
        domain = address.rpartition("@")[2]
        assert not domain.endswith((".test", ".local"))
        assert (domain in world.zone) == (domain not in {"no-such-domain-zz.com", "gmial.com"})
    assert isinstance(world.smtp("127.0.0.3"), SmtpServer)


def test_restart_and_stop_are_clean() -> None:
    fresh = MailWorld()
    fresh.add_smtp("127.0.0.2")
    fresh.start()
    port = fresh.smtp_port
    fresh.stop()
    fresh.stop()  # idempotent
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", port), timeout=1).close()
    with pytest.raises(RuntimeError):
        _ = fresh.smtp_port

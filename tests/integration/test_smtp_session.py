"""SmtpSession against scripted servers that misbehave the way real ones do.

Cut-off and garbage replies, tarpits, STARTTLS, SMTPUTF8, error limits: each reply stays
in step with the recipient it answers, and every reply costs at most one timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import TypedDict, Unpack

import pytest

from mailvet.adapters.smtp_session import (
    BadReply,
    SessionError,
    SessionLost,
    SessionRefused,
    SessionTimeout,
    SmtpSession,
    TlsFailed,
)
from mailvet.domain.smtp_reply import Reply
from tests.mailworld.smtp_server import SmtpBehaviour
from tests.mailworld.world import MailWorld

pytestmark = pytest.mark.integration

OK = "250 2.1.5 OK"
HELO = "probe.mailvet-test.com"
MAILBOXES = {name: OK for name in ("alice", "bob", "carol", "cut", "bad", "slow", "jörg")}

SERVERS = {
    "plain": ("127.0.0.50", SmtpBehaviour(mailboxes=MAILBOXES)),
    "truncate": ("127.0.0.51", SmtpBehaviour(mailboxes=MAILBOXES, truncate_rcpt={"cut"})),
    "garble": ("127.0.0.52", SmtpBehaviour(mailboxes=MAILBOXES, garble_rcpt={"bad"})),
    "garble_nopipe": (
        "127.0.0.53",
        SmtpBehaviour(mailboxes=MAILBOXES, garble_rcpt={"bad"}, pipelining=False),
    ),
    "tarpit": ("127.0.0.54", SmtpBehaviour(trickle=0.05, trickle_lines=100)),
    "quick_banner": ("127.0.0.55", SmtpBehaviour(trickle=0.001, trickle_lines=100)),
    "too_many_lines": ("127.0.0.56", SmtpBehaviour(trickle=0.0, trickle_lines=101)),
    "long_line": ("127.0.0.57", SmtpBehaviour(greeting="220 " + "x" * 5000)),
    "tls": (
        "127.0.0.58",
        SmtpBehaviour(mailboxes=MAILBOXES, starttls=True, require_tls=True),
    ),
    "tls_injection": (
        "127.0.0.63",
        SmtpBehaviour(starttls=True, starttls_injection="250-INJECTED AUTH PLAIN"),
    ),
    "utf8": ("127.0.0.59", SmtpBehaviour(mailboxes=MAILBOXES, smtputf8=True)),
    "stall": ("127.0.0.60", SmtpBehaviour(mailboxes=MAILBOXES, stall_rcpt={"slow"})),
    "errors": ("127.0.0.61", SmtpBehaviour(mailboxes=MAILBOXES, error_limit=2)),
    "flaky": ("127.0.0.62", SmtpBehaviour(mailboxes=MAILBOXES, greeting_failures=1)),
}


@pytest.fixture(scope="module")
def world() -> Iterator[MailWorld]:
    world = MailWorld()
    for ip, behaviour in SERVERS.values():
        world.add_smtp(ip, behaviour)
    world.start()
    yield world
    world.stop()


def ip(name: str) -> str:
    return SERVERS[name][0]


class SessionOptions(TypedDict, total=False):
    starttls: bool
    tls_verify: bool
    tls_server_name: str | None


async def open_session(
    world: MailWorld,
    name: str,
    timeout: float = 2.0,  # noqa: ASYNC109 - the session's limit of each reply
    **options: Unpack[SessionOptions],
) -> SmtpSession:
    return await SmtpSession.open(ip(name), world.smtp_port, HELO, timeout, **options)


def codes(replies: list[Reply]) -> list[int]:
    return [reply.code for reply in replies]


async def test_reply_cut_off_at_end_of_stream_is_a_lost_session(world: MailWorld) -> None:
    session = await open_session(world, "truncate")
    tx = await session.transaction("", ["alice@x.com", "cut@x.com", "bob@x.com"])
    await session.close()
    assert codes(tx.rcpts) == [250]  # "250 2.1.5 OK" without CRLF is not an answer for cut@
    assert tx.alive is False and tx.garbled is None
    assert isinstance(tx.lost, SessionLost)


async def test_garbage_in_a_pipelined_batch_keeps_earlier_replies_in_step(world: MailWorld) -> None:
    session = await open_session(world, "garble")
    assert session.pipelining
    recipients = ["alice@x.com", "nobody@x.com", "bad@x.com", "bob@x.com", "carol@x.com"]
    tx = await session.transaction("", recipients)
    assert codes(tx.rcpts) == [250, 550]  # alice, nobody: exactly the replies before bad@
    assert tx.rcpts[1].enhanced == "5.1.1"
    assert tx.garbled == 2
    assert tx.alive is False
    with pytest.raises(SessionLost):  # the session was closed: nothing more is believed
        await session.transaction("", ["bob@x.com"])
    await session.close()  # idempotent


async def test_garbage_without_pipelining(world: MailWorld) -> None:
    session = await open_session(world, "garble_nopipe")
    assert not session.pipelining
    tx = await session.transaction("", ["alice@x.com", "bad@x.com", "bob@x.com"])
    await session.close()
    assert (codes(tx.rcpts), tx.garbled, tx.alive) == ([250], 1, False)
    stats = world.smtp(ip("garble_nopipe")).stats
    assert "bob@x.com" not in stats.recipients  # never asked after the garbage
    assert stats.protocol_errors == 0


async def test_trickled_100_line_reply_costs_one_timeout(world: MailWorld) -> None:
    started = time.perf_counter()
    with pytest.raises(SessionTimeout):  # 100 lines x 0.05 s: 5 s, each line well in time
        await open_session(world, "tarpit", timeout=0.5)
    assert time.perf_counter() - started < 1.2


async def test_a_100_line_reply_in_time_is_read_whole(world: MailWorld) -> None:
    session = await open_session(world, "quick_banner", timeout=5.0)
    reply = await session.command("NOOP")
    await session.close()
    assert reply.code == 250


async def test_too_many_lines_or_too_long_a_line_is_a_bad_reply(world: MailWorld) -> None:
    with pytest.raises(BadReply):
        await open_session(world, "too_many_lines")
    with pytest.raises(BadReply):
        await open_session(world, "long_line")


async def test_starttls_lets_a_tls_only_server_be_probed(world: MailWorld) -> None:
    stats = world.smtp(ip("tls")).stats
    session = await open_session(world, "tls")
    assert session.tls and session.pipelining
    assert "STARTTLS" not in session.extensions  # from the EHLO after the handshake
    tx = await session.transaction("", ["alice@x.com", "nobody@x.com"])
    await session.close()
    assert (tx.mail.code, codes(tx.rcpts), tx.alive) == (250, [250, 550], True)
    assert stats.tls_sessions == 1
    assert stats.helo_names[-2:] == [HELO, HELO]

    plain = await open_session(world, "tls", starttls=False)
    assert not plain.tls
    refused = await plain.transaction("", ["alice@x.com"])
    await plain.close()
    assert (refused.mail.code, refused.mail.enhanced, refused.rcpts) == (530, "5.7.0", [])
    assert stats.tls_sessions == 1
    assert stats.protocol_errors == 0


async def test_verified_tls_against_a_self_signed_certificate_fails(world: MailWorld) -> None:
    with pytest.raises(TlsFailed):
        await open_session(world, "tls", tls_verify=True, tls_server_name="mx.mailworld.example")


async def test_plain_text_after_the_starttls_reply_is_not_believed(world: MailWorld) -> None:
    with pytest.raises(TlsFailed, match="after the reply to STARTTLS"):
        await open_session(world, "tls_injection")
    assert world.smtp(ip("tls_injection")).stats.tls_sessions == 0


async def test_smtputf8_gets_non_ascii_local_parts_probed(world: MailWorld) -> None:
    session = await open_session(world, "utf8")
    assert session.smtputf8
    tx = await session.transaction("", ["jörg@x.com", "alice@x.com"], smtputf8=True)
    without = await session.transaction("", ["jörg@x.com"])
    await session.close()
    assert codes(tx.rcpts) == [250, 250]
    assert (without.rcpts[0].code, without.rcpts[0].enhanced) == (553, "5.6.7")
    assert not (await _plain_smtputf8(world))


async def _plain_smtputf8(world: MailWorld) -> bool:
    session = await open_session(world, "plain")
    try:
        return session.smtputf8
    finally:
        await session.close()


async def test_null_reverse_path_on_the_wire(world: MailWorld) -> None:
    stats = world.smtp(ip("plain")).stats
    before = len(stats.mail_from)
    session = await open_session(world, "plain")
    tx = await session.transaction("", ["alice@x.com"])
    await session.close()
    assert tx.mail.code == 250
    assert stats.mail_from[before:] == [""]


async def test_ehlo_keywords_from_the_multi_line_reply(world: MailWorld) -> None:
    session = await open_session(world, "utf8")
    await session.close()
    assert session.extensions == {
        "PIPELINING",
        "SIZE",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
    }
    plain = await open_session(world, "plain")
    await plain.close()
    assert plain.extensions == {"PIPELINING", "SIZE", "ENHANCEDSTATUSCODES"}


async def test_multi_line_reply_text_keeps_every_line(world: MailWorld) -> None:
    reader, writer = await asyncio.open_connection(ip("quick_banner"), world.smtp_port)
    session = SmtpSession(reader, writer, 5.0)
    greeting = await session.read_reply()  # every line goes to parse_reply, not the first only
    await session.close()
    assert greeting.code == 220
    assert "line 1" in greeting.text and "line 99" in greeting.text
    assert greeting.text.endswith("ESMTP mailworld")


async def test_silence_mid_batch_keeps_the_replies_already_read(world: MailWorld) -> None:
    session = await open_session(world, "stall", timeout=0.4)
    started = time.perf_counter()
    tx = await session.transaction("", ["alice@x.com", "slow@x.com", "bob@x.com"])
    await session.close()
    assert time.perf_counter() - started < 1.0
    assert (codes(tx.rcpts), tx.alive, tx.garbled) == ([250], False, None)
    assert isinstance(tx.lost, SessionTimeout)


async def test_error_limit_421_part_way(world: MailWorld) -> None:
    session = await open_session(world, "errors")
    tx = await session.transaction("", ["x@x.com", "y@x.com", "alice@x.com", "bob@x.com"])
    await session.close()
    assert (codes(tx.rcpts), tx.alive, tx.garbled, tx.lost) == ([550, 550], False, None, None)


async def test_greeting_421_then_a_normal_session(world: MailWorld) -> None:
    with pytest.raises(SessionRefused) as refused:
        await open_session(world, "flaky")
    assert (refused.value.reply.code, refused.value.reply.enhanced) == (421, "4.3.2")
    session = await open_session(world, "flaky")
    await session.close()
    stats = world.smtp(ip("flaky")).stats
    assert stats.greeting_failures == 1 and stats.connections_total == 2


async def test_session_errors_share_one_base() -> None:
    for error in (BadReply, SessionLost, SessionRefused, SessionTimeout, TlsFailed):
        assert issubclass(error, SessionError)
    assert issubclass(TlsFailed, SessionLost)


def fed_session(data: bytes, timeout: float = 1.0) -> SmtpSession:
    """A session reading *data* then end of stream (read_reply never writes)."""
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return SmtpSession(reader, None, timeout)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (b"250\r\n", (250, "", "")),  # a code alone is a reply
        (b"250 2.1.5 OK\n", (250, "2.1.5", "OK")),  # a bare LF is tolerated
        (b"550-5.1.1 first\r\n550 5.1.1 second\r\n", (550, "5.1.1", "first")),
    ],
)
async def test_reply_lines_that_are_smtp(wire: bytes, expected: tuple[int, str, str]) -> None:
    reply = await fed_session(wire).read_reply()
    assert (reply.code, reply.enhanced) == expected[:2]
    assert reply.text.startswith(expected[2])


@pytest.mark.parametrize(
    ("wire", "error"),
    [
        (b"250 2.1.5 OK", SessionLost),  # cut off: no CRLF before the end of the stream
        (b"250-first\r\n250 sec", SessionLost),
        (b"", SessionLost),
        (b"2500 OK\r\n", BadReply),  # four digits
        (b"OK 250\r\n", BadReply),
        (b"250-first\r\n550 second\r\n", BadReply),  # code changes inside the reply
        (b"\xde\xad\xbe\xef\r\n", BadReply),
        (b"250 " + b"x" * 5000 + b"\r\n", BadReply),
        (b"250 " + b"x" * 70_000 + b"\r\n", BadReply),  # over the stream buffer limit
    ],
)
async def test_reply_lines_that_are_not(wire: bytes, error: type[SessionError]) -> None:
    with pytest.raises(error):
        await fed_session(wire).read_reply()

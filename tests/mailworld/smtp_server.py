"""Scripted SMTP servers for the test mail world.

A raw asyncio server (not aiosmtpd) so that timing, limits and pipelined replies
are exactly under the test's control.  Its behaviour is described by an
:class:`SmtpBehaviour`; what clients did is recorded in :class:`SmtpStats`.

Latency model
    ``latency`` is a network round-trip model, not a service time: every reply
    (the greeting included) is written ``latency`` seconds after its command
    arrived.  Commands that arrive together (pipelined) are all scheduled at
    arrival, and replies still go out in command order, so a pipelined batch of
    50 RCPTs costs about one latency while one-at-a-time costs one each.

Protocol errors (``stats.protocol_errors``)
    Things a correct client never does: a command out of sequence (MAIL before
    EHLO/HELO, MAIL twice in a transaction, RCPT or DATA outside a transaction),
    a malformed MAIL/RCPT argument, or a command sent while an earlier reply is
    still pending without PIPELINING having been granted (granted when an EHLO
    reply advertising it has been written; the greeting must always be awaited).
    RCPT/DATA answered 503 because the MAIL of the same pipelined batch was
    rejected are not counted: a pipelining client cannot avoid them.

Misbehaving servers (see :class:`SmtpBehaviour`)
    STARTTLS (RFC 3207) with a self-signed certificate (``tests/mailworld/tls.py``),
    optionally required before MAIL, or followed by injected plain text;
    SMTPUTF8 (RFC 6531); RCPT replies that are garbage, cut off by a hang-up, or
    never sent; a greeting banner trickled one line at a time (a tarpit; only
    the greeting is trickled); the first connections turned away at the
    greeting; and Postfix's ``smtpd_hard_error_limit``.

Greylisting (``greylist_attempts``, ``greylist_delay``)
    As postgrey does it, per address: the first attempts are answered 450, and a
    retry sooner than the delay after the address's first RCPT is answered 450
    again.  ``stats.rcpt_log`` records when each RCPT was answered, on which
    connection, so a test can tell how a client spaced its retries.
"""

from __future__ import annotations

import asyncio
import copy
import re
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import NamedTuple

GREYLISTED = "450 4.2.0 <{rcpt}>: Recipient address rejected: Greylisted, try again later"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections"
BAD_SEQUENCE = "503 5.5.1 Bad sequence of commands"
SYNTAX_ERROR = "501 5.5.4 Syntax error in parameters or arguments"
NOT_RECOGNIZED = "502 5.5.2 Command not recognized"
UNKNOWN_COMMAND = "500 5.5.2 Error: command not recognized"
TLS_READY = "220 2.0.0 Ready to start TLS"
TLS_REQUIRED = "530 5.7.0 Must issue a STARTTLS command first"
UTF8_REQUIRED = "553 5.6.7 Must declare SMTPUTF8 to send unicode address"
UTF8_UNSUPPORTED = "555 5.5.4 Unsupported option: SMTPUTF8"
TRY_AGAIN_LATER = "421 4.3.2 try again later"
TOO_MANY_ERRORS = "421 4.7.0 Error: too many errors"
GARBAGE = b"\xde\xad\xbe\xef \x00\x1b[0m not an SMTP reply\r\n"
TLS_HANDSHAKE_TIMEOUT = 10.0
MAX_MESSAGE_SIZE = 35_882_577

ADMISSION_GRACE = 0.05
"""Seconds a connection arriving at ``max_connections`` waits for a slot.

A client that closes a connection and at once opens another may be seen in the
wrong order by the server; the grace absorbs that race.
"""

BATCH_WINDOW = 0.001
"""Replies falling due within this window are written with one ``send``."""

LINE_LIMIT = 65_536
"""Longest command line accepted; a longer one drops the connection."""

_PATH = re.compile(r"^(?P<kw>FROM|TO):\s*<(?P<addr>[^<>]*)>(?:\s+(?P<params>.*))?$", re.I)


@dataclass
class SmtpBehaviour:
    """How one scripted SMTP server answers.

    Reply templates may use ``{rcpt}`` (the RCPT address) and the greeting
    ``{host}`` (``hostname``, or the listening address when it is ``None``).
    A greeting that is not 2xx (e.g. "421 4.3.2 Service busy") is sent and the
    connection closed.  ``mailboxes`` maps lower-cased local parts to the full
    RCPT reply line; other local parts get ``default_reply``.
    """

    greeting: str = "220 {host} ESMTP mailworld"
    ehlo: bool = True
    pipelining: bool = True
    mailboxes: dict[str, str] = field(default_factory=dict)
    default_reply: str = "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"
    greylist_attempts: int = 0
    greylist_delay: float = 0.0  # a retry sooner than this after the first RCPT: 450 again
    max_recipients: int | None = None
    max_connections: int | None = None
    latency: float = 0.0
    blackhole: bool = False
    mail_from_reply: str = "250 2.1.0 OK"
    hostname: str | None = None
    close_after_rcpts: int | None = None  # a session's RCPT number N+1 gets 421 and a hang-up
    starttls: bool = False  # offer STARTTLS (self-signed certificate, see tls.py)
    starttls_injection: str | None = None  # a line sent in the clear right after the 220 Ready
    require_tls: bool = False  # MAIL before TLS: 530 5.7.0 Must issue a STARTTLS command first
    smtputf8: bool = False  # offer SMTPUTF8; a non-ASCII address without it on MAIL: 553 5.6.7
    garble_rcpt: set[str] = field(default_factory=set)  # local parts answered with garbage bytes
    truncate_rcpt: set[str] = field(default_factory=set)  # reply without CRLF, then hang up
    stall_rcpt: set[str] = field(default_factory=set)  # no reply, nor any later one: silence
    trickle: float | None = None  # the greeting is trickle_lines lines, one every `trickle` s
    trickle_lines: int = 100
    greeting_failures: int = 0  # the first N connections: 421 4.3.2 try again later
    error_limit: int | None = None  # after N refused RCPTs in a session: 421 4.7.0, hang up

    def __post_init__(self) -> None:
        self.mailboxes = {local.lower(): reply for local, reply in self.mailboxes.items()}
        self.garble_rcpt = {local.lower() for local in self.garble_rcpt}
        self.truncate_rcpt = {local.lower() for local in self.truncate_rcpt}
        self.stall_rcpt = {local.lower() for local in self.stall_rcpt}


class RcptEvent(NamedTuple):
    """One considered RCPT: ``at`` is ``time.monotonic()`` when the server decided its
    reply (the same clock as the client's in a test process), ``session`` the number of
    the connection it came on (1 = the server's first connection), ``transaction`` the
    number of its transaction at the server (``stats.transactions`` when its MAIL was
    accepted)."""

    at: float
    session: int
    address: str
    code: int
    transaction: int = 0


@dataclass
class SmtpStats:
    """What the clients of one server did.

    Mutated only by the server's event loop; read it from another thread after
    the fact (or take a :meth:`snapshot`).

    * ``connections_total``: TCP connections accepted (rejected ones included).
    * ``max_concurrent``: peak number of connections being served at once
      (connections rejected by ``max_connections`` are not served).
    * ``violations``: connections rejected with 421 by ``max_connections``.
    * ``rcpt_total``: well-formed RCPT commands inside a transaction, those
      refused with 452 by ``max_recipients`` included.
    * ``recipients``: the RCPT addresses actually considered (not the 452 ones).
    * ``transactions``: MAIL FROM commands accepted.
    * ``idle_sessions``: sessions greeted with 2xx that ended without a single
      MAIL command (counted when the server has seen the session end).
    * ``tls_sessions``: sessions that completed a STARTTLS handshake.
    * ``greeting_failures``: connections turned away by ``greeting_failures``.
    * ``greylisted_early``: RCPTs greylisted again because they came sooner than
      ``greylist_delay`` after the address's first one (a client that does not wait).
    * ``rcpt_log``: every considered RCPT (those in ``recipients``) as a
      :class:`RcptEvent`: when it was answered, in which connection, with what code.
    """

    connections_total: int = 0
    max_concurrent: int = 0
    greylisted_early: int = 0
    rcpt_log: list[RcptEvent] = field(default_factory=list)
    violations: int = 0
    protocol_errors: int = 0
    pipelined_commands: int = 0  # sent before the previous reply, with PIPELINING granted
    rcpt_total: int = 0
    transactions: int = 0
    recipients: list[str] = field(default_factory=list)
    helo_names: list[str] = field(default_factory=list)
    mail_from: list[str] = field(default_factory=list)
    idle_sessions: int = 0
    tls_sessions: int = 0
    greeting_failures: int = 0

    def snapshot(self) -> SmtpStats:
        """Return an independent copy of the current figures."""
        return copy.deepcopy(self)


def bind_listener(host: str, port: int) -> socket.socket:
    """Return a TCP socket bound (not yet listening) to ``(host, port)``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def parse_path(argument: str, keyword: str) -> str | None:
    """Return the address of ``FROM:<addr> [params]`` / ``TO:<addr>``, or None.

    The angle brackets are required (RFC 5321); the null reverse-path ``<>``
    is valid for FROM only.
    """
    match = _PATH.match(argument)
    if match is None or match["kw"].upper() != keyword:
        return None
    address = match["addr"].strip()
    if keyword == "TO" and not address:
        return None
    return address


def mail_parameters(argument: str) -> set[str]:
    """The upper-cased parameter keywords of ``FROM:<addr> [params]`` (``SIZE``, ``SMTPUTF8``)."""
    match = _PATH.match(argument)
    if match is None or not match["params"]:
        return set()
    return {param.partition("=")[0].upper() for param in match["params"].split()}


@dataclass(slots=True)
class _Response:
    """Reply to one command: its lines, whether to hang up, PIPELINING grant.

    ``raw`` replaces the wire form of ``lines`` (garbage, cut-off replies);
    ``then_close`` is one more reply, sent right after, that hangs up.
    """

    lines: list[str]
    close: bool = False
    pipelining: bool | None = None  # None: leaves the session's grant unchanged
    raw: bytes | None = None
    then_close: str | None = None
    trickle: float | None = None  # seconds between the reply's lines
    starttls: bool = False  # the TLS handshake starts once this reply is written
    stall: bool = False  # this reply and all after it are never written


@dataclass(slots=True)
class _Scheduled:
    """A reply waiting in the outbox until ``due`` (event-loop time)."""

    due: float
    wire: bytes
    close: bool
    pipelining: bool | None
    trickle: float | None = None
    starttls: bool = False
    stall: bool = False


class SmtpServer:
    """One scripted SMTP server listening on ``host:port``.

    ``port=0`` picks a free port; ``start(sock=...)`` serves an already bound
    socket instead (the mail world uses this to share one port across IPs).
    :meth:`start` and :meth:`stop` must run in the serving event loop.
    """

    def __init__(self, host: str, port: int, behaviour: SmtpBehaviour | None = None) -> None:
        self.host = host
        self.port = port
        self.behaviour = behaviour or SmtpBehaviour()
        self.stats = SmtpStats()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._active = 0
        self._slot_freed = asyncio.Event()  # set when a connection gives its slot back
        self._stopping = False
        self._greylist_seen: dict[str, int] = {}
        self._greylist_first: dict[str, float] = {}  # address -> its first RCPT, monotonic
        self._turned_away = 0  # connections answered 421 by greeting_failures

    @property
    def display_name(self) -> str:
        """The name the server calls itself in its greeting and EHLO reply."""
        return self.behaviour.hostname or self.host

    async def start(self, sock: socket.socket | None = None) -> None:
        """Start listening (on *sock* if given, which the server then owns)."""
        if sock is None:
            sock = bind_listener(self.host, self.port)
        self.port = sock.getsockname()[1]
        self._stopping = False
        self._server = await asyncio.start_server(self._handle, sock=sock, limit=LINE_LIMIT)

    async def stop(self) -> None:
        """Stop listening, drop every open connection and wait until all are closed."""
        if self._server is None:
            return
        self._stopping = True
        self._server.close()
        # Let connections accepted just before close() start their handler task.
        for _ in range(3):
            await asyncio.sleep(0)
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    def rcpt_reply(self, address: str) -> str:
        """Return the reply to ``RCPT TO:<address>``, counting greylist attempts.

        Greylisting as postgrey does it: the first ``greylist_attempts`` RCPTs of an
        address are answered 450, and so is every later one that comes sooner than
        ``greylist_delay`` seconds after its first (counted in ``greylisted_early``).
        """
        behaviour = self.behaviour
        key = address.lower()
        if behaviour.greylist_attempts > 0:
            attempts = self._greylist_seen.get(key, 0)
            self._greylist_seen[key] = attempts + 1
            now = time.monotonic()
            first = self._greylist_first.setdefault(key, now)
            if attempts < behaviour.greylist_attempts:
                return GREYLISTED.replace("{rcpt}", address)
            if now - first < behaviour.greylist_delay:
                self.stats.greylisted_early += 1
                return GREYLISTED.replace("{rcpt}", address)
        local = key.rpartition("@")[0] if "@" in key else key
        template = behaviour.mailboxes.get(local, behaviour.default_reply)
        return template.replace("{rcpt}", address)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection from accept to close."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.stats.connections_total += 1
        slot = _Slot(self)
        try:
            if not self._stopping:
                await self._serve(reader, writer, slot)
        except asyncio.CancelledError:
            # stop() cancels connection tasks.  Ending this top-level task quietly
            # matters on 3.11, whose asyncio.streams logs an error when the
            # client_connected_cb task ends cancelled.
            pass
        finally:
            slot.release()
            if self._stopping:
                writer.transport.abort()  # a TLS close can wait on the peer's close_notify
            else:
                writer.close()
            with suppress(ConnectionError, TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(writer.wait_closed(), 2.0)
            self._tasks.discard(task)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, slot: _Slot
    ) -> None:
        """Greet (or turn away) the client, then run its session."""
        if self.behaviour.blackhole:
            slot.acquire()
            await _discard(reader)
            return
        if await self._admit():
            slot.acquire()
            greeting = self.behaviour.greeting.replace("{host}", self.display_name)
            if self._turned_away < self.behaviour.greeting_failures:
                self._turned_away += 1
                self.stats.greeting_failures += 1
                greeting = TRY_AGAIN_LATER
        else:
            self.stats.violations += 1
            greeting = TOO_MANY_CONNECTIONS
        number = self.stats.connections_total
        await _Session(self, reader, writer, slot.release, number).run(greeting)

    async def _admit(self) -> bool:
        """Wait briefly for a free slot under ``max_connections``; False if none."""
        limit = self.behaviour.max_connections
        if limit is None:
            return True
        with suppress(TimeoutError):
            async with asyncio.timeout(ADMISSION_GRACE):
                while self._active >= limit:
                    self._slot_freed.clear()
                    await self._slot_freed.wait()
        return self._active < limit


class _Slot:
    """One connection's share of the server's concurrency count (idempotent release)."""

    def __init__(self, server: SmtpServer) -> None:
        self._server = server
        self._held = False

    def acquire(self) -> None:
        server = self._server
        server._active += 1
        server.stats.max_concurrent = max(server.stats.max_concurrent, server._active)
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._server._active -= 1
            self._server._slot_freed.set()


def _code(reply: str) -> int:
    """The reply code of a reply template (0 when it has none)."""
    return int(reply[:3]) if reply[:3].isdigit() else 0


async def _discard(reader: asyncio.StreamReader) -> None:
    """Read and drop everything until the client goes away (black-hole server)."""
    with suppress(ConnectionError):
        while await reader.read(65_536):
            pass


class _Session:
    """The SMTP dialogue of one connection.

    A reader task parses commands and updates the state machine at arrival; a
    writer task emits the replies in order, each at ``arrival + latency``.
    """

    def __init__(
        self,
        server: SmtpServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_hangup: Callable[[], None],
        number: int = 0,
    ) -> None:
        self._server = server
        self._number = number  # the connection's number at its server (RcptEvent.session)
        self._behaviour = server.behaviour
        self._stats = server.stats
        self._reader = reader
        self._writer = writer
        self._on_hangup = on_hangup
        self._loop = asyncio.get_running_loop()
        self._outbox: deque[_Scheduled] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._pipelining_allowed = False
        self._greeted = False
        self._in_transaction = False
        self._mail_rejected = False
        self._transaction_rcpts = 0
        self._transaction_utf8 = False
        self._transaction = 0  # the server's number of the transaction under way
        self._session_rcpts = 0
        self._refused_rcpts = 0
        self._mail_seen = False
        self._tls = False
        self._tls_ready = asyncio.Event()
        self._client_gone = asyncio.Event()
        self._handlers: dict[str, Callable[[str], _Response]] = {
            "EHLO": self._ehlo,
            "HELO": self._helo,
            "MAIL": self._mail,
            "RCPT": self._rcpt,
            "RSET": self._rset,
            "NOOP": lambda _arg: _Response(["250 2.0.0 OK"]),
            "QUIT": lambda _arg: _Response(["221 2.0.0 Bye"], close=True),
            "VRFY": lambda _arg: _Response(["252 2.0.0 Cannot VRFY user, but will accept"]),
            "DATA": self._data,
            "STARTTLS": self._starttls,
        }

    async def run(self, greeting: str) -> None:
        """Send *greeting* (hanging up unless 2xx), then serve commands until close."""
        served = greeting.startswith("2")
        self._schedule(self._loop.time(), self._greeting(greeting))
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._write_replies())
                if not self._closing:
                    group.create_task(self._read_commands())
        finally:
            if served and not self._mail_seen:
                self._stats.idle_sessions += 1

    def _greeting(self, greeting: str) -> _Response:
        """The greeting reply: a trickled multi-line banner when ``trickle`` is set."""
        trickle = self._behaviour.trickle
        if not greeting.startswith("2"):
            return _Response([greeting], close=True)
        if trickle is None:
            return _Response([greeting])
        code = greeting[:3]
        banner = [
            f"{code}-{self._server.display_name} please wait, line {i}"
            for i in range(1, self._behaviour.trickle_lines)
        ]
        return _Response([*banner, greeting], trickle=trickle)

    # -- reading -----------------------------------------------------------

    async def _read_commands(self) -> None:
        """Parse commands until EOF or a reply that closes the connection."""
        while not self._closing:
            try:
                line = await self._reader.readline()
            except (ConnectionError, ValueError):  # ValueError: line over LINE_LIMIT
                break
            if not line.endswith(b"\n"):  # EOF (possibly after a partial line)
                break
            arrival = self._loop.time()
            self._check_pipelining()
            command = line.rstrip(b"\r\n").decode("utf-8", "replace")
            response = self._dispatch(command)
            self._schedule(arrival, response)
            if response.starttls and not await self._handshake():
                break
        self._client_gone.set()
        if not self._closing:  # client went away: flush what is pending, then close
            self._schedule(self._loop.time(), _Response([], close=True))

    def _check_pipelining(self) -> None:
        """Count a command sent before the previous reply: pipelined, or (without
        PIPELINING granted) a protocol error."""
        if self._outbox:
            if self._pipelining_allowed:
                self._stats.pipelined_commands += 1
            else:
                self._stats.protocol_errors += 1

    async def _handshake(self) -> bool:
        """After the 220 to STARTTLS is written: TLS handshake (server side), fresh state."""
        from .tls import server_context

        await self._tls_ready.wait()
        try:
            await self._writer.start_tls(
                server_context(), ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT
            )
        except (OSError, ssl.SSLError, ConnectionError, TimeoutError):
            return False
        self._tls = True
        self._stats.tls_sessions += 1
        self._greeted = False  # RFC 3207 4.2: the client must say EHLO again
        self._pipelining_allowed = False
        self._reset_transaction()
        return True

    def _dispatch(self, command: str) -> _Response:
        verb, _, argument = command.partition(" ")
        handler = self._handlers.get(verb.upper())
        if handler is None:
            return _Response([UNKNOWN_COMMAND])
        return handler(argument.strip())

    # -- commands ----------------------------------------------------------

    def _ehlo(self, argument: str) -> _Response:
        if not self._behaviour.ehlo:
            return _Response([NOT_RECOGNIZED])
        if not argument:
            return self._error(SYNTAX_ERROR)
        self._greet(argument)
        keywords = [f"{self._server.display_name} Hello {argument}"]
        if self._behaviour.pipelining:
            keywords.append("PIPELINING")
        keywords += [f"SIZE {MAX_MESSAGE_SIZE}"]
        if self._behaviour.starttls and not self._tls:
            keywords.append("STARTTLS")
        if self._behaviour.smtputf8:
            keywords += ["8BITMIME", "SMTPUTF8"]
        keywords.append("ENHANCEDSTATUSCODES")
        lines = [f"250-{kw}" for kw in keywords[:-1]] + [f"250 {keywords[-1]}"]
        return _Response(lines, pipelining=self._behaviour.pipelining)

    def _helo(self, argument: str) -> _Response:
        if not argument:
            return self._error(SYNTAX_ERROR)
        self._greet(argument)
        return _Response([f"250 {self._server.display_name}"], pipelining=False)

    def _greet(self, name: str) -> None:
        """Record the client's name; EHLO/HELO also resets any transaction."""
        self._stats.helo_names.append(name)
        self._greeted = True
        self._reset_transaction()

    def _starttls(self, argument: str) -> _Response:
        if not self._behaviour.starttls:
            return self._error(NOT_RECOGNIZED)
        if self._tls or not self._greeted:
            return self._error(BAD_SEQUENCE)
        if argument:
            return self._error(SYNTAX_ERROR)
        extra = self._behaviour.starttls_injection
        return _Response([TLS_READY] if extra is None else [TLS_READY, extra], starttls=True)

    def _mail(self, argument: str) -> _Response:
        self._mail_seen = True
        if not self._greeted or self._in_transaction:
            return self._error(BAD_SEQUENCE)
        address = parse_path(argument, "FROM")
        if address is None:
            return self._error(SYNTAX_ERROR)
        utf8 = "SMTPUTF8" in mail_parameters(argument)
        if utf8 and not self._behaviour.smtputf8:
            return self._error(UTF8_UNSUPPORTED)
        self._stats.mail_from.append(address)
        if self._behaviour.require_tls and not self._tls:
            reply = TLS_REQUIRED
        elif not address.isascii() and not utf8:
            reply = UTF8_REQUIRED
        else:
            reply = self._behaviour.mail_from_reply
        if reply.startswith("2"):
            self._in_transaction = True
            self._transaction_rcpts = 0
            self._transaction_utf8 = utf8
            self._stats.transactions += 1
            self._transaction = self._stats.transactions
        else:
            self._mail_rejected = True
        return _Response([reply])

    def _rcpt(self, argument: str) -> _Response:
        if not self._in_transaction:
            return self._error(BAD_SEQUENCE, count=not self._mail_rejected)
        address = parse_path(argument, "TO")
        if address is None:
            return self._error(SYNTAX_ERROR)
        self._stats.rcpt_total += 1
        self._session_rcpts += 1
        closing_at = self._behaviour.close_after_rcpts
        if closing_at is not None and self._session_rcpts > closing_at:
            return _Response(["421 4.7.0 Too many commands, closing connection"], close=True)
        limit = self._behaviour.max_recipients
        if limit is not None and self._transaction_rcpts >= limit:
            return self._refused(TOO_MANY_RECIPIENTS)
        if not address.isascii() and not self._transaction_utf8:
            return self._refused(UTF8_REQUIRED)
        self._transaction_rcpts += 1
        self._stats.recipients.append(address)
        reply = self._server.rcpt_reply(address)
        self._stats.rcpt_log.append(
            RcptEvent(time.monotonic(), self._number, address, _code(reply), self._transaction)
        )
        local = address.rpartition("@")[0].lower()
        if local in self._behaviour.garble_rcpt:
            return _Response([reply], raw=GARBAGE)
        if local in self._behaviour.truncate_rcpt:
            return _Response([reply], raw=reply.encode("utf-8"), close=True)
        if local in self._behaviour.stall_rcpt:
            return _Response([reply], stall=True)
        if reply[:1] in ("4", "5"):
            return self._refused(reply)
        return _Response([reply])

    def _refused(self, reply: str) -> _Response:
        """A refused RCPT; the one reaching ``error_limit`` is followed by 421 and a hang-up."""
        self._refused_rcpts += 1
        limit = self._behaviour.error_limit
        if limit is not None and self._refused_rcpts >= limit:
            return _Response([reply], then_close=TOO_MANY_ERRORS)
        return _Response([reply])

    def _rset(self, _argument: str) -> _Response:
        self._reset_transaction()
        return _Response(["250 2.0.0 OK"])

    def _data(self, _argument: str) -> _Response:
        if not self._in_transaction:
            return self._error(BAD_SEQUENCE, count=not self._mail_rejected)
        self._reset_transaction()
        return _Response(["554 5.5.1 Error: no valid recipients"])

    def _reset_transaction(self) -> None:
        self._in_transaction = False
        self._mail_rejected = False
        self._transaction_rcpts = 0
        self._transaction_utf8 = False

    def _error(self, reply: str, *, count: bool = True) -> _Response:
        """Answer *reply*, counting a protocol error unless told otherwise."""
        if count:
            self._stats.protocol_errors += 1
        return _Response([reply])

    # -- writing -----------------------------------------------------------

    def _schedule(self, arrival: float, response: _Response) -> None:
        """Queue *response* for ``arrival + latency``; stop reading if it hangs up."""
        wire = response.raw
        if wire is None:
            wire = "".join(f"{line}\r\n" for line in response.lines).encode("utf-8")
        due = arrival + self._behaviour.latency
        self._outbox.append(
            _Scheduled(
                due,
                wire,
                response.close,
                response.pipelining,
                response.trickle,
                response.starttls,
                response.stall,
            )
        )
        self._closing = self._closing or response.close
        if response.then_close is not None:
            hangup = f"{response.then_close}\r\n".encode()
            self._outbox.append(_Scheduled(due, hangup, True, None))
            self._closing = True
        self._wake.set()

    async def _write_replies(self) -> None:
        """Write queued replies in order, each when due; return after the last one."""
        while True:
            while not self._outbox:
                self._wake.clear()
                await self._wake.wait()
            head_due = self._outbox[0].due
            # the reply's delay (the behaviour's), slept until it is due: a schedule, not a
            # wait for a state
            while (delay := head_due - self._loop.time()) > 0:  # noqa: ASYNC110
                await asyncio.sleep(delay)
            batch = self._pop_due(head_due + BATCH_WINDOW)
            stalled = any(item.stall for item in batch)
            if stalled:  # write what comes before the stalled reply, then nothing at all
                batch = batch[: [item.stall for item in batch].index(True)]
            try:
                if batch and batch[-1].starttls:
                    # nothing of the client's TLS handshake may reach the plain-text reader
                    transport = self._writer.transport
                    assert isinstance(transport, asyncio.ReadTransport)
                    transport.pause_reading()
                await self._write_batch(batch)
                self._apply_grants(batch)
                if batch and batch[-1].close:
                    self._on_hangup()
                    return
                await self._writer.drain()
                if batch and batch[-1].starttls:
                    self._tls_ready.set()
            except ConnectionError:
                return
            if stalled:
                await self._client_gone.wait()
                return

    async def _write_batch(self, batch: list[_Scheduled]) -> None:
        """Write *batch* in one go, or line by line with pauses for trickled replies."""
        if not any(item.trickle for item in batch):
            self._writer.write(b"".join(item.wire for item in batch))
            return
        for item in batch:
            if not item.trickle:
                self._writer.write(item.wire)
                continue
            lines = item.wire.splitlines(keepends=True)
            for index, line in enumerate(lines):
                self._writer.write(line)
                await self._writer.drain()
                if index < len(lines) - 1:
                    await asyncio.sleep(item.trickle)

    def _pop_due(self, limit: float) -> list[_Scheduled]:
        """Take the replies due by *limit* off the outbox, stopping at a hang-up."""
        batch: list[_Scheduled] = []
        while self._outbox and self._outbox[0].due <= limit:
            item = self._outbox.popleft()
            batch.append(item)
            if item.close or item.starttls:
                break
        return batch

    def _apply_grants(self, batch: list[_Scheduled]) -> None:
        for item in batch:
            if item.pipelining is not None:
                self._pipelining_allowed = item.pipelining

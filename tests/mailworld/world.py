"""The test mail world: one DNS server and scripted SMTP servers on loopback.

:class:`MailWorld` runs the DNS server and every SMTP server in ONE background
daemon thread with its own asyncio event loop, so synchronous tests, CLI tests
in subprocesses (via :meth:`MailWorld.env`) and async tests with their own loops
can all use it.

All SMTP servers share one port number, :attr:`MailWorld.smtp_port`, each on its
own loopback address.  An address meant to refuse connections simply has no
server; the port is nevertheless reserved on every loopback address of the
zone's A records (a bound, non-listening socket, which refuses connections), so
no other process can start listening there while the world runs.

:func:`standard_world` declares the scenario table shared by tests and
benchmarks; :data:`SCENARIOS` and :data:`EXPECTED_MX` hold what mailvet is
expected to report for each of its addresses.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from .dns_server import DnsTestServer, Zone
from .smtp_server import SmtpBehaviour, SmtpServer, bind_listener

T = TypeVar("T")

START_TIMEOUT = 10.0
PORT_ATTEMPTS = 50


class MailWorld:
    """A DNS zone plus SMTP servers, served from a background thread.

    Declare the zone and the servers first, then :meth:`start` (or use the
    world as a context manager); read servers' stats after the fact with
    :meth:`smtp`.
    """

    def __init__(self) -> None:
        self.zone = Zone()
        self._servers: dict[str, SmtpServer] = {}
        self._dns = DnsTestServer(self.zone)
        self._reserved: list[socket.socket] = []
        self._smtp_port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- declaration ---------------------------------------------------------

    def add_smtp(self, host: str, behaviour: SmtpBehaviour | None = None) -> SmtpServer:
        """Declare an SMTP server on loopback address *host* (before :meth:`start`)."""
        if self._thread is not None:
            raise RuntimeError("declare SMTP servers before starting the world")
        if host in self._servers:
            raise ValueError(f"an SMTP server is already declared on {host}")
        server = SmtpServer(host, 0, behaviour or SmtpBehaviour())
        self._servers[host] = server
        return server

    def smtp(self, host: str) -> SmtpServer:
        """Return the SMTP server declared on *host* (for its ``stats``)."""
        return self._servers[host]

    # -- addresses -----------------------------------------------------------

    @property
    def dns(self) -> DnsTestServer:
        """The DNS server (its ``errors`` lists queries it failed to handle)."""
        return self._dns

    @property
    def dns_port(self) -> int:
        """UDP and TCP port of the DNS server on 127.0.0.1."""
        return self._dns.port

    @property
    def smtp_port(self) -> int:
        """The port every SMTP server listens on."""
        if self._smtp_port is None:
            raise RuntimeError("mail world not started")
        return self._smtp_port

    def env(self) -> dict[str, str]:
        """Environment variables pointing mailvet at this world."""
        return {
            "MAILVET_DNS_SERVERS": f"127.0.0.1:{self.dns_port}",
            "MAILVET_SMTP_PORT": str(self.smtp_port),
            "MAILVET_SMTP_TIMEOUT": "1.0",
            "MAILVET_SMTP_RETRY_DELAY": "0.3",
            "MAILVET_SMTP_RETRIES": "2",
            "MAILVET_HELO_NAME": "probe.mailvet-test.com",
            "MAILVET_MAIL_FROM": "verify@mailvet-test.com",
            "MAILVET_SMTP_ALLOW_PRIVATE": "true",
        }

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Start the background thread and every server; return once all listen."""
        if self._thread is not None:
            raise RuntimeError("mail world already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=_run_loop, args=(loop,), name="mailworld", daemon=True
        )
        self._thread.start()
        try:
            self._call(self._start_servers())
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every server, close every socket and end the thread (idempotent)."""
        if self._thread is None or self._loop is None:
            return
        try:
            self._call(self._stop_servers())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=START_TIMEOUT)
            self._thread = None
            self._loop = None

    def __enter__(self) -> MailWorld:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run *coroutine* in the world's loop and wait for its result."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=START_TIMEOUT)

    async def _start_servers(self) -> None:
        await self._dns.start()
        port, listeners = self._bind_smtp_port()
        self._smtp_port = port
        for host, server in self._servers.items():
            await server.start(sock=listeners[host])

    async def _stop_servers(self) -> None:
        for server in self._servers.values():
            await server.stop()
        await self._dns.stop()
        for sock in self._reserved:
            sock.close()
        self._reserved.clear()
        self._smtp_port = None

    def _bind_smtp_port(self) -> tuple[int, dict[str, socket.socket]]:
        """Find a port free on every loopback address in use; bind it everywhere.

        Returns the port and the bound listening sockets by host; the sockets
        reserving the port on server-less addresses go to ``self._reserved``.
        """
        hosts = list(self._servers)
        refusing = sorted(self._serverless_loopback_addresses())
        if not hosts and not refusing:
            refusing = ["127.0.0.2"]
        for _ in range(PORT_ATTEMPTS):
            port = 0
            bound: list[socket.socket] = []
            try:
                listeners: dict[str, socket.socket] = {}
                for host in hosts:
                    listeners[host] = bind_listener(host, port)
                    bound.append(listeners[host])
                    port = port or listeners[host].getsockname()[1]
                for host in refusing:
                    bound.append(_reserve(host, port))
                    port = port or bound[-1].getsockname()[1]
            except OSError as exc:
                for sock in bound:
                    sock.close()
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            self._reserved = bound[len(hosts) :]
            return port, listeners
        raise RuntimeError("no SMTP port free on every loopback address")

    def _serverless_loopback_addresses(self) -> set[str]:
        """Loopback addresses named by A records that have no SMTP server."""
        return {
            ip
            for ip in self.zone.ipv4_addresses()
            if ipaddress.ip_address(ip).is_loopback and ip not in self._servers
        }


def _reserve(host: str, port: int) -> socket.socket:
    """Bind (without listening) ``host:port`` so that connections there are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Thread body: run *loop* until stopped, then cancel leftovers and close it."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


# ---------------------------------------------------------------------------
# The standard scenario table
# ---------------------------------------------------------------------------

OK = "250 2.1.5 OK"

SCENARIOS: dict[str, tuple[str, str]] = {
    "alice@good-mail.com": ("deliverable", "accepted"),
    "bob@good-mail.com": ("deliverable", "accepted"),
    "info@good-mail.com": ("deliverable", "accepted"),
    "nobody@good-mail.com": ("undeliverable", "mailbox_not_found"),
    "legacy@good-mail.com": ("undeliverable", "mailbox_not_found"),
    "full@good-mail.com": ("risky", "mailbox_full"),
    "disabled@good-mail.com": ("undeliverable", "mailbox_disabled"),
    "gone@good-mail.com": ("undeliverable", "rejected"),
    "blocked@good-mail.com": ("unknown", "smtp_error"),
    "denied@good-mail.com": ("unknown", "smtp_error"),
    # refusals about our sender or our IP, not the mailbox: unknown, never undeliverable
    "sender@good-mail.com": ("unknown", "smtp_error"),  # Postfix reject_unknown_sender_domain
    "exim@good-mail.com": ("unknown", "smtp_error"),  # Exim's multi-line sender verify
    "relay@good-mail.com": ("unknown", "smtp_error"),  # sendmail 553 5.0.0 Relaying denied
    "prohibited@good-mail.com": ("unknown", "smtp_error"),  # Exim's default deny text
    "sorbs@good-mail.com": ("unknown", "smtp_error"),
    "lastline@good-mail.com": ("unknown", "smtp_error"),  # x.7.1 on the last line only
    # a server that refuses postmaster too: its refusals are policy (the control probe)
    "x@refuse-all-mail.com": ("unknown", "smtp_error"),
    "y@refuse-all-mail.com": ("unknown", "smtp_error"),
    "x@unknown-all-mail.com": ("unknown", "smtp_error"),
    # a server that takes MAIL only after STARTTLS
    "tess@tls-mail.com": ("deliverable", "accepted"),
    # a non-ASCII mailbox: probed where the server offers SMTPUTF8, not guessed elsewhere
    "jörg@utf8-mail.com": ("deliverable", "accepted"),
    "jörg@good-mail.com": ("unknown", "not_checked"),
    # the catch-all test never gets an answer: no address there is deliverable
    "kim@tempcatch-mail.com": ("unknown", "greylisted"),
    "anyone@catchall-mail.com": ("risky", "catch_all"),
    "carol@grey-mail.com": ("deliverable", "accepted"),
    "dave@stubborn-mail.com": ("unknown", "greylisted"),
    "x@nullmx-mail.com": ("undeliverable", "null_mx"),
    "x@no-such-domain-zz.com": ("undeliverable", "no_domain"),
    "erin@aonly-mail.com": ("deliverable", "accepted"),
    "x@nomail-mail.com": ("undeliverable", "no_mx"),
    "frank@backup-mail.com": ("deliverable", "accepted"),
    "x@refused-mail.com": ("unknown", "connection_failed"),
    "x@blackhole-mail.com": ("unknown", "timeout"),
    "x@busy-mail.com": ("unknown", "greylisted"),  # 421 at every greeting, past the retries
    **{f"u{i}@limit-mail.com": ("deliverable", "accepted") for i in range(1, 7)},
    "gina@nopipe-mail.com": ("deliverable", "accepted"),
    "hank@nopipe-mail.com": ("deliverable", "accepted"),
    "x@servfail-mail.com": ("unknown", "connection_failed"),
    "x@dnstimeout-mail.com": ("unknown", "timeout"),
    "x@mailinator.com": ("risky", "disposable"),
    "x@gmial.com": ("undeliverable", "no_domain"),
    "x@hotmial.com": ("risky", "suspected_typo"),  # a typo domain with a catch-all server
}
"""Each test address of :func:`standard_world` → expected (status, reason)."""

EXPECTED_MX: dict[str, str] = {
    "erin@aonly-mail.com": "aonly-mail.com",
    "frank@backup-mail.com": "mx2.backup-mail.com",
}
"""Addresses whose mail exchanger (as reported by mailvet) is asserted."""


def _mx_domain(world: MailWorld, domain: str, ip: str, behaviour: SmtpBehaviour | None) -> None:
    """Give *domain* ``MX 10 mx.<domain>`` → *ip*, and a server there if *behaviour*."""
    exchange = f"mx.{domain}"
    world.zone.add(domain, mx=[(10, exchange)])
    world.zone.add(exchange, a=[ip])
    if behaviour is not None:
        behaviour.hostname = behaviour.hostname or exchange
        world.add_smtp(ip, behaviour)


def _accepting(*locals_: str, **options: Any) -> SmtpBehaviour:
    """A behaviour accepting exactly the mailboxes *locals_* with 250 (and postmaster, which
    RFC 5321 4.5.1 requires)."""
    return SmtpBehaviour(mailboxes={local: OK for local in ("postmaster", *locals_)}, **options)


def standard_world() -> MailWorld:
    """Return the (not started) world of the scenario table (see :data:`SCENARIOS`)."""
    world = MailWorld()
    zone = world.zone

    good = _accepting("alice", "bob", "info", max_connections=3)
    good.mailboxes.update(
        {
            "full": "552 5.2.2 Mailbox full",
            "disabled": "550 5.2.1 Mailbox disabled",
            "blocked": "550 5.7.1 Client host rejected: blocked using zen.spamhaus.org",
            "legacy": "550 No such user here",
            "denied": "550 Access denied",
            "gone": "550 5.1.0 Address rejected",
            "sender": "450 4.1.8 <verify@mailvet-test.com>: Sender address rejected: "
            "Domain not found",
            "exim": "550-Verification failed for <verify@mailvet-test.com>\r\n"
            "550-Unrouteable address\r\n550 Sender verify failed",
            "relay": "553 5.0.0 <{rcpt}>... Relaying denied",
            "prohibited": "550 Administrative prohibition",
            "sorbs": "554 Service unavailable; Client host [192.0.2.9] listed on dnsbl.sorbs.net",
            "lastline": "550-Your message was rejected\r\n550-Please see our policy page\r\n"
            "550 5.7.1 Message rejected by site administrator",
        }
    )
    _mx_domain(world, "good-mail.com", "127.0.0.2", good)
    _mx_domain(world, "catchall-mail.com", "127.0.0.3", SmtpBehaviour(default_reply=OK))
    _mx_domain(world, "grey-mail.com", "127.0.0.4", _accepting("carol", greylist_attempts=1))
    _mx_domain(world, "stubborn-mail.com", "127.0.0.5", _accepting("dave", greylist_attempts=1000))

    zone.add("nullmx-mail.com", mx=[(0, ".")])
    # no-such-domain-zz.com and gmial.com: deliberately absent (NXDOMAIN).

    zone.add("aonly-mail.com", a=["127.0.0.6"])
    world.add_smtp("127.0.0.6", _accepting("erin", hostname="aonly-mail.com"))

    zone.add("nomail-mail.com", txt=["v=spf1 -all"])

    zone.add("backup-mail.com", mx=[(10, "mx1.backup-mail.com"), (20, "mx2.backup-mail.com")])
    zone.add("mx1.backup-mail.com", a=["127.0.0.7"])  # nothing listening: refused
    zone.add("mx2.backup-mail.com", a=["127.0.0.8"])
    world.add_smtp("127.0.0.8", _accepting("frank", hostname="mx2.backup-mail.com"))

    _mx_domain(world, "refused-mail.com", "127.0.0.9", None)
    _mx_domain(world, "blackhole-mail.com", "127.0.0.10", SmtpBehaviour(blackhole=True))
    busy = SmtpBehaviour(greeting="421 4.3.2 Service busy, try later")
    _mx_domain(world, "busy-mail.com", "127.0.0.11", busy)
    limit = _accepting(*(f"u{i}" for i in range(1, 7)), max_recipients=2)
    _mx_domain(world, "limit-mail.com", "127.0.0.12", limit)
    nopipe = _accepting("gina", "hank", ehlo=False, pipelining=False, latency=0.01)
    _mx_domain(world, "nopipe-mail.com", "127.0.0.13", nopipe)

    _mx_domain(
        world,
        "refuse-all-mail.com",
        "127.0.0.14",
        SmtpBehaviour(default_reply="550 Rejected: <{rcpt}> not permitted"),
    )
    _mx_domain(world, "unknown-all-mail.com", "127.0.0.15", SmtpBehaviour())  # 5.1.1 for all
    tempcatch = _accepting("kim", default_reply="451 4.3.0 <{rcpt}>: Temporary lookup failure")
    _mx_domain(world, "tempcatch-mail.com", "127.0.0.16", tempcatch)

    tls = _accepting("tess", starttls=True, require_tls=True)
    _mx_domain(world, "tls-mail.com", "127.0.0.17", tls)
    _mx_domain(world, "utf8-mail.com", "127.0.0.18", _accepting("jörg", smtputf8=True))

    zone.servfail("servfail-mail.com")
    zone.blackhole("dnstimeout-mail.com")
    _mx_domain(world, "mailinator.com", "127.0.0.3", None)  # the catch-all server
    _mx_domain(world, "hotmial.com", "127.0.0.3", None)  # a typo-squatter on it
    return world

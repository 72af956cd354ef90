"""A small authoritative DNS server for the test mail world.

The server is dnslib's :class:`~dnslib.server.DNSServer` (one instance for UDP,
one for TCP, both on the same port of 127.0.0.1) with a hand-written resolver,
:class:`ZoneResolver`, that answers from a :class:`Zone`:

* the name exists and has records of the asked type: those records;
* the name exists without records of that type: NODATA (NOERROR, empty answer,
  an SOA in the authority section).  dnslib's stock ``ZoneResolver`` wrongly
  answers NXDOMAIN here, which is why it is not used;
* the name is unknown: NXDOMAIN with an SOA in the authority section;
* ``zone.servfail(name)``: SERVFAIL for every query of the name;
* ``zone.blackhole(name)``: no reply at all, so the client times out.

Reverse DNS: ``zone.add_ptr("127.0.0.20", "probe.example.com")`` adds a PTR record
to ``20.0.0.127.in-addr.arpa`` (or the ``ip6.arpa`` name of an IPv6 address).

Instead of letting dnslib run its thread-per-request ``socketserver`` loops,
the two servers are driven by an asyncio event loop (``loop.add_reader``), so
the whole mail world lives in a single thread.  The resolver never blocks.

How a query gets no reply: ``DNSHandler.handle`` catches :class:`dnslib.DNSError`
raised while building the reply, logs it and sends nothing.  The resolver
raises :class:`NoReply` (a ``DNSError``) for black-holed names; over TCP the
connection is additionally kept open ("parked") until the server stops, so a
TCP client also waits for its own timeout instead of seeing the connection
close.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import socketserver
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from dnslib import AAAA, MX, PTR, QTYPE, RCODE, RR, SOA, TXT, A, DNSError, DNSRecord
from dnslib.server import DNSHandler, DNSLogger, DNSServer

DEFAULT_TTL = 60
"""TTL of every record served, and the negative-caching TTL of the SOA."""

TCP_READ_TIMEOUT = 1.0
"""How long a TCP client may take to send its query before it is dropped.

The servers run inside the event loop and dnslib reads TCP queries with
blocking ``recv`` calls, so a silent client may stall the loop at most this long.
"""


def normalise(name: str) -> str:
    """Return the zone key of *name*: lower case, without the trailing dot."""
    return name.strip().rstrip(".").lower()


def apex(name: str) -> str:
    """Return the registrable domain owning *name* (its last two labels).

    The test zones are all of the form ``<something>.com``, so this is the
    owner of the SOA record used in negative answers.
    """
    labels = normalise(name).split(".")
    return ".".join(labels[-2:])


@dataclass
class Node:
    """Everything the zone knows about one name."""

    mx: list[tuple[int, str]] = field(default_factory=list)
    a: list[str] = field(default_factory=list)
    aaaa: list[str] = field(default_factory=list)
    txt: list[str] = field(default_factory=list)
    ptr: list[str] = field(default_factory=list)
    servfail: bool = False
    blackhole: bool = False


class Zone:
    """The records served by the test DNS server, keyed by case-folded name.

    A name *exists* once it has been mentioned by any of the methods below,
    even without records (see :meth:`add_empty`).  Mutation is guarded by a
    lock, so records may be added from the test thread while the server runs.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}
        self._lock = threading.Lock()

    def add(
        self,
        name: str,
        *,
        mx: list[tuple[int, str]] | None = None,
        a: list[str] | None = None,
        aaaa: list[str] | None = None,
        txt: list[str] | None = None,
        ptr: list[str] | None = None,
    ) -> None:
        """Add records to *name*, creating it if needed (repeated calls merge).

        ``mx`` holds ``(preference, exchange)`` pairs; ``(0, ".")`` is a Null MX
        (RFC 7505).
        """
        with self._lock:
            node = self._nodes.setdefault(normalise(name), Node())
            node.mx.extend(mx or [])
            node.a.extend(a or [])
            node.aaaa.extend(aaaa or [])
            node.txt.extend(txt or [])
            node.ptr.extend(ptr or [])

    def add_ptr(self, address: str, name: str) -> str:
        """Give the reverse name of IP *address* a PTR record naming *name*.

        Returns the reverse name (``4.3.2.1.in-addr.arpa`` for ``1.2.3.4``).
        """
        reverse = ipaddress.ip_address(address).reverse_pointer
        self.add(reverse, ptr=[name])
        return reverse

    def add_empty(self, name: str) -> None:
        """Declare *name* as existing without records: NODATA for every type."""
        self.add(name)

    def servfail(self, name: str) -> None:
        """Answer SERVFAIL to every query of *name*."""
        with self._lock:
            self._nodes.setdefault(normalise(name), Node()).servfail = True

    def blackhole(self, name: str) -> None:
        """Never answer queries of *name*: the client times out."""
        with self._lock:
            self._nodes.setdefault(normalise(name), Node()).blackhole = True

    def lookup(self, name: str) -> Node | None:
        """Return a copy of the node of *name*, or ``None`` if it does not exist."""
        with self._lock:
            node = self._nodes.get(normalise(name))
            if node is None:
                return None
            return Node(
                mx=list(node.mx),
                a=list(node.a),
                aaaa=list(node.aaaa),
                txt=list(node.txt),
                ptr=list(node.ptr),
                servfail=node.servfail,
                blackhole=node.blackhole,
            )

    def ipv4_addresses(self) -> set[str]:
        """Return every IPv4 address appearing in an A record of the zone."""
        with self._lock:
            return {ip for node in self._nodes.values() for ip in node.a}

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return isinstance(name, str) and normalise(name) in self._nodes


class NoReply(DNSError):  # type: ignore[misc]  # dnslib is untyped
    """Raised by the resolver to make dnslib's handler send nothing back."""


class ZoneResolver:
    """dnslib resolver answering from a :class:`Zone` (see the module docstring)."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        """Build the reply to *request*, or raise :class:`NoReply`."""
        reply = request.reply()
        qname = request.q.qname
        node = self.zone.lookup(str(qname))
        if node is None:
            return self._negative(reply, RCODE.NXDOMAIN)
        if node.blackhole:
            self._park_tcp(handler)
            raise NoReply(f"black-holed name {qname}")
        if node.servfail:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        answers = self._answers(node, str(qname), request.q.qtype)
        if not answers:
            return self._negative(reply, RCODE.NOERROR)
        for rr in answers:
            reply.add_answer(rr)
        return reply

    @staticmethod
    def _answers(node: Node, qname: str, qtype: int) -> list[RR]:
        """Return the records of *node* matching *qtype*, owned by *qname*."""
        rdatas: list[Any]
        if qtype == QTYPE.MX:
            rdatas = [MX(exchange, preference) for preference, exchange in node.mx]
        elif qtype == QTYPE.A:
            rdatas = [A(ip) for ip in node.a]
        elif qtype == QTYPE.AAAA:
            rdatas = [AAAA(ip) for ip in node.aaaa]
        elif qtype == QTYPE.TXT:
            rdatas = [TXT(text) for text in node.txt]
        elif qtype == QTYPE.PTR:
            rdatas = [PTR(name) for name in node.ptr]
        elif qtype == QTYPE.SOA and normalise(qname) == apex(qname):
            rdatas = [_soa_rdata(qname)]
        else:
            rdatas = []
        return [RR(qname, qtype, rdata=rdata, ttl=DEFAULT_TTL) for rdata in rdatas]

    @staticmethod
    def _negative(reply: DNSRecord, rcode: int) -> DNSRecord:
        """Turn *reply* into NXDOMAIN or NODATA, with the apex SOA in authority."""
        reply.header.rcode = rcode
        owner = apex(str(reply.q.qname))
        reply.add_auth(RR(owner, QTYPE.SOA, rdata=_soa_rdata(owner), ttl=DEFAULT_TTL))
        return reply

    @staticmethod
    def _park_tcp(handler: DNSHandler) -> None:
        """Keep a black-holed TCP connection open so the client really times out."""
        server = handler.server
        if handler.protocol == "tcp" and isinstance(server, _LoopTCPServer):
            server.park(handler.request)


def _soa_rdata(owner: str) -> SOA:
    owner = apex(owner)
    return SOA(
        f"ns1.{owner}",
        f"hostmaster.{owner}",
        (1, 3600, 600, 86400, DEFAULT_TTL),
    )


class _ErrorRecorder:
    """Mixin: record handler exceptions instead of printing tracebacks."""

    errors: list[BaseException]

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if exc is not None:
            self.errors.append(exc)


class _LoopUDPServer(_ErrorRecorder, socketserver.UDPServer):
    """Single-threaded UDP server whose socket is polled by an event loop.

    ``allow_reuse_address`` stays off: on UDP it would let two servers share a
    port silently.
    """

    allow_reuse_address = False

    def __init__(self, server_address: tuple[str, int], handler: type[DNSHandler]) -> None:
        self.errors = []
        super().__init__(server_address, handler)
        self.socket.setblocking(False)


class _LoopTCPServer(_ErrorRecorder, socketserver.TCPServer):
    """Single-threaded TCP server whose listening socket is polled by an event loop."""

    allow_reuse_address = True

    def __init__(self, server_address: tuple[str, int], handler: type[DNSHandler]) -> None:
        self.errors = []
        self.parked: list[socket.socket] = []
        super().__init__(server_address, handler)
        self.socket.setblocking(False)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = self.socket.accept()
        conn.settimeout(TCP_READ_TIMEOUT)
        return conn, addr

    def park(self, conn: socket.socket) -> None:
        """Keep *conn* open, unanswered, until :meth:`server_close`."""
        self.parked.append(conn)

    def shutdown_request(self, request: Any) -> None:
        if any(request is conn for conn in self.parked):
            return
        super().shutdown_request(request)

    def server_close(self) -> None:
        for conn in self.parked:
            conn.close()
        self.parked.clear()
        super().server_close()


def _quiet_logger() -> DNSLogger:
    """A dnslib logger with every hook disabled."""
    return DNSLogger(log="-request,-reply,-truncated,-error", prefix=False)


class DnsTestServer:
    """The zone served over UDP and TCP on one port of *host*, from the running loop.

    ``port=0`` picks a port free for both protocols.  :meth:`start` and
    :meth:`stop` must run in the event loop that serves the queries.
    """

    def __init__(self, zone: Zone, host: str = "127.0.0.1", port: int = 0) -> None:
        self.zone = zone
        self.host = host
        self._requested_port = port
        self._resolver = ZoneResolver(zone)
        self._udp: DNSServer | None = None
        self._tcp: DNSServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def port(self) -> int:
        """The port both protocols listen on (valid once started)."""
        if self._udp is None:
            raise RuntimeError("DNS server not started")
        return int(self._udp.server.server_address[1])

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised while handling queries (bad packets, slow TCP clients)."""
        servers = [s for s in (self._udp, self._tcp) if s is not None]
        return [exc for s in servers for exc in s.server.errors]

    async def start(self) -> None:
        """Bind UDP and TCP and start answering from the running loop."""
        self._loop = asyncio.get_running_loop()
        self._udp, self._tcp = self._bind_pair()
        for dns_server in (self._udp, self._tcp):
            sock_server = dns_server.server
            self._loop.add_reader(sock_server.socket, sock_server._handle_request_noblock)

    async def stop(self) -> None:
        """Stop answering and close every socket (parked TCP connections too)."""
        for dns_server in (self._udp, self._tcp):
            if dns_server is None:
                continue
            if self._loop is not None:
                self._loop.remove_reader(dns_server.server.socket)
            dns_server.server.server_close()
        self._udp = self._tcp = None

    def _bind_pair(self, attempts: int = 50) -> tuple[DNSServer, DNSServer]:
        """Bind UDP first (choosing the port if 0), then TCP on the same port."""
        for _ in range(attempts):
            udp = self._make(self._requested_port, tcp=False)
            try:
                return udp, self._make(udp.server.server_address[1], tcp=True)
            except OSError as exc:
                udp.server.server_close()
                if exc.errno != errno.EADDRINUSE or self._requested_port != 0:
                    raise
        raise RuntimeError("no port free for both UDP and TCP")

    def _make(self, port: int, *, tcp: bool) -> DNSServer:
        return DNSServer(
            self._resolver,
            address=self.host,
            port=port,
            tcp=tcp,
            logger=_quiet_logger(),
            server=_LoopTCPServer if tcp else _LoopUDPServer,
        )

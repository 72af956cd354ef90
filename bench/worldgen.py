"""A generated multi-domain mail world: many domains on few shared servers, and its schedule bound.

Importable (``from bench.worldgen import generate, build_world, schedule_bound``); used by
``bench/world_bench.py`` and checked by ``tests/unit/test_worldgen.py``.

The plan (:func:`generate`, deterministic for a seed)
    * ``addresses`` addresses over ``domains`` domains, Zipf-distributed (rank r holds a share
      proportional to 1/r**exponent, every domain at least one): a few giant domains hold
      most addresses.
    * ``servers`` server addresses on loopback (127.0.1.1, 127.0.1.2, ...), each a
      "provider": about 3% greylisting servers (every RCPT is answered 450 once, then the
      real answer; with ``build_world(greylist_delay=...)`` a retry sooner than that after
      the address's first RCPT is answered 450 again, as postgrey does), 1% tar-pits
      (every reply comes after ``tarpit_latency``, longer than the SMTP timeout), 2% dead
      addresses (nothing listening: refused; or a black hole that accepts and never
      speaks), the rest normal.  Every live server has its own
      reply latency (uniform 10-300 ms), a cap on concurrent sessions (421 beyond it,
      counted as a violation) and a limit of RCPTs per transaction (452 beyond it).
    * 3% of the domains greylist (they live on the greylisting servers), 1% are tar-pitted,
      2% have a dead MX host (half of them with a live backup MX at preference 20, whose
      server answers for them); none of these is among the largest 5% of domains.  The
      five largest domains each have a normal server of their own (think Google,
      Microsoft); every other normal domain goes to a normal server drawn with Zipf
      weights (shared providers host hundreds of domains).
    * A domain's MX host names are its own (``mx.<domain>``, or ``mx1``/``mx2``) for 60%
      of domains and the provider's (``mx.<provider>``) otherwise; 15% have two MX hosts
      (both resolving to the same server address).  So politeness must be kept per server
      address: many host names lead to one server.
    * 90% of the addresses exist (250 2.1.5), the rest get 550 5.1.1; ``postmaster`` exists
      on every domain (RFC 5321 4.5.1).  Local parts are unique across the world (the
      scripted servers key mailboxes by local part).
    * :attr:`WorldPlan.expected` holds every address's expected (status, reason).

:class:`FastDns` answers the plan's zone over UDP fast enough for bursts of lookups (the
world's own dnslib server falls behind them); :func:`dns_names` lists the names to pack.

The schedule bound (:func:`schedule_bound`): the fastest any client could finish while
keeping every server's limits.  Model, per live server s with round-trip latency L,
session cap C and RCPT limit R (R capped at ``max_batch``, 100, what RFC 5321 asks every
server to take and mailvet's largest batch):
    * a session costs 2 L before its first transaction (greeting, then EHLO), connecting
      on loopback costs nothing;
    * with PIPELINING a transaction of up to R RCPTs (MAIL + RCPTs + RSET in one write) costs
      one L, so C sessions move C*R probes per L: the server's rate is C*R/L probes/s;
    * the server's load N is every address answered by it plus one catch-all probe per
      domain (mailvet asks a random mailbox once per domain), so its time is
      T = L * (2 + ceil(N / (C*R)));
    * a domain whose first MX is a tar-pit or a black hole costs at least the SMTP
      timeout before anything is known (plus 3 L of its backup's server, if any);
    * domains sharing a server share its rate; servers work in parallel (no global
      connection cap is assumed), so the bound is the largest T (or timeout floor) over
      servers and domains, plus the greylisting retry delay when any domain greylists
      (the retry cannot start before it; this adds it once, to the slowest server);
    * a greylisting server asks for each probe twice, the second time at least the retry
      delay after the first 450: its first round ends after L * (2 + ceil(N / (C*R))),
      the last retry cannot be sent before the delay has passed and takes one more L, so
      it needs at least L * (3 + ceil(N / (C*R))) + the retry delay (``greylist_floor``),
      which the bound is never below.
"""

from __future__ import annotations

import csv
import math
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from dnslib import DNSError, DNSRecord

from tests.mailworld.dns_server import Zone, ZoneResolver
from tests.mailworld.smtp_server import SmtpBehaviour
from tests.mailworld.world import MailWorld

OK = "250 2.1.5 OK"
POSTMASTER = "postmaster"  # RFC 5321 4.5.1: every domain accepts it (mailvet's control probe)
UNKNOWN_USER = "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"

LATENCY_RANGE = (0.010, 0.300)
SESSION_CAPS = (2, 3, 3, 5, 5, 10)  # drawn uniformly: a server's max concurrent sessions
RCPT_LIMITS = (25, 50, 100, 100, 100)  # a server's RCPTs per transaction (452 beyond)
MAX_BATCH = 100  # RCPTs per transaction no client needs to exceed (RFC 5321 4.5.3.1.8)
GIANT_SERVERS = 5  # the largest domains each get a normal server of their own
SPECIAL_SKIP = 0.05  # greylisting/tar-pit/dead domains are not among the largest 5%

DELIVERABLE = ("deliverable", "accepted")
NOT_FOUND = ("undeliverable", "mailbox_not_found")
TIMEOUT = ("unknown", "timeout")
REFUSED = ("unknown", "connection_failed")


class Kind(StrEnum):
    NORMAL = "normal"
    GREYLIST = "greylisting"
    TARPIT = "tar-pit"
    REFUSED = "refused"
    BLACKHOLE = "black hole"


LIVE = frozenset({Kind.NORMAL, Kind.GREYLIST})


@dataclass(frozen=True)
class ServerSpec:
    ip: str
    kind: Kind
    provider: str  # the provider's domain; its own MX host name is mx.<provider>
    latency: float
    max_connections: int | None
    max_recipients: int | None


@dataclass
class DomainSpec:
    name: str
    rank: int  # 1 = largest
    addresses: int
    kind: Kind  # what the domain is: normal, greylisting, tar-pit, refused, black hole
    mx: list[tuple[int, str]]  # (preference, host name)
    answering_ip: str | None  # the live server that answers its RCPTs (None: nobody)


@dataclass
class WorldPlan:
    seed: int
    exponent: float
    tarpit_latency: float
    servers: dict[str, ServerSpec]  # by IP
    domains: list[DomainSpec]  # by rank
    hosts: dict[str, str]  # MX host name -> IP
    expected: dict[str, tuple[str, str]]  # address -> (status, reason)
    mailboxes: dict[str, set[str]] = field(default_factory=dict)  # IP -> existing local parts

    def domain_of(self, name: str) -> DomainSpec:
        return next(d for d in self.domains if d.name == name)

    def first_ip(self, domain: DomainSpec) -> str:
        """The address of the domain's most preferred MX host."""
        return self.hosts[min(domain.mx)[1]]


def server_ip(index: int) -> str:
    """Loopback address of server *index* (0-based): 127.0.1.1, ..., 127.0.1.254, 127.0.2.1, ..."""
    return f"127.0.{1 + index // 254}.{1 + index % 254}"


def zipf_counts(total: int, n: int, exponent: float) -> list[int]:
    """Split *total* over *n* ranks by 1/r**exponent, each at least 1, summing exactly to total.

    Largest-remainder rounding keeps the counts non-increasing with rank.
    """
    if n < 1 or total < n:
        raise ValueError(f"cannot give {n} domains at least one of {total} addresses")
    weights = [1.0 / (rank**exponent) for rank in range(1, n + 1)]
    scale = (total - n) / sum(weights)
    raw = [w * scale for w in weights]
    counts = [1 + int(x) for x in raw]
    left = total - sum(counts)
    by_remainder = sorted(range(n), key=lambda i: (-(raw[i] - int(raw[i])), i))
    for i in by_remainder[:left]:
        counts[i] += 1
    return counts


def _share(count: int, fraction: float, minimum: int) -> int:
    return max(minimum, round(count * fraction))


_ADJ = """amber brisk cedar delta ember fable gusty hazel indigo jolly kelp lunar maple
nimble opal pine quartz russet sable tidal umber velvet willow xenon yarrow zephyr""".split()
_NOUN = """anchor beacon canyon dune estuary fjord grove harbor inlet jetty knoll lagoon
meadow nook orchard prairie quarry ridge summit thicket upland valley wharf yard""".split()
_FIRST = """james mary john patricia robert jennifer michael linda william elizabeth david
barbara richard susan joseph jessica thomas sarah charles karen daniel nancy matthew
betty anthony margaret mark sandra paul emily andrew donna""".split()
_LAST = """smith johnson williams brown jones garcia miller davis rodriguez martinez
hernandez lopez gonzalez wilson anderson taylor moore jackson martin lee thompson white
harris clark lewis robinson walker young allen king wright scott""".split()


def _domain_name(index: int) -> str:
    adj = _ADJ[index % len(_ADJ)]
    noun = _NOUN[(index // len(_ADJ)) % len(_NOUN)]
    return f"{adj}-{noun}-{index:05d}.com"


def _local_part(rng: random.Random, serial: int) -> str:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    style = rng.randrange(3)
    if style == 0:
        return f"{first}.{last}{serial}"
    if style == 1:
        return f"{first[0]}{last}{serial}"
    return f"{first}_{last}.{serial}"


def _draw_servers(rng: random.Random, count: int, tarpit_latency: float) -> list[ServerSpec]:
    if count < 5:
        raise ValueError(
            "need at least 5 servers (normal, greylisting, tar-pit, refused, black hole)"
        )
    grey = _share(count, 0.03, 1)
    tarpit = _share(count, 0.01, 1)
    dead = _share(count, 0.02, 2)
    kinds = [Kind.GREYLIST] * grey + [Kind.TARPIT] * tarpit
    kinds += [Kind.REFUSED if i % 2 == 0 else Kind.BLACKHOLE for i in range(dead)]
    kinds = [Kind.NORMAL] * (count - len(kinds)) + kinds
    if kinds[0] is not Kind.NORMAL:
        raise ValueError(f"{count} servers leave none normal")
    servers = []
    for index, kind in enumerate(kinds):
        latency = round(rng.uniform(*LATENCY_RANGE), 3)
        caps: tuple[int | None, int | None] = (rng.choice(SESSION_CAPS), rng.choice(RCPT_LIMITS))
        if kind is Kind.TARPIT:
            latency = tarpit_latency
        if kind not in LIVE:
            caps = (None, None)
        servers.append(
            ServerSpec(server_ip(index), kind, f"mailhost-{index:03d}.net", latency, *caps)
        )
    return servers


def generate(
    addresses: int = 100_000,
    domains: int = 2_000,
    servers: int = 150,
    seed: int = 7,
    *,
    exponent: float = 1.1,
    exist_ratio: float = 0.9,
    own_mx_ratio: float = 0.6,
    two_mx_ratio: float = 0.15,
    tarpit_latency: float = 30.0,
) -> WorldPlan:
    """Draw the world (see the module docstring); the same arguments give the same plan."""
    rng = random.Random(seed)
    server_list = _draw_servers(rng, servers, tarpit_latency)
    by_kind: dict[Kind, list[ServerSpec]] = {kind: [] for kind in Kind}
    for server in server_list:
        by_kind[server.kind].append(server)
    counts = zipf_counts(addresses, domains, exponent)

    # which domains are special: drawn among all but the largest SPECIAL_SKIP
    n_grey = _share(domains, 0.03, 1)
    n_tarpit = _share(domains, 0.01, 1)
    n_dead = _share(domains, 0.02, 4)  # refused/black hole, with/without a backup
    skip = min(max(1, int(domains * SPECIAL_SKIP)), domains - (n_grey + n_tarpit + n_dead))
    if skip < 1:
        raise ValueError(f"{domains} domains are too few for the special ones")
    special = rng.sample(range(skip, domains), n_grey + n_tarpit + n_dead)
    special_kind: dict[int, Kind] = {}
    for i, index in enumerate(special):
        if i < n_grey:
            special_kind[index] = Kind.GREYLIST
        elif i < n_grey + n_tarpit:
            special_kind[index] = Kind.TARPIT
        else:
            special_kind[index] = Kind.REFUSED  # dead; refused or black hole decided below

    normal = by_kind[Kind.NORMAL]
    giants = min(GIANT_SERVERS, max(1, len(normal) // 10))
    shared = normal[giants:] or normal
    shared_weights = [1.0 / rank for rank in range(1, len(shared) + 1)]
    dead_servers = by_kind[Kind.REFUSED] + by_kind[Kind.BLACKHOLE]

    plan = WorldPlan(seed, exponent, tarpit_latency, {s.ip: s for s in server_list}, [], {}, {})
    plan.mailboxes = {s.ip: set() for s in server_list if s.kind in LIVE}
    serial = 0
    dead_seen = 0
    for index, count in enumerate(counts):
        name = _domain_name(index)
        kind = special_kind.get(index, Kind.NORMAL)
        backup: ServerSpec | None = None
        if kind is Kind.GREYLIST:
            server = rng.choice(by_kind[Kind.GREYLIST])
        elif kind is Kind.TARPIT:
            server = rng.choice(by_kind[Kind.TARPIT])
        elif kind is Kind.REFUSED:
            server = dead_servers[dead_seen % len(dead_servers)]
            kind = server.kind
            if dead_seen % 4 >= 2:  # half the dead-MX domains have a live backup MX
                backup = rng.choice(normal)
            dead_seen += 1
        elif index < giants:
            server = normal[index]
        else:
            server = rng.choices(shared, shared_weights)[0]

        mx = _mx_hosts(rng, plan, name, server, backup, own_mx_ratio, two_mx_ratio)
        answering = backup or (server if server.kind in LIVE else None)
        plan.domains.append(
            DomainSpec(name, index + 1, count, kind, mx, answering.ip if answering else None)
        )
        for _ in range(count):
            serial += 1
            local = _local_part(rng, serial)
            exists = rng.random() < exist_ratio
            if answering is None:
                verdict = TIMEOUT if kind in (Kind.TARPIT, Kind.BLACKHOLE) else REFUSED
            else:
                verdict = DELIVERABLE if exists else NOT_FOUND
                if exists:
                    plan.mailboxes[answering.ip].add(local)
            plan.expected[f"{local}@{name}"] = verdict
    return plan


def _mx_hosts(
    rng: random.Random,
    plan: WorldPlan,
    domain: str,
    server: ServerSpec,
    backup: ServerSpec | None,
    own_mx_ratio: float,
    two_mx_ratio: float,
) -> list[tuple[int, str]]:
    """The domain's MX records; every host name is recorded in ``plan.hosts``."""
    if backup is not None:
        hosts = [(10, f"mx1.{domain}", server.ip), (20, f"mx2.{domain}", backup.ip)]
    else:
        own = server.kind is not Kind.NORMAL or rng.random() < own_mx_ratio
        base = domain if own else server.provider
        if server.kind in LIVE and rng.random() < two_mx_ratio:
            hosts = [(10, f"mx1.{base}", server.ip), (20, f"mx2.{base}", server.ip)]
        else:
            hosts = [(10, f"mx.{base}", server.ip)]
    for _, host, ip in hosts:
        plan.hosts[host] = ip
    return [(preference, host) for preference, host, _ in hosts]


def build_world(plan: WorldPlan, *, greylist_delay: float = 0.0) -> MailWorld:
    """The (not started) MailWorld of *plan*: its zone and one SMTP server per live or
    tar-pit/black-hole address (refused addresses have none: the world reserves the port).
    The greylisting servers answer 450 to a retry sooner than *greylist_delay* seconds after
    the address's first RCPT."""
    world = MailWorld()
    for domain in plan.domains:
        world.zone.add(domain.name, mx=domain.mx)
    for host, ip in plan.hosts.items():
        world.zone.add(host, a=[ip])
    for server in plan.servers.values():
        if server.kind is Kind.REFUSED:
            continue
        world.add_smtp(
            server.ip,
            SmtpBehaviour(
                mailboxes={
                    POSTMASTER: OK,
                    **{local: OK for local in plan.mailboxes.get(server.ip, ())},
                },
                default_reply=UNKNOWN_USER,
                greylist_attempts=1 if server.kind is Kind.GREYLIST else 0,
                greylist_delay=greylist_delay if server.kind is Kind.GREYLIST else 0.0,
                max_connections=server.max_connections,
                max_recipients=server.max_recipients,
                latency=server.latency,
                blackhole=server.kind is Kind.BLACKHOLE,
                hostname=f"mx.{server.provider}",
            ),
        )
    return world


def write_csv(plan: WorldPlan, path: Path) -> None:
    """The input list (id,email), shuffled with the plan's seed: real lists are mixed."""
    addresses = list(plan.expected)
    random.Random(plan.seed + 1).shuffle(addresses)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "email"])
        writer.writerows((i, a) for i, a in enumerate(addresses, 1))


@dataclass(frozen=True)
class ServerLoad:
    ip: str
    kind: Kind
    domains: int
    probes: int  # addresses answered here plus one catch-all probe per domain
    sessions: int  # C
    batch: int  # min(R, MAX_BATCH)
    latency: float  # L
    seconds: float  # L * (2 + ceil(probes / (C * batch)))

    @property
    def rate(self) -> float:
        """Probes per second this server's limits allow (C * batch / L)."""
        return self.sessions * self.batch / self.latency


@dataclass(frozen=True)
class Bound:
    seconds: float  # the bound
    loads: list[ServerLoad]  # live servers, slowest first
    timeout_floor: float  # slowest domain behind a tar-pit or black-hole first MX
    retry_delay: float  # added (0 when no domain greylists)
    greylist_floor: float = 0.0  # slowest greylisting server: both asks and the delay between

    @property
    def slowest(self) -> ServerLoad:
        return self.loads[0]

    @property
    def strict(self) -> float:
        """The largest need of any one server or domain, with the retry delay only where
        greylisting is: what no client can beat. (``seconds``, the issue's bound, adds the
        delay to the slowest server whatever it is, so a client can finish under it.)"""
        return max(
            self.loads[0].seconds if self.loads else 0.0, self.timeout_floor, self.greylist_floor
        )


def schedule_bound(
    plan: WorldPlan,
    *,
    retry_delay: float,
    smtp_timeout: float,
    catch_all_probes: bool = True,
    client_sessions: int | None = None,
) -> Bound:
    """The schedule bound of *plan* (model in the module docstring).

    *client_sessions*, if given, caps C at the client's own per-server connection limit
    (the bound of a client that never opens more than that many sessions per server).
    """
    probes: Counter[str] = Counter()
    domains_on: Counter[str] = Counter()
    floor = 0.0
    for domain in plan.domains:
        first = plan.servers[plan.first_ip(domain)]
        waits = smtp_timeout if first.kind in (Kind.TARPIT, Kind.BLACKHOLE) else 0.0
        if domain.answering_ip is None:
            floor = max(floor, waits)
            continue
        probes[domain.answering_ip] += domain.addresses + (1 if catch_all_probes else 0)
        domains_on[domain.answering_ip] += 1
        if waits:
            floor = max(floor, waits + 3 * plan.servers[domain.answering_ip].latency)
    loads = []
    for ip, n in probes.items():
        server = plan.servers[ip]
        assert server.max_connections is not None and server.max_recipients is not None
        sessions = server.max_connections
        if client_sessions is not None:
            sessions = min(sessions, client_sessions)
        batch = min(server.max_recipients, MAX_BATCH)
        seconds = server.latency * (2 + math.ceil(n / (sessions * batch)))
        loads.append(
            ServerLoad(ip, server.kind, domains_on[ip], n, sessions, batch, server.latency, seconds)
        )
    loads.sort(key=lambda load: (-load.seconds, load.ip))
    greylisting = any(d.kind is Kind.GREYLIST for d in plan.domains)
    delay = retry_delay if greylisting else 0.0
    slowest = max(loads[0].seconds if loads else 0.0, floor)
    grey = max(
        (
            load.latency * (3 + math.ceil(load.probes / (load.sessions * load.batch))) + retry_delay
            for load in loads
            if load.kind is Kind.GREYLIST
        ),
        default=0.0,
    )
    return Bound(max(slowest + delay, grey), loads, floor, delay, grey)


class FastDns:
    """A UDP DNS front for a world's :class:`Zone` that keeps up with bursts.

    The world's own server (dnslib, parsing and packing every query in the world's event
    loop) answers a few hundred queries a second on a busy machine; a validator starting
    thousands of lookups at once then sees DNS timeouts the world caused.  A real caching
    resolver answers in microseconds, so this front packs the world's answers (from the
    world's own ZoneResolver) once per (name, type) up front, and per query only finds the
    question and copies the query's ID; anything else (unknown names, other types) gets
    the full dnslib treatment.  It serves from its own thread with a large receive buffer.
    """

    QTYPES = ("MX", "A", "AAAA")

    def __init__(self, zone: Zone, names: Iterable[str], *, receive_buffer: int = 8 << 20) -> None:
        self._zone = zone
        self._resolver = ZoneResolver(zone)
        self._answers: dict[tuple[bytes, int], bytes] = {}
        self._receive_buffer = receive_buffer
        for name in names:
            for qtype in self.QTYPES:
                query = bytes(DNSRecord.question(name, qtype).pack())
                reply = self._full(query)
                if reply is not None:
                    self._answers[self._key(query)] = reply
        self.queries = 0
        self.first: float | None = None  # time.perf_counter() of the first and last query
        self.last: float | None = None
        self.first_by_name: dict[str, float] = {}  # lower-cased name -> its first query
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @staticmethod
    def _key(query: bytes) -> tuple[bytes, int]:
        """(lower-cased wire qname, qtype) of a query's first question."""
        end = 12
        while query[end] != 0:
            end += 1 + query[end]
        return bytes(query[12 : end + 1]).lower(), int.from_bytes(query[end + 1 : end + 3], "big")

    def _note_name(self, query: bytes, now: float) -> None:
        """Remember when a name was first asked about (any type)."""
        try:
            wire, _ = self._key(query)
        except IndexError:
            return
        labels, at = [], 0
        while at < len(wire) and wire[at]:
            labels.append(wire[at + 1 : at + 1 + wire[at]].decode("ascii", "replace"))
            at += 1 + wire[at]
        self.first_by_name.setdefault(".".join(labels), now)

    def _full(self, query: bytes) -> bytes | None:
        """The world resolver's answer to *query* (None: no reply, as the world would)."""
        try:
            request = DNSRecord.parse(query)
        except DNSError:
            return None
        node = self._zone.lookup(str(request.q.qname))
        if node is not None and node.blackhole:
            return None
        reply: DNSRecord = self._resolver.resolve(request, None)
        return bytes(reply.pack())

    def answer(self, query: bytes) -> bytes | None:
        """The reply datagram to *query* (None: send nothing)."""
        try:
            key = self._key(query)
        except IndexError:
            return None
        packed = self._answers.get(key)
        if packed is None:
            return self._full(query)
        flags = (packed[2] & 0xFE) | (query[2] & 0x01)  # echo the query's RD bit
        return query[:2] + bytes([flags]) + packed[3:]

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("FastDns not started")
        return int(self._sock.getsockname()[1])

    def start(self, host: str = "127.0.0.1") -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(
                socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), self._receive_buffer
            )
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._receive_buffer)
        sock.bind((host, 0))
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="fastdns", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        assert self._sock is not None
        sock = self._sock
        while not self._stopping.is_set():
            try:
                query, client = sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.perf_counter()
            self.first = self.first or now
            self.last = now
            self.queries += 1
            self._note_name(query, now)
            reply = self.answer(query)
            if reply is not None:
                sock.sendto(reply, client)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def dns_names(plan: WorldPlan) -> list[str]:
    """Every name of the plan's zone a validator asks about: domains and MX hosts."""
    return [d.name for d in plan.domains] + list(plan.hosts)

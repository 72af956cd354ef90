"""`mailvet validate --checks smtp` on a generated multi-domain mail world, against its
schedule bound.

    .venv/bin/python bench/world_bench.py [--addresses 100000] [--domains 2000] [--servers 150]
        [--seed 7] [--exponent 1.1] [--retry-delay 2] [--smtp-timeout 3] [--tarpit-latency 30]
        [--per-host N] [--max-connections N] [--dns fast|world] [--dns-timeout 5]
        [--env MAILVET_X=VALUE ...] [--src DIR] [--log-level debug] [--time-limit 900]
    .venv/bin/python bench/world_bench.py --addresses 5000 --domains 200 --servers 30   # quick

The world (bench/worldgen.py, see its docstring for the details and the bound's model):
Zipf-distributed addresses over the domains, domains over shared loopback servers
(127.0.1.x) with per-server latency 10-300 ms, session caps and RCPT limits; 3% greylisting
domains, 1% tar-pitted, 2% with a dead MX host (half with a live backup); 90% of the
mailboxes exist.  Every address's expected verdict is known to the generator.  The
greylisting servers greylist for --greylist-delay seconds (default: 3/4 of the retry delay):
a retry sooner than that after the address's first 450 gets 450 again, as from postgrey.

The mail world runs in this process (its CPU is not mailvet's); mailvet runs in a
subprocess with the world's env() plus MAILVET_DATA_DIR (temp), MAILVET_DNS_TIMEOUT (--dns-timeout),
MAILVET_SMTP_TIMEOUT (--smtp-timeout), MAILVET_SMTP_RETRY_DELAY (--retry-delay) and, only if
given, MAILVET_SMTP_PER_HOST_CONNECTIONS / MAILVET_SMTP_MAX_CONNECTIONS.  DNS is answered by
worldgen.FastDns by default (the world's answers, packed once up front, served from a thread
with a large receive buffer): the world's own dnslib server, parsing every query inside the
world's event loop, falls behind a burst of thousands of lookups on a busy machine and drops
or delays them (--dns world shows it; the dropped-datagram count is printed either way).

Printed: wall time beside the schedule bound and their ratio, the child's CPU seconds per
1,000 addresses (os.wait4), server-limit figures summed over servers (421s over a session
cap: a server's first one is how a client learns its cap, printed on its own line like the
452 RCPT-limit learning; every later one is a violation, as is a session served beyond a
cap; peak sessions against each cap; RCPTs refused 452 over a server's RCPT limit), and
every output row compared with its expected verdict (counts by (expected, got), by server,
examples), how the greylisted addresses were retried (the time from each address's 450 to
its next RCPT, from the servers' record; a retry the server found too soon is a miss),
and a timeline seen from the world's side (when DNS queries and each server's RCPTs came,
against each server's own T), with the world's event-loop lag (is a timeout the
world's fault?) and the DNS datagrams dropped.
Targets: wall <= 1.5x bound, <= 2 CPU-s per 1,000 addresses, 0 violations, 0 wrong verdicts.
A benchmark reports: it exits 0 whatever the figures (1 only if mailvet itself failed).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import resource
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    OUT_DIR,
    REPO_ROOT,
    clean_env,
    mailvet_command,
    report_targets,
    run_child,
)

sys.path.insert(0, str(REPO_ROOT))

from bench.worldgen import (
    LIVE,
    POSTMASTER,
    Bound,
    FastDns,
    Kind,
    WorldPlan,
    build_world,
    dns_names,
    generate,
    schedule_bound,
    write_csv,
)
from tests.mailworld.dns_server import Node
from tests.mailworld.smtp_server import SmtpStats
from tests.mailworld.world import MailWorld

TARGET_RATIO = 1.5
GREYLIST_DELAY_SHARE = 0.75  # the servers' greylisting delay, as a share of the retry delay
TARGET_CPU_PER_1000 = 2.0
DEFAULT_PER_HOST = 3  # mailvet's default (SmtpSettings.per_host_connections)


class RcptClock:
    """When each server answered its first and last RCPT (wraps SmtpServer.rcpt_reply, which
    the world's loop calls once per considered RCPT), in time.perf_counter() seconds."""

    def __init__(self, world: MailWorld, ips: list[str]) -> None:
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.dns_queries = 0
        for ip in ips:
            server = world.smtp(ip)
            server.rcpt_reply = self._wrap(ip, server.rcpt_reply)  # type: ignore[method-assign]
        lookup = world.zone.lookup

        def timed_lookup(name: str) -> Node | None:
            now = time.perf_counter()
            self.first.setdefault("dns", now)
            self.last["dns"] = now
            self.dns_queries += 1
            return lookup(name)

        world.zone.lookup = timed_lookup  # type: ignore[method-assign]

    def _wrap(self, ip: str, reply: Callable[[str], str]) -> Callable[[str], str]:
        first, last = self.first, self.last

        def timed(address: str) -> str:
            now = time.perf_counter()
            first.setdefault(ip, now)
            last[ip] = now
            domain = "@" + address.rpartition("@")[2].lower()  # "@": apart from the IPs
            first.setdefault(domain, now)
            last[domain] = now
            return reply(address)

        return timed


class ServerSampler:
    """Every PERIOD seconds (in the world's loop), each live server's RCPTs answered so far
    and sessions open now: how a server's work was spread over the run."""

    PERIOD = 0.5

    def __init__(self, world: MailWorld, ips: list[str]) -> None:
        self._servers = {ip: world.smtp(ip) for ip in ips}
        self.samples: list[tuple[float, dict[str, tuple[int, int]]]] = []
        self._stop = False

    async def run(self) -> None:
        while not self._stop:
            now = time.perf_counter()
            self.samples.append(
                (
                    now,
                    {
                        ip: (server.stats.rcpt_total, server._active)
                        for ip, server in self._servers.items()
                    },
                )
            )
            await asyncio.sleep(self.PERIOD)

    def start(self, world: MailWorld) -> None:
        loop = getattr(world, "_loop", None)
        if loop is not None:
            self._future = asyncio.run_coroutine_threadsafe(self.run(), loop)

    def stop(self) -> None:
        self._stop = True

    def strip(self, ip: str, spawned: float, step: float = 1.0) -> str:
        """'t:rcpts/sessions' per `step` seconds for one server (RCPTs answered in that
        second, the most sessions open at a sample in it)."""
        bins: dict[int, list[int]] = {}
        before = 0
        for at, figures in self.samples:
            rcpts, active = figures[ip]
            slot = int((at - spawned) // step)
            entry = bins.setdefault(slot, [0, 0])
            entry[0] += rcpts - before
            entry[1] = max(entry[1], active)
            before = rcpts
        return " ".join(
            f"{slot}:{rcpts}/{active}" for slot, (rcpts, active) in sorted(bins.items())
        )


SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux: past net.core.rmem_max (root)


def widen_dns_buffer(world: MailWorld, size: int) -> int:
    """Give the world's DNS UDP socket a receive buffer of *size* bytes; returns what the
    kernel granted.  A burst of queries larger than the default buffer (~208 KiB, a few
    hundred datagrams) is otherwise dropped, and mailvet sees DNS timeouts the world caused.
    (Reaches into DnsTestServer._udp: the world has no option for it.)"""
    udp = getattr(world.dns, "_udp", None)
    if udp is None:
        return 0
    sock: socket.socket = udp.server.socket
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


class LoopLag:
    """How late the mail world's event loop wakes up (a 10 ms sleep, repeated): if the world
    falls behind, its replies are late and a timeout is the world's fault, not mailvet's."""

    PERIOD = 0.01

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._stop = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop:
            before = loop.time()
            await asyncio.sleep(self.PERIOD)
            self.lags.append(loop.time() - before - self.PERIOD)

    def start(self, world: MailWorld) -> None:
        loop = getattr(world, "_loop", None)  # the world's own loop (no public handle)
        if loop is not None:
            self._future = asyncio.run_coroutine_threadsafe(self.run(), loop)

    def stop(self) -> None:
        self._stop = True

    def summary(self) -> str:
        if not self.lags:
            return "not measured"
        lags = sorted(self.lags)
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        p50, top = lags[len(lags) // 2], lags[-1]
        return f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {top * 1000:.0f} ms"


def udp_drops(port: int) -> int | None:
    """Datagrams the kernel dropped on the world's DNS socket (127.0.0.1:port), from
    /proc/net/udp (last column): queries lost because its receive buffer was full."""
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return None
    wanted = f"0100007F:{port:04X}"
    for line in lines:
        fields = line.split()
        if fields[1] == wanted:
            return int(fields[-1])
    return None


def check_output(
    path: Path, expected: dict[str, tuple[str, str]]
) -> tuple[int, Counter[tuple[str, str]], Counter[tuple[str, str]], list[str], list[str]]:
    """Returns (wrong rows, verdicts seen, mismatches by 'want -> got', a few examples,
    the addresses with a wrong verdict)."""
    seen: Counter[tuple[str, str]] = Counter()
    mismatches: Counter[tuple[str, str]] = Counter()
    examples: list[str] = []
    wrong_addresses: list[str] = []
    rows = 0
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            rows += 1
            got = (row["mailvet_status"], row["mailvet_reason"])
            seen[got] += 1
            want = expected.get(row["email"])
            if got != want:
                mismatches[("/".join(want) if want else "(not in input)", "/".join(got))] += 1
                wrong_addresses.append(row["email"])
                if len(examples) < 8:
                    examples.append(
                        f"{row['email']}: got {'/'.join(got)} want {'/'.join(want or ('?',))}"
                        f" (mx={row['mailvet_mx']} code={row['mailvet_smtp_code']})"
                    )
    wrong = sum(mismatches.values())
    if rows != len(expected):
        wrong += abs(len(expected) - rows)
        examples.append(f"output has {rows} rows, input {len(expected)}")
    return wrong, seen, mismatches, examples, wrong_addresses


def describe_world(plan: WorldPlan) -> list[str]:
    kinds = Counter(s.kind for s in plan.servers.values())
    dkinds = Counter(d.kind for d in plan.domains)
    total = len(plan.expected)
    top10 = sum(d.addresses for d in plan.domains[:10])
    two_mx = sum(len(d.mx) > 1 for d in plan.domains)
    own = sum(any(host.endswith("." + d.name) for _, host in d.mx) for d in plan.domains)
    backups = sum(
        d.kind in (Kind.REFUSED, Kind.BLACKHOLE) and d.answering_ip is not None
        for d in plan.domains
    )
    shared = Counter(d.answering_ip for d in plan.domains if d.answering_ip)
    busiest_ip, busiest_n = shared.most_common(1)[0]
    return [
        f"world        : {total:,} addresses, {len(plan.domains):,} domains "
        f"(Zipf s={plan.exponent}; "
        f"largest {plan.domains[0].addresses:,}, top 10 hold {top10 / total:.0%}), "
        f"{len(plan.servers)} server addresses, {len(plan.hosts):,} MX host names",
        "               servers: " + ", ".join(f"{kinds[k]} {k.value}" for k in Kind),
        (
            "               domains: "
            + ", ".join(f"{dkinds[k]} {k.value}" for k in Kind)
            + f" ({backups} dead-MX domains with a live backup); {two_mx} with 2 MX;"
            f" {own} name their own MX; busiest server {busiest_ip} hosts {busiest_n} domains"
        ),
        "               expected: "
        + ", ".join(
            f"{'/'.join(k)}={v:,}" for k, v in sorted(Counter(plan.expected.values()).items())
        ),
    ]


def describe_bound(bound: Bound, label: str) -> list[str]:
    s = bound.slowest
    return [
        f"{label}: {bound.seconds:.2f}s = slowest server {s.ip} ({s.kind.value}, "
        f"{s.domains} domains, "
        f"{s.probes:,} probes, C={s.sessions} sessions x R={s.batch} RCPT / "
        f"L={s.latency * 1000:.0f} ms "
        f"= {s.rate:,.0f} probes/s -> {s.seconds:.2f}s)"
        + (f", timeout floor {bound.timeout_floor:.2f}s" if bound.timeout_floor > s.seconds else "")
        + f" + greylisting retry delay {bound.retry_delay:g}s"
        + (
            f"; greylisting servers need {bound.greylist_floor:.2f}s"
            " (both asks and the delay between)"
            if bound.greylist_floor
            else ""
        ),
    ]


def greylist_retries(plan: WorldPlan, stats: dict[str, SmtpStats]) -> tuple[list[float], int, int]:
    """On the greylisting servers, for each address first answered 450 and asked again: the
    seconds from that 450 to its next RCPT; how many RCPTs were greylisted again for coming
    too soon (the postmaster controls left out: they are asked once per session, not
    retried); how many greylisted addresses were never asked again."""
    waits: list[float] = []
    early = 0
    unretried = 0
    for ip, st in stats.items():
        if plan.servers[ip].kind is not Kind.GREYLIST:
            continue
        events: dict[str, list[tuple[float, int]]] = {}
        for event in st.rcpt_log:
            if not event.address.startswith(POSTMASTER + "@"):
                events.setdefault(event.address, []).append((event.at, event.code))
        for asks in events.values():
            (first_at, first_code), rest = asks[0], asks[1:]
            if first_code != 450:
                continue
            if not rest:
                unretried += 1
                continue
            waits.append(rest[0][0] - first_at)
            early += sum(code == 450 for _, code in rest)
    return waits, early, unretried


def server_figures(plan: WorldPlan, stats: dict[str, SmtpStats]) -> dict[str, int]:
    f: Counter[str] = Counter()
    for ip, st in stats.items():
        server = plan.servers[ip]
        f["turned_away"] += st.violations
        # the first 421 "too many connections" of a server tells the client its cap (nothing
        # else can: no server advertises it); every later one is a cap not kept
        f["cap_learned"] += st.violations > 0
        f["violations"] += max(0, st.violations - 1)
        f["protocol_errors"] += st.protocol_errors
        f["connections"] += st.connections_total
        f["transactions"] += st.transactions
        f["rcpt"] += st.rcpt_total
        if server.kind in LIVE:
            assert server.max_connections is not None
            if st.max_concurrent > server.max_connections:
                f["over_cap_servers"] += 1
            if st.max_concurrent == server.max_connections:
                f["at_cap_servers"] += 1
            over_limit = st.rcpt_total - len(st.recipients)  # answered 452 by max_recipients
            f["rcpt_over_limit"] += over_limit
            f["rcpt_over_limit_servers"] += over_limit > 0
            f["servers_with_violations"] += st.violations > 1
    return dict(f)


def domain_timeline(
    plan: WorldPlan, bound: Bound, clock: RcptClock, fast: FastDns | None, spawned: float
) -> list[str]:
    """The domains whose last RCPT came last: when their MX was first asked for (--dns fast
    only), their first and last RCPT, beside their share of their server's T (the domain's
    probes at the server's allowed rate)."""
    rate = {load.ip: load.rate for load in bound.loads}
    asked = fast.first_by_name if fast is not None else {}
    ends = sorted(
        ((t - spawned, key[1:]) for key, t in clock.last.items() if key.startswith("@")),
        reverse=True,
    )
    by_name = {d.name: d for d in plan.domains}
    lines = [
        "               domains that finished last: MX asked, first RCPT, last RCPT,"
        " its share of its server's T:"
    ]
    for end, name in ends[:8]:
        domain = by_name[name]
        ip = domain.answering_ip or "-"
        dns = asked.get(name)
        share = (domain.addresses + 1) / rate[ip] if ip in rate else 0.0
        first = clock.first["@" + name] - spawned
        lines.append(
            f"    {name:<28} {domain.kind.value:<12} {domain.addresses:>6,} addr on {ip:<12}"
            f" MX {dns - spawned if dns else -1:5.1f}  first {first:5.1f}"
            f"  last {end:5.1f}  share {share:5.2f}"
        )
    starts = sorted(clock.first[key] - spawned for key in clock.first if key.startswith("@"))
    if starts:
        pick = [starts[int(q * (len(starts) - 1))] for q in (0.1, 0.5, 0.9, 1.0)]
        lines.append(
            "               first RCPT of a domain: 10% by {:.1f}s, 50% by {:.1f}s,"
            " 90% by {:.1f}s, all by {:.1f}s".format(*pick)
        )
    if asked:
        mx_times = sorted(asked[d.name] - spawned for d in plan.domains if d.name in asked)
        pick = [mx_times[int(q * (len(mx_times) - 1))] for q in (0.1, 0.5, 0.9, 1.0)]
        lines.append(
            "               first MX query of a domain: 10% by {:.1f}s, 50% by {:.1f}s,"
            " 90% by {:.1f}s, all by {:.1f}s".format(*pick)
        )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--addresses", type=int, default=100_000)
    ap.add_argument("--domains", type=int, default=2_000)
    ap.add_argument("--servers", type=int, default=150)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--exponent", type=float, default=1.1, help="Zipf exponent of domain sizes")
    ap.add_argument(
        "--retry-delay", type=float, default=2.0, help="MAILVET_SMTP_RETRY_DELAY (greylisting)"
    )
    ap.add_argument(
        "--greylist-delay",
        type=float,
        default=None,
        help="seconds the greylisting servers greylist an address for (default: 3/4 of"
        " --retry-delay)",
    )
    ap.add_argument("--smtp-timeout", type=float, default=3.0, help="MAILVET_SMTP_TIMEOUT")
    ap.add_argument(
        "--tarpit-latency", type=float, default=30.0, help="reply delay of tar-pit servers"
    )
    ap.add_argument(
        "--per-host",
        type=int,
        default=None,
        help="MAILVET_SMTP_PER_HOST_CONNECTIONS (default: unset)",
    )
    ap.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help="MAILVET_SMTP_MAX_CONNECTIONS (default: unset)",
    )
    ap.add_argument(
        "--src",
        type=Path,
        default=None,
        help="run the mailvet package found in this src folder (PYTHONPATH) instead of the"
        " venv's, e.g. an export of a commit: git archive HEAD src | tar -x -C /tmp/head",
    )
    ap.add_argument(
        "--log-level",
        default=None,
        help="MAILVET_LOG_LEVEL for the child (its stderr goes to bench/out/world_run.stderr.txt)",
    )
    ap.add_argument(
        "--dns",
        choices=("fast", "world"),
        default="fast",
        help="answer DNS from precomputed replies in a thread of its own (fast, what a caching"
        " resolver does) or from the world's own dnslib server in its event loop (world)",
    )
    ap.add_argument(
        "--dns-timeout", type=float, default=5.0, help="MAILVET_DNS_TIMEOUT (mailvet's default: 5)"
    )
    ap.add_argument(
        "--dns-rcvbuf",
        type=int,
        default=8 << 20,
        help="receive buffer of the world's DNS UDP socket, bytes (0: leave the default)",
    )
    ap.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="MAILVET_X=VALUE",
        help="one more setting for mailvet (repeatable), e.g. MAILVET_WORKER_CONCURRENCY=64",
    )
    ap.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        metavar="PATH",
        help="run mailvet under this py-spy executable; collapsed stacks (every thread, idle"
        " excluded) go to bench/out/world_profile.txt (CPU figures then include py-spy)",
    )
    ap.add_argument(
        "--time-limit", type=float, default=900.0, help="kill mailvet after this many seconds"
    )
    args = ap.parse_args()
    if args.tarpit_latency <= args.smtp_timeout:
        ap.error("--tarpit-latency must exceed --smtp-timeout")

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    t0 = time.perf_counter()
    plan = generate(
        args.addresses,
        args.domains,
        args.servers,
        args.seed,
        exponent=args.exponent,
        tarpit_latency=args.tarpit_latency,
    )
    bound = schedule_bound(plan, retry_delay=args.retry_delay, smtp_timeout=args.smtp_timeout)
    per_host = args.per_host if args.per_host is not None else DEFAULT_PER_HOST
    client_bound = schedule_bound(
        plan, retry_delay=args.retry_delay, smtp_timeout=args.smtp_timeout, client_sessions=per_host
    )
    greylist_delay = (
        args.greylist_delay
        if args.greylist_delay is not None
        else args.retry_delay * GREYLIST_DELAY_SHARE
    )
    world = build_world(plan, greylist_delay=greylist_delay)
    fast = (
        FastDns(world.zone, dns_names(plan), receive_buffer=args.dns_rcvbuf)
        if args.dns == "fast"
        else None
    )
    live_ips = [ip for ip, spec in plan.servers.items() if spec.kind in LIVE]
    clock = RcptClock(world, live_ips)
    sampler = ServerSampler(world, live_ips)
    gen_seconds = time.perf_counter() - t0

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / "world_result.csv"
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="mailvet-world-bench-") as tmp_s:
        tmp = Path(tmp_s)
        src = tmp / "world.csv"
        write_csv(plan, src)
        world.start()
        try:
            rcvbuf = widen_dns_buffer(world, args.dns_rcvbuf) if args.dns_rcvbuf else 0
            extra = dict(world.env())
            dns_port = world.dns_port
            if fast is not None:
                fast.start()
                dns_port = fast.port
                extra["MAILVET_DNS_SERVERS"] = f"127.0.0.1:{dns_port}"
            extra.update(
                {
                    "MAILVET_DATA_DIR": str(tmp / "data"),
                    "MAILVET_DNS_TIMEOUT": str(args.dns_timeout),
                    "MAILVET_SMTP_TIMEOUT": str(args.smtp_timeout),
                    "MAILVET_SMTP_RETRY_DELAY": str(args.retry_delay),
                }
            )
            if args.per_host is not None:
                extra["MAILVET_SMTP_PER_HOST_CONNECTIONS"] = str(args.per_host)
            if args.log_level is not None:
                extra["MAILVET_LOG_LEVEL"] = args.log_level
            if args.max_connections is not None:
                extra["MAILVET_SMTP_MAX_CONNECTIONS"] = str(args.max_connections)
            for setting in args.env:
                key, _, value = setting.partition("=")
                extra[key] = value
            command = mailvet_command()
            if args.src is not None:
                extra["PYTHONPATH"] = str(args.src.resolve())
                command = [sys.executable, "-m", "mailvet"]
            cmd = command + ["validate", str(src), "-o", str(out), "--checks", "smtp"]
            if args.py_spy is not None:
                profile = OUT_DIR / "world_profile.txt"
                cmd = [
                    str(args.py_spy),
                    "record",
                    "--nonblocking",
                    "-r",
                    "200",
                    "-f",
                    "raw",
                    "-o",
                    str(profile),
                    "--",
                    *cmd,
                ]
            lag = LoopLag()
            lag.start(world)
            sampler.start(world)
            self_before = resource.getrusage(resource.RUSAGE_SELF)
            spawned = time.perf_counter()
            run = run_child(
                cmd,
                clean_env(extra),
                tmp,
                OUT_DIR / "world_run",
                limit=args.time_limit,
                sample_tree=False,  # the world's CPU is this process's own: no sampler in it
            )
            self_after = resource.getrusage(resource.RUSAGE_SELF)
            lag.stop()
            sampler.stop()
            dns_drops = udp_drops(dns_port)
        finally:
            if fast is not None:
                fast.stop()
            world.stop()
        stats = {
            ip: world.smtp(ip).stats for ip, s in plan.servers.items() if s.kind is not Kind.REFUSED
        }
        dns_errors = list(world.dns.errors)

    total = len(plan.expected)
    print(
        f"measured     : {started}; machine: 2 cores shared with other work "
        "(figures vary run to run)"
    )
    print(
        f"mailvet code : {args.src.resolve() if args.src else REPO_ROOT / 'src'} "
        "(as on disk at that time)"
    )
    for line in describe_world(plan):
        print(line)
    print(
        "mailvet      : per-host connections "
        f"{per_host}{'' if args.per_host is not None else ' (default, env unset)'}, "
        f"max connections {args.max_connections or 'default'}, "
        f"SMTP timeout {args.smtp_timeout:g}s, "
        f"retry delay {args.retry_delay:g}s (servers greylist {greylist_delay:g}s); "
        f"{' '.join(args.env) + '; ' if args.env else ''}tar-pit latency {args.tarpit_latency:g}s; "
        f"world built in {gen_seconds:.1f}s"
    )
    print(
        "bound model  : per live server T = L*(2 + ceil(N/(C*R))): greeting+EHLO, then pipelined"
        " transactions of R RCPTs, one L each, C sessions at once;"
    )
    print(
        "               N = its addresses + 1 catch-all probe per domain; servers in parallel, "
        "no global"
        " connection cap; + SMTP timeout behind tar-pits/black holes; + retry delay once"
    )
    print(
        "               a greylisting server asks twice: at least L*(3 + ceil(N/(C*R))) + retry"
        " delay; the bound is never below that"
    )
    for line in describe_bound(bound, "bound        "):
        print(line)
    for line in describe_bound(client_bound, f"bound C<={per_host}   "):
        print(line)
    if run.returncode != 0:
        killed = (
            f" (killed after --time-limit {args.time_limit:g}s)" if run.returncode == -9 else ""
        )
        print(f"mailvet failed (exit {run.returncode}){killed}:\n{run.stderr[-3000:]}")
        return 1

    wrong, seen, mismatches, examples, wrong_addresses = check_output(out, plan.expected)
    fig = server_figures(plan, stats)
    cpu = run.user + run.system
    cpu_per_1000 = cpu / total * 1000
    ratio = run.wall / bound.seconds
    world_cpu = (self_after.ru_utime + self_after.ru_stime) - (
        self_before.ru_utime + self_before.ru_stime
    )
    violations = fig.get("violations", 0)
    grey_waits, grey_early, grey_unretried = greylist_retries(plan, stats)
    print()
    print(f"{'figure':<34}{'measured':>16}   target")
    rows = [
        ("wall time", f"{run.wall:,.1f} s", ""),
        ("schedule bound", f"{bound.seconds:,.1f} s", ""),
        ("wall / bound", f"{ratio:.2f}x", f"<= {TARGET_RATIO}x"),
        (
            "wall / strict bound",
            f"{run.wall / bound.strict:.2f}x",
            f"(information: {bound.strict:.1f} s, the retry delay only on greylisting servers)",
        ),
        (
            f"wall / bound with C<={per_host}",
            f"{run.wall / client_bound.seconds:.2f}x",
            "(information)",
        ),
        ("addresses/s", f"{total / run.wall:,.0f}", ""),
        ("child CPU (user+sys)", f"{cpu:,.1f} s", ""),
        ("CPU s per 1,000 addresses", f"{cpu_per_1000:.2f}", f"<= {TARGET_CPU_PER_1000}"),
        (
            "mail world CPU (this process)",
            f"{world_cpu:,.1f} s",
            f"({world_cpu / run.wall:.0%} of a core)",
        ),
        ("peak RSS of mailvet", f"{run.maxrss_mb:,.0f} MiB", ""),
        ("421 after the cap was learned", f"{violations:,}", "0"),
        (
            "421 learning a cap (first/server)",
            f"{fig.get('cap_learned', 0):,}",
            "caps of those servers: "
            + ", ".join(
                f"C={c}: {n}"
                for c, n in sorted(
                    Counter(
                        plan.servers[ip].max_connections
                        for ip, st in stats.items()
                        if st.violations
                    ).items()
                )
            ),
        ),
        ("  servers with more than one 421", f"{fig.get('servers_with_violations', 0)}", "0"),
        ("servers over their cap", f"{fig.get('over_cap_servers', 0)}", "0"),
        ("servers that reached their cap", f"{fig.get('at_cap_servers', 0)}", ""),
        ("RCPTs refused 452 (over R)", f"{fig.get('rcpt_over_limit', 0):,}", "(client learns R)"),
        ("  servers with 452s", f"{fig.get('rcpt_over_limit_servers', 0)}", ""),
        ("protocol errors", f"{fig.get('protocol_errors', 0):,}", "0"),
        (
            "connections / transactions",
            f"{fig.get('connections', 0):,} / {fig.get('transactions', 0):,}",
            "",
        ),
        ("RCPTs sent (incl. catch-all, retries)", f"{fig.get('rcpt', 0):,}", ""),
        ("wrong verdicts", f"{wrong:,}", "0"),
        ("greylisted again (retried too soon)", f"{grey_early:,}", "0"),
        ("greylisted, never asked again", f"{grey_unretried:,}", "0"),
    ]
    for name, value, target in rows:
        print(f"{name:<34}{value:>16}   {target}")
    for ip, st in sorted(stats.items()):
        if st.violations > 1:
            spec = plan.servers[ip]
            print(
                f"421s         : {ip} (C={spec.max_connections}, L={spec.latency * 1000:.0f} ms) "
                "turned away"
                f" {st.violations} of {st.connections_total} connections; "
                f"peak {st.max_concurrent} at once"
            )
    print("verdicts     : " + ", ".join(f"{'/'.join(k)}={v:,}" for k, v in sorted(seen.items())))
    if mismatches:
        by_domain = {d.name: d.answering_ip for d in plan.domains}
        turned_away = {ip for ip, st in stats.items() if st.violations}
        wrong_ips = Counter(by_domain.get(a.rpartition("@")[2]) for a in wrong_addresses)
        on_flooded = sum(n for ip, n in wrong_ips.items() if ip in turned_away)
        print(
            f"mismatches (expected -> got); {on_flooded:,} of {sum(wrong_ips.values()):,} are on "
            "servers"
            f" that turned connections away with 421, {len(wrong_ips)} servers involved:"
        )
        for (want, got), n in mismatches.most_common(12):
            print(f"    {want:<34} -> {got:<30} {n:,}")
        print("  by server (wrong verdicts; the server's C, R, L; what it saw):")
        for ip, n in wrong_ips.most_common(6):
            if ip is None:
                print(f"    (no live server)  {n:,} wrong")
                continue
            spec, st = plan.servers[ip], stats[ip]
            print(
                f"    {ip:<12} {n:>6,} wrong  {spec.kind.value}, "
                f"C={spec.max_connections} R={spec.max_recipients}"
                f" L={spec.latency * 1000:.0f} ms; 421s={st.violations} "
                f"452s={st.rcpt_total - len(st.recipients)}"
                f" connections={st.connections_total} transactions={st.transactions} "
                f"peak={st.max_concurrent}"
            )
        for line in examples:
            print(f"    e.g. {line}")
    dns_first, dns_last = clock.first.pop("dns", spawned), clock.last.pop("dns", spawned)
    dns_queries = clock.dns_queries
    if fast is not None:
        dns_first, dns_last, dns_queries = fast.first or spawned, fast.last or spawned, fast.queries
    ends = sorted(
        ((t - spawned, ip) for ip, t in clock.last.items() if not ip.startswith("@")),
        reverse=True,
    )
    if ends:
        bound_of = {load.ip: load for load in bound.loads}
        first_rcpt = min(t for ip, t in clock.first.items() if not ip.startswith("@")) - spawned
        print(
            f"timeline     : (s after spawn) DNS queries {dns_queries:,} from "
            f"{dns_first - spawned:.1f} to"
            f" {dns_last - spawned:.1f}; RCPTs from {first_rcpt:.1f} to {ends[0][0]:.1f}; "
            f"job ended at {run.wall:.1f}"
        )
        busy = run.wall - (dns_first - spawned)
        print(
            "               start-up (spawn to first DNS query) "
            f"{dns_first - spawned:.1f}s is outside the"
            f" bound's model; without it wall/bound = {busy / bound.seconds:.2f}x; load average now"
            f" {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        print(
            "               servers that finished last: first RCPT, last RCPT, the server's own T:"
        )
        for end, ip in ends[:5]:
            load = bound_of.get(ip)
            print(
                f"    {ip:<12} {plan.servers[ip].kind.value:<12} first "
                f"{clock.first[ip] - spawned:6.1f}  last {end:6.1f}"
                f"  T {load.seconds if load else 0:6.2f}  ({load.probes if load else 0:,} probes,"
                f" {load.rate if load else 0:,.0f}/s allowed)"
            )
        print(
            "               RCPTs answered per second / most sessions open (t:n/s), the last"
            " servers and the bound's:"
        )
        shown = [ip for _, ip in ends[:3]]
        if bound.slowest.ip not in shown:
            shown.append(bound.slowest.ip)  # the server the bound is made of
        for ip in shown:
            spec = plan.servers[ip]
            print(f"    {ip:<12} C={spec.max_connections} {sampler.strip(ip, spawned)}")
        for line in domain_timeline(plan, bound, clock, fast, spawned):
            print(line)
    server_name = (
        "the bench's FastDns front (--dns fast)"
        if fast is not None
        else "the world's dnslib server"
    )
    if grey_waits:
        grey_waits.sort()
        pick = [grey_waits[int(q * (len(grey_waits) - 1))] for q in (0.0, 0.5, 0.9, 1.0)]
        print(
            f"greylisting  : {len(grey_waits):,} addresses asked again, after their 450:"
            " min {:.2f}s, p50 {:.2f}s, p90 {:.2f}s, max {:.2f}s".format(*pick)
            + f" (retry delay {args.retry_delay:g}s)"
        )
    print(f"world loop   : late wake-ups of the mail world's event loop: {lag.summary()}")
    print(
        f"dns          : {dns_queries:,} queries answered by {server_name};"
        f" {dns_drops if dns_drops is not None else '?'} UDP queries dropped by its socket "
        "(receive buffer full;"
        f" {f'{rcvbuf:,} bytes' if rcvbuf else 'default size'})"
    )
    if dns_errors:
        print(f"dns errors   : {len(dns_errors)} ({dns_errors[0]!r})")
    checks = [
        ("wall/bound", ratio <= TARGET_RATIO, f"{ratio:.2f}x (target <= {TARGET_RATIO}x)"),
        (
            "cpu",
            cpu_per_1000 <= TARGET_CPU_PER_1000,
            f"{cpu_per_1000:.2f} CPU-s per 1,000 addresses (target <= {TARGET_CPU_PER_1000})",
        ),
        (
            "violations",
            violations == 0 and not fig.get("over_cap_servers"),
            f"{violations} (target 0)",
        ),
        ("verdicts", wrong == 0, f"{wrong} wrong (target 0)"),
        (
            "greylisting",
            grey_early == 0 and grey_unretried == 0,
            f"{grey_early} retried too soon, {grey_unretried} never retried (target 0)",
        ),
    ]
    return report_targets(checks, exit_on_miss=False)  # see bench/README.md: exits 0


if __name__ == "__main__":
    sys.exit(main())

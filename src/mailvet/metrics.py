"""What a running service counts, exported in the Prometheus text format on `/metrics`.

Code at a counting point calls one of the functions below (`metrics.rows_done(...)`). They
hand the figure to the process's recorder, which does nothing until a service calls
`enable()`: `mailvet check` and `mailvet validate` never import prometheus_client, and the
domain and pipeline code never import it at all. Tests install a recorder of their own with
`use()` (one that keeps what it was told).

Every metric is named `mailvet_*`; docs/metrics.md describes them and
docs/grafana/mailvet.json plots them.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ParamSpec, Protocol, TypeVar

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

P = ParamSpec("P")
T = TypeVar("T")

# job durations run from seconds (a small syntax-only list) to hours (a big SMTP job)
JOB_SECONDS_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)


class Recorder(Protocol):
    """Where the counting points' figures go (labels are small fixed sets: never an address,
    a domain or a job id)."""

    def rows_done(self, statuses: Mapping[str, int], reasons: Mapping[str, int]) -> None: ...

    def smtp_session(self, outcome: str) -> None: ...

    def smtp_command(self, command: str) -> None: ...

    def smtp_reply(self, code: int) -> None: ...

    def dns_query(self, rdtype: str) -> None: ...

    def dns_lookup(self, kind: str) -> None: ...

    def dns_cache_miss(self, kind: str) -> None: ...

    def chunks_in_flight(self, delta: int) -> None: ...

    def job_finished(self, status: str, seconds: float) -> None: ...

    def queue_depths(self, depths: Mapping[str, int]) -> None: ...

    def bus_reconnected(self) -> None: ...


class _Nothing:
    """The recorder of a process that exports nothing (the CLI's one-shot commands)."""

    def rows_done(self, statuses: Mapping[str, int], reasons: Mapping[str, int]) -> None:
        pass

    def smtp_session(self, outcome: str) -> None:
        pass

    def smtp_command(self, command: str) -> None:
        pass

    def smtp_reply(self, code: int) -> None:
        pass

    def dns_query(self, rdtype: str) -> None:
        pass

    def dns_lookup(self, kind: str) -> None:
        pass

    def dns_cache_miss(self, kind: str) -> None:
        pass

    def chunks_in_flight(self, delta: int) -> None:
        pass

    def job_finished(self, status: str, seconds: float) -> None:
        pass

    def queue_depths(self, depths: Mapping[str, int]) -> None:
        pass

    def bus_reconnected(self) -> None:
        pass


class PrometheusRecorder:
    """The figures as prometheus_client metrics in a registry of their own (plus the
    process, platform and garbage-collector collectors prometheus_client ships)."""

    def __init__(self) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            GCCollector,
            Histogram,
            PlatformCollector,
            ProcessCollector,
        )

        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self._rows = Counter(
            "mailvet_rows",
            "Rows validated, by verdict status",
            ["status"],
            registry=registry,
        )
        self._reasons = Counter(
            "mailvet_row_reasons",
            "Rows validated, by verdict reason",
            ["reason"],
            registry=registry,
        )
        self._smtp_sessions = Counter(
            "mailvet_smtp_sessions",
            "SMTP sessions to MX hosts, by outcome (open, refused, failed)",
            ["outcome"],
            registry=registry,
        )
        self._smtp_commands = Counter(
            "mailvet_smtp_commands",
            "SMTP commands sent, by verb",
            ["command"],
            registry=registry,
        )
        self._smtp_replies = Counter(
            "mailvet_smtp_replies",
            "SMTP replies received, by class (2xx, 3xx, 4xx, 5xx)",
            ["class"],
            registry=registry,
        )
        self._dns_queries = Counter(
            "mailvet_dns_queries",
            "DNS queries sent, by record type",
            ["type"],
            registry=registry,
        )
        self._dns_lookups = Counter(
            "mailvet_dns_lookups",
            "Mail-route and host-address lookups asked of the resolver, by kind",
            ["kind"],
            registry=registry,
        )
        self._dns_misses = Counter(
            "mailvet_dns_cache_misses",
            "Lookups not answered from the cache (they sent queries); hits = lookups - misses",
            ["kind"],
            registry=registry,
        )
        self._chunks = Gauge(
            "mailvet_chunks_in_flight",
            "Chunks being validated in this process",
            registry=registry,
        )
        self._jobs = Histogram(
            "mailvet_job_duration_seconds",
            "Seconds from a job's submission to its end, by final status",
            ["status"],
            buckets=JOB_SECONDS_BUCKETS,
            registry=registry,
        )
        self._depth = Gauge(
            "mailvet_queue_depth",
            "Messages waiting in a queue (per-job queues summed under their family name)",
            ["queue"],
            registry=registry,
        )
        self._reconnects = Counter(
            "mailvet_bus_reconnects",
            "Reconnections to the message broker after a lost connection",
            registry=registry,
        )

    def rows_done(self, statuses: Mapping[str, int], reasons: Mapping[str, int]) -> None:
        for status, n in statuses.items():
            self._rows.labels(status).inc(n)
        for reason, n in reasons.items():
            self._reasons.labels(reason).inc(n)

    def smtp_session(self, outcome: str) -> None:
        self._smtp_sessions.labels(outcome).inc()

    def smtp_command(self, command: str) -> None:
        self._smtp_commands.labels(command).inc()

    def smtp_reply(self, code: int) -> None:
        self._smtp_replies.labels(reply_class(code)).inc()

    def dns_query(self, rdtype: str) -> None:
        self._dns_queries.labels(rdtype.upper()).inc()

    def dns_lookup(self, kind: str) -> None:
        self._dns_lookups.labels(kind).inc()

    def dns_cache_miss(self, kind: str) -> None:
        self._dns_misses.labels(kind).inc()

    def chunks_in_flight(self, delta: int) -> None:
        self._chunks.inc(delta)

    def job_finished(self, status: str, seconds: float) -> None:
        self._jobs.labels(status).observe(max(0.0, seconds))

    def queue_depths(self, depths: Mapping[str, int]) -> None:
        summed: dict[str, int] = {}
        for name, depth in depths.items():
            family = queue_family(name)
            summed[family] = summed.get(family, 0) + depth
        self._depth.clear()  # a deleted queue is no longer reported
        for family, depth in summed.items():
            self._depth.labels(family).set(depth)

    def bus_reconnected(self) -> None:
        self._reconnects.inc()


def reply_class(code: int) -> str:
    """`250` -> "2xx"; anything outside 200-599 -> "other"."""
    return f"{code // 100}xx" if 200 <= code <= 599 else "other"


SMTP_VERBS = frozenset({"EHLO", "HELO", "STARTTLS", "MAIL", "RCPT", "RSET", "QUIT", "NOOP"})


def smtp_verbs(data: bytes) -> list[str]:
    """The verbs of the command lines in `data` (`MAIL FROM:<a@b>` -> "MAIL"); anything
    else is "OTHER", so a label never holds an address."""
    verbs = []
    for line in data.split(b"\r\n"):
        if line:
            verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper().decode("ascii", "replace")
            verbs.append(verb if verb in SMTP_VERBS else "OTHER")
    return verbs


def queue_family(name: str) -> str:
    """A port queue's name without the job id of a per-job queue (`rows.<job id>` -> "rows"):
    the label stays one of a handful of values."""
    return name.split(".", 1)[0]


_recorder: Recorder = _Nothing()


def use(recorder: Recorder) -> Recorder:
    """Send the figures to `recorder` from now on; returns the one it replaces."""
    global _recorder
    previous, _recorder = _recorder, recorder
    return previous


def enable() -> PrometheusRecorder:
    """Count into a Prometheus registry from now on (idempotent: a second call keeps the
    first registry and its counts)."""
    if isinstance(_recorder, PrometheusRecorder):
        return _recorder
    recorder = PrometheusRecorder()
    use(recorder)
    return recorder


def registry() -> CollectorRegistry:
    return enable().registry


def exposition() -> tuple[bytes, str]:
    """The current figures in the Prometheus text format, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(registry()), CONTENT_TYPE_LATEST


# --- the counting points' API -----------------------------------------------------------


def rows_done(statuses: Mapping[str, int], reasons: Mapping[str, int]) -> None:
    """A chunk's verdicts, counted by status and by reason (ChunkDone.statuses/reasons)."""
    _recorder.rows_done(statuses, reasons)


def smtp_session(outcome: str) -> None:
    _recorder.smtp_session(outcome)


def smtp_commands(data: bytes) -> None:
    """The command lines about to be written to an SMTP server."""
    if isinstance(_recorder, _Nothing):
        return  # not even the parsing
    for verb in smtp_verbs(data):
        _recorder.smtp_command(verb)


def smtp_reply(code: int) -> None:
    _recorder.smtp_reply(code)


def dns_query(rdtype: str) -> None:
    _recorder.dns_query(rdtype)


def dns_lookup(kind: str) -> None:
    _recorder.dns_lookup(kind)


def dns_cache_miss(kind: str) -> None:
    _recorder.dns_cache_miss(kind)


def job_finished(status: str, created_at: datetime | None) -> None:
    """A job reached its final `status`; its duration runs from `created_at` to now."""
    if created_at is None:
        return
    if created_at.tzinfo is None:  # the repositories store UTC
        created_at = created_at.replace(tzinfo=UTC)
    _recorder.job_finished(status, (datetime.now(UTC) - created_at).total_seconds())


def queue_depths(depths: Mapping[str, int]) -> None:
    _recorder.queue_depths(depths)


def bus_reconnected() -> None:
    _recorder.bus_reconnected()


def in_flight(handle: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Decorate a chunk handler: `mailvet_chunks_in_flight` counts its running calls."""

    @functools.wraps(handle)
    async def counted(*args: P.args, **kwargs: P.kwargs) -> T:
        _recorder.chunks_in_flight(1)
        try:
            return await handle(*args, **kwargs)
        finally:
            _recorder.chunks_in_flight(-1)

    return counted

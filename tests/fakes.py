"""Fakes for the ports: DNS and SMTP ones that take a function (httpx MockTransport style),
and in-memory adapters that also record what happened and let a test wait for it (instead of
patching instances or sleeping)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mailvet.adapters.bus.memory import MemoryBus
from mailvet.adapters.db.memory import MemoryJobRepository
from mailvet.domain.job import Job, JobStatus
from mailvet.domain.messages import Message
from mailvet.domain.ports import MailRoute, ProbeResult, RouteKind
from mailvet.domain.smtp_reply import Reply

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass
class MovingClock:
    """A wall clock (mailvet.clock.Clock) that stands still until the test moves it."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FakeResolver:
    def __init__(self, route: Callable[[str], MailRoute] | None = None) -> None:
        self._route = route or (lambda domain: MailRoute(RouteKind.MX, (f"mx.{domain}",)))
        self.asked: list[str] = []

    async def mail_route(self, domain: str) -> MailRoute:
        self.asked.append(domain)
        return self._route(domain)

    async def host_addresses(self, host: str) -> list[str]:
        return ["192.0.2.1"]


ACCEPT = Reply(250, "2.1.5", "OK")
UNKNOWN = Reply(550, "5.1.1", "User unknown")


class FakeProber:
    """Answers every recipient with `answer(recipient)` after `delay` seconds."""

    def __init__(
        self,
        answer: Callable[[str], Reply] = lambda rcpt: (
            UNKNOWN if rcpt.startswith("mailvet-") else ACCEPT
        ),
        delay: float = 0.0,
    ) -> None:
        self._answer = answer
        self._delay = delay
        self.recipients: list[str] = []

    async def probe(
        self, hosts: Sequence[str], recipients: Sequence[str], *, solo: bool = False
    ) -> list[ProbeResult]:
        self.recipients.extend(recipients)
        if self._delay:  # a slow server is the behaviour asked for, not a wait for something
            await asyncio.sleep(self._delay)
        return [ProbeResult(mx=hosts[0], reply=self._answer(r)) for r in recipients]

    async def close(self) -> None:
        pass


class RecordingBus(MemoryBus):
    """MemoryBus that records every publish (transfers included), in order, and delivers
    the messages `duplicate(message)` picks twice, as an at-least-once broker may."""

    def __init__(
        self,
        maxsize: int = 0,
        *,
        roundtrip: bool = False,
        duplicate: Callable[[Message], bool] = lambda message: False,
    ) -> None:
        super().__init__(maxsize, roundtrip=roundtrip)
        self.published: list[tuple[str, Message]] = []
        self._duplicate = duplicate

    async def publish(self, queue: str, message: Message) -> None:
        copies = 2 if self._duplicate(message) else 1
        for _ in range(copies):
            await super().publish(queue, message)
            self.published.append((queue, message))

    def of_type(self, kind: type[Any]) -> list[Any]:
        """The published messages of one type, in order."""
        return [message for _, message in self.published if isinstance(message, kind)]


class WatchedJobs(MemoryJobRepository):
    """MemoryJobRepository that a test can wait on: `until(job_id, condition)` returns the
    job as soon as a change makes `condition(job)` true (status, counts or progress)."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[tuple[str, JobStatus]] = []  # every status change, in order
        self._changed = asyncio.Event()

    async def set_status(self, job_id: str, status: JobStatus, error: str = "") -> Job:
        job = await super().set_status(job_id, status, error)
        self.statuses.append((job_id, status))
        self._signal()
        return job

    async def set_counts(
        self, job_id: str, *, rows_total: int, chunks_total: int, layout: bytes
    ) -> None:
        await super().set_counts(
            job_id, rows_total=rows_total, chunks_total=chunks_total, layout=layout
        )
        self._signal()

    async def record_chunk(self, job_id: str, chunk_id: int, rows: int) -> bool:
        recorded = await super().record_chunk(job_id, chunk_id, rows)
        self._signal()
        return recorded

    async def until(self, job_id: str, condition: Callable[[Job], bool]) -> Job:
        while True:
            changed = self._changed  # taken before the look: no change can slip in between
            job = await self.get(job_id)
            if condition(job):
                return job
            await changed.wait()

    async def final(self, job_id: str) -> JobStatus:
        """The job's status once it is final."""
        return (await self.until(job_id, lambda job: job.status.is_final)).status

    def _signal(self) -> None:
        self._changed.set()  # wakes every waiter of this change...
        self._changed = asyncio.Event()  # ...and later waiters wait for the next one

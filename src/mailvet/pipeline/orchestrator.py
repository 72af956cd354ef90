"""Orchestrator: hand chunks to the workers fairly, round-robin across the jobs.

Every job has its own row queue. The orchestrator moves one chunk from each job in turn to
the shared work queue, and only while that queue holds fewer than `backlog` chunks, so a
10-row job submitted behind a 1,000,000-row job gets its chunk into the next round instead
of waiting behind the big one. It learns about jobs from ChunksOpened messages and, after a
restart, from the job repository; a job leaves the round once its publisher is done and its
queue is empty.

A syntax-only job's chunks go to queues.WORK_CPU, the others' to queues.WORK (each queue
holds at most `backlog`): a job whose queue is full is passed over for this round, so CPU
chunks waiting for the workers' slots never hold back network chunks, and the next round
starts with the job served longest ago.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from mailvet.domain.job import JobStatus
from mailvet.domain.messages import ChunksOpened, Message
from mailvet.domain.ports import JobNotFound, JobRepository, MessageBus
from mailvet.domain.verdict import Check
from mailvet.pipeline import queues

log = structlog.get_logger(__name__)

IDLE_POLL_SECONDS = 0.005
STATUS_RECHECK_SECONDS = 0.5
_PUBLISHED = (JobStatus.FILE_QUEUED, JobStatus.IN_PROGRESS)


class Orchestrator:
    def __init__(self, bus: MessageBus, jobs: JobRepository, *, backlog: int = 8) -> None:
        self._bus = bus
        self._jobs = jobs
        self._backlog = backlog
        self._active: dict[str, float] = {}  # job id -> when its status may be looked at again
        self._routes: dict[str, str] = {}  # job id -> the work queue its chunks go to
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def handle(self, message: Message) -> None:
        if isinstance(message, ChunksOpened):
            self._add(message.job_id)

    def _add(self, job_id: str) -> None:
        if job_id not in self._active:
            self._active[job_id] = 0.0
            self._wakeup.set()
            log.info("job_opened", job_id=job_id)

    async def start(self, *, resume: bool = True) -> None:
        """Start dispatching; `resume`: first take up the jobs left active (a restart)."""
        if resume:
            for job in await self._jobs.list_active():
                self._add(job.id)
        self._task = asyncio.create_task(self._run(), name="orchestrator")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            if not self._active:
                self._wakeup.clear()
                await self._wakeup.wait()
            try:
                moved = await self.round()
            except Exception:
                log.exception("orchestrator_round_failed")
                moved = 0
                await asyncio.sleep(1.0)
            if not moved:
                await asyncio.sleep(IDLE_POLL_SECONDS)

    async def round(self) -> int:
        """Move at most one chunk of every active job to its work queue."""
        moved = 0
        full: set[str] = set()  # work queues seen full in this round
        for job_id in list(self._active):
            work = await self._route(job_id)
            # the workers are busy with this kind of chunk: the job waits for the next round
            # (a queue's depth has no event to wait on; _run polls)
            if work in full or await self._bus.depth(work) >= self._backlog:
                full.add(work)
                continue
            if await self._bus.transfer(queues.rows_queue(job_id), work) is not None:
                moved += 1
                self._active[job_id] = self._active.pop(job_id)  # served: to the end of the round
            elif await self._finished(job_id):
                del self._active[job_id]
                self._routes.pop(job_id, None)
                await self._bus.delete_queue(queues.rows_queue(job_id))
                log.info("job_dispatched", job_id=job_id)
        return moved

    async def _route(self, job_id: str) -> str:
        """The work queue of the job's chunks: WORK_CPU for a syntax-only job."""
        route = self._routes.get(job_id)
        if route is None:
            try:
                checks = (await self._jobs.get(job_id)).file.checks
            except JobNotFound:
                checks = Check.SMTP  # it is gone: its queue drains to the usual place
            route = queues.WORK_CPU if checks is Check.SYNTAX else queues.WORK
            self._routes[job_id] = route
        return route

    async def _finished(self, job_id: str) -> bool:
        """An empty row queue ends the job's turn once its publisher is done (or it failed)."""
        now = time.monotonic()
        if self._active[job_id] > now:
            return False
        self._active[job_id] = now + STATUS_RECHECK_SECONDS
        try:
            status = (await self._jobs.get(job_id)).status
        except JobNotFound:
            return True
        return status in _PUBLISHED or status.is_final

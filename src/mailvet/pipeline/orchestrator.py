"""Orchestrator: hand chunks to the workers fairly, round-robin across the jobs.

Every job has its own row queue. The orchestrator takes one chunk from each job in turn and
puts it on the shared work queue, which is short, so a 10-row job submitted behind a
1,000,000-row job gets its chunk into the next round instead of waiting for the big one.
"""

from __future__ import annotations

import asyncio

import structlog

from mailvet.domain.messages import ChunksOpened, Message
from mailvet.domain.ports import MessageBus
from mailvet.pipeline import keys

log = structlog.get_logger(__name__)

IDLE_POLL_SECONDS = 0.005


class Orchestrator:
    def __init__(self, bus: MessageBus) -> None:
        self._bus = bus
        self._remaining: dict[str, int] = {}  # job id -> chunks not yet handed out (ring order)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def handle(self, message: Message) -> None:
        if isinstance(message, ChunksOpened) and message.job_id not in self._remaining:
            if message.chunks_total > 0:
                self._remaining[message.job_id] = message.chunks_total
                self._wakeup.set()
                log.info("job_opened", job_id=message.job_id, chunks=message.chunks_total)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="orchestrator")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            if not self._remaining:
                self._wakeup.clear()
                await self._wakeup.wait()
            moved = await self.round()
            if not moved:
                await asyncio.sleep(IDLE_POLL_SECONDS)

    async def round(self) -> int:
        """Move at most one chunk of every active job to the work queue."""
        moved = 0
        for job_id in list(self._remaining):
            # waits while the work queue is full: that is where fairness comes from
            chunk = await self._bus.transfer(keys.rows_queue(job_id), keys.WORK)
            if chunk is None:
                continue
            moved += 1
            self._remaining[job_id] -= 1
            if self._remaining[job_id] <= 0:
                del self._remaining[job_id]
                await self._bus.delete_queue(keys.rows_queue(job_id))
                log.info("job_dispatched", job_id=job_id)
        return moved

"""Publisher: stream the accepted file's addresses into the job's own queue, in chunks.

JobAccepted -> ChunksOpened (to the orchestrator), RowChunk x N (queue rows.<job_id>),
job file_queued, JobQueued (to the result generator; an empty list completes from there).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import structlog

from mailvet.domain.job import JobStatus
from mailvet.domain.messages import ChunksOpened, JobAccepted, JobQueued, RowChunk
from mailvet.domain.ports import JobRepository, MessageBus, ObjectStorage
from mailvet.pipeline import keys
from mailvet.pipeline.tabular import iter_emails
from mailvet.pipeline.workspace import decode_layout, local_copy

log = structlog.get_logger(__name__)


class Publisher:
    def __init__(self, jobs: JobRepository, storage: ObjectStorage, bus: MessageBus) -> None:
        self._jobs = jobs
        self._storage = storage
        self._bus = bus

    async def handle(self, message: JobAccepted) -> None:
        job = await self._jobs.get(message.job_id)
        if job.status is not JobStatus.FILE_ACCEPTED:
            log.info("publisher_skip", job_id=job.id, status=job.status.value)
            return
        stored = decode_layout(job.layout)
        queue = keys.rows_queue(job.id)
        await self._bus.publish(
            keys.ORCHESTRATOR, ChunksOpened(job_id=job.id, chunks_total=job.chunks_total)
        )
        published = 0
        async with local_copy(self._storage, keys.in_progress_input(job.id)) as path:
            emails = iter_emails(path, stored.layout)
            chunks: Iterator[list[str]] = iter(
                lambda: list(itertools.islice(emails, stored.chunk_size)), []
            )
            while batch := await asyncio.to_thread(next, chunks, []):
                await self._bus.publish(
                    queue,
                    RowChunk(
                        job_id=job.id,
                        chunk_id=published,
                        first_row=published * stored.chunk_size,
                        emails=batch,
                        checks=job.file.checks,
                    ),
                )
                published += 1
        if published != job.chunks_total:
            raise RuntimeError(
                f"file changed after intake: {published} chunks, expected {job.chunks_total}"
            )
        await self._jobs.set_status(job.id, JobStatus.FILE_QUEUED)
        log.info("job_queued", job_id=job.id, chunks=published, rows=job.rows_total)
        await self._bus.publish(keys.RESULTS, JobQueued(job_id=job.id))

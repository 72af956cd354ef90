"""Publisher: stream the accepted file's addresses into the job's own queue, in chunks.

JobAccepted -> ChunksOpened (to the orchestrator), RowChunk x N (queue rows.<job_id>),
job file_queued, JobQueued (to the result generator; an empty list completes from there).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import structlog

from mailvet.domain.job import JobStatus
from mailvet.domain.messages import ChunksOpened, JobAccepted, JobQueued, RowChunk
from mailvet.domain.ports import JobRepository, MessageBus, ObjectStorage
from mailvet.domain.verdict import RESULT_COLUMNS
from mailvet.pipeline import object_keys, queues
from mailvet.pipeline.chunk_output import encode_file_layout
from mailvet.pipeline.job_files import decode_stored_layout, local_copy
from mailvet.tabular import Chunk, job_chunks, result_header

log = structlog.get_logger(__name__)


CHUNKS_PER_READ = 8  # chunks cut per trip to the reading thread


def _take(iterator: Iterator[Chunk], count: int) -> list[Chunk]:
    return list(itertools.islice(iterator, count))


async def _iterate(iterator: Iterator[Chunk]) -> AsyncIterator[Chunk]:
    """Run a blocking file iterator in a thread, CHUNKS_PER_READ items per trip: each trip
    waits for a turn of the event loop, and a network job's loop is busy (one chunk per trip
    made a long list's publishing wait on the loop once per chunk)."""
    while items := await asyncio.to_thread(_take, iterator, CHUNKS_PER_READ):
        for item in items:
            yield item


class Publisher:
    def __init__(
        self, jobs: JobRepository, storage: ObjectStorage, bus: MessageBus, *, scratch: Path
    ) -> None:
        self._jobs = jobs
        self._storage = storage
        self._bus = bus
        self._scratch = scratch  # where the input's local copy goes (job_files)

    async def handle(self, message: JobAccepted) -> None:
        job = await self._jobs.get(message.job_id)
        if job.status is not JobStatus.FILE_ACCEPTED:
            log.info("publisher_skip", job_id=job.id, status=job.status.value)
            return
        stored = decode_stored_layout(job.layout)
        # chunks that travel as addresses need no layout (domain/messages.py RowChunk)
        layout_bytes = (
            encode_file_layout(stored.layout) if stored.layout.rendered_in_chunks else b""
        )
        queue = queues.rows_queue(job.id)
        await self._bus.publish(
            queues.ORCHESTRATOR, ChunksOpened(job_id=job.id, chunks_total=job.chunks_total)
        )
        published = 0
        async with local_copy(
            self._storage, object_keys.in_progress_input(job.id), self._scratch
        ) as path:
            header = await asyncio.to_thread(result_header, path, stored.layout, RESULT_COLUMNS)
            if header is not None:  # the result file starts with the header part
                await self._storage.put_bytes(object_keys.result_header(job.id), header)
            chunks = job_chunks(path, stored.layout, stored.chunk_size)
            async for rows, emails, text in _iterate(chunks):
                await self._bus.publish(
                    queue,
                    RowChunk(
                        job_id=job.id,
                        chunk_id=published,
                        first_row=published * stored.chunk_size,
                        rows=rows,
                        checks=job.file.checks,
                        emails=emails,
                        text=text,
                        layout=layout_bytes,
                    ),
                )
                published += 1
        if published != job.chunks_total:
            raise RuntimeError(
                f"file changed after intake: {published} chunks, expected {job.chunks_total}"
            )
        await self._jobs.set_status(job.id, JobStatus.FILE_QUEUED)
        log.info("job_queued", job_id=job.id, chunks=published, rows=job.rows_total)
        await self._bus.publish(queues.RESULTS, JobQueued(job_id=job.id))

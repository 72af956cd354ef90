"""Intake: read the uploaded file, find the email column, count rows, accept the job.

JobSubmitted -> (job file_accepted, file moved to validation/in-progress/) -> JobAccepted.
An unreadable file ends the job as error_df with a one-line reason. A job that pays
(its CreditLedger charges it) reserves its cost first, the distinct valid addresses
(pipeline/cost.py), or ends as error_insufficient_credits with the shortfall.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import structlog

from mailvet.domain.credits import CreditLedger, FreeLedger
from mailvet.domain.job import Job, JobStatus
from mailvet.domain.job_events import JobEvents, NoJobEvents
from mailvet.domain.messages import JobAccepted, JobSubmitted
from mailvet.domain.ports import JobRepository, MessageBus, ObjectNotFound, ObjectStorage
from mailvet.domain.verdict import Check
from mailvet.pipeline import object_keys, queues
from mailvet.pipeline.cost import unique_valid_addresses
from mailvet.pipeline.job_failures import tell_failed
from mailvet.pipeline.job_files import StoredLayout, encode_stored_layout, local_copy
from mailvet.tabular import (
    FileLayout,
    InputError,
    Workbooks,
    XlsxLimits,
    count_rows,
    detect_layout,
)

log = structlog.get_logger(__name__)

# a syntax-only file this big will have chunks for the process pool (2,000+ rows)
WARM_POOL_BYTES = 64 * 1024


class Intake:
    def __init__(
        self,
        jobs: JobRepository,
        storage: ObjectStorage,
        bus: MessageBus,
        *,
        chunk_size: int,
        syntax_chunk_size: int,
        warm_syntax_pool: Callable[[], None] | None = None,
        xlsx_limits: XlsxLimits | None = None,
        scratch: Path,
        ledger: CreditLedger | None = None,
        events: JobEvents | None = None,
    ) -> None:
        self._jobs = jobs
        self._events = events or NoJobEvents()
        self._storage = storage
        self._bus = bus
        self._chunk_size = chunk_size
        self._syntax_chunk_size = syntax_chunk_size
        self._warm_syntax_pool = warm_syntax_pool
        self._xlsx_limits = xlsx_limits
        self._scratch = scratch  # where the input's local copy goes (job_files)
        self._ledger = ledger or FreeLedger()

    async def handle(self, message: JobSubmitted) -> None:
        job = await self._jobs.get(message.job_id)
        if job.status is not JobStatus.PENDING_START:
            log.info("intake_skip", job_id=job.id, status=job.status.value)
            return
        source = object_keys.uploaded(job.id)
        if not await self._storage.exists(source):  # moved before a crash: carry on from there
            source = object_keys.in_progress_input(job.id)
        try:
            async with local_copy(self._storage, source, self._scratch) as path:
                if (
                    self._warm_syntax_pool is not None
                    and job.file.checks is Check.SYNTAX
                    and path.stat().st_size >= WARM_POOL_BYTES
                ):
                    self._warm_syntax_pool()  # its start-up overlaps with the counting below
                with Workbooks() as books:  # an XLSX list is opened once for both
                    layout = await asyncio.to_thread(
                        detect_layout,
                        path,
                        job.file.email_column,
                        job.file.filename,
                        job.file.sheet,
                        self._xlsx_limits,
                        books,
                        job.file.header_row,
                    )
                    rows = await asyncio.to_thread(count_rows, path, layout, books)
                if not await self._reserved(job, path, layout):
                    return
        except InputError as exc:
            await self._end(job.id, JobStatus.ERROR_FILE, str(exc))
            log.info("intake_rejected", job_id=job.id, error=str(exc))
            return
        except ObjectNotFound:
            await self._end(job.id, JobStatus.ERROR_FILE, "the uploaded file is missing")
            return
        # syntax checks cost microseconds a row: bigger chunks keep per-message costs small
        size = self._syntax_chunk_size if job.file.checks is Check.SYNTAX else self._chunk_size
        chunks = -(-rows // size)
        stored = StoredLayout(layout=layout, chunk_size=size, accepted_at=datetime.now(UTC))
        await self._jobs.set_counts(
            job.id, rows_total=rows, chunks_total=chunks, layout=encode_stored_layout(stored)
        )
        if source != object_keys.in_progress_input(job.id):
            await self._storage.move(source, object_keys.in_progress_input(job.id))
        await self._jobs.set_status(job.id, JobStatus.FILE_ACCEPTED)
        log.info("job_accepted", job_id=job.id, rows=rows, chunks=chunks, kind=layout.kind)
        await self._bus.publish(queues.PUBLISHER, JobAccepted(job_id=job.id))

    async def _end(self, job_id: str, status: JobStatus, message: str) -> None:
        """The job ends in the error `status`, and the SaaS hears of it (JobEvents; a
        failure to tell it is logged: the web role's sweep tells it later)."""
        await self._jobs.set_status(job_id, status, message)
        await tell_failed(self._events, self._jobs, job_id)

    async def _reserved(self, job: Job, path: Path, layout: FileLayout) -> bool:
        """Reserve the job's cost if it pays; False when the credits fall short (the job
        has ended as error_insufficient_credits with the shortfall)."""
        if not self._ledger.charges(job):
            return True
        cost = await asyncio.to_thread(unique_valid_addresses, path, layout)
        await self._jobs.set_cost(job.id, cost)
        short = await self._ledger.reserve(job, cost)
        if short is None:
            return True
        await self._end(job.id, JobStatus.ERROR_INSUFFICIENT_CREDITS, short.message())
        log.info("intake_insufficient_credits", job_id=job.id, cost=cost, missing=short.missing)
        return False

"""Result generator: keep each chunk's verdicts and write the result file, in input order.

The result holds every input row, in input order, every input column unchanged, plus the
mailvet_* columns. Each chunk's cells are stored under validation/in-progress/<job>/chunks/
and recorded once per (job, chunk), so a redelivered chunk changes nothing.

Workers send CSV/TXT chunks already rendered, so the result file is the rendered header
followed by the chunks in order; writing starts with the first chunk and follows the chunks
as they become available (those handled in this process while it writes their job are handed
to the writer in memory, a few at a time, instead of read back from storage). XLSX results
are rewritten row by row with the cells appended.
The result is published to validation/completed/, and the job completed, only once the last
chunk is in. Before it is completed, the job's counts are stored with its charge: its
distinct addresses less those refunded (domain.credits.job_charge); once it is completed its
credits are settled with that charge. A job that fails gets its whole reservation back, and
since a job is completed before it is settled, never after a settlement: a job is never
charged and failed. A settlement that fails after the completion (or a release that fails)
is made later by services.credits.sweep_unsettled_jobs, from the stored counts.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Literal

import msgspec
import structlog

from mailvet import metrics
from mailvet.domain.credits import CreditLedger, FreeLedger, job_charge
from mailvet.domain.job import Job, JobCounts, JobStatus
from mailvet.domain.job_events import JobEvents, NoJobEvents
from mailvet.domain.messages import ChunkDone, JobQueued, Message
from mailvet.domain.ports import JobRepository, ObjectNotFound, ObjectStorage
from mailvet.domain.verdict import RESULT_COLUMNS
from mailvet.pipeline import object_keys
from mailvet.pipeline.chunk_output import (
    TEXT,
    ChunkOutput,
    decode_cells,
    decode_output,
    encode_output,
)
from mailvet.pipeline.job_failures import tell_failed
from mailvet.pipeline.job_files import (
    decode_stored_layout,
    local_copy,
    scratch_folder,
    store_file,
)
from mailvet.pipeline.submit import Summary
from mailvet.tabular import FileLayout, result_kind, write_result

log = structlog.get_logger(__name__)


# how often a writer waiting for a chunk looks again (chunks stored by another process)
CHUNK_POLL_SECONDS = 0.25
# chunk outputs kept in memory a job for its writer in this process (beyond: read back)
HELD_CHUNKS = 8
# how long stop() waits for writers whose job is completed to settle it
FINISH_SECONDS = 5.0
_WRITABLE = (JobStatus.FILE_ACCEPTED, JobStatus.FILE_QUEUED, JobStatus.IN_PROGRESS)


class JobAbandoned(Exception):
    """The job ended (failed) while its result was being written."""


async def settle_credits(ledger: CreditLedger, job: Job, charged: int) -> None:
    """Settle a job's credits with `charged` (0: a failed job gives its whole reservation
    back). Once: a settlement repeated by a redelivery, or made meanwhile by the sweeper,
    changes nothing; a job that does not pay is the ledger's to pass over. The job's state
    stays as it is whatever happens here: a failure is logged and the reservation stays for
    the sweeper (services.credits.sweep_unsettled_jobs)."""
    try:
        await ledger.settle(job, charged)
    except Exception:
        log.exception("credit_settle_failed", job_id=job.id, charged=charged)
        return
    log.info("job_settled", job_id=job.id, cost=job.cost, charged=charged)


async def fail_job(
    jobs: JobRepository,
    ledger: CreditLedger,
    job_id: str,
    exc: BaseException,
    events: JobEvents,
) -> None:
    """A job that cannot finish because of `exc` ends as ERROR_INTERNAL (unless it has
    ended already), counted in the metrics, and its credits are settled: a job that failed
    after (or while) completing with the charge its stored counts say, any other with
    nothing charged."""
    current = await jobs.get(job_id)
    if not current.status.is_final:
        await jobs.set_status(
            job_id, JobStatus.ERROR_INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
        )
        metrics.job_finished(JobStatus.ERROR_INTERNAL.value, current.created_at)
        await tell_failed(events, jobs, job_id)
    if current.status is JobStatus.COMPLETED:
        if current.counts is not None:
            await settle_credits(ledger, current, current.counts.charged)
    else:
        await settle_credits(ledger, current, 0)


class ResultGenerator:
    def __init__(
        self,
        jobs: JobRepository,
        storage: ObjectStorage,
        *,
        scratch: Path,
        ledger: CreditLedger | None = None,
        events: JobEvents | None = None,
    ) -> None:
        self._jobs = jobs
        self._events = events or NoJobEvents()  # told of each completion (the owner's mail)
        self._storage = storage
        self._scratch = scratch  # the input's copy and the growing result (job_files)
        self._ledger = ledger or FreeLedger()
        self._writers: dict[str, asyncio.Task[None]] = {}
        self._arrived: dict[str, asyncio.Event] = {}
        # chunks handled here while this process writes their job: the writer takes them
        # from memory instead of reading back what was just stored (HELD_CHUNKS a job)
        self._held: dict[str, dict[int, ChunkOutput]] = {}
        self._next: dict[str, int] = {}  # the chunk each writer here waits for
        # jobs ended (completed or failed), their writer settling or releasing their credits:
        # set once done (stop() waits for it)
        self._finishing: dict[str, asyncio.Event] = {}

    async def handle(self, message: Message) -> None:
        if isinstance(message, ChunkDone):
            output = ChunkOutput(
                message.form,
                message.rows,
                message.data,
                message.statuses,
                message.reasons,
                message.refunded,
            )
            await self._storage.put_bytes(
                object_keys.chunk_results(message.job_id, message.chunk_id), encode_output(output)
            )
            await self._jobs.record_chunk(message.job_id, message.chunk_id, message.rows)
            await self._advance(message.job_id)
            held = self._held.get(message.job_id)  # its writer runs here: hand it over
            if (
                held is not None
                and output.form == TEXT
                and len(held) < HELD_CHUNKS
                and message.chunk_id >= self._next.get(message.job_id, 0)
            ):
                held[message.chunk_id] = output
            self._arrived.setdefault(message.job_id, asyncio.Event()).set()
        elif isinstance(message, JobQueued):
            await self._advance(message.job_id)

    async def resume(self) -> None:
        """After a restart: write the results of the jobs that were under way."""
        for job in await self._jobs.list_active():
            await self._advance(job.id)

    async def stop(self) -> None:
        """Cancel the writers; one whose job has ended first settles or releases its credits
        (for FINISH_SECONDS at most)."""
        settling = [asyncio.ensure_future(done.wait()) for done in self._finishing.values()]
        if settling:
            await asyncio.wait(settling, timeout=FINISH_SECONDS)
            for waiter in settling:
                waiter.cancel()
        for task in list(self._writers.values()):
            task.cancel()
        await asyncio.gather(*self._writers.values(), *settling, return_exceptions=True)

    async def _advance(self, job_id: str) -> None:
        """Move a queued job to in-progress, and make sure its result is being written."""
        job = await self._jobs.get(job_id)
        if job.status is JobStatus.FILE_QUEUED:
            job = await self._jobs.set_status(job_id, JobStatus.IN_PROGRESS)
        if job.status in _WRITABLE and job_id not in self._writers:
            self._held[job_id] = {}
            self._writers[job_id] = asyncio.create_task(self._complete(job), name=f"write-{job_id}")

    async def _complete(self, job: Job) -> None:
        try:
            refunded: set[str] = set()  # normalized addresses whose credit goes back
            summary = await self._write(job, refunded)
            while (job := await self._jobs.get(job.id)).status is not JobStatus.IN_PROGRESS:
                if job.status is JobStatus.FILE_QUEUED:
                    await self._jobs.set_status(job.id, JobStatus.IN_PROGRESS)
                elif job.status not in _WRITABLE:
                    raise JobAbandoned(job.status.value)
                else:  # the publisher is finishing its bookkeeping
                    await asyncio.sleep(0.02)
            charged = await self._store_counts(job, summary, refunded)
            # completed before settled: a failure in between leaves a completed job with
            # its reservation held (settled later: services.credits.sweep_unsettled_jobs),
            # never a job charged and failed
            await self._jobs.set_status(job.id, JobStatus.COMPLETED)
            self._finishing[job.id] = asyncio.Event()  # stop() lets it settle
            metrics.job_finished(JobStatus.COMPLETED.value, job.created_at)
            await self._settle(job, charged)
            self._finishing.pop(job.id).set()
            try:
                await self._events.job_completed(job)
            except Exception:  # the job is complete all the same
                log.exception("job_event_failed", job_id=job.id)
            await self._storage.delete_prefix(object_keys.job_work(job.id))
            log.info("job_completed", job_id=job.id, rows=summary.rows, **summary.by_status)
        except JobAbandoned as exc:
            self._finishing.setdefault(job.id, asyncio.Event())  # stop() lets it release
            log.info("job_abandoned", job_id=job.id, status=str(exc))
            if JobStatus(str(exc)).is_error:
                await self._settle(job, 0)  # a failed job gives its reservation back
        except Exception as exc:
            self._finishing.setdefault(job.id, asyncio.Event())  # stop() lets it release
            log.exception("result_failed", job_id=job.id)
            await fail_job(self._jobs, self._ledger, job.id, exc, self._events)
        finally:
            if (settling := self._finishing.pop(job.id, None)) is not None:
                settling.set()
            self._writers.pop(job.id, None)
            self._arrived.pop(job.id, None)
            self._held.pop(job.id, None)
            self._next.pop(job.id, None)

    async def _store_counts(self, job: Job, summary: Summary, refunded: set[str]) -> int:
        """Store the result's counts with what the job is charged (the charge that settles
        it, also for a settlement made later from these counts); the charge. A free job's
        cost is 0 (intake does not count it), so is its charge."""
        charged = job_charge(job.cost, refunded)
        counts = JobCounts(statuses=summary.by_status, reasons=summary.by_reason, charged=charged)
        await self._jobs.set_result_counts(job.id, counts)
        return charged

    async def _settle(self, job: Job, charged: int) -> None:
        await settle_credits(self._ledger, job, charged)

    async def _stored(self, job_id: str, key: str, chunk_id: int | None = None) -> bytes:
        """The object at `key`, waiting until a chunk handler (maybe elsewhere) has stored it.
        With `chunk_id`: b"" once that chunk is held for this writer (see _chunks)."""
        event = self._arrived.setdefault(job_id, asyncio.Event())
        held = self._held.get(job_id, {})
        while True:
            event.clear()
            if chunk_id is not None and chunk_id in held:
                return b""
            try:
                return await self._storage.get_bytes(key)
            except ObjectNotFound:
                pass
            try:
                await asyncio.wait_for(event.wait(), CHUNK_POLL_SECONDS)
            except TimeoutError:
                status = (await self._jobs.get(job_id)).status
                if status not in _WRITABLE:
                    raise JobAbandoned(status.value) from None

    async def _chunks(self, job: Job) -> AsyncIterator[ChunkOutput]:
        """The job's chunk outputs in order: handed over in memory by this process's chunk
        handler when it kept them (held), else read back from storage."""
        held = self._held.get(job.id, {})
        for chunk_id in range(job.chunks_total):
            self._next[job.id] = chunk_id
            key = object_keys.chunk_results(job.id, chunk_id)
            data = b"" if chunk_id in held else await self._stored(job.id, key, chunk_id)
            self._next[job.id] = chunk_id + 1  # from now on not held
            output = held.pop(chunk_id, None)
            yield decode_output(data) if output is None else output

    async def _write(self, job: Job, refunded: set[str]) -> Summary:
        stored = decode_stored_layout(job.layout)
        kind = result_kind(stored.layout, job.file.result_kind)
        statuses: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        with scratch_folder(self._scratch) as folder:
            out = folder / f"result.{kind}"
            if stored.layout.rendered_in_chunks:
                written = 0
                with out.open("wb") as handle:
                    handle.write(await self._stored(job.id, object_keys.result_header(job.id)))
                    async for chunk in self._chunks(job):
                        handle.write(chunk.data)
                        statuses.update(chunk.statuses)
                        reasons.update(chunk.reasons)
                        refunded.update(chunk.refunded)
                        written += chunk.rows
            else:
                written = await self._write_workbook(
                    job, stored.layout, out, kind, statuses, reasons, refunded
                )
            await store_file(self._storage, object_keys.completed(job.id), out)  # moved in
        summary = Summary(
            rows=written, by_status=dict(statuses), by_reason=dict(reasons), result_kind=kind
        )
        await self._storage.put_bytes(object_keys.summary(job.id), msgspec.json.encode(summary))
        return summary

    async def _write_workbook(
        self,
        job: Job,
        layout: FileLayout,
        out: Path,
        kind: Literal["csv", "xlsx"],
        statuses: Counter[str],
        reasons: Counter[str],
        refunded: set[str],
    ) -> int:
        """Results not rendered in chunks (XLSX): the input is rewritten row by row with the
        cells appended."""
        loop = asyncio.get_running_loop()

        def rows() -> Iterator[tuple[str, ...]]:  # runs in the writer thread
            for chunk_id in range(job.chunks_total):
                chunk = decode_output(
                    asyncio.run_coroutine_threadsafe(
                        self._stored(job.id, object_keys.chunk_results(job.id, chunk_id)), loop
                    ).result()
                )
                statuses.update(chunk.statuses)
                reasons.update(chunk.reasons)
                refunded.update(chunk.refunded)
                yield from decode_cells(chunk.data)

        async with local_copy(
            self._storage, object_keys.in_progress_input(job.id), self._scratch
        ) as source:
            return await asyncio.to_thread(
                write_result, source, layout, out, RESULT_COLUMNS, rows(), kind
            )

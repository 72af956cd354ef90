"""Result generator: keep each chunk's verdicts, and when the last one is in, write the file.

The result holds every input row, in input order, every input column unchanged, plus the
mailvet_* columns. Chunk results are stored under validation/in-progress/<job>/chunks/ and
recorded once per (job, chunk), so a redelivered chunk changes nothing.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import msgspec
import structlog

from mailvet.domain.job import JobStatus
from mailvet.domain.messages import ChunkDone, JobQueued, Message
from mailvet.domain.ports import JobRepository, ObjectStorage
from mailvet.domain.verdict import RESULT_COLUMNS, Verdict
from mailvet.pipeline import keys
from mailvet.pipeline.tabular import result_kind, write_result
from mailvet.pipeline.workspace import decode_layout, local_copy

log = structlog.get_logger(__name__)

_verdicts_decoder = msgspec.msgpack.Decoder(list[Verdict])


class Summary(msgspec.Struct, kw_only=True):
    rows: int = 0
    by_status: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    result_kind: str = "csv"


def encode_verdicts(verdicts: list[Verdict]) -> bytes:
    return msgspec.msgpack.encode(verdicts)


class ResultGenerator:
    def __init__(self, jobs: JobRepository, storage: ObjectStorage) -> None:
        self._jobs = jobs
        self._storage = storage
        self._locks: dict[str, asyncio.Lock] = {}

    async def handle(self, message: Message) -> None:
        if isinstance(message, ChunkDone):
            await self._storage.put_bytes(
                keys.chunk_results(message.job_id, message.chunk_id),
                encode_verdicts(message.verdicts),
            )
            await self._jobs.record_chunk(message.job_id, message.chunk_id, len(message.verdicts))
            await self._maybe_finish(message.job_id)
        elif isinstance(message, JobQueued):
            await self._maybe_finish(message.job_id)

    async def _maybe_finish(self, job_id: str) -> None:
        lock = self._locks.setdefault(job_id, asyncio.Lock())
        async with lock:
            job = await self._jobs.get(job_id)
            if job.status is JobStatus.FILE_QUEUED:
                job = await self._jobs.set_status(job_id, JobStatus.IN_PROGRESS)
            if job.status is not JobStatus.IN_PROGRESS:
                return
            if await self._jobs.chunks_recorded(job_id) < job.chunks_total:
                return
            summary = await self._write(job_id, job.chunks_total, job.layout, job.file.filename)
            await self._jobs.set_status(job_id, JobStatus.COMPLETED)
            await self._storage.delete_prefix(keys.job_work(job_id))
            log.info("job_completed", job_id=job_id, rows=summary.rows, **summary.by_status)
        self._locks.pop(job_id, None)

    async def _write(self, job_id: str, chunks: int, layout_bytes: bytes, filename: str) -> Summary:
        stored = decode_layout(layout_bytes)
        kind = result_kind(stored.layout, filename)
        loop = asyncio.get_running_loop()
        statuses: Counter[str] = Counter()
        reasons: Counter[str] = Counter()

        def rows() -> Iterator[tuple[str, ...]]:
            for chunk_id in range(chunks):
                data = asyncio.run_coroutine_threadsafe(
                    self._storage.get_bytes(keys.chunk_results(job_id, chunk_id)), loop
                ).result()
                for verdict in _verdicts_decoder.decode(data):
                    statuses[verdict.status.value] += 1
                    reasons[verdict.reason.value] += 1
                    yield verdict.columns()

        async with local_copy(self._storage, keys.in_progress_input(job_id)) as source:
            with tempfile.TemporaryDirectory(prefix="mailvet-") as folder:
                out = Path(folder) / f"result.{kind}"
                written = await asyncio.to_thread(
                    write_result, source, stored.layout, out, RESULT_COLUMNS, rows(), kind
                )
                await self._storage.put_file(keys.completed(job_id), out)
        summary = Summary(
            rows=written, by_status=dict(statuses), by_reason=dict(reasons), result_kind=kind
        )
        await self._storage.put_bytes(keys.summary(job_id), msgspec.json.encode(summary))
        return summary

"""The worker's side of the verdict journal: verdicts of network chunks written in batches
as they are reached, read back when a chunk is delivered again, dropped once its result is
published.

A verdict reached and not yet written when the worker dies is lost (at most `flush_rows`
rows or `flush_seconds` of work); a chunk that finishes before its verdicts were written
never writes them at all (its result is stored instead). `close()` ends the writes when the
worker stops: its timer is cancelled and nothing is written afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec
import structlog

from mailvet.domain.messages import RowChunk
from mailvet.domain.ports import VerdictJournal
from mailvet.domain.verdict import Verdict

log = structlog.get_logger(__name__)

FLUSH_ROWS = 50  # verdicts that make a write at once
FLUSH_SECONDS = 0.05  # the longest a reached verdict waits to be written

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Verdict)

ChunkKey = tuple[str, int]  # (job id, chunk id)


class VerdictLog:
    def __init__(
        self,
        journal: VerdictJournal,
        *,
        flush_rows: int = FLUSH_ROWS,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        self._journal = journal
        self._flush_rows = max(1, flush_rows)
        self._flush_seconds = flush_seconds
        self._pending: dict[ChunkKey, dict[int, bytes]] = {}  # reached, not written yet
        self._count = 0
        self._written: set[ChunkKey] = set()  # chunks with rows in the journal
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task[None] | None = None
        self._closed = False

    async def recall(self, chunk: RowChunk) -> dict[int, Verdict]:
        """The chunk's kept verdicts, by index in the chunk."""
        kept = await self._journal.kept_verdicts(chunk.job_id, chunk.first_row, chunk.rows)
        if kept:
            self._written.add((chunk.job_id, chunk.chunk_id))
            log.info("verdicts_recalled", job_id=chunk.job_id, chunk=chunk.chunk_id, rows=len(kept))
        return {row - chunk.first_row: _decoder.decode(data) for row, data in kept.items()}

    def reached(self, chunk: RowChunk, indexes: Sequence[int], verdicts: Sequence[Verdict]) -> None:
        """Verdicts of the chunk's rows at `indexes`: written with the next batch."""
        if self._closed:
            return
        rows = self._pending.setdefault((chunk.job_id, chunk.chunk_id), {})
        first = chunk.first_row
        for index, verdict in zip(indexes, verdicts, strict=True):
            rows[first + index] = _encoder.encode(verdict)
        self._count += len(indexes)
        if self._count >= self._flush_rows:
            self._start_flush()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._flush_seconds, self._start_flush)

    async def finished(self, chunk: RowChunk) -> None:
        """The chunk's result is published: its verdicts are no longer needed."""
        key = (chunk.job_id, chunk.chunk_id)
        pending = self._pending.pop(key, None)
        if pending:
            self._count -= len(pending)
        if key in self._written:
            if self._flushing is not None:
                await asyncio.shield(self._flushing)  # it may be writing this chunk's rows
            self._written.discard(key)
            await self._journal.drop_verdicts(chunk.job_id, chunk.first_row, chunk.rows)

    async def close(self, *, flush: bool = True) -> None:
        """No more writes: the pending verdicts are written first (`flush`) or dropped, the
        timer is cancelled, a write under way is awaited; later verdicts are ignored."""
        if self._closed:
            return
        if flush:
            self._start_flush()
            while self._flushing is not None:
                await asyncio.shield(self._flushing)
                self._start_flush()  # what was reached while it wrote
        self._closed = True
        self._cancel_timer()
        if self._flushing is not None:
            await asyncio.shield(self._flushing)
        self._pending.clear()
        self._count = 0

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _start_flush(self) -> None:
        self._cancel_timer()
        if self._flushing is None and self._pending and not self._closed:
            self._flushing = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._pending and not self._closed:
                batch, self._pending, self._count = self._pending, {}, 0
                by_job: dict[str, dict[int, bytes]] = {}
                for (job_id, _), rows in batch.items():
                    by_job.setdefault(job_id, {}).update(rows)
                self._written.update(batch)
                for job_id, rows in by_job.items():
                    await self._journal.keep_verdicts(job_id, rows)
                if self._count < self._flush_rows:
                    break
        except Exception:
            log.exception("verdict_journal_write_failed")  # the chunk's result still comes
        finally:
            self._flushing = None
            if self._pending and self._timer is None and not self._closed:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self._flush_seconds, self._start_flush)

"""Worker: validate a chunk of rows with the engine and pass the rendered rows on.

Syntax-only chunks are pure CPU work (parse, check, render): when a process pool is given
they run there whole, so a big list uses every core while this process reads and writes.

Network chunks (DNS, SMTP) mostly wait on servers, and a chunk ends only when its slowest
domain does (greylisting retries, tar-pit deadlines): `concurrency` x NETWORK_FACTOR of them
are in progress at once (`in_flight`, what the bus hands this worker), so every server's
pool is fed from most of a job instead of from the few chunks still waiting on a retry.
CPU chunks (syntax) take one of `concurrency` slots, handed out round-robin across jobs; they
come on their own queue (queues.WORK_CPU), taken off the bus `cpu_slots` at a time, so the
chunks of a big syntax-only file wait on the bus, not in this process's memory.

With a verdict journal, a network chunk's verdicts are kept as they are reached
(pipeline/verdict_log.py): a chunk delivered again after its worker was killed probes only
the rows that had no verdict yet.
"""

from __future__ import annotations

import asyncio
import gc
from concurrent.futures import Executor

import structlog

from mailvet import metrics
from mailvet.domain.messages import ChunkDone, RowChunk
from mailvet.domain.ports import MessageBus, VerdictJournal
from mailvet.domain.verdict import Check, Verdict
from mailvet.domain.work import current_job
from mailvet.pipeline import queues
from mailvet.pipeline.chunk_output import ChunkOutput, chunk_addresses, render, syntax_chunk
from mailvet.pipeline.engine import Engine
from mailvet.pipeline.slots import FairSlots
from mailvet.pipeline.verdict_log import VerdictLog

log = structlog.get_logger(__name__)

POOL_MIN_ROWS = 2000  # smaller chunks are done here: cheaper than shipping them to a process
NETWORK_FACTOR = 8  # network chunks in progress per CPU slot
# The cyclic garbage collector's thresholds while a worker runs. Every probe in flight holds
# a few dozen objects for seconds, so at the default (700, 10, 10) they survive into the old
# generation and full collections come every time it grows by a quarter: about half of a
# 100,000-address SMTP job's CPU (bench/world_bench.py: 27 s of CPU, 8.8 s of it in 18 full
# collections; at these thresholds 17 s, none). Cycles are rare here (a few thousand per job).
GC_THRESHOLDS = (10_000, 10, 100)

__all__ = ["GC_THRESHOLDS", "NETWORK_FACTOR", "POOL_MIN_ROWS", "Worker", "syntax_chunk"]


class Worker:
    def __init__(
        self,
        engine: Engine,
        bus: MessageBus,
        *,
        pool: Executor | None = None,
        concurrency: int = 16,
        journal: VerdictJournal | None = None,
        verdict_log: VerdictLog | None = None,
    ) -> None:
        self._engine = engine
        self._log = verdict_log or (VerdictLog(journal) if journal is not None else None)
        self._bus = bus
        self._pool = pool
        self.cpu_slots = max(1, concurrency)
        self._cpu_slots = FairSlots(self.cpu_slots)
        self.in_flight = max(1, concurrency) * NETWORK_FACTOR
        if gc.get_threshold()[0] < GC_THRESHOLDS[0]:
            gc.set_threshold(*GC_THRESHOLDS)

    @metrics.in_flight
    async def handle(self, chunk: RowChunk) -> None:
        if chunk.checks is Check.SYNTAX:
            async with self._cpu_slots.hold(chunk.job_id):
                output = await self._syntax(chunk)
        else:
            output = render(chunk, await self._network(chunk))
        log.info("chunk_validated", job_id=chunk.job_id, chunk=chunk.chunk_id, rows=chunk.rows)
        metrics.rows_done(output.statuses, output.reasons)
        await self._bus.publish(
            queues.RESULTS,
            ChunkDone(
                job_id=chunk.job_id,
                chunk_id=chunk.chunk_id,
                first_row=chunk.first_row,
                rows=chunk.rows,
                form=output.form,
                data=output.data,
                statuses=output.statuses,
                reasons=output.reasons,
                refunded=output.refunded,
            ),
        )
        if self._log is not None and chunk.checks is not Check.SYNTAX:
            await self._log.finished(chunk)

    async def close(self, *, flush: bool = True) -> None:
        """The worker stops (its handlers are done or cancelled): the journal's pending
        verdicts are written (`flush`) or dropped, and nothing is written afterwards."""
        if self._log is not None:
            await self._log.close(flush=flush)

    async def _network(self, chunk: RowChunk) -> list[Verdict]:
        job = current_job.set(chunk.job_id)  # the prober serves the jobs at a server in turn
        try:
            return await self._network_verdicts(chunk)
        finally:
            current_job.reset(job)

    async def _network_verdicts(self, chunk: RowChunk) -> list[Verdict]:
        addresses = chunk_addresses(chunk)
        verdict_log = self._log
        if verdict_log is None:
            return await self._engine.check_many(addresses, chunk.checks)
        kept = await verdict_log.recall(chunk)
        todo = [index for index in range(len(addresses)) if index not in kept]

        def reached(indexes: list[int], verdicts: list[Verdict]) -> None:
            verdict_log.reached(chunk, [todo[index] for index in indexes], verdicts)

        found = await self._engine.check_many(
            [addresses[index] for index in todo], chunk.checks, reached=reached
        )
        if not kept:
            return found
        kept.update(zip(todo, found, strict=True))
        return [kept[index] for index in range(len(addresses))]

    async def _syntax(self, chunk: RowChunk) -> ChunkOutput:
        if self._pool is not None and chunk.rows >= POOL_MIN_ROWS:
            return await asyncio.get_running_loop().run_in_executor(self._pool, syntax_chunk, chunk)
        return render(chunk, await self._engine.check_many(chunk_addresses(chunk), chunk.checks))

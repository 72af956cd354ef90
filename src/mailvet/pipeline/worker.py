"""Worker: validate a chunk of rows with the engine and pass the rendered rows on.

Syntax-only chunks are pure CPU work (parse, check, render): when a process pool is given
they run there whole, so a big list uses every core while this process reads and writes.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor

import structlog

from mailvet.domain.messages import ChunkDone, RowChunk
from mailvet.domain.ports import MessageBus
from mailvet.domain.verdict import Check
from mailvet.pipeline import keys
from mailvet.pipeline.engine import Engine
from mailvet.pipeline.rendering import chunk_addresses, render, syntax_chunk

log = structlog.get_logger(__name__)

POOL_MIN_ROWS = 2000  # smaller chunks are done here: cheaper than shipping them to a process

__all__ = ["POOL_MIN_ROWS", "Worker", "syntax_chunk"]


class Worker:
    def __init__(self, engine: Engine, bus: MessageBus, *, pool: Executor | None = None) -> None:
        self._engine = engine
        self._bus = bus
        self._pool = pool

    async def handle(self, chunk: RowChunk) -> None:
        if chunk.checks is Check.SYNTAX and self._pool is not None and chunk.rows >= POOL_MIN_ROWS:
            output = await asyncio.get_running_loop().run_in_executor(self._pool, syntax_chunk, chunk)
        else:
            addresses = chunk_addresses(chunk)
            output = render(chunk, await self._engine.check_many(addresses, chunk.checks))
        log.info("chunk_validated", job_id=chunk.job_id, chunk=chunk.chunk_id, rows=chunk.rows)
        await self._bus.publish(
            keys.RESULTS,
            ChunkDone(
                job_id=chunk.job_id,
                chunk_id=chunk.chunk_id,
                first_row=chunk.first_row,
                rows=chunk.rows,
                form=output.form,
                data=output.data,
                statuses=output.statuses,
                reasons=output.reasons,
            ),
        )

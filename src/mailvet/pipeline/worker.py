"""Worker: validate a chunk of rows with the engine and pass the verdicts on.

Syntax-only chunks are pure CPU work: when a process pool is given they run there, so a
big list uses every core while this process keeps reading and writing files.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor

import structlog

from mailvet.domain.messages import ChunkDone, RowChunk, encode_cells
from mailvet.domain.ports import MessageBus
from mailvet.domain.verdict import Check
from mailvet.pipeline import keys
from mailvet.pipeline.engine import Engine, syntax_cells

log = structlog.get_logger(__name__)


class Worker:
    def __init__(self, engine: Engine, bus: MessageBus, *, pool: Executor | None = None) -> None:
        self._engine = engine
        self._bus = bus
        self._pool = pool

    async def handle(self, chunk: RowChunk) -> None:
        if chunk.checks is Check.SYNTAX and self._pool is not None:
            cells = await asyncio.get_running_loop().run_in_executor(
                self._pool, syntax_cells, chunk.emails
            )
        else:
            cells = encode_cells(await self._engine.check_many(chunk.emails, chunk.checks))
        log.debug("chunk_validated", job_id=chunk.job_id, chunk=chunk.chunk_id, rows=len(chunk.emails))
        await self._bus.publish(
            keys.RESULTS,
            ChunkDone(
                job_id=chunk.job_id,
                chunk_id=chunk.chunk_id,
                first_row=chunk.first_row,
                rows=len(chunk.emails),
                cells=cells,
            ),
        )

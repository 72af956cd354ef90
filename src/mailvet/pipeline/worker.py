"""Worker: validate a chunk of rows with the engine and pass the verdicts on."""

from __future__ import annotations

import structlog

from mailvet.domain.messages import ChunkDone, RowChunk
from mailvet.domain.ports import MessageBus
from mailvet.pipeline import keys
from mailvet.pipeline.engine import Engine

log = structlog.get_logger(__name__)


class Worker:
    def __init__(self, engine: Engine, bus: MessageBus) -> None:
        self._engine = engine
        self._bus = bus

    async def handle(self, chunk: RowChunk) -> None:
        verdicts = await self._engine.check_many(chunk.emails, chunk.checks)
        log.debug("chunk_validated", job_id=chunk.job_id, chunk=chunk.chunk_id, rows=len(verdicts))
        await self._bus.publish(
            keys.RESULTS,
            ChunkDone(
                job_id=chunk.job_id,
                chunk_id=chunk.chunk_id,
                first_row=chunk.first_row,
                verdicts=verdicts,
            ),
        )

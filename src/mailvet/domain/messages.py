"""Commands and events between the pipeline services: the wire contracts (msgspec, versioned).

Rows travel in chunks of consecutive rows; a chunk is identified by (job_id, chunk_id) and
covers rows [first_row, first_row + len(emails)). Handlers are idempotent on that key.
"""

from __future__ import annotations

import msgspec

from mailvet.domain.verdict import Check, Verdict


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    version: int = 1


class JobSubmitted(Message, tag="job_submitted"):
    """web/CLI -> intake: an uploaded file is waiting at validation/uploaded/<job_id>."""

    job_id: str


class JobAccepted(Message, tag="job_accepted"):
    """intake -> publisher: the file is readable, counted and moved to in-progress."""

    job_id: str


class ChunksOpened(Message, tag="chunks_opened"):
    """publisher -> orchestrator: the job's row queue exists; it will hold `chunks_total` chunks."""

    job_id: str
    chunks_total: int


class JobQueued(Message, tag="job_queued"):
    """publisher -> result generator: every chunk of the job has been published."""

    job_id: str


class RowChunk(Message, tag="row_chunk"):
    """publisher -> orchestrator -> worker: a run of consecutive rows to validate."""

    job_id: str
    chunk_id: int
    first_row: int
    emails: list[str]
    checks: Check = Check.SMTP


class ChunkDone(Message, tag="chunk_done"):
    """worker -> result generator: one verdict per row of the chunk, in the chunk's order."""

    job_id: str
    chunk_id: int
    first_row: int
    verdicts: list[Verdict]


AnyMessage = JobSubmitted | JobAccepted | ChunksOpened | JobQueued | RowChunk | ChunkDone

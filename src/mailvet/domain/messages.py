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
    """worker -> result generator: the verdict of every row of the chunk, in the chunk's order.

    `cells` is the msgpack encoding of `list[tuple[str, ...]]`: per row, the values of
    verdict.RESULT_COLUMNS exactly as they are appended to the row (`encode_cells`). Rows
    travel in this rendered form because that is all the result generator needs, and it
    lets the worker (or its process pool) do the rendering.
    """

    job_id: str
    chunk_id: int
    first_row: int
    rows: int
    cells: bytes


_cells_decoder = msgspec.msgpack.Decoder(list[tuple[str, ...]])


def encode_cells(verdicts: list[Verdict]) -> bytes:
    return msgspec.msgpack.encode([verdict.columns() for verdict in verdicts])


def decode_cells(data: bytes) -> list[tuple[str, ...]]:
    return _cells_decoder.decode(data)


AnyMessage = JobSubmitted | JobAccepted | ChunksOpened | JobQueued | RowChunk | ChunkDone

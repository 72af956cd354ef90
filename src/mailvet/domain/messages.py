"""Commands and events between the pipeline services: the wire contracts (msgspec structs,
tagged by `type`; the bus sends them as msgpack).

Every message carries `version` (1; no receiver reads it yet: a change of format that old
receivers cannot ignore would bump it). Rows travel in chunks of consecutive rows; a chunk
is identified by (job_id, chunk_id) and covers data rows [first_row, first_row + rows)
(0-based, header not counted) of the job's file. Handlers are idempotent on that key.
"""

from __future__ import annotations

import msgspec

from mailvet.domain.verdict import Check


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    version: int = 1


class JobSubmitted(Message, frozen=True, kw_only=True, tag="job_submitted"):
    """web/CLI -> intake: an uploaded file is waiting at validation/uploaded/<job_id>."""

    job_id: str


class JobAccepted(Message, frozen=True, kw_only=True, tag="job_accepted"):
    """intake -> publisher: the file is readable, counted and moved to in-progress."""

    job_id: str


class ChunksOpened(Message, frozen=True, kw_only=True, tag="chunks_opened"):
    """publisher -> orchestrator: the job's chunks go on its row queue (`rows.<job_id>`) from
    now on, `chunks_total` of them; the orchestrator adds the job to its round-robin."""

    job_id: str
    chunks_total: int


class JobQueued(Message, frozen=True, kw_only=True, tag="job_queued"):
    """publisher -> result generator: every chunk of the job has been published."""

    job_id: str


class RowChunk(Message, frozen=True, kw_only=True, tag="row_chunk"):
    """publisher (queue `rows.<job_id>`) -> orchestrator (moves it to `work`) -> worker: a run
    of `rows` consecutive rows to validate.

    CSV/TXT lists send the rows' raw text (`text`) with the file's layout (msgpack, opaque
    here) so the worker can parse and render them, and `emails` stays empty; XLSX lists send
    the addresses (`emails`, one per row) with empty `text` and `layout`.
    """

    job_id: str
    chunk_id: int
    first_row: int
    rows: int
    checks: Check = Check.SMTP
    emails: list[str] = []
    text: str = ""
    layout: bytes = b""


class ChunkDone(Message, frozen=True, kw_only=True, tag="chunk_done"):
    """worker -> result generator: the chunk's rows with their verdicts, ready for the file.

    `form` says what `data` holds: "text" = the chunk's output rows, encoded as in the result
    file; "cells" = msgpack list of the mailvet_* cell tuples, one per row (XLSX results).
    `statuses`/`reasons` count the chunk's verdicts for the job summary; `refunded` lists
    the normalized addresses of the rows whose verdict gives the credit back
    (domain.credits.REFUNDED_REASONS), for the job's settlement.
    """

    job_id: str
    chunk_id: int
    first_row: int
    rows: int
    form: str
    data: bytes
    statuses: dict[str, int] = {}
    reasons: dict[str, int] = {}
    refunded: list[str] = []


AnyMessage = JobSubmitted | JobAccepted | ChunksOpened | JobQueued | RowChunk | ChunkDone

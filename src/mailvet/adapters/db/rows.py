"""A `jobs` row to a domain Job: shared by the SQL repository and the stdlib SQLite reader."""

from __future__ import annotations

from typing import Any

import msgspec

from mailvet.domain.job import FileInfo, Job, JobCounts, JobStatus
from mailvet.domain.verdict import Check

# the columns job_from_row reads (the names of the JobRow attributes)
JOB_COLUMNS = (
    "id",
    "filename",
    "email_column",
    "checks",
    "status",
    "error",
    "rows_total",
    "rows_done",
    "chunks_total",
    "layout",
    "owner",
    "created_at",
    "updated_at",
    "sheet",
    "result_kind",
    "cost",
    "counts",
    "header_row",
)


def job_from_row(row: Any) -> Job:
    """`row`: an ORM JobRow, or any object with the JOB_COLUMNS as attributes."""
    return Job(
        id=row.id,
        file=FileInfo(
            filename=row.filename,
            email_column=row.email_column,
            checks=Check(row.checks),
            sheet=row.sheet,
            result_kind=row.result_kind,
            header_row=row.header_row,
        ),
        status=JobStatus(row.status),
        error=row.error,
        rows_total=row.rows_total,
        rows_done=row.rows_done,
        chunks_total=row.chunks_total,
        layout=bytes(row.layout),
        owner=row.owner,
        cost=row.cost,
        counts=decode_counts(row.counts),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def encode_counts(counts: JobCounts) -> str:
    """The `jobs.counts` text of a JobCounts (JSON)."""
    return msgspec.json.encode(counts).decode()


def decode_counts(text: str | None) -> JobCounts | None:
    return None if text is None else msgspec.json.decode(text, type=JobCounts)

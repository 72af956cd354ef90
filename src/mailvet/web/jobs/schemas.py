"""What the job API answers: msgspec structs, encoded by Litestar."""

from __future__ import annotations

import msgspec

from mailvet.domain.job import Job, JobStatus


class JobCreated(msgspec.Struct):
    id: str
    status: JobStatus


class JobView(msgspec.Struct):
    id: str
    status: JobStatus
    rows_done: int
    rows_total: int
    error: str

    @classmethod
    def of(cls, job: Job) -> JobView:
        return cls(
            id=job.id,
            status=job.status,
            rows_done=job.rows_done,
            rows_total=job.rows_total,
            error=job.error,
        )

"""JobRepository in a dict, with the same rules as the SQL one (for fast tests)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import msgspec

from mailvet.clock import utc_now
from mailvet.domain.job import ACTIVE_STATUSES, Job, JobCounts, JobStatus, check_transition
from mailvet.domain.ports import JobNotFound

_EPOCH = datetime.min.replace(tzinfo=UTC)


class MemoryJobRepository:
    def __init__(self, *, now: Callable[[], datetime] = utc_now) -> None:
        self.jobs: dict[str, Job] = {}
        self.chunks: dict[str, dict[int, int]] = {}  # job id -> chunk id -> rows
        self.verdicts: dict[str, dict[int, bytes]] = {}  # job id -> row -> kept verdict
        self._now = now

    async def add(self, job: Job) -> None:
        if job.id in self.jobs:
            raise ValueError(f"job {job.id} already exists")
        now = self._now()
        self.jobs[job.id] = msgspec.structs.replace(
            job, created_at=job.created_at or now, updated_at=now
        )
        self.chunks[job.id] = {}

    async def get(self, job_id: str) -> Job:
        return msgspec.structs.replace(self._job(job_id))

    async def set_status(self, job_id: str, status: JobStatus, error: str = "") -> Job:
        job = self._job(job_id)
        check_transition(job.status, status)
        job.status, job.error, job.updated_at = status, error, self._now()
        return msgspec.structs.replace(job)

    async def set_counts(
        self, job_id: str, *, rows_total: int, chunks_total: int, layout: bytes
    ) -> None:
        job = self._job(job_id)
        job.rows_total, job.chunks_total, job.layout = rows_total, chunks_total, layout
        job.updated_at = self._now()

    async def set_cost(self, job_id: str, cost: int) -> None:
        job = self._job(job_id)
        job.cost, job.updated_at = cost, self._now()

    async def set_result_counts(self, job_id: str, counts: JobCounts) -> None:
        job = self._job(job_id)
        job.counts, job.updated_at = counts, self._now()

    async def record_chunk(self, job_id: str, chunk_id: int, rows: int) -> bool:
        job = self._job(job_id)
        recorded = self.chunks[job_id]
        if chunk_id in recorded:
            return False
        recorded[chunk_id] = rows
        job.rows_done += rows
        job.updated_at = self._now()
        return True

    async def list_jobs(self, limit: int = 100) -> list[Job]:
        jobs = sorted(self.jobs.values(), key=lambda job: job.id)
        jobs.sort(key=lambda job: job.created_at or _EPOCH, reverse=True)
        return [msgspec.structs.replace(job) for job in jobs[:limit]]

    async def list_active(self) -> list[Job]:
        jobs = [job for job in self.jobs.values() if job.status in ACTIVE_STATUSES]
        jobs.sort(key=lambda job: (job.created_at or _EPOCH, job.id))
        return [msgspec.structs.replace(job) for job in jobs]

    async def keep_verdicts(self, job_id: str, verdicts: Mapping[int, bytes]) -> None:
        kept = self.verdicts.setdefault(job_id, {})
        for row, verdict in verdicts.items():
            kept.setdefault(row, verdict)

    async def kept_verdicts(self, job_id: str, first_row: int, rows: int) -> dict[int, bytes]:
        kept = self.verdicts.get(job_id, {})
        return {row: kept[row] for row in range(first_row, first_row + rows) if row in kept}

    async def drop_verdicts(self, job_id: str, first_row: int, rows: int) -> None:
        kept = self.verdicts.get(job_id, {})
        for row in range(first_row, first_row + rows):
            kept.pop(row, None)
        if not kept:
            self.verdicts.pop(job_id, None)

    def _job(self, job_id: str) -> Job:
        try:
            return self.jobs[job_id]
        except KeyError:
            raise JobNotFound(job_id) from None

"""JobRepository on SQLAlchemy (SQLite or PostgreSQL). Returns domain Jobs, never ORM rows."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Update, delete, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.database import Database, dialect_insert, rowcount
from mailvet.adapters.db.models import JobChunkRow, JobRow, JobVerdictRow
from mailvet.adapters.db.rows import encode_counts, job_from_row
from mailvet.adapters.retry import RetriesExhausted, RetryPolicy
from mailvet.clock import utc_now
from mailvet.domain.job import ACTIVE_STATUSES, Job, JobCounts, JobStatus, check_transition
from mailvet.domain.ports import JobNotFound
from mailvet.logs import logger

P = ParamSpec("P")
R = TypeVar("R")


def _transient(exc: BaseException) -> bool:
    """Lost or refused connections (server restart, network): worth trying again."""
    if isinstance(exc, DBAPIError) and not isinstance(exc, IntegrityError):
        return bool(exc.connection_invalidated) or isinstance(
            exc, OperationalError | InterfaceError
        )
    return isinstance(exc, ConnectionError | OSError)


def _retrying(
    method: Callable[Concatenate[SqlJobRepository, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[SqlJobRepository, P], Coroutine[Any, Any, R]]:
    """Retry a repository call through the repository's RetryPolicy while the database is
    unreachable; once it gives up, the last error is raised. Every call is one transaction,
    so trying again never applies a change twice (record_chunk and set_status are
    idempotent when the first try did commit)."""

    @functools.wraps(method)
    async def call(self: SqlJobRepository, /, *args: P.args, **kwargs: P.kwargs) -> R:
        def warn(attempt: int, exc: BaseException, pause: float) -> None:
            logger(__name__).warning(  # imports structlog only when it happens
                "database_retry", op=method.__name__, attempt=attempt, error=type(exc).__name__
            )

        try:
            return await self.retry.run(
                lambda: method(self, *args, **kwargs), transient=_transient, on_retry=warn
            )
        except RetriesExhausted as exc:
            raise exc.error from None

    return call


class SqlJobRepository:
    def __init__(
        self,
        database: Database,
        *,
        now: Callable[[], datetime] = utc_now,
        retry: RetryPolicy | None = None,
    ) -> None:
        # SQLite has one writer at a time: queue this process's writers on a lock instead of
        # letting them sleep in SQLite's busy handler (1..100 ms naps per conflict).
        self._write_lock = asyncio.Lock() if database.engine.dialect.name == "sqlite" else None
        self._database = database
        self._sessions = database.session_maker
        self._now = now
        # how a call is tried again while the database is unreachable (build_deps passes the
        # process's one policy; default: RetryPolicy())
        self.retry = retry or RetryPolicy()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncSession]:
        """One transaction that means to write (SQLite: BEGIN IMMEDIATE); commits on exit."""
        lock = self._write_lock or contextlib.nullcontext()
        async with lock, self._database.unit_of_work(write=True) as session:
            yield session

    @_retrying
    async def add(self, job: Job) -> None:
        now = self._now()
        row = JobRow(
            id=job.id,
            filename=job.file.filename,
            email_column=job.file.email_column,
            sheet=job.file.sheet,
            result_kind=job.file.result_kind,
            header_row=job.file.header_row,
            checks=job.file.checks.value,
            status=job.status.value,
            error=job.error,
            rows_total=job.rows_total,
            rows_done=job.rows_done,
            chunks_total=job.chunks_total,
            layout=job.layout,
            owner=job.owner,
            cost=job.cost,
            counts=None if job.counts is None else encode_counts(job.counts),
            created_at=job.created_at or now,
            updated_at=now,
        )
        try:
            async with self._write() as session:
                session.add(row)
        except IntegrityError as exc:
            raise ValueError(f"job {job.id} already exists") from exc

    @_retrying
    async def get(self, job_id: str) -> Job:
        async with self._sessions() as session:
            row = await session.get(JobRow, job_id)
            if row is None:
                raise JobNotFound(job_id)
            return job_from_row(row)

    @_retrying
    async def set_status(self, job_id: str, status: JobStatus, error: str = "") -> Job:
        async with self._write() as session:
            query = select(JobRow).where(JobRow.id == job_id).with_for_update()
            row = (await session.execute(query)).scalar_one_or_none()
            if row is None:
                raise JobNotFound(job_id)
            check_transition(JobStatus(row.status), status)
            row.status, row.error, row.updated_at = status.value, error, self._now()
            await session.flush()
            return job_from_row(row)

    @_retrying
    async def set_counts(
        self, job_id: str, *, rows_total: int, chunks_total: int, layout: bytes
    ) -> None:
        values = {
            "rows_total": rows_total,
            "chunks_total": chunks_total,
            "layout": layout,
            "updated_at": self._now(),
        }
        async with self._write() as session:
            if rowcount(await session.execute(_update_job(job_id, values))) == 0:
                raise JobNotFound(job_id)

    @_retrying
    async def set_cost(self, job_id: str, cost: int) -> None:
        values = {"cost": cost, "updated_at": self._now()}
        async with self._write() as session:
            if rowcount(await session.execute(_update_job(job_id, values))) == 0:
                raise JobNotFound(job_id)

    @_retrying
    async def set_result_counts(self, job_id: str, counts: JobCounts) -> None:
        values = {"counts": encode_counts(counts), "updated_at": self._now()}
        async with self._write() as session:
            if rowcount(await session.execute(_update_job(job_id, values))) == 0:
                raise JobNotFound(job_id)

    @_retrying
    async def record_chunk(self, job_id: str, chunk_id: int, rows: int) -> bool:
        try:
            async with self._write() as session:
                # whether the row went in is read from RETURNING: psycopg under SQLAlchemy
                # reports an INSERT's rowcount as -1
                insert = dialect_insert(session, JobChunkRow).on_conflict_do_nothing()
                added = await session.execute(
                    insert.values(job_id=job_id, chunk_id=chunk_id, rows=rows).returning(
                        JobChunkRow.chunk_id
                    )
                )
                if added.scalar_one_or_none() is None:
                    return False  # recorded before: progress already counted
                values = {"rows_done": JobRow.rows_done + rows, "updated_at": self._now()}
                if rowcount(await session.execute(_update_job(job_id, values))) == 0:
                    raise JobNotFound(job_id)  # when foreign keys are not enforced
                return True
        except IntegrityError as exc:  # foreign key: no such job
            raise JobNotFound(job_id) from exc

    @_retrying
    async def list_jobs(self, limit: int = 100) -> list[Job]:
        query = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id).limit(limit)
        async with self._sessions() as session:
            return [job_from_row(row) for row in (await session.execute(query)).scalars()]

    @_retrying
    async def list_active(self) -> list[Job]:
        active = [status.value for status in ACTIVE_STATUSES]
        query = (
            select(JobRow).where(JobRow.status.in_(active)).order_by(JobRow.created_at, JobRow.id)
        )
        async with self._sessions() as session:
            return [job_from_row(row) for row in (await session.execute(query)).scalars()]

    @_retrying
    async def keep_verdicts(self, job_id: str, verdicts: Mapping[int, bytes]) -> None:
        if not verdicts:
            return
        values = [
            {"job_id": job_id, "row": row, "verdict": verdict} for row, verdict in verdicts.items()
        ]
        async with self._write() as session:
            await session.execute(
                dialect_insert(session, JobVerdictRow).on_conflict_do_nothing(), values
            )

    @_retrying
    async def kept_verdicts(self, job_id: str, first_row: int, rows: int) -> dict[int, bytes]:
        query = select(JobVerdictRow.row, JobVerdictRow.verdict).where(
            JobVerdictRow.job_id == job_id,
            JobVerdictRow.row >= first_row,
            JobVerdictRow.row < first_row + rows,
        )
        async with self._sessions() as session:
            return {row: bytes(verdict) for row, verdict in (await session.execute(query)).all()}

    @_retrying
    async def drop_verdicts(self, job_id: str, first_row: int, rows: int) -> None:
        query = delete(JobVerdictRow).where(
            JobVerdictRow.job_id == job_id,
            JobVerdictRow.row >= first_row,
            JobVerdictRow.row < first_row + rows,
        )
        async with self._write() as session:
            await session.execute(query.execution_options(synchronize_session=False))


def _update_job(job_id: str, values: dict[str, Any]) -> Update:
    return (
        update(JobRow)
        .where(JobRow.id == job_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )

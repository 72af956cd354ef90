"""JobRepository on the embedded SQLite file with the standard library's sqlite3.

The embedded database (`mailvet validate`, `status`, `fetch`, `run all` on one machine) is
one local file: going through SQLAlchemy there cost more than the whole of a small run (its
import, its ORM set-up, ~2 ms a call). This repository speaks the same schema (the Alembic
migrations create it; `open_current` only opens a file already at the newest revision) and
the same stored formats as the SQL repository (UTC datetimes as `YYYY-MM-DD HH:MM:SS.ffffff`),
so either can read what the other wrote; PostgreSQL keeps the SQL repository.

One connection per repository, used from one worker thread at a time (the blocking calls
never run on the event loop); writers start with BEGIN IMMEDIATE, so a read-then-write
transaction cannot fail on lock upgrade, and wait up to BUSY_TIMEOUT_S for another process.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from mailvet.adapters.db.rows import JOB_COLUMNS, encode_counts, job_from_row
from mailvet.clock import utc_now
from mailvet.domain.job import ACTIVE_STATUSES, Job, JobCounts, JobStatus, check_transition
from mailvet.domain.ports import JobNotFound

BUSY_TIMEOUT_S = 30.0
T = TypeVar("T")

_SELECT = f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs"  # noqa: S608 - constant column names
_ACTIVE = tuple(status.value for status in ACTIVE_STATUSES)


def sqlite_path(url: str) -> Path | None:
    """The file of a `sqlite[+driver]:///path` URL (None for memory or another database)."""
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme.split("+")[0] != "sqlite":
        return None
    path = rest.split("?")[0]
    return None if path in ("", ":memory:") else Path(path)


def _stored(value: datetime) -> str:
    """The text SQLAlchemy's SQLite DATETIME stores (UTC, no zone)."""
    if value.tzinfo is None:
        raise TypeError("tzinfo is required")
    return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def _read(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _job(row: tuple[Any, ...]) -> Job:
    values = dict(zip(JOB_COLUMNS, row, strict=True))
    values["created_at"] = _read(values["created_at"])
    values["updated_at"] = _read(values["updated_at"])
    return job_from_row(SimpleNamespace(**values))


class SqliteJobRepository:
    def __init__(self, conn: sqlite3.Connection, *, now: Callable[[], datetime] = utc_now) -> None:
        self._conn = conn
        self._now = now
        self._lock = asyncio.Lock()

    @classmethod
    def open_current(
        cls, url: str, head: str, *, now: Callable[[], datetime] = utc_now
    ) -> SqliteJobRepository | None:
        """The repository of the file of `url` if it exists and its schema is at `head`."""
        path = sqlite_path(url)
        if path is None or not path.is_file():
            return None
        try:
            # mode=rw: never create the file just to look at it
            conn = sqlite3.connect(
                f"file:{path}?mode=rw",
                uri=True,
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error:
            return None
        try:
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        except sqlite3.Error:
            revision = []
        if revision != [(head,)]:
            conn.close()
            return None
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return cls(conn, now=now)

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        async with self._lock:
            return await asyncio.to_thread(fn, self._conn)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def transaction(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await self._call(transaction)

    async def add(self, job: Job) -> None:
        now = self._now()
        values = (
            job.id,
            job.file.filename,
            job.file.email_column,
            job.file.checks.value,
            job.status.value,
            job.error,
            job.rows_total,
            job.rows_done,
            job.chunks_total,
            job.layout,
            job.owner,
            _stored(job.created_at or now),
            _stored(now),
            job.file.sheet,
            job.file.result_kind,
            job.cost,
            None if job.counts is None else encode_counts(job.counts),
            job.file.header_row,
        )
        marks = ", ".join("?" * len(JOB_COLUMNS))

        def insert(conn: sqlite3.Connection) -> None:
            # constant column names and ? marks; the values are bound
            sql = f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({marks})"  # noqa: S608
            conn.execute(sql, values)

        try:
            await self._write(insert)
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"job {job.id} already exists") from exc

    async def get(self, job_id: str) -> Job:
        def read(conn: sqlite3.Connection) -> Job:
            row = conn.execute(f"{_SELECT} WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            return _job(row)

        return await self._call(read)

    async def set_status(self, job_id: str, status: JobStatus, error: str = "") -> Job:
        now = _stored(self._now())

        def change(conn: sqlite3.Connection) -> Job:
            found = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if found is None:
                raise JobNotFound(job_id)
            check_transition(JobStatus(found[0]), status)
            conn.execute(
                "UPDATE jobs SET status = ?, error = ?, updated_at = ? WHERE id = ?",
                (status.value, error, now, job_id),
            )
            return _job(conn.execute(f"{_SELECT} WHERE id = ?", (job_id,)).fetchone())

        return await self._write(change)

    async def set_counts(
        self, job_id: str, *, rows_total: int, chunks_total: int, layout: bytes
    ) -> None:
        now = _stored(self._now())

        def change(conn: sqlite3.Connection) -> None:
            done = conn.execute(
                "UPDATE jobs SET rows_total = ?, chunks_total = ?, layout = ?, updated_at = ? "
                "WHERE id = ?",
                (rows_total, chunks_total, layout, now, job_id),
            )
            if done.rowcount == 0:
                raise JobNotFound(job_id)

        await self._write(change)

    async def set_cost(self, job_id: str, cost: int) -> None:
        await self._update(job_id, cost=cost)

    async def set_result_counts(self, job_id: str, counts: JobCounts) -> None:
        await self._update(job_id, counts=encode_counts(counts))

    async def _update(self, job_id: str, **values: object) -> None:
        """Set the named columns (constant names from the callers above) and updated_at."""
        names = ", ".join(f"{name} = ?" for name in values)
        bound = (*values.values(), _stored(self._now()), job_id)

        def change(conn: sqlite3.Connection) -> None:
            sql = f"UPDATE jobs SET {names}, updated_at = ? WHERE id = ?"  # noqa: S608
            if conn.execute(sql, bound).rowcount == 0:
                raise JobNotFound(job_id)

        await self._write(change)

    async def record_chunk(self, job_id: str, chunk_id: int, rows: int) -> bool:
        now = _stored(self._now())

        def record(conn: sqlite3.Connection) -> bool:
            added = conn.execute(
                "INSERT INTO job_chunks (job_id, chunk_id, rows) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (job_id, chunk_id, rows),
            )
            if added.rowcount == 0:
                return False  # recorded before: progress already counted
            done = conn.execute(
                "UPDATE jobs SET rows_done = rows_done + ?, updated_at = ? WHERE id = ?",
                (rows, now, job_id),
            )
            if done.rowcount == 0:
                raise JobNotFound(job_id)
            return True

        try:
            return await self._write(record)
        except sqlite3.IntegrityError as exc:  # foreign key: no such job
            raise JobNotFound(job_id) from exc

    async def list_jobs(self, limit: int = 100) -> list[Job]:
        def read(conn: sqlite3.Connection) -> list[Job]:
            query = f"{_SELECT} ORDER BY created_at DESC, id LIMIT ?"
            return [_job(row) for row in conn.execute(query, (limit,))]

        return await self._call(read)

    async def list_active(self) -> list[Job]:
        def read(conn: sqlite3.Connection) -> list[Job]:
            marks = ", ".join("?" * len(_ACTIVE))
            query = f"{_SELECT} WHERE status IN ({marks}) ORDER BY created_at, id"
            return [_job(row) for row in conn.execute(query, _ACTIVE)]

        return await self._call(read)

    async def keep_verdicts(self, job_id: str, verdicts: Mapping[int, bytes]) -> None:
        values = [(job_id, row, verdict) for row, verdict in verdicts.items()]

        def keep(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO job_verdicts (job_id, row, verdict) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                values,
            )

        if values:
            await self._write(keep)

    async def kept_verdicts(self, job_id: str, first_row: int, rows: int) -> dict[int, bytes]:
        def read(conn: sqlite3.Connection) -> dict[int, bytes]:
            found = conn.execute(
                "SELECT row, verdict FROM job_verdicts WHERE job_id = ? AND row >= ? AND row < ?",
                (job_id, first_row, first_row + rows),
            )
            return {row: bytes(verdict) for row, verdict in found}

        return await self._call(read)

    async def drop_verdicts(self, job_id: str, first_row: int, rows: int) -> None:
        def drop(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM job_verdicts WHERE job_id = ? AND row >= ? AND row < ?",
                (job_id, first_row, first_row + rows),
            )

        await self._write(drop)

    async def close(self) -> None:
        async with self._lock:
            self._conn.close()

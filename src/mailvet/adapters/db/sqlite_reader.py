"""Read a job from the embedded SQLite file with the standard library alone.

`mailvet status` and `mailvet fetch` read one row; on the embedded database they do it here
instead of through SQLAlchemy, whose import alone costs several times the whole command's
budget. Only a file already at the newest schema revision is read this way
(`open_current` returns None otherwise, and the caller builds the SQL repository, which
migrates); the row is turned into a Job by the same `job_from_row` as the SQL repository's.
"""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from mailvet.adapters.db.rows import JOB_COLUMNS, job_from_row
from mailvet.domain.job import Job
from mailvet.domain.ports import JobNotFound

BUSY_TIMEOUT_S = 30.0


def sqlite_path(url: str) -> Path | None:
    """The file of a `sqlite[+driver]:///path` URL (None for memory or another database)."""
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme.split("+")[0] != "sqlite":
        return None
    path = rest.split("?")[0]
    return None if path in ("", ":memory:") else Path(path)


def _utc(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class SqliteJobReader:
    """`get(job_id)` on one stdlib connection; `close()` releases it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @classmethod
    def open_current(cls, url: str, head: str) -> SqliteJobReader | None:
        """A reader of the file of `url` if it exists and its schema is at `head`."""
        path = sqlite_path(url)
        if path is None or not path.is_file():
            return None
        try:
            # mode=rw: never create the file just to look at it
            conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=BUSY_TIMEOUT_S)
        except sqlite3.Error:
            return None
        try:
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        except sqlite3.Error:
            revision = []
        if revision != [(head,)]:
            conn.close()
            return None
        return cls(conn)

    def _get(self, job_id: str) -> Job:
        columns = ", ".join(JOB_COLUMNS)
        row = self._conn.execute(f"SELECT {columns} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        values = dict(zip(JOB_COLUMNS, row, strict=True))
        values["created_at"] = _utc(values["created_at"])
        values["updated_at"] = _utc(values["updated_at"])
        return job_from_row(SimpleNamespace(**values))

    async def get(self, job_id: str) -> Job:
        return self._get(job_id)  # one indexed read of a local file: no thread needed

    async def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()

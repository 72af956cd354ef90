"""An account's lists: the dashboard's page of jobs, one owned job, the live progress of
many jobs in one query, deleting a job, lists uploaded but not started yet (drafts), and
the retention purge.

Ownership is decided here, in the query: `owned_job` and `jobs_page(owner=...)` read only rows
whose `owner` is the account, so another account's id, guessed or not, is simply not
found (the pages answer 404). Every function takes the caller's unit of work (`session`)
and does not commit; the file deletions go through `ObjectStorage` first, so a failed commit
leaves a row without files (deleted again next time), never files nobody can reach.

Retention (issue 8 §3, MAILVET_RETENTION_DAYS): `purge_expired` deletes the uploaded list,
the work files and the result of every job created more than `retention_days` ago that is
not running, and blanks its file name, column, sheet and layout (`forget_files`, which
`services.accounts.delete_account` also calls); the row keeps its counts, cost and dates
(the operator's and the customer's statistics). A blank file name marks a purged job.
Drafts live under `drafts/<day>/`, so the purge drops whole days of them without listing
the storage.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import msgspec
from sqlalchemy import Row, Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from mailvet.adapters.db.database import Database, rowcount
from mailvet.adapters.db.models import JobRow
from mailvet.adapters.db.rows import JOB_COLUMNS, job_from_row
from mailvet.domain.job import ACTIVE_STATUSES, Job, JobStatus
from mailvet.domain.ports import ObjectStorage
from mailvet.logs import logger
from mailvet.pipeline import object_keys
from mailvet.services import credits, single_checks
from mailvet.services.paging import Page, window

JOB_ID = re.compile(r"[0-9a-f]{32}")  # uuid4 hex, as pipeline.submit.new_job_id makes them
PAGE_SIZE = 20
DRAFTS = "drafts/"
DRAFT_DAYS_KEPT = 1  # a list uploaded but not started is kept at least this many days
DRAFT_DAYS_SWEPT = 7  # and the purge sweeps this many days before that
PURGE_BATCH = 200
RETENTION_EVERY = 3600.0
# what a page of jobs reads of each: all but the layout, the biggest column, not shown there
_PAGE_NAMES = [name for name in JOB_COLUMNS if name != "layout"]
_PAGE_COLUMNS = [getattr(JobRow, name) for name in _PAGE_NAMES]


class Progress(msgspec.Struct, frozen=True):
    """What the live job page shows of a job."""

    job_id: str
    status: JobStatus
    rows_done: int
    rows_total: int
    error: str


class JobRunning(Exception):
    """A job between submission and its end cannot be deleted (its services use the files)."""


def is_job_id(job_id: str) -> bool:
    return bool(JOB_ID.fullmatch(job_id))


# --- reading -------------------------------------------------------------------------------


def page_query(*, owner: str | None = None, status: JobStatus | None = None) -> Select[Any]:
    """The jobs (of the account `owner`, in `status`, when given), newest first, read as
    `job_of_page_row` takes them (every column but the layout, the biggest)."""
    return (
        select(*_PAGE_COLUMNS)
        .where(*_page_filters(owner, status))
        .order_by(JobRow.created_at.desc(), JobRow.id)
    )


async def page_total(
    session: AsyncSession, *, owner: str | None = None, status: JobStatus | None = None
) -> int:
    """How many jobs `page_query` finds in all."""
    total = await session.scalar(
        select(func.count()).select_from(JobRow).where(*_page_filters(owner, status))
    )
    return int(total or 0)


def job_of_page_row(row: Row[Any]) -> Job:
    """A job from a row of `page_query` (its layout left empty)."""
    values = row._mapping
    return job_from_row(SimpleNamespace(**{name: values[name] for name in _PAGE_NAMES}, layout=b""))


async def jobs_page(
    session: AsyncSession,
    *,
    owner: str | None = None,
    status: JobStatus | None = None,
    offset: int = 0,
    limit: int = PAGE_SIZE,
) -> Page[Job]:
    """The jobs of `owner` (every job when None; in `status` when given), newest first."""
    offset, limit = window(offset, limit)
    rows = await session.execute(page_query(owner=owner, status=status).offset(offset).limit(limit))
    jobs = [job_of_page_row(row) for row in rows]
    total = await page_total(session, owner=owner, status=status)
    return Page(jobs, total, offset, limit)


def _page_filters(owner: str | None, status: JobStatus | None) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = []
    if owner is not None:
        filters.append(JobRow.owner == owner)
    if status is not None:
        filters.append(JobRow.status == status.value)
    return filters


async def owned_job(session: AsyncSession, owner: str, job_id: str) -> Job | None:
    """The job if `owner` owns it; None for anyone else, an id that cannot exist included."""
    if not owner or not is_job_id(job_id):
        return None
    row = await session.scalar(select(JobRow).where(JobRow.id == job_id, JobRow.owner == owner))
    return None if row is None else job_from_row(row)


async def progress_of(session: AsyncSession, job_ids: Sequence[str]) -> dict[str, Progress]:
    """The progress of every job in `job_ids` that exists, in one query."""
    if not job_ids:
        return {}
    rows = await session.execute(
        select(JobRow.id, JobRow.status, JobRow.rows_done, JobRow.rows_total, JobRow.error).where(
            JobRow.id.in_(list(job_ids))
        )
    )
    return {
        job_id: Progress(job_id, JobStatus(status), done, total, error)
        for job_id, status, done, total, error in rows
    }


# --- deleting ------------------------------------------------------------------------------


async def delete_job(
    session: AsyncSession, storage: ObjectStorage, owner: str, job_id: str
) -> bool:
    """Delete an owned job that is not running: its files, then its row. False when the
    account owns no such job; JobRunning while the pipeline works on it."""
    job = await owned_job(session, owner, job_id)
    if job is None:
        return False
    if job.status in ACTIVE_STATUSES:
        raise JobRunning(job_id)
    for prefix in object_keys.job_prefixes(job_id):
        await storage.delete_prefix(prefix)
    row = await session.get(JobRow, job_id)
    if row is not None:
        await session.delete(row)
        await session.flush()
    logger(__name__).info("job_deleted", job_id=job_id)
    return True


async def discard_unstarted(session: AsyncSession, job_id: str) -> bool:
    """Remove a job row that never reached intake (still pending_start, its file not
    stored): what starting a draft undoes when it fails after inserting the row."""
    result = await session.execute(
        delete(JobRow)
        .where(JobRow.id == job_id, JobRow.status == JobStatus.PENDING_START.value)
        .execution_options(synchronize_session=False)
    )
    return bool(rowcount(result))


async def forget_files(session: AsyncSession, where: ColumnElement[bool]) -> None:
    """Blank what the rows matching `where` said about their files (name, column, sheet,
    layout) once the files are deleted: the retention purge and an account's deletion. A
    blank file name marks such a job; its counts, cost and dates stay."""
    await session.execute(
        update(JobRow)
        .where(where)
        .values(filename="", email_column=None, sheet=None, layout=b"")
        .execution_options(synchronize_session=False)
    )


# --- drafts: uploaded, previewed, not started ----------------------------------------------


def draft_key(created: datetime, draft_id: str) -> str:
    """Where a draft's file is stored: under the day it was uploaded (UTC)."""
    return f"{DRAFTS}{created:%Y%m%d}/{draft_id}"


def swept_draft_days(now: datetime) -> list[str]:
    """The prefixes of the days of drafts the purge deletes (old enough, not too old to
    have been swept already by an earlier run)."""
    first = DRAFT_DAYS_KEPT + 1
    return [
        f"{DRAFTS}{now - timedelta(days=days):%Y%m%d}/"
        for days in range(first, first + DRAFT_DAYS_SWEPT)
    ]


# --- retention -----------------------------------------------------------------------------


async def purge_expired(
    session: AsyncSession,
    storage: ObjectStorage,
    *,
    now: datetime,
    retention_days: float,
    batch: int = PURGE_BATCH,
) -> int:
    """Delete the files of jobs created more than `retention_days` before `now` (not
    running, not purged yet) and blank their file names; the counts stay. Returns how many
    jobs were purged (at most `batch`: call again while it returns `batch`). Also drops the
    drafts of a few days before yesterday."""
    cutoff = now - timedelta(days=retention_days)
    ids = list(
        (
            await session.execute(
                select(JobRow.id)
                .where(
                    JobRow.created_at < cutoff,
                    JobRow.filename != "",
                    JobRow.status.not_in([status.value for status in ACTIVE_STATUSES]),
                )
                .order_by(JobRow.created_at)
                .limit(batch)
            )
        ).scalars()
    )
    for job_id in ids:
        for prefix in object_keys.job_prefixes(job_id):
            await storage.delete_prefix(prefix)
    if ids:
        await forget_files(session, JobRow.id.in_(ids))
    for prefix in swept_draft_days(now):
        await storage.delete_prefix(prefix)
    return len(ids)


async def in_batches(
    database: Database, step: Callable[[AsyncSession], Awaitable[int]], batch: int
) -> int:
    """`step` in write transactions of its own (`Database.unit_of_work(write=True)`), again
    while it did a whole `batch`; how much it did in all."""
    done_all = 0
    while True:
        async with database.unit_of_work(write=True) as session:
            done = await step(session)
        done_all += done
        if done < batch:
            return done_all


async def purge_once(
    database: Database, storage: ObjectStorage, *, now: datetime, retention_days: float
) -> int:
    """`purge_expired` in batches, one transaction each, until nothing is left."""

    async def step(session: AsyncSession) -> int:
        return await purge_expired(session, storage, now=now, retention_days=retention_days)

    return await in_batches(database, step, PURGE_BATCH)


async def sweep_pending_checks(database: Database, *, now: datetime) -> int:
    """Refund the single checks left pending (services/single_checks.py), in batches, one
    transaction each."""

    async def step(session: AsyncSession) -> int:
        return await single_checks.sweep(session, now=now)

    return await in_batches(database, step, single_checks.SWEEP_BATCH)


async def run_retention(
    database: Database,
    storage: ObjectStorage,
    *,
    retention_days: float,
    clock: Callable[[], datetime],
    every: float = RETENTION_EVERY,
) -> None:
    """`purge_once`, `sweep_pending_checks` and `sweep_unsettled_jobs` (settlements a
    failure left undone, services/credits.py) now and every `every` seconds until cancelled
    (a task of the web role; replicas may all run it: each is idempotent). A failed round
    is logged; the next one still runs (the database or the storage may be down a while)."""
    log = logger(__name__)
    # (logged when done, with the count as, logged when it fails, the round)
    rounds: list[tuple[str, str, str, Callable[[], Awaitable[int]]]] = [
        (
            "retention_purged",
            "jobs",
            "retention_failed",
            lambda: purge_once(database, storage, now=clock(), retention_days=retention_days),
        ),
        (
            "pending_checks_swept",
            "refunded",
            "pending_checks_sweep_failed",
            lambda: sweep_pending_checks(database, now=clock()),
        ),
        (
            "unsettled_jobs_swept",
            "settled",
            "unsettled_jobs_sweep_failed",
            lambda: credits.sweep_unsettled_jobs(database, now=clock()),
        ),
    ]
    while True:
        for done_event, field, failed_event, run in rounds:
            try:
                log.info(done_event, **{field: await run()})
            except Exception as exc:
                log.warning(failed_event, error=type(exc).__name__)
        await asyncio.sleep(every)

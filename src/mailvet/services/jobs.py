"""An account's lists: the dashboard's page of jobs, one owned job, the live progress of
many jobs in one query, starting a job (`start_job`), deleting a job, lists uploaded but
not started yet (drafts), and the retention purge.

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

Unsubmitted jobs (issue 8: no row lost): starting a draft inserts the job row (still
pending_start), moves the draft to the job's upload key and publishes JobSubmitted; a web
process that dies in between leaves a row nobody submits. `sweep_unsubmitted` finishes such
starts once they are UNSUBMITTED_GRACE old: the file stored (uploaded, or moved on by
intake already) -> JobSubmitted again (intake skips a job past pending_start, and reserves
credits once per job id); the draft still stored -> moved, then published; neither -> the
job fails (error_df) with a clear message, holding no credit (intake reserves only once it
has read the file). A resubmitted row's `updated_at` is moved on, so a job is published at
most once per grace period; a failed publish is tried again at the next round.
`run_retention` runs it every RECOVERY_EVERY seconds, with the sweep of completions whose
mail was never queued (services/job_mail.py).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Row, Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from mailvet.adapters.db.database import Database, rowcount
from mailvet.adapters.db.models import JobRow
from mailvet.adapters.db.rows import JOB_COLUMNS, job_from_row
from mailvet.domain.job import ACTIVE_STATUSES, Job, JobStatus
from mailvet.domain.messages import JobSubmitted
from mailvet.domain.ports import JobRepository, MessageBus, ObjectNotFound, ObjectStorage
from mailvet.logs import logger
from mailvet.pipeline import object_keys, queues
from mailvet.services import credits, job_mail, low_credits, single_checks
from mailvet.services.paging import Page, window

if TYPE_CHECKING:
    from mailvet.settings import Settings
    from mailvet.tabular import XlsxLimits

JOB_ID = re.compile(r"[0-9a-f]{32}")  # uuid4 hex, as pipeline.submit.new_job_id makes them
PAGE_SIZE = 20
DRAFTS = "drafts/"
DRAFT_DAYS_KEPT = 1  # a list uploaded but not started is kept at least this many days
DRAFT_DAYS_SWEPT = 7  # and the purge sweeps this many days before that
PURGE_BATCH = 200
RETENTION_EVERY = 3600.0
# a job row still pending_start this long after its last change was left by a start that
# did not finish (the web request takes seconds); its start is finished by the sweep
UNSUBMITTED_GRACE = timedelta(minutes=5)
# how far back the sweep looks (by created_at, the index): older rows are not looked at
UNSUBMITTED_WINDOW = timedelta(days=7)
UNSUBMITTED_BATCH = 100
RECOVERY_EVERY = 60.0  # the unsubmitted jobs' and the unmailed completions' sweeps
NOT_STORED = "the uploaded list was not stored; upload it again"
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
    """A job before its end cannot be deleted: from its start (pending_start: the start, or
    the sweep of unsubmitted jobs, is moving its file and telling intake) to completion or
    failure, the services use its files and rows (deleting a job intake accepts meanwhile
    would leave its credit reserved for a job that no longer exists)."""


def is_job_id(job_id: str) -> bool:
    return bool(JOB_ID.fullmatch(job_id))


def xlsx_limits(settings: Settings) -> XlsxLimits:
    """What reading an uploaded workbook may cost (MAILVET_MAX_CELL_BYTES,
    MAILVET_MAX_XLSX_EXPANDED_BYTES): the limits intake reads a list with, so that a preview
    or a start judges the file as intake will."""
    from mailvet.tabular import XlsxLimits  # (the readers: not for every user of this module)

    return XlsxLimits(
        max_cell_bytes=settings.engine.max_cell_bytes,
        max_expanded_bytes=settings.engine.max_xlsx_expanded_bytes,
    )


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
    """Delete an owned job that has ended (completed or failed: a final state, which never
    changes again): its files, then its row. False when the account owns no such job;
    JobRunning before its end, from pending_start on."""
    job = await owned_job(session, owner, job_id)
    if job is None:
        return False
    if not job.status.is_final:
        raise JobRunning(job_id)
    for prefix in object_keys.job_prefixes(job_id):
        await storage.delete_prefix(prefix)
    row = await session.get(JobRow, job_id)
    if row is not None:
        await session.delete(row)
        await session.flush()
    logger(__name__).info("job_deleted", job_id=job_id)
    return True


async def start_job(
    database: Database,
    jobs: JobRepository,
    storage: ObjectStorage,
    bus: MessageBus,
    job: Job,
    *,
    source_key: str,
) -> bool:
    """Start `job` from the file stored at `source_key` (a draft): the job row is inserted
    first, which claims the job's id (a second start of the same draft, in another request
    or another replica, finds the row and returns False), then the file moves to the job's
    upload key and intake hears of it (JobSubmitted on queues.INTAKE). If the move or the
    publish fails, the row is removed again (`discard_unstarted`) and the error raised
    (ObjectNotFound when the file at `source_key` is gone), so the start can be tried once
    more; a web process dying in between is `sweep_unsubmitted`'s to finish. What the
    lists area's Start button and the API's POST /api/v1/jobs both call."""
    try:
        await jobs.add(job)
    except ValueError:  # the row exists: this draft is started (or being started) already
        return False
    try:
        await storage.move(source_key, object_keys.uploaded(job.id))
        await bus.publish(queues.INTAKE, JobSubmitted(job_id=job.id))
    except BaseException:
        async with database.unit_of_work(write=True) as session:
            await discard_unstarted(session, job.id)
        raise
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


async def sweep_unmailed_completions(
    database: Database, *, now: datetime, retention_days: float
) -> int:
    """Queue the completion mail the result generator did not (services/job_mail.py
    `queue_unmailed`), in batches, one transaction each."""

    async def step(session: AsyncSession) -> int:
        return await job_mail.queue_unmailed(session, now=now, retention_days=retention_days)

    return await in_batches(database, step, job_mail.SWEEP_BATCH)


async def sweep_unsent_webhooks(database: Database, *, now: datetime, retention_days: float) -> int:
    """Queue the webhook events of ended jobs that have none (services/webhooks.py
    `queue_missing`: a crash before the queueing, and the failures), in batches."""
    from mailvet.services import webhooks

    async def step(session: AsyncSession) -> int:
        return await webhooks.queue_missing(session, now=now, retention_days=retention_days)

    return await in_batches(database, step, webhooks.SWEEP_BATCH)


# --- starts that did not finish -------------------------------------------------------------


class Unsubmitted(msgspec.Struct, frozen=True):
    """A job row left pending_start (see the module docstring)."""

    job_id: str
    created_at: datetime


async def unsubmitted_jobs(
    session: AsyncSession,
    *,
    now: datetime,
    grace: timedelta = UNSUBMITTED_GRACE,
    limit: int = UNSUBMITTED_BATCH,
) -> list[Unsubmitted]:
    """Jobs still pending_start and unchanged for `grace`, created within
    UNSUBMITTED_WINDOW (found through the created_at index), oldest first."""
    rows = await session.execute(
        select(JobRow.id, JobRow.created_at)
        .where(
            JobRow.created_at >= now - UNSUBMITTED_WINDOW,
            JobRow.status == JobStatus.PENDING_START.value,
            JobRow.updated_at < now - grace,
        )
        .order_by(JobRow.created_at, JobRow.id)
        .limit(limit)
    )
    return [Unsubmitted(job_id, created) for job_id, created in rows]


def draft_keys(job_id: str, created: datetime) -> list[str]:
    """Where the draft of a job created at `created` may still be: the draft's id is the
    job's, stored under the day it was uploaded, that day or one the purge keeps before."""
    days = range(DRAFT_DAYS_KEPT + 2)
    return [draft_key(created - timedelta(days=back), job_id) for back in days]


async def _file_stored(storage: ObjectStorage, job_id: str) -> bool:
    """The job's file is at its upload key, or intake moved it on (before a crash)."""
    return await storage.exists(object_keys.uploaded(job_id)) or await storage.exists(
        object_keys.in_progress_input(job_id)
    )


async def _stored_draft(storage: ObjectStorage, job: Unsubmitted) -> str | None:
    for key in draft_keys(job.job_id, job.created_at):
        if await storage.exists(key):
            return key
    return None


async def _still_unsubmitted(database: Database, job_id: str) -> bool:
    async with database.unit_of_work() as session:
        status = await session.scalar(select(JobRow.status).where(JobRow.id == job_id))
    return status == JobStatus.PENDING_START.value


async def _touch_unsubmitted(database: Database, job_id: str, now: datetime) -> bool:
    """Mark a resubmitted job (updated_at = `now`) if it is still pending_start."""
    async with database.unit_of_work(write=True) as session:
        result = await session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.status == JobStatus.PENDING_START.value)
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return bool(rowcount(result))


async def _fail_unsubmitted(database: Database, job_id: str, now: datetime) -> bool:
    """End a job whose file is nowhere as error_df (NOT_STORED), if still pending_start."""
    async with database.unit_of_work(write=True) as session:
        result = await session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.status == JobStatus.PENDING_START.value)
            .values(status=JobStatus.ERROR_FILE.value, error=NOT_STORED, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return bool(rowcount(result))


async def finish_start(
    database: Database,
    storage: ObjectStorage,
    bus: MessageBus,
    job: Unsubmitted,
    *,
    now: datetime,
) -> str:
    """Finish the start of one unsubmitted job; what was done: "submitted" (JobSubmitted
    published again), "failed" (no file anywhere: error_df), "gone" (the row was deleted or
    moved on meanwhile: nothing to do), "retry" (the draft moved under our feet, by another
    replica's sweep or the start finishing late: the next round looks again). A job is failed
    only when, after the draft was not found, its file is still not stored either (a move
    stores the new key before it drops the old one). A publish that raises is the caller's
    to log; the row is left as it was, so the next round tries again."""
    job_id = job.job_id
    if not await _still_unsubmitted(database, job_id):
        return "gone"
    if not await _file_stored(storage, job_id):
        draft = await _stored_draft(storage, job)
        if draft is None:
            if await _file_stored(storage, job_id):  # moved by another hand as we looked
                return "retry"
            return "failed" if await _fail_unsubmitted(database, job_id, now) else "gone"
        try:
            await storage.move(draft, object_keys.uploaded(job_id))
        except ObjectNotFound:  # another hand moved it (the start finishing late)
            return "retry"
        if not await _still_unsubmitted(database, job_id):  # the start was undone meanwhile
            await storage.move(object_keys.uploaded(job_id), draft)  # the draft as it was
            return "gone"
    elif not await _still_unsubmitted(database, job_id):  # deleted while we looked
        return "gone"
    await bus.publish(queues.INTAKE, JobSubmitted(job_id=job_id))
    await _touch_unsubmitted(database, job_id, now)
    return "submitted"


async def sweep_unsubmitted(
    database: Database,
    storage: ObjectStorage,
    bus: MessageBus,
    *,
    now: datetime,
    grace: timedelta = UNSUBMITTED_GRACE,
) -> int:
    """Finish the starts left unfinished (`unsubmitted_jobs`, one batch a round, each job
    on its own: one that fails is logged and left for the next round); how many jobs were
    submitted again or failed."""
    async with database.unit_of_work() as session:
        found = await unsubmitted_jobs(session, now=now, grace=grace)
    log = logger(__name__)
    done = 0
    for job in found:
        try:
            outcome = await finish_start(database, storage, bus, job, now=now)
        except Exception as exc:
            log.warning("unsubmitted_job_retry", job_id=job.job_id, error=type(exc).__name__)
            continue
        if outcome in ("submitted", "failed"):
            done += 1
            log.info(f"unsubmitted_job_{outcome}", job_id=job.job_id)
    return done


class _Round(msgspec.Struct, frozen=True):
    done_event: str  # logged when done, with the count as `field`
    field: str
    failed_event: str  # logged when it raises
    run: Callable[[], Awaitable[int]]
    every: float


async def run_retention(
    database: Database,
    storage: ObjectStorage,
    *,
    retention_days: float,
    clock: Callable[[], datetime],
    bus: MessageBus | None = None,
    every: float = RETENTION_EVERY,
    recover_every: float = RECOVERY_EVERY,
) -> None:
    """`purge_once`, `sweep_pending_checks` and `sweep_unsettled_jobs` (settlements a
    failure left undone, services/credits.py) now and every `every` seconds, and
    `sweep_unmailed_completions`, `sweep_unsent_webhooks` (the webhook events of ended
    jobs), `low_credits.sweep` (the "credits running low" mails) and (given the `bus`)
    `sweep_unsubmitted` now and every `recover_every` seconds, until cancelled (a task of
    the web role; replicas may all run it: each is idempotent). A failed round is logged;
    the next one still runs (the database, the storage or the broker may be down a while)."""
    log = logger(__name__)
    rounds = [
        _Round(
            "retention_purged",
            "jobs",
            "retention_failed",
            lambda: purge_once(database, storage, now=clock(), retention_days=retention_days),
            every,
        ),
        _Round(
            "pending_checks_swept",
            "refunded",
            "pending_checks_sweep_failed",
            lambda: sweep_pending_checks(database, now=clock()),
            every,
        ),
        _Round(
            "unsettled_jobs_swept",
            "settled",
            "unsettled_jobs_sweep_failed",
            lambda: credits.sweep_unsettled_jobs(database, now=clock()),
            every,
        ),
        _Round(
            "unmailed_completions_swept",
            "queued",
            "unmailed_completions_sweep_failed",
            lambda: sweep_unmailed_completions(
                database, now=clock(), retention_days=retention_days
            ),
            recover_every,
        ),
        _Round(
            "unsent_webhooks_swept",
            "queued",
            "unsent_webhooks_sweep_failed",
            lambda: sweep_unsent_webhooks(database, now=clock(), retention_days=retention_days),
            recover_every,
        ),
        _Round(  # the "credits running low" mails (services/low_credits.py)
            "low_credits_swept",
            "queued",
            "low_credits_sweep_failed",
            lambda: low_credits.sweep(database, now=clock()),
            recover_every,
        ),
    ]
    if bus is not None:
        rounds.append(
            _Round(
                "unsubmitted_jobs_swept",
                "jobs",
                "unsubmitted_jobs_sweep_failed",
                lambda: sweep_unsubmitted(database, storage, bus, now=clock()),
                recover_every,
            )
        )
    loop = asyncio.get_running_loop()
    due = [loop.time()] * len(rounds)
    while True:
        for index, one in enumerate(rounds):
            if loop.time() < due[index]:
                continue
            due[index] = loop.time() + one.every
            try:
                log.info(one.done_event, **{one.field: await one.run()})
            except Exception as exc:
                log.warning(one.failed_event, error=type(exc).__name__)
        await asyncio.sleep(max(0.0, min(due) - loop.time()))

"""The public API's jobs (POST/GET/DELETE /api/v1/jobs, issue 9 §2) as use cases: the rules
live here, the routes (web/api/jobs.py) only receive the upload, authenticate and map the
refusals below to problem details.

- Starting a job (`start_from_upload`): the account must be one that may validate
  (services.single_checks.may_validate: confirmed; else MayNotValidate, the route's 403,
  checked before the body is read too); `checks` is `syntax`, `dns` or `smtp` (blank: the
  installation's MAILVET_CHECKS; anything else InvalidRequest, 422); the file must read as
  a list with the chosen `email_column` and `sheet` (tabular.detect_layout, the pipeline's
  own detection, so what is accepted here is what intake reads; its InputError is an
  InvalidRequest with the same one-line message). Then it is stored and submitted exactly
  as the lists area's Start button does it: stored as a draft (services.jobs.draft_key),
  then services.jobs.start_job (the job row first, the file moved to its upload key,
  JobSubmitted published; the row removed again when that fails, and the draft deleted);
  a process that dies in between is the unsubmitted-jobs sweep's to finish.
- Credits: a balance under the list's cost (its distinct valid addresses, counted at the
  start: `unique_addresses`, the number intake reserves) is NotEnoughCredits (402) before
  anything is stored, when credits are on. Then they are the pipeline's, as for a browser
  job: intake reserves them (services/credits.py reserve_for_job), the result generator
  settles what the verdicts cost (settle_job); a balance spent in between ends the job as
  `error_insufficient_credits` with the shortfall in `error`, charged nothing.
- `callback_url` (the completion webhook, issue 9 §3): a public http(s) URL
  (services.webhooks.check_url, unless MAILVET_WEBHOOK_ALLOW_PRIVATE; else
  InvalidRequest), stored for the job before it is submitted (webhooks.set_job_callback),
  so that even a job that ends at once sends its job.completed or job.failed event there
  instead of to the account's default URL.
- Reading (`owned`, `job_view`, `list_jobs`: pages from 1 to MAX_PAGE of 1 to
  MAX_PER_PAGE jobs, newest first, one job status or all) goes through services.jobs
  (`owned_job`, `jobs_page`): another account's job is not found, like an id that cannot
  exist (JobMissing, 404; never a 403 that would tell it exists). A job's view is the
  issue's shape (`JobView`); `counts` are rows per status (zeros until it completes),
  `cost` what it was charged once it ended (what it holds reserved before; 0 for a failed
  job or with MAILVET_CREDITS=off), `started_at` when intake accepted it (after reserving
  its credits, if it pays), as intake keeps it with the layout (pipeline/job_files
  StoredLayout.accepted_at; a job accepted before it was kept: its ledger reservation),
  null before and for a job intake refused, `finished_at` its last change once final.
- Deleting (`delete`) only a final job (services.jobs.delete_job; JobBusy, 409, before its
  end); its files go with it.
- Results (`ready`, `result_filter`, `result_format`, `check_fits`, `write_download`):
  `status` is a comma-separated list of the segments the lists area offers
  (tabular/segments.py: deliverable, undeliverable, risky, unknown, except-undeliverable),
  combined: the rows of any of them (every status named: the whole result); `format` is
  csv or xlsx (blank: the stored result's kind, CSV for a CSV or TXT list, XLSX for an
  XLSX list; anything else an InvalidRequest). The kept rows in the stored kind are
  written by tabular.segments.write_rows, as the lists area's segments are; in the other
  kind by tabular.convert (an XLSX result's address sheet as CSV, its text cells
  formula-safe; a CSV result as one sheet of text cells). More rows asked as XLSX than a
  sheet holds is TooLargeForXlsx (422), told before the result is fetched from the
  counts, and by the writer for what the counts cannot say (a cell or a row too big).
  Before completion, for a failed job or a purged one ResultNotReady (409).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.database import Database
from mailvet.adapters.db.ledger_models import LedgerEntryRow
from mailvet.clock import Clock
from mailvet.domain import credits as credits_rules
from mailvet.domain.credits import EntryKind
from mailvet.domain.job import FileInfo, Job, JobStatus
from mailvet.domain.ports import JobRepository, MessageBus, ObjectStorage
from mailvet.domain.verdict import Check, Status
from mailvet.domain.webhooks import InvalidWebhookUrl
from mailvet.pipeline.cost import unique_valid_addresses
from mailvet.pipeline.job_files import decode_stored_layout
from mailvet.pipeline.submit import new_job_id
from mailvet.services import credits, single_checks, webhooks
from mailvet.services import jobs as job_service
from mailvet.services.accounts import get_account
from mailvet.services.api_validation import (
    InvalidRequest,
    MayNotValidate,
    NotEnoughCredits,
    Refused,
)
from mailvet.services.jobs import JobRunning, draft_key
from mailvet.services.paging import MAX_PAGE_SIZE
from mailvet.services.webhooks import HostResolver
from mailvet.tabular import FileLayout, InputError, XlsxLimits, detect_layout
from mailvet.tabular.convert import TooBigForXlsx, csv_to_xlsx, sheet_title, xlsx_to_csv
from mailvet.tabular.segments import SEGMENTS, write_rows
from mailvet.tabular.workbook import MAX_ROWS

__all__ = [
    "DEFAULT_PER_PAGE",
    "MAX_PAGE",
    "MAX_PER_PAGE",
    "JobBusy",
    "JobCounts",
    "JobList",
    "JobMissing",
    "JobView",
    "Kind",
    "ResultNotReady",
    "StartFields",
    "TooLargeForXlsx",
    "check_fits",
    "delete",
    "job_view",
    "layout_of",
    "list_jobs",
    "may_start",
    "parse_checks",
    "owned",
    "parse_status",
    "ready",
    "ResultFilter",
    "result_filter",
    "result_format",
    "start_from_upload",
    "write_download",
]

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = MAX_PAGE_SIZE
MAX_PAGE = 1_000_000  # a page number beyond any account's jobs (and within SQL's integers)
MAX_COLUMN = 1024  # characters of `email_column` and `sheet` (what the jobs table holds)
_STATUSES = tuple(status.value for status in Status)
Kind = Literal["csv", "xlsx"]  # a result's kind


# --- shapes ----------------------------------------------------------------------------------


class JobCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Rows per verdict status (zeros until the job completes)."""

    deliverable: int = 0
    undeliverable: int = 0
    risky: int = 0
    unknown: int = 0


class JobView(msgspec.Struct, frozen=True, kw_only=True):
    """One job as the API shows it (GET /api/v1/jobs/{id}, and each item of the list)."""

    id: str
    filename: str
    status: JobStatus
    rows_total: int
    rows_done: int
    unique_addresses: int
    cost: int
    counts: JobCounts
    reasons: dict[str, int]
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    error: str


class JobList(msgspec.Struct, frozen=True, kw_only=True):
    """A page of the account's jobs, newest first."""

    items: list[JobView]
    total: int
    page: int
    per_page: int
    has_more: bool


class StartFields(msgspec.Struct, frozen=True, kw_only=True):
    """The form fields of POST /api/v1/jobs besides the file (raw text, as sent)."""

    email_column: str = ""
    sheet: str = ""
    checks: str = ""
    callback_url: str = ""  # the completion webhook's URL (issue 9 §3; services/webhooks.py)


# --- refusals --------------------------------------------------------------------------------


class JobMissing(Refused):
    """No such job of this account (another account's, or an id that cannot exist)."""

    def __init__(self) -> None:
        super().__init__("no such job")


class JobBusy(Refused):
    """A job before its end cannot be deleted."""

    def __init__(self, status: JobStatus) -> None:
        super().__init__(f"the job is {status.value}: delete it once it has completed or failed")


class TooLargeForXlsx(Refused):
    """A result asked for as XLSX that a workbook cannot hold (rows, columns or a cell)."""

    def __init__(self, why: str) -> None:
        super().__init__(f"{why}: ask format=csv, or fewer rows with status")


class ResultNotReady(Refused):
    """A job without a result (yet)."""

    def __init__(self, job: Job) -> None:
        detail = f"the job is {job.status.value}, it has no result"
        if job.status is JobStatus.COMPLETED:  # completed, its file purged by retention
            detail = "the result of this job is no longer stored"
        elif not job.status.is_final:
            detail += " yet"
        super().__init__(detail)


# --- starting --------------------------------------------------------------------------------


async def may_start(database: Database, account_id: str) -> None:
    """MayNotValidate unless the account may start a validation (confirmed)."""
    async with database.session_maker() as session:
        account = await get_account(session, account_id)
    if account is None:
        raise MayNotValidate("no such account")
    if not single_checks.may_validate(account):
        raise MayNotValidate("confirm the account's email address before starting a job")


def parse_checks(raw: str, default: Check) -> Check:
    """The `checks` field: blank -> `default`; InvalidRequest for anything not a level."""
    if not raw.strip():
        return default
    try:
        return Check(raw.strip().lower())
    except ValueError:
        allowed = ", ".join(check.value for check in Check)
        raise InvalidRequest(f"checks must be one of {allowed}, not {raw.strip()!r}") from None


def _layout(
    path: Path, filename: str, email_column: str | None, sheet: str | None, limits: XlsxLimits
) -> tuple[FileLayout, int]:
    layout = detect_layout(path, email_column, filename, sheet, limits)
    return layout, unique_valid_addresses(path, layout)


async def start_from_upload(
    database: Database,
    jobs: JobRepository,
    storage: ObjectStorage,
    bus: MessageBus,
    account_id: str,
    path: Path,
    *,
    filename: str,
    fields: StartFields,
    default_checks: Check,
    limits: XlsxLimits,
    charging: bool,
    clock: Clock,
    resolver: HostResolver,
    allow_private: bool,
) -> JobView:
    """Start a job of the account from the list at `path` (the caller deletes it); its view,
    still pending_start. Refused (see the module docstring) before anything is stored."""
    await may_start(database, account_id)
    checks = parse_checks(fields.checks, default_checks)
    callback = None
    if fields.callback_url.strip():
        try:
            checked = await webhooks.check_url(
                fields.callback_url.strip(), resolver, allow_private=allow_private
            )
        except InvalidWebhookUrl as exc:
            raise InvalidRequest(f"callback_url: {exc}") from None
        callback = checked.url
    email_column = fields.email_column.strip() or None
    sheet = fields.sheet or None
    for name, value in (("email_column", email_column), ("sheet", sheet)):
        if value is not None and len(value) > MAX_COLUMN:
            raise InvalidRequest(f"{name} has at most {MAX_COLUMN} characters")
    try:
        _, unique = await asyncio.to_thread(_layout, path, filename, email_column, sheet, limits)
    except InputError as exc:
        raise InvalidRequest(str(exc)) from None
    if charging:
        async with database.session_maker() as session:
            available = (await credits.balance(session, account_id)).balance
        short = credits_rules.spend(available, unique)
        if short is not None:
            raise NotEnoughCredits(short)
    job_id = new_job_id()
    if callback is not None:  # stored before the job is submitted: one that ends at once
        async with database.unit_of_work(write=True) as session:  # finds it
            await webhooks.set_job_callback(session, job_id, callback, now=clock())
    key = draft_key(clock(), job_id)
    job = Job(
        id=job_id,
        owner=account_id,
        file=FileInfo(filename=filename, email_column=email_column, checks=checks, sheet=sheet),
        cost=unique,
    )
    await storage.put_file(key, path)
    try:
        await job_service.start_job(database, jobs, storage, bus, job, source_key=key)
    except BaseException:
        await storage.delete_prefix(key)  # the draft, if the move did not take it
        raise
    async with database.session_maker() as session:
        return await job_view(session, account_id, job_id, charging=charging)


# --- reading ---------------------------------------------------------------------------------


def parse_status(raw: str | None) -> JobStatus | None:
    """The list's `status` filter: blank -> None (every job); InvalidRequest for a value
    that is not a job status."""
    if raw is None or not raw.strip():
        return None
    try:
        return JobStatus(raw.strip().lower())
    except ValueError:
        allowed = ", ".join(status.value for status in JobStatus)
        raise InvalidRequest(f"status must be one of {allowed}") from None


def _accepted_at(job: Job) -> datetime | None:
    """When intake accepted the job, as it recorded it with the layout (None before)."""
    if not job.layout:
        return None
    return decode_stored_layout(job.layout).accepted_at


async def _start_times(session: AsyncSession, jobs: Sequence[Job]) -> dict[str, datetime]:
    """When intake accepted each job, for those it did: the time kept with its layout, else
    (a job accepted before intake kept it) its ledger reservation, if it was charged."""
    started = {job.id: at for job in jobs if (at := _accepted_at(job)) is not None}
    older = [job.id for job in jobs if job.layout and job.id not in started]
    if older:
        rows = await session.execute(
            select(LedgerEntryRow.job_id, LedgerEntryRow.created_at).where(
                LedgerEntryRow.kind == EntryKind.JOB_RESERVE.value,
                LedgerEntryRow.job_id.in_(older),
            )
        )
        started.update((job_id, at) for job_id, at in rows if job_id is not None)
    return started


def _view(job: Job, started_at: datetime | None, *, charging: bool) -> JobView:
    statuses = job.counts.statuses if job.counts is not None else {}
    if job.counts is not None:
        cost = job.counts.charged
    elif charging and not job.status.is_final:
        cost = job.cost if started_at is not None else 0
    else:
        cost = 0
    return JobView(
        id=job.id,
        filename=job.file.filename,
        status=job.status,
        rows_total=job.rows_total,
        rows_done=job.rows_done,
        unique_addresses=job.cost,
        cost=cost if charging else 0,
        counts=JobCounts(**{status: statuses.get(status, 0) for status in _STATUSES}),
        reasons=dict(job.counts.reasons) if job.counts is not None else {},
        created_at=job.created_at,
        started_at=started_at,
        finished_at=job.updated_at if job.status.is_final else None,
        error=job.error,
    )


async def owned(session: AsyncSession, account_id: str, job_id: str) -> Job:
    """The account's job, or JobMissing."""
    job = await job_service.owned_job(session, account_id, job_id)
    if job is None:
        raise JobMissing()
    return job


async def job_view(
    session: AsyncSession, account_id: str, job_id: str, *, charging: bool
) -> JobView:
    """The account's job as the API shows it; JobMissing for anyone else's."""
    job = await owned(session, account_id, job_id)
    started = await _start_times(session, [job])
    return _view(job, started.get(job.id), charging=charging)


async def list_jobs(
    session: AsyncSession,
    account_id: str,
    *,
    status: JobStatus | None = None,
    page: int = 1,
    per_page: int = DEFAULT_PER_PAGE,
    charging: bool,
) -> JobList:
    """A page (1-based) of the account's jobs, newest first, in `status` when given."""
    if not 1 <= page <= MAX_PAGE or not 1 <= per_page <= MAX_PER_PAGE:
        raise InvalidRequest(f"page is 1 to {MAX_PAGE}; per_page is 1 to {MAX_PER_PAGE}")
    found = await job_service.jobs_page(
        session, owner=account_id, status=status, offset=(page - 1) * per_page, limit=per_page
    )
    started = await _start_times(session, found.items)
    return JobList(
        items=[_view(job, started.get(job.id), charging=charging) for job in found.items],
        total=found.total,
        page=page,
        per_page=per_page,
        has_more=found.has_more,
    )


# --- deleting --------------------------------------------------------------------------------


async def delete(
    session: AsyncSession, storage: ObjectStorage, account_id: str, job_id: str
) -> None:
    """Delete the account's job and its files (the caller's unit of work commits);
    JobMissing for anyone else's, JobBusy before its end."""
    job = await owned(session, account_id, job_id)
    try:
        deleted = await job_service.delete_job(session, storage, account_id, job.id)
    except JobRunning:
        raise JobBusy(job.status) from None
    if not deleted:  # gone meanwhile
        raise JobMissing()


# --- results ---------------------------------------------------------------------------------


class ResultFilter(msgspec.Struct, frozen=True):
    """What `status` keeps: the statuses, and the segments' names joined in the order the
    lists area offers them (`deliverable+risky`, for the file's name)."""

    keep: frozenset[str]
    label: str


def result_filter(raw: str | None) -> ResultFilter | None:
    """What `status` keeps (the named segments combined); None: the whole result (nothing
    asked, or every status). InvalidRequest for a name that is not a segment."""
    if raw is None or not raw.strip():
        return None
    asked = {name.strip().lower() for name in raw.split(",")}
    if not asked <= SEGMENTS.keys():
        allowed = ", ".join(SEGMENTS)
        raise InvalidRequest(f"status takes a comma-separated list of {allowed}")
    named = [segment for segment in SEGMENTS if segment in asked]
    keep = frozenset().union(*(SEGMENTS[segment] for segment in named))
    return None if keep >= set(_STATUSES) else ResultFilter(keep=keep, label="+".join(named))


def result_format(raw: str | None) -> Kind | None:
    """The `format` asked for: None when blank (the stored result's kind); InvalidRequest
    for anything but csv or xlsx."""
    if raw is None or not raw.strip():
        return None
    asked = raw.strip().lower()
    if asked == "csv":
        return "csv"
    if asked == "xlsx":
        return "xlsx"
    raise InvalidRequest("format is csv or xlsx")


def layout_of(job: Job) -> FileLayout:
    """The layout intake detected in the job's list (how its result was written)."""
    return decode_stored_layout(job.layout).layout


def check_fits(job: Job, kept: ResultFilter | None, asked: Kind | None) -> None:
    """TooLargeForXlsx when the rows asked for as XLSX (the kept rows, counted per status
    when the job completed, and the records before them) are more than a sheet holds;
    checked before the result is fetched (the conversion checks it again as it writes)."""
    layout = layout_of(job)
    if asked != "xlsx" or layout.kind == "xlsx":  # an XLSX list's result fits as it did
        return
    statuses = job.counts.statuses if job.counts is not None else {}
    rows = job.rows_total if kept is None else sum(statuses.get(s, 0) for s in kept.keep)
    # the records before the rows: a CSV list's preamble and header as it has them (none
    # without a header), the header a TXT list's result is given
    rows += layout.skip_records if layout.kind == "csv" else max(layout.skip_records, 1)
    if rows > MAX_ROWS:
        raise TooLargeForXlsx(
            f"the result has {rows:,} rows, more than the {MAX_ROWS:,} an XLSX sheet holds"
        )


def write_download(
    result: Path, out: Path, *, job: Job, stored: Kind, asked: Kind, kept: ResultFilter | None
) -> None:
    """Write the job's result at `result` (of kind `stored`) to `out` as `asked`, only the
    rows `kept` keeps (None: all of them): the same kind through tabular.segments, the
    other through tabular.convert. TooLargeForXlsx for rows a workbook cannot hold. Blocks
    (the route runs it in a thread)."""
    layout = layout_of(job)
    keep = kept.keep if kept is not None else None
    try:
        if asked == stored:
            every = frozenset(_STATUSES)
            write_rows(
                result, out, kind=stored, layout=layout, keep=every if keep is None else keep
            )
        elif asked == "csv":
            xlsx_to_csv(result, out, layout=layout, keep=keep)
        else:
            title = sheet_title(job.file.filename)
            csv_to_xlsx(result, out, layout=layout, keep=keep, title=title)
    except TooBigForXlsx as exc:
        raise TooLargeForXlsx(str(exc)) from None


def ready(job: Job) -> None:
    """ResultNotReady unless the job has a result to download."""
    if job.status is not JobStatus.COMPLETED or not job.file.filename:
        raise ResultNotReady(job)

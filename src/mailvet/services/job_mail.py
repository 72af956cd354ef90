"""The "job completed" mail: `JobMail` is the `JobEvents` port (domain/job_events.py) of the
SaaS. When a job owned by an account completes, its owner gets one `job_completed` mail with
the link to the job's page (MAILVET_PUBLIC_URL + /app/jobs/<id>, made by the template), put
in the outbox under the key `job_completed:<job id>`: a completion seen again (a redelivery,
a restarted result generator) queues nothing more. A job without an owner, or whose account
is gone, mails nobody.

The result generator queues it after the job is COMPLETED, in a transaction of its own (the
job's status goes through the pipeline's JobRepository): a crash in between would lose the
mail. `queue_unmailed` closes that gap: run every minute by the web role
(services.jobs.run_retention), it queues the mail of every job completed more than
SWEEP_GRACE ago, created within the last SWEEP_WINDOW (and within the retention: an older
job's sent mail may have been purged from the outbox, and would go out twice), whose owner's
account exists and which has no row under its key. The key makes it harmless when the
result generator queues the same mail meanwhile: one row, one mail.

bootstrap's `LazyJobEvents` makes this on the first owned job's completion (on the process's
shared database), so a process that completes only jobs without an owner never imports
SQLAlchemy for it; that is also where a job without an owner is passed over.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import String, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.account_models import AccountRow
from mailvet.adapters.db.database import Database
from mailvet.adapters.db.models import JobRow
from mailvet.adapters.db.outbox_models import OutboxRow
from mailvet.clock import Clock, utc_now
from mailvet.domain.job import Job, JobStatus
from mailvet.domain.mail import OutgoingMail, is_header_safe
from mailvet.logs import logger
from mailvet.services import outbox

MAX_FILENAME = 200  # the file name shown in the mail, cut to this
KEY_PREFIX = "job_completed:"
# the result generator queues the mail right after the completion: give it this long
SWEEP_GRACE = timedelta(minutes=2)
# completions of jobs created this long ago at most are looked at (the created_at index)
SWEEP_WINDOW = timedelta(days=2)
SWEEP_BATCH = 100


def completion_key(job_id: str) -> str:
    return f"{KEY_PREFIX}{job_id}"


async def _queue(
    session: AsyncSession, job_id: str, to: str, filename: str, *, now: datetime
) -> None:
    """The completion mail of `job_id` to `to`, under its key (a second time: nothing)."""
    context = {"job_id": job_id}
    filename = filename[:MAX_FILENAME]
    if filename and is_header_safe(filename):
        context["filename"] = filename
    await outbox.enqueue(
        session, OutgoingMail(to, "job_completed", context), now=now, key=completion_key(job_id)
    )


async def queue_unmailed(
    session: AsyncSession,
    *,
    now: datetime,
    retention_days: float,
    grace: timedelta = SWEEP_GRACE,
    limit: int = SWEEP_BATCH,
) -> int:
    """Queue the completion mail of up to `limit` jobs that should have one and have none
    (see the module docstring) in `session`; how many were queued."""
    window = min(SWEEP_WINDOW, timedelta(days=retention_days))
    key = literal(KEY_PREFIX, String) + JobRow.id
    rows = (
        await session.execute(
            select(JobRow.id, JobRow.owner, JobRow.filename, AccountRow.email)
            .join(AccountRow, AccountRow.id == JobRow.owner)
            .outerjoin(OutboxRow, OutboxRow.key == key)
            .where(
                JobRow.created_at >= now - window,
                JobRow.status == JobStatus.COMPLETED.value,
                JobRow.updated_at < now - grace,
                OutboxRow.id.is_(None),
            )
            .order_by(JobRow.created_at, JobRow.id)
            .limit(limit)
        )
    ).all()
    for job_id, owner, filename, email in rows:
        await _queue(session, job_id, email, filename, now=now)
        logger(__name__).info("job_completed_mail_recovered", job_id=job_id, account_id=owner)
    return len(rows)


class JobMail:
    """Queues the completion mail of a job's owner (see the module docstring)."""

    def __init__(self, database: Database, *, clock: Clock = utc_now) -> None:
        self._database = database  # disposed by whoever made it
        self._clock = clock

    async def job_completed(self, job: Job) -> None:
        async with self._database.unit_of_work(write=True) as session:
            account = await session.get(AccountRow, job.owner)
            if account is None:
                return
            await _queue(session, job.id, account.email, job.file.filename, now=self._clock())
        logger(__name__).info("job_completed_mail_queued", job_id=job.id, account_id=job.owner)

    async def job_failed(self, job: Job) -> None:
        """No mail for a failed job (its page and its webhook say what happened)."""
        return None

"""The "job completed" mail: `JobMail` is the `JobEvents` port (domain/job_events.py) of the
SaaS. When a job owned by an account completes, its owner gets one `job_completed` mail with
the link to the job's page (MAILVET_PUBLIC_URL + /app/jobs/<id>, made by the template), put
in the outbox under the key `job_completed:<job id>`: a completion seen again (a redelivery,
a restarted result generator) queues nothing more. A job without an owner, or whose account
is gone, mails nobody.

bootstrap's `LazyJobEvents` makes this on the first owned job's completion (on the process's
shared database), so a process that completes only jobs without an owner never imports
SQLAlchemy for it; that is also where a job without an owner is passed over.
"""

from __future__ import annotations

from mailvet.adapters.db.account_models import AccountRow
from mailvet.adapters.db.database import Database
from mailvet.clock import Clock, utc_now
from mailvet.domain.job import Job
from mailvet.domain.mail import OutgoingMail, is_header_safe
from mailvet.logs import logger
from mailvet.services import outbox

MAX_FILENAME = 200  # the file name shown in the mail, cut to this


def completion_key(job_id: str) -> str:
    return f"job_completed:{job_id}"


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
            context = {"job_id": job.id}
            filename = job.file.filename[:MAX_FILENAME]
            if filename and is_header_safe(filename):
                context["filename"] = filename
            await outbox.enqueue(
                session,
                OutgoingMail(account.email, "job_completed", context),
                now=self._clock(),
                key=completion_key(job.id),
            )
        logger(__name__).info("job_completed_mail_queued", job_id=job.id, account_id=job.owner)

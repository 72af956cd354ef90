"""The "job completed" mail: `JobMail` is the `JobEvents` port (domain/job_events.py) of the
SaaS. When a job owned by an account completes, its owner gets one `job_completed` mail with
the link to the job's page (MAILVET_PUBLIC_URL + /app/jobs/<id>, made by the template), put
in the outbox under the key `job_completed:<job id>`: a completion seen again (a redelivery,
a restarted result generator) queues nothing more. A job without an owner, or whose account
is gone, mails nobody.

The database (settings.database) is made on the first owned job's completion, so a process
that completes only jobs without an owner never imports SQLAlchemy for it (bootstrap wraps
it in `LazyJobEvents`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from mailvet.adapters.db.account_models import AccountRow
from mailvet.adapters.db.database import Database, write_intent
from mailvet.clock import utc_now
from mailvet.domain.job import Job
from mailvet.domain.mail import OutgoingMail, is_header_safe
from mailvet.logs import logger
from mailvet.services import outbox

MAX_FILENAME = 200  # the file name shown in the mail, cut to this


def completion_key(job_id: str) -> str:
    return f"job_completed:{job_id}"


class JobMail:
    """Queues the completion mail of a job's owner (see the module docstring)."""

    def __init__(
        self,
        database: Callable[[], Database],
        *,
        clock: Callable[[], datetime] = utc_now,
        owns_database: bool = True,
    ) -> None:
        self._make = database
        self._database: Database | None = None
        self._clock = clock
        self._owns = owns_database

    async def job_completed(self, job: Job) -> None:
        if not job.owner:
            return
        if self._database is None:
            self._database = self._make()
        async with self._database.session_maker() as session, session.begin():
            await write_intent(session)  # SQLite: BEGIN IMMEDIATE
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

    async def close(self) -> None:
        database, self._database = self._database, None
        if database is not None and self._owns:
            await database.dispose()

"""What the pipeline tells the rest of the SaaS about a job: the `JobEvents` port.

The result generator calls `job_completed(job)` once it has set a job COMPLETED (again after
a redelivery: an implementation must make a repeat change nothing); intake and
`resultgen.fail_job` call `job_failed(job)` once they have ended a job in an error state
(best effort: the web role's sweep queues what a crash in between lost). The default,
`NoJobEvents`, does nothing: `mailvet validate` and jobs without an owner need nothing else.
The SaaS's implementation (services/job_mail.py) queues the "job completed" mail of the
job's owner in the outbox, once per job.
"""

from __future__ import annotations

from typing import Protocol

from mailvet.domain.job import Job


class JobEvents(Protocol):
    async def job_completed(self, job: Job) -> None:
        """`job` is COMPLETED (its result stored); called at least once."""
        ...

    async def job_failed(self, job: Job) -> None:
        """`job` has ended in an error state (`job.status.is_error`)."""
        ...


class NoJobEvents:
    """Nothing to tell anyone."""

    async def job_completed(self, job: Job) -> None:
        return None

    async def job_failed(self, job: Job) -> None:
        return None

"""What the pipeline tells the rest of the SaaS about a job: the `JobEvents` port.

The result generator calls `job_completed(job)` once it has set a job COMPLETED (again after
a redelivery: an implementation must make a repeat change nothing). The default,
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


class NoJobEvents:
    """Nothing to tell anyone."""

    async def job_completed(self, job: Job) -> None:
        return None

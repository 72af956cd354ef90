"""Telling the rest of the SaaS that the pipeline ended a job in an error state: intake (an
unreadable file, credits short) and `resultgen.fail_job` (an internal error, a message
given up) call `tell_failed` right after they set the status, so the job's `job.failed`
webhook is queued at once (bootstrap's LazyJobEvents). A failure to tell is logged, never
raised: the job has ended all the same, and the web role's sweep queues the event later
(services.jobs.sweep_unsent_webhooks).
"""

from __future__ import annotations

import structlog

from mailvet.domain.job_events import JobEvents
from mailvet.domain.ports import JobRepository

log = structlog.get_logger(__name__)


async def tell_failed(events: JobEvents, jobs: JobRepository, job_id: str) -> None:
    """`events.job_failed` with the job as it is now stored (its error status set)."""
    try:
        await events.job_failed(await jobs.get(job_id))
    except Exception:
        log.exception("job_event_failed", job_id=job_id)

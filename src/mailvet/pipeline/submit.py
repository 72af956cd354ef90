"""Submitting a job and fetching its result: what the web app and the CLI both do."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import msgspec

from mailvet.domain.job import FileInfo, Job, JobStatus
from mailvet.domain.messages import JobSubmitted
from mailvet.domain.ports import JobRepository, MessageBus, ObjectStorage
from mailvet.domain.verdict import Check
from mailvet.pipeline import keys
from mailvet.pipeline.resultgen import Summary


class ResultNotReady(Exception):
    pass


async def submit_file(
    jobs: JobRepository,
    storage: ObjectStorage,
    bus: MessageBus,
    path: Path,
    *,
    filename: str | None = None,
    email_column: str | None = None,
    checks: Check = Check.SMTP,
    owner: str = "",
) -> str:
    """Upload the file, record the job as pending_start, and hand it to intake."""
    job_id = uuid.uuid4().hex
    await storage.put_file(keys.uploaded(job_id), path)
    info = FileInfo(filename=filename or path.name, email_column=email_column, checks=checks)
    await jobs.add(Job(id=job_id, file=info, owner=owner))
    await bus.publish(keys.INTAKE, JobSubmitted(job_id=job_id))
    return job_id


async def fetch_result(
    jobs: JobRepository, storage: ObjectStorage, job_id: str, out: Path
) -> Summary:
    """Write the finished result to `out` atomically; ResultNotReady before completion."""
    job = await jobs.get(job_id)
    if job.status is not JobStatus.COMPLETED:
        detail = f": {job.error}" if job.error else ""
        raise ResultNotReady(f"job {job_id} is {job.status.value}{detail}")
    temp = out.with_name(f".{out.name}.{job_id}.part")
    try:
        await storage.get_file(keys.completed(job_id), temp)
        os.replace(temp, out)
    finally:
        temp.unlink(missing_ok=True)
    return msgspec.json.decode(await storage.get_bytes(keys.summary(job_id)), type=Summary)

"""Submitting a job and fetching its result: what the web app and the CLI both do."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import Protocol

import msgspec

from mailvet.domain.job import FileInfo, Job, JobStatus
from mailvet.domain.messages import JobSubmitted
from mailvet.domain.ports import JobRepository, MessageBus, ObjectStorage
from mailvet.domain.verdict import Check
from mailvet.pipeline import object_keys, queues


class Summary(msgspec.Struct, kw_only=True):
    """Counts per status and reason of a finished job (written by the result generator)."""

    rows: int = 0
    by_status: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    result_kind: str = "csv"


class JobLookup(Protocol):
    """Reading a job is all that status and fetch need (any JobRepository is one)."""

    async def get(self, job_id: str) -> Job: ...


class ResultNotReady(Exception):
    """The job has no result (yet): `str()` adds the job's error, `brief` leaves it out."""

    def __init__(self, job: Job) -> None:
        self.brief = f"job {job.id} is {job.status.value}"
        super().__init__(f"{self.brief}: {job.error}" if job.error else self.brief)


def new_job_id() -> str:
    return uuid.uuid4().hex


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
    job_id: str | None = None,
    sheet: str | None = None,
    result_kind: str | None = None,
) -> str:
    """Upload the file, record the job as pending_start, and hand it to intake.

    `job_id`: the id to use (a caller that must know it before the job exists), else new."""
    job_id = job_id or new_job_id()
    await storage.put_file(object_keys.uploaded(job_id), path)
    info = FileInfo(
        filename=filename or path.name,
        email_column=email_column,
        checks=checks,
        sheet=sheet,
        result_kind=result_kind,
    )
    await jobs.add(Job(id=job_id, file=info, owner=owner))
    await bus.publish(queues.INTAKE, JobSubmitted(job_id=job_id))
    return job_id


async def completed_job(jobs: JobLookup, job_id: str) -> Job:
    """The job if its result is ready; ResultNotReady (with the job's error) before that."""
    job = await jobs.get(job_id)
    if job.status is not JobStatus.COMPLETED:
        raise ResultNotReady(job)
    return job


async def read_summary(storage: ObjectStorage, job_id: str) -> Summary:
    """Counts per status and reason of a completed job (ObjectNotFound once removed)."""
    return msgspec.json.decode(await storage.get_bytes(object_keys.summary(job_id)), type=Summary)


def result_name(original: str, kind: str) -> str:
    """`list.xlsx` -> `list.mailvet.xlsx`; `contacts.txt` -> `contacts.mailvet.csv`."""
    stem = PurePosixPath(original).stem or "result"
    return f"{stem}.mailvet.{kind}"


async def fetch_result(
    jobs: JobLookup, storage: ObjectStorage, job_id: str, out: Path, *, take: bool = False
) -> Summary:
    """Write the finished result to `out` atomically; ResultNotReady before completion.

    `take`: the caller deletes the stored result next (`mailvet validate`), so `out` may
    share its file instead of a copy (job_files.take_file); `out`, if it exists, lends the
    result its permission bits."""
    await completed_job(jobs, job_id)
    summary = await read_summary(storage, job_id)
    temp = out.with_name(f".{out.name}.{job_id}.part")
    try:
        if take:
            from mailvet.pipeline.job_files import take_file  # (imports tabular: not for status)

            await take_file(storage, object_keys.completed(job_id), temp)
            with contextlib.suppress(OSError):
                shutil.copymode(out, temp)  # not the store's private mode
        else:
            await storage.get_file(object_keys.completed(job_id), temp)
        os.replace(temp, out)
    finally:
        temp.unlink(missing_ok=True)
    return summary

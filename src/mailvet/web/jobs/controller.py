"""/api/jobs: thin handlers over the submit use case, the job repository and storage."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import structlog
from litestar import Controller, Request, Response, Router, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.status_codes import HTTP_201_CREATED, HTTP_307_TEMPORARY_REDIRECT

from mailvet.domain.job import Job, JobStatus
from mailvet.domain.ports import JobNotFound, JobRepository, ObjectNotFound
from mailvet.domain.verdict import Check
from mailvet.pipeline.submit import (
    Summary,
    completed_job,
    read_summary,
    result_name,
    submit_file,
)
from mailvet.web.deps import AppSettings, Bus, Jobs, Storage
from mailvet.web.jobs.results import (
    RESULT_MEDIA_TYPES,
    fetch_to_scratch,
    presigned_result,
    result_kind,
    stream_file,
)
from mailvet.web.jobs.schemas import JobCreated, JobView
from mailvet.web.jobs.upload import MAX_UPLOAD_BYTES, receive_upload, scratch_dir

log = structlog.get_logger(__name__)

JOB_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")  # what the jobs table can hold (ids are uuid4 hex)


class JobController(Controller):
    path = "/"
    tags = ["jobs"]

    @post("/", status_code=HTTP_201_CREATED)
    async def submit(
        self,
        request: Request[Any, Any, Any],
        jobs: Jobs,
        storage: Storage,
        bus: Bus,
        settings: AppSettings,
    ) -> JobCreated:
        """Upload a list (multipart field `file`; optional `email_column`, `checks`, and
        `sheet`: the XLSX sheet to read, else the one whose column holds addresses)."""
        upload = await receive_upload(
            request, scratch_dir(settings), idle_seconds=settings.web_upload_idle_seconds
        )
        try:
            checks = parse_checks(upload.fields.get("checks"), settings.engine.checks)
            email_column = upload.fields.get("email_column", "").strip() or None
            sheet = upload.fields.get("sheet") or None
            job_id = await submit_file(
                jobs,
                storage,
                bus,
                upload.path,
                filename=upload.filename,
                email_column=email_column,
                checks=checks,
                sheet=sheet,
            )
        finally:
            upload.path.unlink(missing_ok=True)
        log.info("job_submitted", job_id=job_id, bytes=upload.size, checks=checks.value)
        return JobCreated(id=job_id, status=JobStatus.PENDING_START)

    @get("/{job_id:str}")
    async def status(self, job_id: FromPath[str], jobs: Jobs) -> JobView:
        return JobView.of(await find_job(jobs, job_id))

    @get("/{job_id:str}/result")
    async def result(
        self, job_id: FromPath[str], jobs: Jobs, storage: Storage, settings: AppSettings
    ) -> Response[Any]:
        """The result file: a redirect to a pre-signed link where storage offers one."""
        job = await finished_job(jobs, job_id)
        url = presigned_result(storage, settings, job.id)
        if url is not None:
            return Redirect(url, status_code=HTTP_307_TEMPORARY_REDIRECT)
        out, summary = await fetch_to_scratch(jobs, storage, settings, job)
        kind = result_kind(summary)
        return stream_file(
            out,
            media_type=RESULT_MEDIA_TYPES[kind],
            headers={"content-disposition": attachment(result_name(job.file.filename, kind))},
        )

    @get("/{job_id:str}/summary")
    async def summary(self, job_id: FromPath[str], jobs: Jobs, storage: Storage) -> Summary:
        job = await finished_job(jobs, job_id)
        try:
            return await read_summary(storage, job.id)
        except ObjectNotFound:
            raise NotFoundException(f"the summary of job {job.id} is no longer stored") from None


def jobs_router(max_upload_bytes: int = MAX_UPLOAD_BYTES) -> Router:
    """The job API under /api/jobs; the body limit is the upload limit."""
    return Router(
        path="/api/jobs",
        route_handlers=[JobController],
        request_max_body_size=max_upload_bytes,
    )


async def find_job(jobs: JobRepository, job_id: str) -> Job:
    """The job, or JobNotFound (404), also for an id that cannot exist."""
    if not JOB_ID.fullmatch(job_id):
        raise JobNotFound()
    return await jobs.get(job_id)


async def finished_job(jobs: JobRepository, job_id: str) -> Job:
    """The job if its result is ready (404 for an impossible id, 409 before completion)."""
    await find_job(jobs, job_id)
    return await completed_job(jobs, job_id)


def parse_checks(raw: str | None, default: Check) -> Check:
    if raw is None or not raw.strip():
        return default
    try:
        return Check(raw.strip().lower())
    except ValueError:
        allowed = ", ".join(check.value for check in Check)
        raise ValidationException(f"checks must be one of {allowed}, not {raw!r}") from None


def attachment(filename: str) -> str:
    """A Content-Disposition value: an ASCII fallback name and the exact UTF-8 one."""
    fallback = "".join(
        ch if ch.isascii() and ch.isprintable() and ch not in '"\\' else "_" for ch in filename
    )
    value = f'attachment; filename="{fallback}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value

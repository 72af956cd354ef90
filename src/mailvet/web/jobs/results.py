"""Sending a job's result (or a segment of it) through the app: fetched from storage into
the scratch folder, then streamed from an open handle and deleted (the JSON job API,
controller.py, the lists area, pages.py, and the keyed API, web/api/jobs.py, all do it);
or, where the storage pre-signs links (S3), the link to the whole result
(`presigned_result`), which the three answer with a redirect instead.

A download that rewrites the result (a segment of it, or the other kind: pages.py and
web/api/jobs.py) takes a turn of the app's `rewrite_turns` first: REWRITES_AT_ONCE of them
at once in one web process, the rest waiting without a scratch file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, Literal

from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.response import Stream

from mailvet.domain.job import Job
from mailvet.domain.ports import JobRepository, ObjectNotFound, ObjectStorage, PresignedStorage
from mailvet.pipeline import object_keys
from mailvet.pipeline.submit import Summary, fetch_result, result_name
from mailvet.settings import Settings
from mailvet.web.jobs.upload import scratch_dir

RESULT_MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
READ_CHUNK = 1024 * 1024
REWRITES_AT_ONCE = 2
"""Results rewritten at once by one web process. Each rewrite is a thread reading and
writing a whole result (200,000 rows of CSV to XLSX: about 6 s); without a bound, a burst
of such downloads would take every thread of the loop's default executor (the uploads' and
the downloads' file I/O wait for one) and a scratch copy of the result each."""
_TURNS_KEY = "mailvet_rewrite_turns"


class RewriteTurns:
    """Turns to rewrite a result: `at_once` held at a time, the others wait in order."""

    def __init__(self, at_once: int = REWRITES_AT_ONCE) -> None:
        self._free = asyncio.Semaphore(at_once)
        self.waiting = 0  # requests waiting for a turn
        self.running = 0  # turns held

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        self.waiting += 1
        try:
            await self._free.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._free.release()


def rewrite_turns(state: State) -> RewriteTurns:
    """The app's turns (`request.app.state`), made on the first rewrite."""
    turns = state.get(_TURNS_KEY)
    if not isinstance(turns, RewriteTurns):
        turns = state[_TURNS_KEY] = RewriteTurns()
    return turns


def presigned_result(storage: ObjectStorage, settings: Settings, job_id: str) -> str | None:
    """A link to the job's whole result that lives MAILVET_STORAGE_LINK_SECONDS, where the
    storage pre-signs links; else None (the app streams it)."""
    if not isinstance(storage, PresignedStorage):
        return None
    expires = timedelta(seconds=settings.storage.link_seconds)
    return storage.presigned_get(object_keys.completed(job_id), expires=expires)


def result_kind(summary: Summary) -> Literal["csv", "xlsx"]:
    """ "xlsx" or "csv": the media type key of a result."""
    return "xlsx" if summary.result_kind == "xlsx" else "csv"


def segment_name(original: str, kind: str, segment: str) -> str:
    """`list.csv`, deliverable -> `list.mailvet.deliverable.csv` (as `result_name`)."""
    return result_name(original, f"{segment}.{kind}")


async def fetch_to_scratch(
    jobs: JobRepository, storage: ObjectStorage, settings: Settings, job: Job
) -> tuple[Path, Summary]:
    """The job's result in a new scratch file (the caller streams or deletes it); 404 when
    it is no longer stored. Nothing is left behind when it raises."""
    directory = scratch_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"result-{job.id}-{uuid.uuid4().hex}"
    try:
        summary = await fetch_result(jobs, storage, job.id, out)
    except BaseException as exc:
        out.unlink(missing_ok=True)
        if isinstance(exc, ObjectNotFound):
            raise NotFoundException("the result of this job is no longer stored") from None
        raise
    return out, summary


def stream_file(path: Path, *, media_type: str, headers: dict[str, str]) -> Stream:
    """Stream `path` and delete it: it is unlinked at once where the open handle still
    reads it (POSIX), else once sent; its size is the Content-Length."""
    handle = path.open("rb")
    with contextlib.suppress(OSError):
        path.unlink()
    return Stream(
        _chunks(handle, path),
        media_type=media_type,
        headers={**headers, "content-length": str(os.fstat(handle.fileno()).st_size)},
    )


async def _chunks(handle: BinaryIO, path: Path) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(handle.read, READ_CHUNK):
            yield chunk
    finally:
        # in one thread call: once started, a second cancellation cannot skip the unlink
        await asyncio.to_thread(_discard, handle, path)


def _discard(handle: BinaryIO, path: Path) -> None:
    handle.close()
    path.unlink(missing_ok=True)

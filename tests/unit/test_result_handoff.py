"""The result generator hands the chunks it handles to its own writer in memory (a few a
job), and reads back from storage only those it did not keep (pipeline/resultgen.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from mailvet.adapters.db.memory import MemoryJobRepository
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.domain.job import FileInfo, Job, JobStatus
from mailvet.domain.messages import ChunkDone, JobQueued
from mailvet.domain.verdict import Check
from mailvet.pipeline import object_keys
from mailvet.pipeline.chunk_output import TEXT
from mailvet.pipeline.job_files import StoredLayout, encode_stored_layout
from mailvet.pipeline.resultgen import HELD_CHUNKS, ResultGenerator
from mailvet.tabular import FileLayout
from tests.fakes import WatchedJobs

pytestmark = pytest.mark.unit

JOB = "h" * 32


class ReadCounting(MemoryStorage):
    """MemoryStorage that counts the reads of each key."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: Counter[str] = Counter()
        self.read = asyncio.Event()  # set at every read

    async def get_bytes(self, key: str) -> bytes:
        self.reads[key] += 1
        self.read.set()
        return await super().get_bytes(key)

    async def tried(self, key: str) -> None:
        """Wait until `key` has been asked for (found or not)."""
        while not self.reads[key]:
            self.read.clear()
            await self.read.wait()


async def queued_job(jobs: MemoryJobRepository, storage: MemoryStorage, chunks: int) -> None:
    layout = FileLayout(kind="csv", header=["email"])
    await jobs.add(Job(id=JOB, file=FileInfo(filename="a.csv", checks=Check.SYNTAX)))
    stored = encode_stored_layout(StoredLayout(layout=layout, chunk_size=1))
    await jobs.set_counts(JOB, rows_total=chunks, chunks_total=chunks, layout=stored)
    for status in (JobStatus.FILE_ACCEPTED, JobStatus.FILE_QUEUED):
        await jobs.set_status(JOB, status)
    await storage.put_bytes(object_keys.result_header(JOB), b"email,mailvet_status\r\n")


def done(chunk_id: int) -> ChunkDone:
    return ChunkDone(
        job_id=JOB,
        chunk_id=chunk_id,
        first_row=chunk_id,
        rows=1,
        form=TEXT,
        data=f"a{chunk_id}@b.c,unknown\r\n".encode(),
        statuses={"unknown": 1},
        reasons={"not_checked": 1},
    )


def expected_result(order: range) -> bytes:
    rows = "".join(f"a{i}@b.c,unknown\r\n" for i in order)
    return f"email,mailvet_status\r\n{rows}".encode()


async def test_chunks_handled_here_are_not_read_back(tmp_path: Path) -> None:
    jobs, storage = WatchedJobs(), ReadCounting()
    await queued_job(jobs, storage, 5)
    generator = ResultGenerator(jobs, storage, scratch=tmp_path)
    await generator.handle(JobQueued(job_id=JOB))
    for chunk_id in range(5):
        await generator.handle(done(chunk_id))
    assert await asyncio.wait_for(jobs.final(JOB), 10) is JobStatus.COMPLETED
    chunk_reads = {k: n for k, n in storage.reads.items() if "/chunks/" in k}
    assert chunk_reads == {}
    assert storage.objects[object_keys.completed(JOB)] == expected_result(range(5))
    await generator.stop()


async def test_a_chunk_its_writer_waits_for_is_handed_over(tmp_path: Path) -> None:
    jobs, storage = WatchedJobs(), ReadCounting()
    await queued_job(jobs, storage, 2)
    generator = ResultGenerator(jobs, storage, scratch=tmp_path)
    await generator.handle(JobQueued(job_id=JOB))
    for chunk_id in range(2):
        key = object_keys.chunk_results(JOB, chunk_id)
        await storage.tried(key)  # the writer waits for this chunk: not stored yet
        await generator.handle(done(chunk_id))
    assert await asyncio.wait_for(jobs.final(JOB), 10) is JobStatus.COMPLETED
    assert {k: n for k, n in storage.reads.items() if "/chunks/" in k} == {
        object_keys.chunk_results(JOB, 0): 1,  # the look that found nothing, no read back
        object_keys.chunk_results(JOB, 1): 1,
    }
    assert storage.objects[object_keys.completed(JOB)] == expected_result(range(2))
    await generator.stop()


async def test_beyond_the_held_chunks_the_writer_reads_storage(tmp_path: Path) -> None:
    chunks = HELD_CHUNKS + 3
    jobs, storage = WatchedJobs(), ReadCounting()
    await queued_job(jobs, storage, chunks)
    generator = ResultGenerator(jobs, storage, scratch=tmp_path)
    await generator.handle(JobQueued(job_id=JOB))
    for chunk_id in reversed(range(chunks)):  # the writer waits for chunk 0 until the end
        await generator.handle(done(chunk_id))
    assert await asyncio.wait_for(jobs.final(JOB), 10) is JobStatus.COMPLETED
    read_back = sorted(int(k.rsplit("/", 1)[1]) for k in storage.reads if "/chunks/" in k)
    # the first HELD_CHUNKS to arrive (the last ones) were held; the others found no room
    assert read_back == list(range(chunks - HELD_CHUNKS))
    assert storage.objects[object_keys.completed(JOB)] == expected_result(range(chunks))
    await generator.stop()


async def test_a_chunk_of_another_processs_writer_is_read_from_storage(tmp_path: Path) -> None:
    jobs, storage = WatchedJobs(), ReadCounting()
    await queued_job(jobs, storage, 2)
    elsewhere = ResultGenerator(jobs, storage, scratch=tmp_path / "a")
    writer = ResultGenerator(jobs, storage, scratch=tmp_path / "b")
    await writer.handle(JobQueued(job_id=JOB))
    await elsewhere.handle(done(0))  # stored by a generator that is also writing it
    await writer.handle(done(1))
    assert await asyncio.wait_for(jobs.final(JOB), 10) is JobStatus.COMPLETED
    assert storage.reads[object_keys.chunk_results(JOB, 0)] >= 1  # not the writer's own
    assert storage.objects[object_keys.completed(JOB)] == expected_result(range(2))
    await elsewhere.stop()
    await writer.stop()

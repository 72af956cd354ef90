"""The whole pipeline on in-memory adapters: fairness, ordering, no lost or doubled rows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from mailvet.adapters.bus.memory import MemoryBus
from mailvet.adapters.db.memory import MemoryJobRepository
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import Deps, build_deps
from mailvet.domain.job import JobStatus
from mailvet.domain.verdict import Check
from mailvet.pipeline.runner import Pipeline
from mailvet.pipeline.submit import fetch_result, submit_file
from mailvet.settings import load_settings
from tests.fakes import FakeProber, FakeResolver

pytestmark = pytest.mark.pipeline


async def make_deps(prober: FakeProber, chunk_size: int) -> Deps:
    settings = load_settings({"MAILVET_CHUNK_SIZE": str(chunk_size), "MAILVET_WORKER_CONCURRENCY": "2"})
    bus = MemoryBus(roundtrip=True)  # every message goes through its msgpack wire form
    bus.set_bound("work", 2)
    return await build_deps(
        settings,
        jobs=MemoryJobRepository(),
        storage=MemoryStorage(),
        bus=bus,
        resolver=FakeResolver(),
        prober=prober,
    )


async def wait_final(deps: Deps, job_id: str) -> JobStatus:
    while not (job := await deps.jobs.get(job_id)).status.is_final:
        await asyncio.sleep(0.01)
    return job.status


async def test_small_job_behind_a_big_one_finishes_first(tmp_path: Path) -> None:
    prober = FakeProber(delay=0.02)
    deps = await make_deps(prober, chunk_size=20)
    big = tmp_path / "big.csv"
    big.write_text("email\n" + "".join(f"user{i}@big-corp.com\n" for i in range(1200)))
    small = tmp_path / "small.csv"
    small.write_text("email\n" + "".join(f"s{i}@small-shop.com\n" for i in range(10)))
    pipeline = Pipeline(deps)
    await pipeline.start()
    try:
        big_id = await submit_file(deps.jobs, deps.storage, deps.bus, big, checks=Check.SMTP)
        while (await deps.jobs.get(big_id)).rows_done == 0:
            await asyncio.sleep(0.005)
        small_id = await submit_file(deps.jobs, deps.storage, deps.bus, small, checks=Check.SMTP)
        assert await wait_final(deps, small_id) is JobStatus.COMPLETED
        big_job = await deps.jobs.get(big_id)
        assert big_job.status is not JobStatus.COMPLETED
        assert big_job.rows_done < big_job.rows_total / 2
        assert await wait_final(deps, big_id) is JobStatus.COMPLETED

        for job_id, path, prefix in ((big_id, big, "user"), (small_id, small, "s")):
            out = tmp_path / f"{job_id}.csv"
            summary = await fetch_result(deps.jobs, deps.storage, job_id, out)
            lines = out.read_text().splitlines()[1:]
            expected = path.read_text().splitlines()[1:]
            assert [line.split(",")[0] for line in lines] == expected  # every row once, in order
            assert all(line.split(",")[1:3] == ["deliverable", "accepted"] for line in lines)
            assert summary.rows == len(expected)
            assert all(line.startswith(prefix) for line in lines)
    finally:
        await pipeline.stop()
        await deps.close()


async def test_redelivered_chunk_changes_nothing(tmp_path: Path) -> None:
    """A chunk result delivered twice is recorded once (at-least-once delivery)."""
    from mailvet.domain.messages import ChunkDone
    from mailvet.pipeline import keys

    deps = await make_deps(FakeProber(), chunk_size=3)
    source = tmp_path / "l.csv"
    source.write_text("email\n" + "".join(f"u{i}@x-corp.com\n" for i in range(7)))
    pipeline = Pipeline(deps)
    original_publish = deps.bus.publish

    async def publish_twice(queue: str, message: msgspec.Struct) -> None:
        await original_publish(queue, message)  # type: ignore[arg-type]
        if isinstance(message, ChunkDone):
            await original_publish(queue, message)  # type: ignore[arg-type]

    deps.bus.publish = publish_twice  # type: ignore[method-assign]
    await pipeline.start()
    try:
        job_id = await submit_file(deps.jobs, deps.storage, deps.bus, source)
        assert await wait_final(deps, job_id) is JobStatus.COMPLETED
        await asyncio.sleep(0.05)  # let the duplicate deliveries land
        job = await deps.jobs.get(job_id)
        assert (job.rows_done, job.rows_total, job.chunks_total) == (7, 7, 3)
        out = tmp_path / "o.csv"
        await fetch_result(deps.jobs, deps.storage, job_id, out)
        assert [l.split(",")[0] for l in out.read_text().splitlines()[1:]] == [f"u{i}@x-corp.com" for i in range(7)]
        assert not [k for k in deps.storage.objects if k.startswith(keys.job_work(job_id))]  # type: ignore[attr-defined]
    finally:
        await pipeline.stop()
        await deps.close()


async def test_a_failing_step_ends_the_job_with_an_error_instead_of_hanging(tmp_path: Path) -> None:
    class BrokenProber(FakeProber):
        async def probe(self, hosts, recipients):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    deps = await make_deps(BrokenProber(), chunk_size=5)
    source = tmp_path / "l.csv"
    source.write_text("email\na@x-corp.com\n")
    pipeline = Pipeline(deps)
    await pipeline.start()
    try:
        job_id = await submit_file(deps.jobs, deps.storage, deps.bus, source)
        assert await asyncio.wait_for(wait_final(deps, job_id), 5) is JobStatus.ERROR_INTERNAL
        assert "boom" in (await deps.jobs.get(job_id)).error
    finally:
        await pipeline.stop()
        await deps.close()

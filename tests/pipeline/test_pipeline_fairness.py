"""The whole pipeline on in-memory adapters: fairness, ordering, no lost or doubled rows."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import Deps, build_deps
from mailvet.domain.job import JobStatus
from mailvet.domain.messages import ChunkDone, Message
from mailvet.domain.ports import ProbeResult
from mailvet.domain.verdict import Check
from mailvet.pipeline import object_keys
from mailvet.pipeline.runner import Pipeline
from mailvet.pipeline.submit import fetch_result, submit_file
from mailvet.settings import load_settings
from tests.fakes import FakeProber, FakeResolver, RecordingBus, WatchedJobs

pytestmark = pytest.mark.pipeline


class Fixture:
    """The in-memory adapters the test looks at, beside the Deps the pipeline gets."""

    def __init__(self, duplicate: type[Message] | None = None) -> None:
        self.jobs = WatchedJobs()
        self.storage = MemoryStorage()
        self.bus = RecordingBus(  # every message goes through its msgpack wire form
            roundtrip=True,
            duplicate=lambda message: duplicate is not None and isinstance(message, duplicate),
        )
        self.bus.set_bound("work", 2)

    async def deps(self, prober: FakeProber, chunk_size: int) -> Deps:
        settings = load_settings(
            {"MAILVET_CHUNK_SIZE": str(chunk_size), "MAILVET_WORKER_CONCURRENCY": "2"}
        )
        return await build_deps(
            settings,
            jobs=self.jobs,
            storage=self.storage,
            bus=self.bus,
            resolver=FakeResolver(),
            prober=prober,
        )


async def test_small_job_behind_a_big_one_finishes_first(tmp_path: Path) -> None:
    prober = FakeProber(delay=0.02)
    world = Fixture()
    deps = await world.deps(prober, chunk_size=20)
    big = tmp_path / "big.csv"
    big.write_text("email\n" + "".join(f"user{i}@big-corp.com\n" for i in range(6000)))
    small = tmp_path / "small.csv"
    small.write_text("email\n" + "".join(f"s{i}@small-shop.com\n" for i in range(10)))
    pipeline = Pipeline(deps)
    await pipeline.start()
    try:
        big_id = await submit_file(deps.jobs, deps.storage, deps.bus, big, checks=Check.SMTP)
        await world.jobs.until(big_id, lambda job: job.rows_done > 0)  # the big one is under way
        small_id = await submit_file(deps.jobs, deps.storage, deps.bus, small, checks=Check.SMTP)
        assert await world.jobs.final(small_id) is JobStatus.COMPLETED
        big_job = await deps.jobs.get(big_id)
        assert big_job.status is not JobStatus.COMPLETED
        assert big_job.rows_done < big_job.rows_total / 2
        assert await world.jobs.final(big_id) is JobStatus.COMPLETED

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
    world = Fixture(duplicate=ChunkDone)
    deps = await world.deps(FakeProber(), chunk_size=3)
    source = tmp_path / "l.csv"
    source.write_text("email\n" + "".join(f"u{i}@x-corp.com\n" for i in range(7)))
    pipeline = Pipeline(deps)
    await pipeline.start()
    try:
        job_id = await submit_file(deps.jobs, deps.storage, deps.bus, source)
        assert await world.jobs.final(job_id) is JobStatus.COMPLETED
        await world.bus.idle()  # every delivery, the duplicates too, has been handled
        done = world.bus.of_type(ChunkDone)
        assert sorted(m.chunk_id for m in done) == [0, 0, 1, 1, 2, 2]  # each one twice
        assert world.jobs.statuses.count((job_id, JobStatus.COMPLETED)) == 1
        job = await deps.jobs.get(job_id)
        assert (job.rows_done, job.rows_total, job.chunks_total) == (7, 7, 3)
        out = tmp_path / "o.csv"
        await fetch_result(deps.jobs, deps.storage, job_id, out)
        rows = [line.split(",")[0] for line in out.read_text().splitlines()[1:]]
        assert rows == [f"u{i}@x-corp.com" for i in range(7)]
        assert not [k for k in world.storage.objects if k.startswith(object_keys.job_work(job_id))]
    finally:
        await pipeline.stop()
        await deps.close()


async def test_a_failing_step_ends_the_job_with_an_error_instead_of_hanging(tmp_path: Path) -> None:
    class BrokenProber(FakeProber):
        async def probe(
            self, hosts: Sequence[str], recipients: Sequence[str], *, solo: bool = False
        ) -> list[ProbeResult]:
            raise RuntimeError("boom")

    world = Fixture()
    deps = await world.deps(BrokenProber(), chunk_size=5)
    source = tmp_path / "l.csv"
    source.write_text("email\na@x-corp.com\n")
    pipeline = Pipeline(deps)
    await pipeline.start()
    try:
        job_id = await submit_file(deps.jobs, deps.storage, deps.bus, source)
        assert await asyncio.wait_for(world.jobs.final(job_id), 5) is JobStatus.ERROR_INTERNAL
        assert "boom" in (await deps.jobs.get(job_id)).error
    finally:
        await pipeline.stop()
        await deps.close()

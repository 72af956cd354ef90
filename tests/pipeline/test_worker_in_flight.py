"""Network chunks in flight: far more than the worker's CPU slots, so a job's slow domains
(greylisting retries, tar-pits) do not starve its servers of work."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import pytest

from mailvet import metrics
from mailvet.adapters.bus.memory import MemoryBus
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import build_deps
from mailvet.domain.job import JobStatus
from mailvet.domain.ports import MailRoute, ProbeResult
from mailvet.domain.verdict import Check
from mailvet.pipeline import queues
from mailvet.pipeline.engine import Engine
from mailvet.pipeline.runner import Pipeline
from mailvet.pipeline.submit import submit_file
from mailvet.pipeline.worker import GC_THRESHOLDS, NETWORK_FACTOR, POOL_MIN_ROWS, Worker
from mailvet.settings import load_settings
from tests.fakes import ACCEPT, UNKNOWN, FakeProber, FakeResolver, WatchedJobs

pytestmark = pytest.mark.pipeline


class HeldProber:
    """Holds every mailbox probe until `wanted` of them wait at once (catch-all probes are
    answered at once); records the most that waited together."""

    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.waiting = 0
        self.peak = 0
        self._release = asyncio.Event()

    async def probe(
        self, hosts: Sequence[str], recipients: Sequence[str], *, solo: bool = False
    ) -> list[ProbeResult]:
        if not solo:
            self.waiting += 1
            self.peak = max(self.peak, self.waiting)
            if self.waiting >= self.wanted:
                self._release.set()
            await self._release.wait()
            self.waiting -= 1
        reply = UNKNOWN if solo else ACCEPT
        return [ProbeResult(mx=hosts[0], reply=reply) for _ in recipients]

    async def close(self) -> None:
        pass


async def test_network_chunks_in_flight_exceed_the_worker_concurrency(tmp_path: Path) -> None:
    concurrency = 2
    wanted = concurrency * NETWORK_FACTOR // 2  # the old limit was `concurrency` chunks
    prober = HeldProber(wanted)
    settings = load_settings(
        {"MAILVET_CHUNK_SIZE": "10", "MAILVET_WORKER_CONCURRENCY": str(concurrency)}
    )
    bus = MemoryBus()
    bus.set_bound("work", concurrency)
    jobs = WatchedJobs()
    deps = await build_deps(
        settings,
        jobs=jobs,
        storage=MemoryStorage(),
        bus=bus,
        resolver=FakeResolver(),
        prober=prober,
    )
    src = tmp_path / "list.csv"  # one domain per chunk of 10 rows: one probe call per chunk
    src.write_text("email\n" + "".join(f"u{i}@d{i // 10}.com\n" for i in range(200)))
    pipeline = Pipeline(deps)
    await pipeline.start()
    try:
        job_id = await submit_file(deps.jobs, deps.storage, deps.bus, src, checks=Check.SMTP)
        # (a hang guard: with `concurrency` chunks in flight the probes are never released)
        await asyncio.wait_for(prober._release.wait(), 30)
        assert await jobs.final(job_id) is JobStatus.COMPLETED
        assert prober.peak >= wanted > concurrency
    finally:
        await pipeline.stop()
        await deps.close()


def test_the_worker_relaxes_the_garbage_collector() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        Worker(Engine(FakeResolver(), FakeProber()), MemoryBus(), concurrency=4)
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.set_threshold(*before)


class HeldResolver(FakeResolver):
    """Holds the route lookups of the domains starting with "new" until released."""

    def __init__(self) -> None:
        super().__init__()
        self.held = 0
        self.release = asyncio.Event()

    async def mail_route(self, domain: str) -> MailRoute:
        if domain.startswith("new"):
            self.held += 1
            await self.release.wait()
        return await super().mail_route(domain)


async def test_a_known_route_does_not_wait_behind_new_lookups() -> None:
    """The engine puts no gate of its own before the resolver (which bounds its queries and
    answers known routes at once): with a gate of 32, tens of thousands of (chunk, domain)
    groups of a job, nearly all with a known route, went through it one event-loop turn
    each, and domains first seen in late chunks were looked up tens of seconds late."""
    resolver = HeldResolver()
    engine = Engine(resolver, FakeProber())
    new = asyncio.ensure_future(engine.check_many([f"a@new{n}.com" for n in range(100)], Check.DNS))
    try:
        # (a hang guard: behind a gate the known domain would wait for the held lookups)
        known = await asyncio.wait_for(engine.check_many(["a@known.com"], Check.DNS), 10)
        assert known[0].mx == "mx.known.com"
        assert resolver.held == 100 and not new.done()  # every new lookup asked at once
    finally:
        resolver.release.set()
    assert len(await new) == 100


class HeldPool(Executor):
    """A syntax pool that holds every chunk until released (then runs it here)."""

    def __init__(self) -> None:
        self.held: list[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = []
        self.holding = True

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        if self.holding:
            self.held.append((future, fn, args))
        else:
            future.set_result(fn(*args))
        return future

    def release(self) -> None:
        """Run the held chunks and every later one at once."""
        self.holding = False
        held, self.held = self.held, []
        for future, fn, args in held:
            future.set_result(fn(*args))


class ChunksHeld(metrics.PrometheusRecorder):
    """Records the most chunks the worker's handlers held at once."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0
        self.peak = 0

    def chunks_in_flight(self, delta: int) -> None:
        self.now += delta
        self.peak = max(self.peak, self.now)


async def test_syntax_chunks_are_taken_off_the_bus_no_faster_than_cpu_slots_free_up(
    tmp_path: Path,
) -> None:
    concurrency, backlog, chunks = 2, 4, 30
    settings = load_settings(
        {
            "MAILVET_SYNTAX_CHUNK_SIZE": str(POOL_MIN_ROWS),
            "MAILVET_WORKER_CONCURRENCY": str(concurrency),
            "MAILVET_DISPATCH_BACKLOG": str(backlog),
        }
    )
    pool = HeldPool()
    bus = MemoryBus()
    jobs = WatchedJobs()
    deps = await build_deps(settings, jobs=jobs, storage=MemoryStorage(), bus=bus, syntax_pool=pool)
    src = tmp_path / "list.csv"
    src.write_text(
        "email\n" + "".join(f"u{i}@d{i % 7}.com\n" for i in range(chunks * POOL_MIN_ROWS))
    )
    recorder = ChunksHeld()
    previous = metrics.use(recorder)
    pipeline = Pipeline(deps)
    await pipeline.start()
    try:
        job_id = await submit_file(deps.jobs, deps.storage, deps.bus, src, checks=Check.SYNTAX)
        # the orchestrator has filled the work queues: every chunk the worker takes is held
        async with asyncio.timeout(30):
            while not (len(pool.held) >= concurrency and await _waiting(bus) >= backlog):  # noqa: ASYNC110
                await asyncio.sleep(0.005)  # queue depths have no event
        assert recorder.peak <= concurrency  # it was concurrency x NETWORK_FACTOR
        pool.release()
        assert await jobs.final(job_id) is JobStatus.COMPLETED
        assert recorder.peak <= concurrency
    finally:
        metrics.use(previous)
        await pipeline.stop()
        await deps.close()


async def _waiting(bus: MemoryBus) -> int:
    depths = await bus.queue_depths()
    return depths.get(queues.WORK, 0) + depths.get(queues.WORK_CPU, 0)

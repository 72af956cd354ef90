"""A job is never charged and failed (review C5): the result generator completes a job
before it settles its credits, so a failure around the completion either fails the job
with everything given back or completes it and settles it, now or later
(`services.credits.sweep_unsettled_jobs`, from the counts stored before the completion).

The whole pipeline in one process, the jobs and the ledger in one SQLite file (the sweeper
reads both), the job repository failing where a test says."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import select

from mailvet import metrics
from mailvet.adapters.db.database import Database, make_database
from mailvet.adapters.db.ledger_models import LedgerEntryRow
from mailvet.adapters.db.repositories import SqlJobRepository
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import Deps, build_deps
from mailvet.domain.credits import CreditLedger, EntryKind, Shortfall
from mailvet.domain.job import FileInfo, Job, JobStatus
from mailvet.domain.job_events import NoJobEvents
from mailvet.domain.messages import JobAccepted
from mailvet.domain.ports import MailRoute, RouteKind
from mailvet.domain.smtp_reply import Reply
from mailvet.pipeline.runner import Pipeline
from mailvet.pipeline.submit import submit_file
from mailvet.services import credits
from mailvet.services.credits import SqlCreditLedger
from mailvet.settings import load_settings
from tests.fakes import ACCEPT, UNKNOWN, FakeProber, FakeResolver, RecordingBus

pytestmark = pytest.mark.pipeline

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ANN = "a" * 32
# 4 distinct valid addresses: slow@ (unknown/timeout) is refunded, so the job is charged 3
LIST = (
    "email\n"
    "good1@x-corp.com\n"
    "good2@x-corp.com\n"
    "slow@slow-corp.com\n"
    "gone@x-corp.com\n"
    "good1@x-corp.com\n"
)
COST, CHARGED = 4, 3


def route(domain: str) -> MailRoute:
    if domain == "slow-corp.com":
        return MailRoute(RouteKind.TIMEOUT)
    return MailRoute(RouteKind.MX, (f"mx.{domain}",))


def answer(recipient: str) -> Reply:
    return UNKNOWN if recipient.startswith(("mailvet-", "gone@")) else ACCEPT


class FlakyJobs(SqlJobRepository):
    """The SQL job repository whose completion fails once: `fail_completion` "before"
    (nothing written, then an error) or "after" (written, then an error, as when the
    connection drops before the commit is acknowledged). `final(job_id)` waits for a
    final status."""

    def __init__(self, database: Database, *, fail_completion: str = "") -> None:
        super().__init__(database, now=lambda: T0)
        self.fail_completion = fail_completion
        self.completions_failed = 0
        self._changed = asyncio.Event()

    async def set_status(self, job_id: str, status: JobStatus, error: str = "") -> Job:
        failing = status is JobStatus.COMPLETED and self.fail_completion
        if failing == "before":
            self.fail_completion = ""
            self.completions_failed += 1
            raise RuntimeError("the database went away")
        job = await super().set_status(job_id, status, error)
        self._changed.set()
        self._changed = asyncio.Event()
        if failing == "after":
            self.fail_completion = ""
            self.completions_failed += 1
            raise RuntimeError("the commit's answer was lost")
        return job

    async def final(self, job_id: str) -> Job:
        async with asyncio.timeout(20):
            while True:
                changed = self._changed
                job = await self.get(job_id)
                if job.status.is_final:
                    return job
                await changed.wait()


class FlakyLedger:
    """The SQL ledger whose first `settle_fails` settlements fail; with `hold`, a
    settlement waits for `gate` before it is made."""

    def __init__(
        self, inner: SqlCreditLedger, *, settle_fails: int = 0, hold: bool = False
    ) -> None:
        self.inner = inner
        self.settle_fails = settle_fails
        self.settles: list[tuple[str, int]] = []
        self.hold = hold
        self.entered = asyncio.Event()  # a settlement has begun
        self.gate = asyncio.Event()  # with `hold`: what the settlements wait for

    def charges(self, job: Job) -> bool:
        return self.inner.charges(job)

    async def reserve(self, job: Job, cost: int) -> Shortfall | None:
        return await self.inner.reserve(job, cost)

    async def settle(self, job: Job, charged: int) -> None:
        self.settles.append((job.id, charged))
        self.entered.set()
        if self.hold:
            await self.gate.wait()
        if self.settle_fails:
            self.settle_fails -= 1
            raise RuntimeError("the ledger's database went away")
        await self.inner.settle(job, charged)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = make_database(f"sqlite+aiosqlite:///{tmp_path}/saas.db")
    await database.create_all()
    async with database.session_maker() as session, session.begin():
        await credits.grant(session, ANN, 10, kind=EntryKind.SIGNUP_GRANT, now=T0)
    try:
        yield database
    finally:
        await database.dispose()


def sql_ledger(db: Database) -> SqlCreditLedger:
    return SqlCreditLedger(db, clock=lambda: T0)


@asynccontextmanager
async def running(jobs: FlakyJobs, ledger: CreditLedger, tmp_path: Path) -> AsyncIterator[Pipe]:
    """The pipeline on `jobs` and `ledger`, started; stopped (if not yet) and closed after."""
    settings = load_settings({"MAILVET_CHUNK_SIZE": "2", "MAILVET_DATA_DIR": str(tmp_path)})
    deps = await build_deps(
        settings,
        jobs=jobs,
        storage=MemoryStorage(),
        bus=RecordingBus(roundtrip=True),
        resolver=FakeResolver(route),
        prober=FakeProber(answer),
        syntax_pool=None,
        ledger=ledger,
        events=NoJobEvents(),
    )
    pipeline = Pipeline(deps)
    await pipeline.start()
    pipe = Pipe(deps, pipeline)
    try:
        yield pipe
    finally:
        if not pipe.stopped:
            await pipeline.stop()
        await deps.close()


class Pipe:
    def __init__(self, deps: Deps, pipeline: Pipeline) -> None:
        self.deps = deps
        self.pipeline = pipeline
        self.stopped = False

    async def submit(self, tmp_path: Path) -> str:
        source = tmp_path / "list.csv"
        source.write_text(LIST)
        deps = self.deps
        return await submit_file(deps.jobs, deps.storage, deps.bus, source, owner=ANN)

    async def stop(self) -> None:
        self.stopped = True
        await self.pipeline.stop()


async def run_job(jobs: FlakyJobs, ledger: CreditLedger, tmp_path: Path) -> Job:
    """Submit LIST as ANN's job, wait for its end, stop the pipeline at once; the job."""
    async with running(jobs, ledger, tmp_path) as pipe:
        job_id = await pipe.submit(tmp_path)
        await jobs.final(job_id)
        await pipe.stop()
    return await jobs.get(job_id)


async def balance(db: Database) -> tuple[int, int]:
    async with db.session_maker() as session:
        got = await credits.balance(session, ANN)
        return got.balance, got.reserved


async def entries(db: Database) -> list[tuple[str, int]]:
    async with db.session_maker() as session:
        rows = await session.execute(
            select(LedgerEntryRow.kind, LedgerEntryRow.amount).order_by(LedgerEntryRow.seq)
        )
        return [(kind, amount) for kind, amount in rows.all()]


async def test_a_completion_that_fails_fails_the_job_and_gives_everything_back(
    db: Database, tmp_path: Path
) -> None:
    """set_status(COMPLETED) fails once (nothing written): the job ends error_internal
    and its whole reservation goes back. (When the settlement came before the completion,
    the release then found the job settled: a failed job that paid 3.)"""
    jobs = FlakyJobs(db, fail_completion="before")
    ledger = FlakyLedger(sql_ledger(db))
    job = await run_job(jobs, ledger, tmp_path)

    assert jobs.completions_failed == 1
    assert job.status is JobStatus.ERROR_INTERNAL
    assert "the database went away" in job.error
    assert ledger.settles == [(job.id, 0)]  # the release; nothing was charged
    assert await balance(db) == (10, 0)
    assert await entries(db) == [("signup_grant", 10), ("job_reserve", -COST), ("job_settle", COST)]
    async with db.session_maker() as session:
        assert await credits.unsettled_jobs(session) == []


async def test_a_completion_written_but_not_acknowledged_settles_the_completed_job(
    db: Database, tmp_path: Path
) -> None:
    jobs = FlakyJobs(db, fail_completion="after")
    ledger = FlakyLedger(sql_ledger(db))
    job = await run_job(jobs, ledger, tmp_path)

    assert jobs.completions_failed == 1
    assert job.status is JobStatus.COMPLETED
    assert job.counts is not None and job.counts.charged == CHARGED
    assert ledger.settles == [(job.id, CHARGED)]
    assert await balance(db) == (10 - CHARGED, 0)


async def test_a_settlement_that_fails_after_the_completion_is_made_by_the_sweeper(
    db: Database, tmp_path: Path
) -> None:
    """The job is complete; its reservation stays held until the sweeper settles it with
    the charge of its counts, once (a second sweep, and the generator's settlement
    replayed, change nothing)."""
    jobs = FlakyJobs(db)
    ledger = FlakyLedger(sql_ledger(db), settle_fails=1)
    job = await run_job(jobs, ledger, tmp_path)

    assert job.status is JobStatus.COMPLETED
    assert ledger.settles == [(job.id, CHARGED)]
    assert await balance(db) == (10 - COST, COST)  # held, not lost, not refunded
    async with db.session_maker() as session:
        assert await credits.unsettled_jobs(session) == [credits.Unsettled(job.id, CHARGED)]

    assert await credits.sweep_unsettled_jobs(db, now=T0) == 1
    assert await balance(db) == (10 - CHARGED, 0)
    assert await credits.sweep_unsettled_jobs(db, now=T0) == 0
    await ledger.settle(job, CHARGED)  # the generator's settlement, replayed
    assert await balance(db) == (10 - CHARGED, 0)
    assert [kind for kind, _ in await entries(db)] == ["signup_grant", "job_reserve", "job_settle"]


async def test_a_failed_job_whose_release_failed_gets_everything_back_from_the_sweeper(
    db: Database, tmp_path: Path
) -> None:
    jobs = FlakyJobs(db, fail_completion="before")
    ledger = FlakyLedger(sql_ledger(db), settle_fails=1)
    job = await run_job(jobs, ledger, tmp_path)

    assert job.status is JobStatus.ERROR_INTERNAL
    assert await balance(db) == (10 - COST, COST)
    assert await credits.sweep_unsettled_jobs(db, now=T0) == 1
    assert await balance(db) == (10, 0)


async def test_stopping_lets_a_completed_job_settle(db: Database, tmp_path: Path) -> None:
    """The pipeline is stopped while the writer of a completed job is in its settlement:
    stop() waits for the settlement instead of cancelling it."""
    jobs = FlakyJobs(db)
    ledger = FlakyLedger(sql_ledger(db), hold=True)
    async with running(jobs, ledger, tmp_path) as pipe:
        job_id = await pipe.submit(tmp_path)
        await ledger.entered.wait()
        assert (await jobs.get(job_id)).status is JobStatus.COMPLETED
        stopping = asyncio.create_task(pipe.stop())
        done, _ = await asyncio.wait({stopping}, timeout=0.3)
        assert not done  # waiting for the settlement
        ledger.gate.set()
        await stopping

    assert await balance(db) == (10 - CHARGED, 0)


async def test_the_sweeper_leaves_running_and_settled_jobs_alone(
    db: Database, tmp_path: Path
) -> None:
    """Only jobs that ended are settled by the sweeper: a running job's reservation is
    its own; a job that never reserved, or was settled, has nothing to settle."""
    jobs = FlakyJobs(db)
    job = Job(id="r" * 32, file=FileInfo(filename="list.csv"), owner=ANN)
    await jobs.add(job)
    for status in (JobStatus.FILE_ACCEPTED, JobStatus.FILE_QUEUED, JobStatus.IN_PROGRESS):
        await jobs.set_status(job.id, status)
    async with db.session_maker() as session, session.begin():
        await credits.reserve_for_job(session, ANN, job.id, 2, T0)
    assert await credits.sweep_unsettled_jobs(db, now=T0) == 0
    assert await balance(db) == (8, 2)

    await jobs.set_status(job.id, JobStatus.ERROR_INTERNAL, "the run died")
    assert await credits.sweep_unsettled_jobs(db, now=T0) == 1
    assert await balance(db) == (10, 0)
    assert await credits.sweep_unsettled_jobs(db, now=T0) == 0


class FinishedJobs:
    """A metrics recorder that keeps the statuses of the finished jobs (and nothing else)."""

    def __init__(self) -> None:
        self.statuses: list[str] = []

    def job_finished(self, status: str, seconds: float) -> None:
        self.statuses.append(status)

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None  # every other figure: dropped


async def test_a_job_the_bus_gives_up_on_fails_counted_and_gives_everything_back(
    db: Database, tmp_path: Path
) -> None:
    """The bus drops one of a running job's messages for good: the job ends error_internal,
    counted among the finished jobs (as a failure in the result generator is), and its
    reservation goes back, once (the same end as the result generator's, pipeline.fail_job)."""
    jobs = FlakyJobs(db)
    ledger = FlakyLedger(sql_ledger(db))
    job = Job(id="g" * 32, file=FileInfo(filename="list.csv"), owner=ANN)
    await jobs.add(job)
    for status in (JobStatus.FILE_ACCEPTED, JobStatus.FILE_QUEUED, JobStatus.IN_PROGRESS):
        await jobs.set_status(job.id, status)
    assert await ledger.reserve(await jobs.get(job.id), 2) is None
    settings = load_settings({"MAILVET_DATA_DIR": str(tmp_path)})
    deps = await build_deps(
        settings,
        jobs=jobs,
        storage=MemoryStorage(),
        bus=RecordingBus(),
        resolver=FakeResolver(route),
        prober=FakeProber(answer),
        syntax_pool=None,
        ledger=ledger,
        events=NoJobEvents(),
    )
    finished = FinishedJobs()
    previous = metrics.use(cast(metrics.Recorder, finished))
    try:
        pipeline = Pipeline(deps)
        dropped = JobAccepted(job_id=job.id)
        await pipeline._give_up(dropped, RuntimeError("dead-lettered"))
        await pipeline._give_up(dropped, RuntimeError("dead-lettered"))  # told twice
    finally:
        metrics.use(previous)
        await deps.close()

    failed = await jobs.get(job.id)
    assert failed.status is JobStatus.ERROR_INTERNAL
    assert failed.error == "internal error: RuntimeError: dead-lettered"
    assert finished.statuses == [JobStatus.ERROR_INTERNAL.value]
    assert await balance(db) == (10, 0)
    assert [kind for kind, _ in await entries(db)] == ["signup_grant", "job_reserve", "job_settle"]

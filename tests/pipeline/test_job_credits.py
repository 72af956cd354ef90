"""Jobs and credits, the whole pipeline in one process with the SQL ledger on a SQLite file:
a job reserves its distinct valid addresses, fails on a shortfall, settles at completion
with duplicates never charged and unknowns refunded, and settles once when its messages
are delivered again (tests/pipeline/test_job_settlement.py: failures around the
completion)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import openpyxl
import pytest

from mailvet.adapters.db.database import Database, make_database
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import Deps, LazyCreditLedger, SharedDatabase, build_deps, build_ledger
from mailvet.domain.credits import CreditLedger, EntryKind, FreeLedger, Shortfall
from mailvet.domain.job import FileInfo, Job, JobStatus
from mailvet.domain.messages import ChunkDone, JobAccepted, JobSubmitted, Message
from mailvet.domain.ports import MailRoute, ProbeResult, RouteKind
from mailvet.domain.smtp_reply import Reply
from mailvet.domain.verdict import Check
from mailvet.pipeline.resultgen import ResultGenerator
from mailvet.pipeline.runner import Pipeline
from mailvet.pipeline.submit import submit_file
from mailvet.services import credits
from mailvet.services.credits import SqlCreditLedger
from mailvet.settings import load_settings
from tests.fakes import ACCEPT, UNKNOWN, FakeProber, FakeResolver, RecordingBus, WatchedJobs

pytestmark = pytest.mark.pipeline

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ANN = "a" * 32

# 10 rows: 4 distinct valid addresses (one refunded), a case-only duplicate, an exact
# duplicate of the refunded one, an invalid address and an empty cell
LIST = (
    "email\n"
    "good1@x-corp.com\n"
    "good1@X-CORP.COM\n"
    "good2@x-corp.com\n"
    "slow@slow-corp.com\n"
    "slow@slow-corp.com\n"
    "not an address\n"
    "\n"  # a blank line: not a row
    ",\n"
    "gone@x-corp.com\n"
    "good2@x-corp.com\n"
)


def route(domain: str) -> MailRoute:
    if domain == "slow-corp.com":  # DNS does not answer: unknown/timeout, refunded
        return MailRoute(RouteKind.TIMEOUT)
    return MailRoute(RouteKind.MX, (f"mx.{domain}",))


def answer(recipient: str) -> Reply:
    return UNKNOWN if recipient.startswith(("mailvet-", "gone@")) else ACCEPT


class RecordingLedger:
    """A CreditLedger in front of another that records every call; `crash_after_settle`:
    the first settlement is made, then the process stops (the result generator's task is
    cancelled before it completes the job)."""

    def __init__(self, inner: CreditLedger, *, crash_after_settle: bool = False) -> None:
        self.inner = inner
        self.reserves: list[tuple[str, int]] = []
        self.settles: list[tuple[str, int]] = []
        self.settled = asyncio.Event()  # set after each settlement
        self._crash = crash_after_settle

    def charges(self, job: Job) -> bool:
        return self.inner.charges(job)

    async def reserve(self, job: Job, cost: int) -> Shortfall | None:
        self.reserves.append((job.id, cost))
        return await self.inner.reserve(job, cost)

    async def settle(self, job: Job, charged: int) -> None:
        if self.inner.charges(job):  # recorded: what the ledger settles (a free job: nothing)
            self.settles.append((job.id, charged))
        await self.inner.settle(job, charged)
        self.settled.set()
        if self._crash:
            self._crash = False
            raise asyncio.CancelledError  # stopped right after the settlement committed


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = make_database(f"sqlite+aiosqlite:///{tmp_path}/ledger.db")
    await database.create_all()
    try:
        yield database
    finally:
        await database.dispose()


async def fund(db: Database, amount: int) -> None:
    async with db.session_maker() as session, session.begin():
        await credits.grant(session, ANN, amount, kind=EntryKind.SIGNUP_GRANT, now=T0)


async def balance(db: Database) -> tuple[int, int]:
    async with db.session_maker() as session:
        got = await credits.balance(session, ANN)
        return got.balance, got.reserved


class World:
    def __init__(self, db: Database, *, duplicate: tuple[type[Message], ...] = ()) -> None:
        self.jobs = WatchedJobs()
        self.storage = MemoryStorage()
        self.bus = RecordingBus(
            roundtrip=True, duplicate=lambda message: isinstance(message, duplicate)
        )
        self.sql = SqlCreditLedger(db, clock=lambda: T0)

    async def deps(self, ledger: CreditLedger, tmp_path: Path, **env: str) -> Deps:
        settings = load_settings(
            {"MAILVET_CHUNK_SIZE": "3", "MAILVET_DATA_DIR": str(tmp_path / "data"), **env}
        )
        return await build_deps(
            settings,
            jobs=self.jobs,
            storage=self.storage,
            bus=self.bus,
            resolver=FakeResolver(route),
            prober=FakeProber(answer),
            syntax_pool=None,
            ledger=ledger,
        )


async def run_job(
    world: World, deps: Deps, path: Path, *, owner: str = ANN, checks: Check = Check.SMTP
) -> Job:
    pipeline = Pipeline(deps)
    await pipeline.start()
    try:
        job_id = await submit_file(
            deps.jobs, deps.storage, deps.bus, path, owner=owner, checks=checks
        )
        await world.jobs.final(job_id)
        await world.bus.idle()
        return await deps.jobs.get(job_id)
    finally:
        await pipeline.stop()


async def test_a_job_reserves_its_distinct_addresses_and_pays_for_the_known_ones(
    db: Database, tmp_path: Path
) -> None:
    await fund(db, 10)
    world = World(db)
    ledger = RecordingLedger(world.sql)
    deps = await world.deps(ledger, tmp_path)
    source = tmp_path / "list.csv"
    source.write_text(LIST)
    try:
        job = await run_job(world, deps, source)
    finally:
        await deps.close()

    # good1 (twice, by case), good2 (twice), slow (twice), gone: 4
    assert job.cost == 4
    assert ledger.reserves == [(job.id, 4)]
    # slow@ ended unknown/timeout: refunded once although it is on two rows
    assert ledger.settles == [(job.id, 3)]
    assert await balance(db) == (7, 0)
    assert job.counts is not None
    assert job.counts.charged == 3
    assert job.counts.statuses == {"deliverable": 4, "unknown": 2, "undeliverable": 3}
    assert job.counts.reasons == {
        "accepted": 4,
        "timeout": 2,
        "invalid_syntax": 2,  # the sentence and the empty cell
        "mailbox_not_found": 1,
    }
    assert sum(job.counts.statuses.values()) == job.rows_total == 9


async def test_a_job_beyond_the_balance_fails_with_the_shortfall(
    db: Database, tmp_path: Path
) -> None:
    await fund(db, 3)
    world = World(db)
    deps = await world.deps(world.sql, tmp_path)
    source = tmp_path / "list.csv"
    source.write_text(LIST)
    try:
        job = await run_job(world, deps, source)
    finally:
        await deps.close()

    assert job.status is JobStatus.ERROR_INSUFFICIENT_CREDITS
    assert "needs 4" in job.error and "balance is 3" in job.error and "1 missing" in job.error
    assert job.cost == 4
    assert world.bus.of_type(JobAccepted) == []  # nothing was queued
    assert await balance(db) == (3, 0)


async def test_syntax_only_addresses_are_charged_not_refunded(db: Database, tmp_path: Path) -> None:
    """`not_checked` is what the customer chose (--checks syntax): charged."""
    await fund(db, 10)
    world = World(db)
    deps = await world.deps(world.sql, tmp_path)
    source = tmp_path / "list.csv"
    source.write_text(LIST)
    try:
        job = await run_job(world, deps, source, checks=Check.SYNTAX)
    finally:
        await deps.close()

    assert job.status is JobStatus.COMPLETED
    assert job.counts is not None and job.counts.charged == 4
    assert await balance(db) == (6, 0)


async def test_a_redelivered_job_reserves_and_settles_once(db: Database, tmp_path: Path) -> None:
    """Every ChunkDone delivered twice; the result generator stops right after settling
    (the job was completed before: a new generator has nothing to take up again); and
    intake's message delivered again after the job was accepted."""
    await fund(db, 10)
    world = World(db, duplicate=(ChunkDone,))
    ledger = RecordingLedger(world.sql, crash_after_settle=True)
    deps = await world.deps(ledger, tmp_path)
    source = tmp_path / "list.csv"
    source.write_text(LIST)
    pipeline = Pipeline(deps)
    await pipeline.start()
    try:
        job_id = await submit_file(deps.jobs, deps.storage, deps.bus, source, owner=ANN)
        await ledger.settled.wait()
        await world.bus.idle()
        assert (await deps.jobs.get(job_id)).status is JobStatus.COMPLETED  # before settling
        assert ledger.settles == [(job_id, 3)]

        restarted = ResultGenerator(
            deps.jobs, deps.storage, scratch=deps.settings.scratch_dir, ledger=ledger
        )
        await restarted.resume()
        await restarted.stop()
        await deps.bus.publish("intake", JobSubmitted(job_id=job_id))
        await world.bus.idle()
    finally:
        await pipeline.stop()
        await deps.close()

    assert ledger.settles == [(job_id, 3)]
    assert await balance(db) == (7, 0)
    async with db.session_maker() as session:
        page = await credits.history(session, ANN)
    assert [entry.kind for entry in page.items] == [
        EntryKind.JOB_SETTLE,
        EntryKind.JOB_RESERVE,
        EntryKind.SIGNUP_GRANT,
    ]


async def test_a_job_that_fails_after_reserving_gets_everything_back(
    db: Database, tmp_path: Path
) -> None:
    class BrokenProber(FakeProber):
        async def probe(
            self, hosts: Sequence[str], recipients: Sequence[str], *, solo: bool = False
        ) -> list[ProbeResult]:
            raise RuntimeError("boom")

    await fund(db, 10)
    world = World(db)
    settings = load_settings({"MAILVET_CHUNK_SIZE": "3", "MAILVET_DATA_DIR": str(tmp_path)})
    deps = await build_deps(
        settings,
        jobs=world.jobs,
        storage=world.storage,
        bus=world.bus,
        resolver=FakeResolver(),
        prober=BrokenProber(),
        syntax_pool=None,
        ledger=world.sql,
    )
    source = tmp_path / "list.csv"
    source.write_text("email\na@x-corp.com\nb@x-corp.com\n")
    try:
        job = await run_job(world, deps, source)
    finally:
        await deps.close()

    assert job.status is JobStatus.ERROR_INTERNAL
    assert job.cost == 2
    assert await balance(db) == (10, 0)


async def test_a_job_without_an_owner_is_free_and_not_even_counted(
    db: Database, tmp_path: Path
) -> None:
    world = World(db)
    ledger = RecordingLedger(world.sql)
    deps = await world.deps(ledger, tmp_path)
    source = tmp_path / "list.csv"
    source.write_text(LIST)
    try:
        job = await run_job(world, deps, source, owner="")
    finally:
        await deps.close()

    assert job.status is JobStatus.COMPLETED
    assert job.cost == 0
    assert (ledger.reserves, ledger.settles) == ([], [])
    assert job.counts is not None and job.counts.charged == 0
    async with db.session_maker() as session:
        assert (await credits.history(session, "")).total == 0  # the ledger wrote nothing


async def test_build_ledger_follows_mailvet_credits(tmp_path: Path) -> None:
    off = load_settings({"MAILVET_CREDITS": "off", "MAILVET_DATA_DIR": str(tmp_path)})
    database = SharedDatabase(off.database)
    free = build_ledger(off, database)
    assert isinstance(free, FreeLedger)

    on = load_settings({"MAILVET_DATA_DIR": str(tmp_path)})
    lazy = build_ledger(on, database)
    assert isinstance(lazy, LazyCreditLedger)
    anonymous = Job(id="j", file=FileInfo(filename="a.csv"))
    assert not lazy.charges(anonymous)
    assert await lazy.reserve(anonymous, 5) is None
    await lazy.settle(anonymous, 0)
    assert not database.built  # a free job made no engine
    await database.close()


async def test_an_xlsx_list_settles_the_same_way(db: Database, tmp_path: Path) -> None:
    """XLSX results travel as cells, not rendered text: the refunds come along as well."""
    await fund(db, 10)
    world = World(db)
    deps = await world.deps(world.sql, tmp_path)
    source = tmp_path / "list.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["email"])
    for line in LIST.splitlines()[1:]:
        if line:
            sheet.append([line.rstrip(",") or None])
    book.save(source)
    try:
        job = await run_job(world, deps, source)
    finally:
        await deps.close()

    assert job.status is JobStatus.COMPLETED
    assert job.cost == 4
    assert job.counts is not None and job.counts.charged == 3
    assert await balance(db) == (7, 0)

"""Concurrent jobs and checks of one account never overdraw it, on PostgreSQL (issue 8 §2);
and an admin's credits form sent many times at once adjusts once (review C3).

Many lists of one account are submitted at once through the pipeline's own entry
(pipeline/submit.py's submit_file, then Intake.handle, which counts each list's distinct
valid addresses and reserves them through the SQL ledger), by two intakes with an engine
each (two replicas), while single checks of the same account are charged and settled as
the check page does (services/single_checks.py). Some messages are delivered twice, at
once, as an at-least-once broker may (a handler that raises is delivered again, as the
broker does with a message that was not acknowledged). Afterwards:

- every list either reserved exactly its cost or ended error_insufficient_credits with
  the shortfall it saw, which was real: it is more than the final balance;
- the final balance is exact: the grant less the reservations and the checks charged,
  never below zero, equal to the cached balance, the entries numbered without a gap and
  no key twice.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from mailvet.adapters.db import migrate
from mailvet.adapters.db.database import Database, make_database
from mailvet.adapters.db.ledger_models import LedgerEntryRow
from mailvet.adapters.db.repositories import SqlJobRepository
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.domain.credits import EntryKind, Shortfall
from mailvet.domain.job import JobStatus
from mailvet.domain.messages import JobSubmitted
from mailvet.domain.verdict import Check
from mailvet.pipeline import queues
from mailvet.pipeline.intake import Intake
from mailvet.pipeline.submit import submit_file
from mailvet.services import credits, single_checks
from mailvet.services.credits import SqlCreditLedger
from tests.fakes import RecordingBus
from tests.ledger_model import cached_balance, entries_sum
from tests.pg import scratch_database, url_of

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ANN = uuid.UUID(int=1).hex
GRANT = 100
JOBS = 32  # lists of 3 to 6 distinct valid addresses: 144 credits asked for in all
CHECKS = 24  # single checks, one credit each
TWICE = range(0, JOBS, 5)  # these lists' JobSubmitted is delivered twice, at once
SHORTFALL = re.compile(r"this list needs (\d+), the balance is (\d+) \((\d+) missing\)")


def cost_of(n: int) -> int:
    return 3 + n % 4


def a_list(folder: Path, n: int) -> Path:
    """List n: cost_of(n) distinct valid addresses, one of them twice (its domain in
    another case), an invalid one and an empty cell (neither counted)."""
    addresses = [f"user{k}@list{n}.example.com" for k in range(cost_of(n))]
    rows = ["email", *addresses, f"user0@LIST{n}.Example.COM", "not an address", ""]
    path = folder / f"list-{n}.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with scratch_database("mailvet_submits") as name:
        url = url_of(name)
        migrate.upgrade(url)
        yield url


@pytest.fixture
async def replicas(pg_url: str) -> AsyncIterator[tuple[Database, Database]]:
    """Two engines on the database, as two processes have."""
    first, second = make_database(pg_url), make_database(pg_url)
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


def intake_on(database: Database, storage: MemoryStorage, bus: RecordingBus, tmp: Path) -> Intake:
    tmp.mkdir()
    return Intake(
        SqlJobRepository(database),
        storage,
        bus,
        chunk_size=50,
        syntax_chunk_size=500,
        scratch=tmp,
        ledger=SqlCreditLedger(database, clock=lambda: T0),
    )


async def test_many_concurrent_submits_and_checks_never_overdraw_one_account(
    replicas: tuple[Database, Database], tmp_path: Path
) -> None:
    first, second = replicas
    async with first.session_maker() as session, session.begin():
        await credits.grant(session, ANN, GRANT, kind=EntryKind.SIGNUP_GRANT, now=T0, key="g")
    storage = MemoryStorage()  # the object store both replicas share
    bus = RecordingBus()
    jobs = SqlJobRepository(first)
    job_ids = [
        await submit_file(jobs, storage, bus, a_list(tmp_path, n), owner=ANN, checks=Check.SMTP)
        for n in range(JOBS)
    ]
    submitted = [
        message
        for queue, message in bus.published
        if queue == queues.INTAKE and isinstance(message, JobSubmitted)
    ]
    assert [message.job_id for message in submitted] == job_ids
    intakes = (
        intake_on(first, storage, bus, tmp_path / "scratch-1"),
        intake_on(second, storage, bus, tmp_path / "scratch-2"),
    )

    go = asyncio.Event()  # everything starts at once

    failed: list[str] = []  # deliveries whose handler raised (the broker delivers again)

    async def deliver(message: JobSubmitted, replica: int) -> None:
        await go.wait()
        try:
            await intakes[replica].handle(message)
        except Exception as exc:  # a twin delivery moved the file first (ObjectNotFound)
            failed.append(type(exc).__name__)
            await intakes[replica].handle(message)  # redelivered: skipped, job accepted

    async def check(n: int) -> Shortfall | None:
        await go.wait()
        database = replicas[n % 2]
        check_id = uuid.uuid4().hex
        async with database.unit_of_work(write=True) as session:
            short = await single_checks.charge(session, ANN, check_id, now=T0)
        if short is None:  # the verdict: deliverable, charged; settled twice at once
            await asyncio.gather(settle(database, check_id), settle(replicas[1 - n % 2], check_id))
        return short

    async def settle(database: Database, check_id: str) -> None:
        async with database.unit_of_work(write=True) as session:
            await single_checks.settle(session, check_id, reason="accepted", now=T0)

    deliveries = [deliver(message, n % 2) for n, message in enumerate(submitted)]
    deliveries += [deliver(submitted[n], 1 - n % 2) for n in TWICE]
    tasks = [asyncio.ensure_future(step) for step in deliveries]
    checks = [asyncio.ensure_future(check(n)) for n in range(CHECKS)]
    await asyncio.sleep(0)  # every task is waiting at the start line
    go.set()
    async with asyncio.timeout(60):
        await asyncio.gather(*tasks)
        shortfalls = await asyncio.gather(*checks)

    assert len(failed) <= len(TWICE)  # only a twin delivery can fail

    # every list: its cost reserved once, or the shortfall it saw
    reserved: dict[str, int] = {}
    refused: dict[str, tuple[int, int]] = {}  # job -> (the balance its shortfall saw, cost)
    for n, job_id in enumerate(job_ids):
        job = await jobs.get(job_id)
        assert job.cost == cost_of(n), n
        if job.status is JobStatus.FILE_ACCEPTED:
            reserved[job_id] = job.cost
        else:
            assert job.status is JobStatus.ERROR_INSUFFICIENT_CREDITS, (n, job.status, job.error)
            found = SHORTFALL.search(job.error)
            assert found is not None, job.error
            needed, available, missing = map(int, found.groups())
            assert (needed, needed - available) == (job.cost, missing) and missing > 0
            refused[job_id] = (available, job.cost)
    charged = [short for short in shortfalls if short is None]
    refused_checks = [short for short in shortfalls if short is not None]
    assert all(short == Shortfall(needed=1, available=0) for short in refused_checks)
    assert reserved and refused  # the race was real: some paid, some could not

    # the ledger: exact, never overdrawn, each step once
    async with first.session_maker() as session:
        total = await credits.balance(session, ANN)
        cached = await cached_balance(session, ANN)
        summed = await entries_sum(session, ANN)
        rows = (
            await session.execute(
                select(LedgerEntryRow)
                .where(LedgerEntryRow.account_id == ANN)
                .order_by(LedgerEntryRow.seq)
            )
        ).scalars()
        entries = list(rows)
        assert await single_checks.pending(session, ANN) == []  # every check settled
    final = GRANT - sum(reserved.values()) - len(charged)
    assert total.balance == final == cached == summed
    assert final >= 0
    assert total.reserved == sum(reserved.values())  # the accepted jobs hold their cost
    assert [entry.seq for entry in entries] == list(range(1, len(entries) + 1))
    keys = [entry.key for entry in entries]
    assert None not in keys and len(keys) == len(set(keys))
    reserves = {e.job_id: -e.amount for e in entries if e.kind == EntryKind.JOB_RESERVE}
    assert reserves == reserved  # a reservation per accepted list, once, none for the others
    assert [e.kind for e in entries].count(EntryKind.SINGLE_CHECK) == len(charged)
    assert EntryKind.SINGLE_REFUND not in [e.kind for e in entries]  # "accepted" is charged
    assert len(entries) == 1 + len(reserved) + len(charged)
    # each refusal was real: nothing was given back meanwhile, so the balance it saw is
    # at least the final one, and the list costs more than that
    for available, cost in refused.values():
        assert final <= available < cost
    if refused_checks:
        assert final == 0

    # delivered again later (a redelivery after the fact): nothing changes
    again = [asyncio.ensure_future(intakes[n % 2].handle(m)) for n, m in enumerate(submitted)]
    await asyncio.gather(*again)
    async with second.session_maker() as session:
        assert (await credits.balance(session, ANN)).balance == final
        assert (await credits.history(session, ANN, limit=1)).total == len(entries)


async def test_an_admin_form_posted_at_once_on_two_replicas_adjusts_once(
    replicas: tuple[Database, Database],
) -> None:
    """The admin page's credits form (its one-time nonce as the key) sent ten times at
    once through two engines: one entry, the other nine told it was sent before."""
    bob = uuid.UUID(int=2).hex
    key = f"admin-adjust:{bob}:{uuid.uuid4().hex}"

    async def post(n: int) -> Shortfall | credits.Repeated | None:
        async with replicas[n % 2].unit_of_work(write=True) as session:
            return await credits.adjust_once(
                session, bob, 250, key=key, actor="admin", reason="goodwill", now=T0
            )

    answers = await asyncio.gather(*(post(n) for n in range(10)))

    assert answers.count(None) == 1
    assert answers.count(credits.Repeated(key)) == 9
    async with replicas[0].session_maker() as session:
        assert (await credits.balance(session, bob)).balance == 250
        assert (await credits.history(session, bob)).total == 1

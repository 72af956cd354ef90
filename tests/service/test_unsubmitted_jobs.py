"""A start that did not finish (issue 8, "no row lost"): the web process inserts the job row,
moves the draft to the job's upload key and publishes JobSubmitted; one killed in between
leaves the row pending_start. services.jobs.sweep_unsubmitted finishes the start once the
row is UNSUBMITTED_GRACE old: publish again when the file is stored, move the draft first
when only the draft is, fail the job (no credit held) when neither is. Hostile: a row
deleted meanwhile, a publish that fails (tried again next round, never repeated within a
grace period), and intake taking the message twice (one acceptance, one reservation)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path

import pytest
import structlog
from sqlalchemy import select

from mailvet.adapters.db.database import Database
from mailvet.adapters.db.ledger_models import LedgerEntryRow
from mailvet.adapters.db.repositories import SqlJobRepository
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.domain.credits import EntryKind
from mailvet.domain.job import FileInfo, Job, JobStatus
from mailvet.domain.messages import JobSubmitted, Message
from mailvet.pipeline import object_keys, queues
from mailvet.pipeline.intake import Intake
from mailvet.services import credits
from mailvet.services import jobs as job_service
from mailvet.services.jobs import (
    NOT_STORED,
    UNSUBMITTED_GRACE,
    draft_key,
    run_retention,
    sweep_unsubmitted,
)
from tests import outbox_helpers
from tests.fakes import T0, MovingClock, RecordingBus
from tests.waiting import until

pytestmark = pytest.mark.unit

database = outbox_helpers.database  # a fresh embedded database with every table

LIST = b"email\nann@example.com\nbob@example.com\n"
OWNER = "a" * 32


class Left:
    """A job row as a killed start leaves it, `grace` + 1 s ago by the clock."""

    def __init__(self, db: Database, clock: MovingClock) -> None:
        self.db = db
        self.clock = clock
        self.jobs = SqlJobRepository(db, now=clock)
        self.storage = MemoryStorage()
        self.bus = RecordingBus()

    async def job(self, job_id: str, *, owner: str = OWNER) -> str:
        await self.jobs.add(Job(id=job_id, owner=owner, file=FileInfo(filename="list.csv")))
        return job_id

    def later(self) -> None:
        self.clock.advance(seconds=UNSUBMITTED_GRACE.total_seconds() + 1)

    async def sweep(self) -> int:
        return await sweep_unsubmitted(self.db, self.storage, self.bus, now=self.clock())

    def submitted(self) -> list[str]:
        return [message.job_id for message in self.bus.of_type(JobSubmitted)]

    async def status(self, job_id: str) -> tuple[JobStatus, str]:
        job = await self.jobs.get(job_id)
        return job.status, job.error


@pytest.fixture
def left(database: Database) -> Left:
    return Left(database, MovingClock())


async def test_a_stored_upload_is_submitted_again_once_a_grace_period(left: Left) -> None:
    job_id = await left.job("1" * 32)
    await left.storage.put_bytes(object_keys.uploaded(job_id), LIST)
    assert await left.sweep() == 0  # within the grace: the start may still be finishing
    left.later()
    assert await left.sweep() == 1
    assert left.submitted() == [job_id]
    assert await left.sweep() == 0  # published this round: not again before another grace
    left.later()
    assert await left.sweep() == 1  # intake never took it: once more
    assert left.submitted() == [job_id, job_id]
    assert (await left.status(job_id))[0] is JobStatus.PENDING_START


async def test_a_file_intake_moved_on_before_a_crash_is_submitted_again(left: Left) -> None:
    job_id = await left.job("2" * 32)
    await left.storage.put_bytes(object_keys.in_progress_input(job_id), LIST)
    left.later()
    assert await left.sweep() == 1
    assert left.submitted() == [job_id]


async def test_the_draft_is_moved_then_submitted(left: Left) -> None:
    job_id = await left.job("3" * 32)
    draft = draft_key(T0 - timedelta(days=1), job_id)  # uploaded yesterday, started today
    await left.storage.put_bytes(draft, LIST)
    left.later()
    assert await left.sweep() == 1
    assert left.storage.objects == {object_keys.uploaded(job_id): LIST}
    assert left.submitted() == [job_id]


async def test_without_a_file_the_job_fails_and_holds_no_credit(left: Left) -> None:
    job_id = await left.job("4" * 32)
    await left.storage.put_bytes(draft_key(T0, "5" * 32), LIST)  # another draft: not its own
    left.later()
    assert await left.sweep() == 1
    assert await left.status(job_id) == (JobStatus.ERROR_FILE, NOT_STORED)
    assert left.submitted() == []
    async with left.db.session_maker() as session:
        entries = (await session.scalars(select(LedgerEntryRow))).all()
        assert entries == []  # nothing was reserved: intake never read the file
        assert await credits.unsettled_jobs(session) == []
    left.later()
    assert await left.sweep() == 0  # failed: no longer swept


async def test_jobs_past_pending_start_are_left_alone(left: Left) -> None:
    job_id = await left.job("6" * 32)
    await left.jobs.set_status(job_id, JobStatus.FILE_ACCEPTED)
    left.later()
    assert await left.sweep() == 0
    assert left.submitted() == []
    assert (await left.status(job_id))[0] is JobStatus.FILE_ACCEPTED


class FailingOnce(RecordingBus):
    """A broker that refuses the first publish (down for a moment)."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    async def publish(self, queue: str, message: Message) -> None:
        if not self.refused:
            self.refused += 1
            raise ConnectionError("broker down")
        await super().publish(queue, message)


async def test_a_failed_publish_is_tried_again_next_round_and_sent_once(left: Left) -> None:
    left.bus = FailingOnce()
    job_id = await left.job("7" * 32)
    await left.storage.put_bytes(object_keys.uploaded(job_id), LIST)
    left.later()
    assert await left.sweep() == 0  # refused: the row is left as it was
    left.clock.advance(seconds=60)  # the next round, within a grace period of the first
    assert await left.sweep() == 1
    assert await left.sweep() == 0
    assert left.submitted() == [job_id]


class UndoingStorage(MemoryStorage):
    """Storage under which the late web request undoes the start (services.jobs
    discard_unstarted) while the sweep looks for or moves the file."""

    def __init__(self, db: Database, job_id: str, *, on: str) -> None:
        super().__init__()
        self._db, self._job_id, self._on = db, job_id, on

    async def _undo(self) -> None:
        async with self._db.unit_of_work(write=True) as session:
            await job_service.discard_unstarted(session, self._job_id)

    async def exists(self, key: str) -> bool:
        if self._on == "exists":
            await self._undo()
        return await super().exists(key)

    async def move(self, src: str, dst: str) -> None:
        await super().move(src, dst)
        if self._on == "move":
            await self._undo()


async def test_a_row_deleted_while_the_file_is_looked_for_is_not_submitted(left: Left) -> None:
    job_id = await left.job("8" * 32)
    left.storage = UndoingStorage(left.db, job_id, on="exists")
    await left.storage.put_bytes(object_keys.uploaded(job_id), LIST)
    left.later()
    assert await left.sweep() == 0
    assert left.submitted() == []


async def test_a_row_deleted_while_the_draft_moves_gets_its_draft_back(left: Left) -> None:
    job_id = await left.job("9" * 32)
    left.storage = UndoingStorage(left.db, job_id, on="move")
    draft = draft_key(T0, job_id)
    await left.storage.put_bytes(draft, LIST)
    left.later()
    assert await left.sweep() == 0
    assert left.submitted() == []
    assert left.storage.objects == {draft: LIST}  # the customer can start it again


class RacingStorage(MemoryStorage):
    """Storage under which another replica's sweep moves the draft to the upload key just as
    this one has found no file at the upload key."""

    def __init__(self, job_id: str, draft: str) -> None:
        super().__init__()
        self._upload, self._draft = object_keys.uploaded(job_id), draft

    async def exists(self, key: str) -> bool:
        found = await super().exists(key)
        if key == self._upload and not found and self._draft in self.objects:
            await self.move(self._draft, self._upload)
        return found


async def test_a_draft_moved_by_another_replica_meanwhile_does_not_fail_the_job(
    left: Left,
) -> None:
    job_id = await left.job("b" * 32)
    draft = draft_key(T0, job_id)
    left.storage = RacingStorage(job_id, draft)
    await left.storage.put_bytes(draft, LIST)
    left.later()
    assert await left.sweep() == 0  # neither failed nor published: looked at again
    assert (await left.status(job_id))[0] is JobStatus.PENDING_START
    left.clock.advance(seconds=60)
    assert await left.sweep() == 1
    assert left.submitted() == [job_id]
    assert left.storage.objects == {object_keys.uploaded(job_id): LIST}


async def test_intake_takes_a_resubmitted_job_once(
    left: Left, database: Database, tmp_path: Path
) -> None:
    """The sweep publishes again a job whose first message may still be on its way: intake
    skips a job past pending_start and reserves once per job id."""
    async with database.unit_of_work(write=True) as session:
        await credits.grant(session, OWNER, 10, kind=EntryKind.SIGNUP_GRANT, now=T0)
    job_id = await left.job("c" * 32)
    await left.storage.put_bytes(object_keys.uploaded(job_id), LIST)
    left.later()
    assert await left.sweep() == 1
    intake = Intake(
        SqlJobRepository(database, now=left.clock),
        left.storage,
        left.bus,
        chunk_size=100,
        syntax_chunk_size=100,
        scratch=tmp_path,
        ledger=credits.SqlCreditLedger(database, clock=left.clock),
    )
    first = await left.bus.pull(queues.INTAKE)
    assert isinstance(first, JobSubmitted)
    await intake.handle(first)  # the sweep's message
    await intake.handle(JobSubmitted(job_id=job_id))  # and the first one, arriving late
    job = await left.jobs.get(job_id)
    assert job.status is JobStatus.FILE_ACCEPTED and job.cost == 2
    async with database.session_maker() as session:
        got = await credits.balance(session, OWNER)
        assert (got.balance, got.reserved) == (8, 2)  # reserved once
        entries = (await session.scalars(select(LedgerEntryRow))).all()
    assert [entry.kind for entry in entries] == ["signup_grant", "job_reserve"]


@pytest.mark.usefixtures("every_level")  # an earlier test may drop info lines
async def test_the_retention_task_runs_the_recovery_sweeps_more_often(left: Left) -> None:
    """run_retention (the web role's task) runs the purge every `every` seconds and the
    recovery sweeps every `recover_every`: a stuck start waits minutes, not an hour."""
    job_id = await left.job("d" * 32)
    await left.storage.put_bytes(object_keys.uploaded(job_id), LIST)
    left.later()
    clock = left.clock
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(
            run_retention(
                left.db,
                left.storage,
                retention_days=30,
                clock=clock,
                bus=left.bus,
                every=3600,
                recover_every=0.01,
            )
        )
        try:
            await until(lambda: sum(e["event"] == "unsubmitted_jobs_swept" for e in logs) >= 3)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    events = [entry["event"] for entry in logs]
    assert events.count("retention_purged") == 1
    assert events.count("unmailed_completions_swept") >= 3
    assert left.submitted() == [job_id]  # once: the next rounds are within its grace

"""The worker's verdict journal writer: after close() nothing is written, its timer included."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import msgspec

from mailvet.domain.messages import RowChunk
from mailvet.domain.verdict import Check, Reason, Status, Verdict
from mailvet.pipeline.verdict_log import VerdictLog


class RecordingJournal:
    """Records every write, and those made once `closed` (the worker is gone) apart."""

    def __init__(self) -> None:
        self.written: dict[int, bytes] = {}
        self.writes = 0
        self.closed = False
        self.after_close = 0

    async def keep_verdicts(self, job_id: str, verdicts: Mapping[int, bytes]) -> None:
        if self.closed:
            self.after_close += 1
            return
        self.writes += 1
        self.written.update(verdicts)

    async def kept_verdicts(self, job_id: str, first_row: int, rows: int) -> dict[int, bytes]:
        return {}

    async def drop_verdicts(self, job_id: str, first_row: int, rows: int) -> None:
        pass


CHUNK = RowChunk(job_id="j", chunk_id=0, first_row=0, rows=3, checks=Check.SMTP, emails=[])
VERDICT = Verdict(status=Status.DELIVERABLE, reason=Reason.ACCEPTED)


async def _after_the_timer(flush_seconds: float) -> None:
    """Past the moment the log's timer would have fired (its call_later handle ran)."""
    fired = asyncio.Event()
    asyncio.get_running_loop().call_later(flush_seconds, fired.set)
    await fired.wait()


async def test_close_without_flush_drops_the_pending_verdicts_and_the_timer() -> None:
    journal = RecordingJournal()
    verdict_log = VerdictLog(journal, flush_rows=100, flush_seconds=0.01)
    verdict_log.reached(CHUNK, [0, 1], [VERDICT, VERDICT])  # the timer is set
    await verdict_log.close(flush=False)
    journal.closed = True
    verdict_log.reached(CHUNK, [2], [VERDICT])  # a handler still finishing: ignored
    await _after_the_timer(0.02)
    await asyncio.sleep(0)  # a flush task the timer would have made gets its turn
    assert journal.writes == journal.after_close == 0


async def test_close_writes_the_pending_verdicts_then_nothing_more() -> None:
    journal = RecordingJournal()
    verdict_log = VerdictLog(journal, flush_rows=2, flush_seconds=0.01)
    verdict_log.reached(CHUNK, [0, 1], [VERDICT, VERDICT])  # a write under way
    verdict_log.reached(CHUNK, [2], [VERDICT])  # pending, on the timer
    await verdict_log.close()
    assert sorted(journal.written) == [0, 1, 2]
    journal.closed = True
    verdict_log.reached(CHUNK, [0], [VERDICT])
    await _after_the_timer(0.02)
    await asyncio.sleep(0)
    assert journal.after_close == 0


class KeptJournal(RecordingJournal):
    """A journal that already holds verdicts, as a worker before a redelivery finds it."""

    def __init__(self, kept: dict[int, bytes]) -> None:
        super().__init__()
        self.kept = kept

    async def kept_verdicts(self, job_id: str, first_row: int, rows: int) -> dict[int, bytes]:
        return self.kept


async def test_verdicts_kept_before_catch_all_was_three_valued_still_decode() -> None:
    # a verdict journalled when catch_all was a plain bool (array_like: the fields in order)
    old = ["deliverable", "accepted", "a@b.c", "", False, False, False, False, "mx.b.c", 250]
    old_catch_all = [*old[:7], True, *old[8:]]
    new = Verdict(status=Status.UNKNOWN, reason=Reason.GREYLISTED, catch_all=None)
    journal = KeptJournal(
        {0: msgspec.msgpack.encode(old), 1: msgspec.msgpack.encode(old_catch_all)}
    )
    journal.kept[2] = msgspec.msgpack.encode(new)
    recalled = await VerdictLog(journal).recall(CHUNK)
    assert [recalled[i].catch_all for i in range(3)] == [False, True, None]
    assert recalled[0].ascii_email == ""  # a field added later takes its default
    assert recalled[2] == new

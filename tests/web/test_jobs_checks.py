"""A single check's credit is never lost: a check that is cancelled or fails is refunded in
its `finally` (shielded from the cancellation), and a check left pending (its settlement
failed, the process died) is refunded by the sweeper once it is old enough, once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
import structlog.testing

from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.domain.accounts import Account
from mailvet.domain.verdict import Check
from mailvet.services import credits, single_checks
from mailvet.services.jobs import run_retention, sweep_pending_checks
from mailvet.web.context import WebContext
from tests.waiting import until
from tests.web.jobs_helpers import lists_app

pytestmark = pytest.mark.pipeline


class StuckEngine:
    """An engine whose check never ends (or fails when `error` is set)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.started = asyncio.Event()
        self.error = error

    async def check(self, address: str, checks: Check) -> Any:
        self.started.set()
        if self.error is not None:
            raise self.error
        await asyncio.Event().wait()


async def _balance(web: WebContext, account_id: str) -> int:
    async with web.database.session_maker() as session:
        return (await credits.balance(session, account_id)).balance


async def _pending(web: WebContext, account_id: str) -> list[str]:
    async with web.database.session_maker() as session:
        return await single_checks.pending(session, account_id)


async def _check_one(web: WebContext, engine: Any, account: Account, address: str) -> Any:
    return await single_checks.check_address(
        web.database, engine, account, address, Check.SMTP, charging=True, clock=web.clock
    )


async def test_a_cancelled_check_is_refunded(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data", pipeline=False) as lists:
        account = await lists.account("ann@example.com", credits=5)
        engine = StuckEngine()
        checking = asyncio.create_task(_check_one(lists.web, engine, account, "bob@example.com"))
        await engine.started.wait()
        assert await _balance(lists.web, account.id) == 4
        assert len(await _pending(lists.web, account.id)) == 1
        before = asyncio.all_tasks()
        checking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await checking
        settling = asyncio.all_tasks() - before
        if settling:  # the shielded settlement, still running in its own task
            await asyncio.wait(settling, timeout=10)
        assert await _balance(lists.web, account.id) == 5
        assert await _pending(lists.web, account.id) == []


async def test_a_failed_check_is_refunded(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data", pipeline=False) as lists:
        account = await lists.account("ann@example.com", credits=5)
        engine = StuckEngine(error=RuntimeError("resolver gone"))
        with pytest.raises(RuntimeError):
            await _check_one(lists.web, engine, account, "bob@example.com")
        assert await _balance(lists.web, account.id) == 5
        assert await _pending(lists.web, account.id) == []


async def test_the_sweeper_refunds_what_was_left_pending_once(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data", pipeline=False) as lists:
        web = lists.web
        account = await lists.account("ann@example.com", credits=5)
        now = datetime.now(UTC)
        for check_id in ("a" * 32, "b" * 32):
            async with web.database.unit_of_work(write=True) as session:
                assert await single_checks.charge(session, account.id, check_id, now=now) is None
        # b settled: a deliverable verdict is charged
        async with web.database.unit_of_work(write=True) as session:
            assert not await single_checks.settle(session, "b" * 32, reason="", now=now)
        assert await _balance(web, account.id) == 3
        assert await _pending(web, account.id) == ["a" * 32]
        assert await sweep_pending_checks(web.database, now=now + timedelta(minutes=5)) == 0
        assert await _balance(web, account.id) == 3  # too recent: it may still be checking
        later = now + single_checks.PENDING_FOR + timedelta(seconds=1)
        assert await sweep_pending_checks(web.database, now=later) == 1
        assert await _balance(web, account.id) == 4
        assert await _pending(web, account.id) == []
        assert await sweep_pending_checks(web.database, now=later) == 0
        # the check's own settlement, too late: nothing
        async with web.database.unit_of_work(write=True) as session:
            assert not await single_checks.settle(session, "a" * 32, reason=None, now=later)
        assert await _balance(web, account.id) == 4


async def test_an_unconfirmed_account_or_an_empty_balance_is_refused_before_a_check(
    tmp_path: Path,
) -> None:
    async with lists_app(tmp_path / "data", pipeline=False) as lists:
        engine = StuckEngine(error=AssertionError("never checked"))
        unconfirmed = await lists.account("ann@example.com", credits=5, confirmed=False)
        outcome = await _check_one(lists.web, engine, unconfirmed, "bob@example.com")
        assert outcome == single_checks.CheckOutcome(None, refused=single_checks.UNCONFIRMED)
        assert await _balance(lists.web, unconfirmed.id) == 5
        empty = await lists.account("bea@example.com", credits=0)
        outcome = await _check_one(lists.web, engine, empty, "bob@example.com")
        assert outcome.verdict is None and not outcome.charged
        assert outcome.short is not None and outcome.short.available == 0
        assert not engine.started.is_set()
        assert await _pending(lists.web, empty.id) == []


class BrokenStorage(MemoryStorage):
    """Storage that is down: every deletion fails."""

    async def delete_prefix(self, prefix: str) -> None:
        raise ConnectionError("storage down")


async def test_a_failed_purge_round_does_not_stop_the_sweep_of_pending_checks(
    tmp_path: Path, every_level: None
) -> None:
    async with lists_app(tmp_path / "data", pipeline=False) as lists:
        web = lists.web
        account = await lists.account("ann@example.com", credits=5)
        now = datetime.now(UTC)
        async with web.database.unit_of_work(write=True) as session:
            assert await single_checks.charge(session, account.id, "c" * 32, now=now) is None
        later = now + single_checks.PENDING_FOR + timedelta(seconds=1)
        with structlog.testing.capture_logs() as logs:
            retention = asyncio.create_task(
                run_retention(web.database, BrokenStorage(), retention_days=30, clock=lambda: later)
            )
            try:
                await until(lambda: retention.done() or "unsettled_jobs_swept" in _events(logs))
            finally:
                retention.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await retention
        assert _events(logs)[:2] == ["retention_failed", "pending_checks_swept"]
        assert logs[1]["refunded"] == 1
        assert await _balance(web, account.id) == 5
        assert await _pending(web, account.id) == []


def _events(logs: Sequence[Mapping[str, Any]]) -> list[str]:
    return [entry["event"] for entry in logs]

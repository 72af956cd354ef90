"""What the API validation tests share (service tests on SQLite and PostgreSQL, web tests): a
prober scripted by the mailbox's name, accounts with a given balance, the ledger's state,
and the 64-clients scenario of issue 9 §4."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import argon2
from sqlalchemy import ColumnElement, func, select

from mailvet.adapters.db.database import Database
from mailvet.adapters.db.ledger_models import LedgerEntryRow, PendingCheckRow
from mailvet.domain.accounts import Account
from mailvet.domain.ports import ProbeFailure, ProbeResult
from mailvet.domain.smtp_reply import Reply
from mailvet.services import credits
from mailvet.services.accounts import create_account
from tests.fakes import ACCEPT, UNKNOWN

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GREYLIST = Reply(451, "4.7.1", "greylisted, try again later")
FAILURES = {
    "tmo": ProbeFailure.TIMEOUT,
    "conn": ProbeFailure.CONNECTION_FAILED,
    "err": ProbeFailure.SMTP_ERROR,
    "nosupport": ProbeFailure.NOT_SUPPORTED,
}


class ScriptedProber:
    """An SmtpProber answering by the mailbox's first word: `tmo`/`conn`/`err`/`nosupport`
    fail that way, `grey` is answered 451, `gone` (and the catch-all probe `mailvet-`) 550,
    `slow` waits for `release` to be set; anything else is accepted. Records every
    recipient asked."""

    def __init__(self) -> None:
        self.recipients: list[str] = []
        self.release = asyncio.Event()

    async def probe(
        self, hosts: Sequence[str], recipients: Sequence[str], *, solo: bool = False
    ) -> list[ProbeResult]:
        self.recipients.extend(recipients)
        if any(r.startswith("slow") for r in recipients):
            await self.release.wait()
        return [self._answer(hosts[0], r) for r in recipients]

    def asked(self, local_start: str) -> int:
        return sum(1 for r in self.recipients if r.startswith(local_start))

    @staticmethod
    def _answer(mx: str, recipient: str) -> ProbeResult:
        for start, failure in FAILURES.items():
            if recipient.startswith(start):
                return ProbeResult(mx=mx, failure=failure)
        if recipient.startswith("grey"):
            return ProbeResult(mx=mx, reply=GREYLIST)
        if recipient.startswith(("gone", "mailvet-")):
            return ProbeResult(mx=mx, reply=UNKNOWN)
        return ProbeResult(mx=mx, reply=ACCEPT)

    async def close(self) -> None:
        pass


async def account_with(
    database: Database, email: str, credits_: int, *, confirmed: bool = True
) -> Account:
    async with database.unit_of_work() as session:
        return await create_account(
            session,
            email=email,
            password=None,
            confirmed=confirmed,
            credits=credits_,
            hasher=argon2.PasswordHasher.from_parameters(argon2.profiles.CHEAPEST),
            now=T0,
        )


@dataclass(frozen=True)
class Ledger:
    """An account's ledger as the tests read it."""

    balance: int
    entries: int  # all of the account's entries, its opening grant included
    spent: int  # SINGLE_CHECK entries
    refunded: int  # SINGLE_REFUND entries
    pending: int  # checks charged and not settled


async def ledger(database: Database, account_id: str) -> Ledger:
    async with database.session_maker() as session:

        async def count(*where: ColumnElement[bool]) -> int:
            query = select(func.count()).select_from(LedgerEntryRow)
            query = query.where(LedgerEntryRow.account_id == account_id, *where)
            return int((await session.execute(query)).scalar_one())

        pending = select(func.count()).where(PendingCheckRow.account_id == account_id)
        return Ledger(
            balance=(await credits.balance(session, account_id)).balance,
            entries=await count(),
            spent=await count(LedgerEntryRow.kind == "single_check"),
            refunded=await count(LedgerEntryRow.kind == "single_refund"),
            pending=int((await session.execute(pending)).scalar_one()),
        )


CLIENTS = 64
CALLS_EACH = 3


async def many_clients(
    call: Callable[[int], Awaitable[bool]],
    *,
    clients: int = CLIENTS,
    calls_each: int = CALLS_EACH,
) -> tuple[int, int]:
    """`clients` concurrent clients, each making `calls_each` calls one after the other;
    `call(n)` says whether call n was answered (True) or refused for credits (False).
    Returns (answered, refused)."""

    async def client(first: int) -> list[bool]:
        return [await call(first + n) for n in range(calls_each)]

    outcomes = await asyncio.gather(*(client(c * calls_each) for c in range(clients)))
    flat = [ok for each in outcomes for ok in each]
    return flat.count(True), flat.count(False)

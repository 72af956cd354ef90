"""What the administrators' pages read beyond one account: every job (paginated, with its
owner's address) and the balances of a page of accounts in one query.

Every function takes the caller's session; the readers only read. The changes an
administrator makes go through the services that own them: `AccountService.set_disabled`
(accounts; through `set_disabled` here, which refuses an administrator disabling their own
account: the last way in could go) and `credits.adjust_once` (the ledger, with who and why,
keyed by the form's one-time nonce).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.account_models import AccountRow
from mailvet.adapters.db.ledger_models import CreditBalanceRow
from mailvet.adapters.db.models import JobRow
from mailvet.domain.job import Job, JobStatus
from mailvet.services.jobs import job_of_page_row, page_query, page_total
from mailvet.services.paging import Page, window


class SelfDisable(Exception):
    """An administrator asked to disable their own account."""


class AccountSwitch(Protocol):
    """What disables and enables an account (services.accounts.AccountService)."""

    async def set_disabled(
        self, session: AsyncSession, account_id: str, disabled: bool
    ) -> None: ...


async def set_disabled(
    accounts: AccountSwitch,
    session: AsyncSession,
    account_id: str,
    disabled: bool,
    *,
    actor: str,
) -> None:
    """`actor` (an administrator's id) disables or enables `account_id`; SelfDisable,
    nothing changed, when it is their own account they would disable."""
    if disabled and account_id == actor:
        raise SelfDisable(account_id)
    await accounts.set_disabled(session, account_id, disabled)


class OwnedJob(msgspec.Struct, frozen=True):
    """A job and its owner's address ("" for a job of no account, or a deleted one)."""

    job: Job
    owner_email: str


async def all_jobs_page(
    session: AsyncSession,
    *,
    offset: int = 0,
    limit: int = 50,
    status: JobStatus | None = None,
    owner: str | None = None,
) -> Page[OwnedJob]:
    """Every job (or those in `status`, or of the account `owner`), newest first, with its
    owner's address: `services.jobs.jobs_page` and the accounts joined."""
    offset, limit = window(offset, limit)
    query = (
        page_query(owner=owner, status=status)
        .add_columns(AccountRow.email)
        .outerjoin(AccountRow, AccountRow.id == JobRow.owner)
        .offset(offset)
        .limit(limit)
    )
    rows = (await session.execute(query)).all()
    jobs = [OwnedJob(job_of_page_row(row), row.email or "") for row in rows]
    total = await page_total(session, owner=owner, status=status)
    return Page(jobs, total, offset, limit)


async def count_accounts(session: AsyncSession) -> int:
    return (await session.execute(select(func.count(AccountRow.id)))).scalar_one()


async def balances_of(session: AsyncSession, account_ids: Sequence[str]) -> dict[str, int]:
    """The cached balance of each account (services.credits keeps it equal to the sum of
    the entries; 0 for an account that never had one)."""
    if not account_ids:
        return {}
    query = select(CreditBalanceRow.account_id, CreditBalanceRow.balance).where(
        CreditBalanceRow.account_id.in_(list(account_ids))
    )
    found = {account_id: amount for account_id, amount in (await session.execute(query)).all()}
    return {account_id: found.get(account_id, 0) for account_id in account_ids}


async def emails_of(session: AsyncSession, account_ids: Sequence[str]) -> dict[str, str]:
    """The address of each of these accounts that exists (the ledger's actors are ids)."""
    if not account_ids:
        return {}
    query = select(AccountRow.id, AccountRow.email).where(AccountRow.id.in_(list(account_ids)))
    return {account_id: email for account_id, email in (await session.execute(query)).all()}

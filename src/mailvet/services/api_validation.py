"""The public API's validation (POST /api/v1/validate and /api/v1/validate/batch) as use
cases: the rules live here, the routes (web/api/v1.py) only decode, authenticate and map
the refusals below to problem details.

- `checks` is `syntax`, `dns` or `smtp` (default smtp); `timeout` (single check only) is
  seconds in (0, MAX_TIMEOUT]: when it passes before the verdict the answer is
  unknown/timeout and the probe finishes in the background, its verdict cached by the
  engine for a later call (services.single_checks, `within`).
- Every checked address costs one credit at any level of checks, an invalid one too (it was
  checked: its syntax); it is refunded when the verdict is `unknown` for a reason the
  caller did not choose (domain.credits.REFUNDED_REASONS: timeout, connection_failed,
  greylisted, smtp_error; not not_checked, which the caller asked for with fewer checks).
  The charge and its settlement are services.single_checks' (one SINGLE_CHECK entry and one
  pending row per address, so a crash is refunded by its sweeper): no second charging path.
- A batch holds 1 to MAX_BATCH entries (more: TooMany, the route's 413) and is answered
  with one verdict per entry in input order, duplicates included; entries with the same
  normalized address (the stripped text for an invalid one) are checked and charged once.
- A batch's credits are reserved all-or-nothing before anything is checked: a balance below
  its distinct addresses refuses the whole batch (NotEnoughCredits, the route's 402) and
  charges nothing. Partial answers would make the caller work out which entries were
  dropped and send them again, and a batch checked by halves could not be charged in one
  transaction; the caller who is short can split the batch knowing `available`.
- MAILVET_CREDITS=off (`charging=False`) charges nothing; `credits_remaining` is then null.
- `credits_remaining` is the balance right after this call's settlement (read in its
  transaction); null also if the settlement failed (the sweeper refunds those later).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Annotated

import msgspec
from msgspec import Meta
from sqlalchemy import Select, bindparam, select

from mailvet.adapters.db.account_models import AccountRow
from mailvet.adapters.db.database import Database
from mailvet.clock import Clock
from mailvet.domain.accounts import Account
from mailvet.domain.address import check_syntax
from mailvet.domain.credits import Shortfall
from mailvet.domain.verdict import Check, Reason, Status, Verdict
from mailvet.services import single_checks
from mailvet.services.accounts import to_account
from mailvet.services.reads import Held, PerDatabase

MAX_BATCH = 1000
MAX_TIMEOUT = 30.0  # seconds
MAX_ADDRESS = 320  # characters of one entry, as on the web form (a valid one has <= 254)

Address = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_ADDRESS,
        description="An email address as typed (surrounding spaces ignored).",
        examples=["ann@example.com"],
    ),
]
Timeout = Annotated[
    float,
    Meta(
        gt=0,
        le=MAX_TIMEOUT,
        description="Seconds to wait for the verdict; past them the answer is unknown/timeout.",
        examples=[10],
    ),
]


# --- bodies ----------------------------------------------------------------------------------


class ValidateRequest(msgspec.Struct, frozen=True, kw_only=True):
    """POST /api/v1/validate."""

    email: Address
    checks: Check = Check.SMTP
    timeout: Timeout | None = None


class BatchRequest(msgspec.Struct, frozen=True, kw_only=True):
    """POST /api/v1/validate/batch (at most MAX_BATCH entries: more is refused as too large,
    hence no maximum in the schema of the list itself)."""

    emails: Annotated[list[Address], Meta(min_length=1, examples=[["ann@example.com"]])]
    checks: Check = Check.SMTP


class Result(msgspec.Struct, frozen=True, kw_only=True):
    """The verdict of one address (domain.verdict.Verdict) with the entry as it was given."""

    email: str
    status: Status
    reason: Reason
    normalized: str
    ascii_email: str
    suggestion: str
    disposable: bool
    role: bool
    free: bool
    catch_all: bool | None  # null: not established (no catch-all probe, or it stayed open)
    mx: str
    smtp_code: int | None


class ValidateResponse(Result, frozen=True, kw_only=True):
    """The single check's answer: the verdict and the balance after it."""

    credits_remaining: int | None


class BatchResponse(msgspec.Struct, frozen=True, kw_only=True):
    """One result per entry, in input order (duplicates included)."""

    results: list[Result]
    credits_remaining: int | None


# --- refusals ----------------------------------------------------------------------------------


class Refused(Exception):
    """A request the API refuses; `detail` is safe to show to the caller."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidRequest(Refused):
    """A body that decodes but breaks a rule (a blank address, a timeout out of range)."""


class TooMany(Refused):
    """A batch over MAX_BATCH entries."""

    def __init__(self, count: int) -> None:
        super().__init__(f"a batch holds at most {MAX_BATCH} addresses, this one has {count}")
        self.count = count


class NotEnoughCredits(Refused):
    def __init__(self, short: Shortfall) -> None:
        super().__init__(
            f"this request needs {short.needed} credits, the balance is {short.available}"
        )
        self.short = short


class MayNotValidate(Refused):
    """The account is gone, or not confirmed yet (services.single_checks.may_validate)."""


# --- use cases ---------------------------------------------------------------------------------


def dedup_key(address: str) -> str:
    """What makes two entries of a batch the same address: the normalized form of a valid
    one, the stripped text of an invalid one."""
    cell = address.strip()
    syntax = check_syntax(cell)
    return syntax.normalized if syntax.valid else cell


def result(email: str, verdict: Verdict) -> Result:
    return Result(
        email=email,
        status=verdict.status,
        reason=verdict.reason,
        normalized=verdict.normalized,
        ascii_email=verdict.ascii_email,
        suggestion=verdict.suggestion,
        disposable=verdict.disposable,
        role=verdict.role,
        free=verdict.free,
        catch_all=verdict.catch_all,
        mx=verdict.mx,
        smtp_code=verdict.smtp_code,
    )


async def validate_one(
    database: Database,
    engine: single_checks.Checker,
    account_id: str,
    email: str,
    *,
    checks: Check = Check.SMTP,
    within: float | None = None,
    charging: bool,
    clock: Clock,
) -> ValidateResponse:
    """Check one address for the account (one credit, refunded by the rule above);
    `within`: the request's `timeout`, in seconds."""
    _check_address(email)
    if within is not None and not 0 < within <= MAX_TIMEOUT:
        raise InvalidRequest(f"timeout is in seconds, above 0 and at most {MAX_TIMEOUT:g}")
    if charging and checks in single_checks.OFFLINE:  # the account read with the charge
        outcome = await single_checks.check_offline(
            database, engine, account_id, email, checks, clock=clock
        )
        if outcome.refused == single_checks.NO_ACCOUNT:
            raise MayNotValidate("no such account")
    else:
        account = await _account(database, account_id)
        outcome = await single_checks.check_address(
            database, engine, account, email, checks, charging=charging, clock=clock, within=within
        )
    if outcome.refused is not None:
        raise MayNotValidate("confirm the account's email address before checking addresses")
    if outcome.short is not None:
        raise NotEnoughCredits(outcome.short)
    if outcome.verdict is None:  # never: an outcome without refusal has a verdict
        raise RuntimeError("a check without a verdict")
    one = result(email, outcome.verdict)
    return ValidateResponse(credits_remaining=outcome.remaining, **msgspec.structs.asdict(one))


async def validate_batch(
    database: Database,
    engine: single_checks.BatchChecker,
    account_id: str,
    emails: Sequence[str],
    *,
    checks: Check = Check.SMTP,
    charging: bool,
    clock: Clock,
) -> BatchResponse:
    """Check a batch for the account: its distinct addresses charged all-or-nothing, one
    result per entry in order."""
    if len(emails) > MAX_BATCH:
        raise TooMany(len(emails))
    if not emails:
        raise InvalidRequest("a batch holds at least one address")
    for email in emails:
        _check_address(email)
    account = await _account(database, account_id)
    slot: dict[str, int] = {}  # dedup key -> index among the distinct addresses
    distinct: list[str] = []  # the first entry of each
    order: list[int] = []
    for email in emails:
        key = dedup_key(email)
        if key not in slot:
            slot[key] = len(distinct)
            distinct.append(email)
        order.append(slot[key])
    outcome = await single_checks.check_addresses(
        database, engine, account, distinct, checks, charging=charging, clock=clock
    )
    if outcome.refused is not None:
        raise MayNotValidate("confirm the account's email address before checking addresses")
    if outcome.short is not None:
        raise NotEnoughCredits(outcome.short)
    verdicts = outcome.verdicts
    return BatchResponse(
        results=[
            result(email, verdicts[index]) for email, index in zip(emails, order, strict=True)
        ],
        credits_remaining=outcome.remaining,
    )


def _check_address(email: str) -> None:
    if not email.strip():
        raise InvalidRequest("an address is blank")
    if len(email) > MAX_ADDRESS:
        raise InvalidRequest(f"an address has at most {MAX_ADDRESS} characters")


async def _account(database: Database, account_id: str) -> Account:
    account = await _READERS.of(database).submit(account_id)
    if account is None:
        raise MayNotValidate("no such account")
    return account


async def _read_accounts(held: Held, account_ids: Sequence[str]) -> list[Account | None]:
    """The accounts of a round of requests (services/coalesce.py), in one read."""
    async with held.session() as session:
        rows = await session.scalars(_accounts_query(), {"ids": sorted(set(account_ids))})
        found = {row.id: to_account(row) for row in rows}
    return [found.get(account_id) for account_id in account_ids]


@functools.cache
def _accounts_query() -> Select[AccountRow]:
    return select(AccountRow).where(AccountRow.id.in_(bindparam("ids", expanding=True)))


# each database's coalesced account reads: the requests of one moment read in one statement,
# each read made after its request came (nothing kept after the round)
_READERS = PerDatabase(_read_accounts, read=True)

"""`GET /api/v1/credits`: the key's account's balance, what running jobs hold of it, and its
last ledger entries, newest first (services/credits.py `balance` and `history`). Any scope."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import get
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_422_UNPROCESSABLE_ENTITY

from mailvet.services import credits as ledger
from mailvet.web.api.auth import (
    PROBLEM_JSON,
    ApiOperation,
    Principal,
    ProblemDetails,
    problem_example,
    refusal_responses,
)
from mailvet.web.context import Web

DEFAULT_ENTRIES = 20
MAX_ENTRIES = 100


class LedgerEntry(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    amount: int
    created_at: datetime
    job_id: str | None
    reason: str


class Credits(msgspec.Struct, kw_only=True):
    """`balance`: credits the account can spend; `reserved`: how much of what was taken out
    running jobs hold (settled when they end); `entries`: the last ledger entries."""

    balance: int
    reserved: int
    entries: list[LedgerEntry]


EXAMPLE = Credits(
    balance=940,
    reserved=60,
    entries=[
        LedgerEntry(
            id="0b6f8a1c2d3e4f5a6b7c8d9e0f1a2b3c",
            kind="job_reserve",
            amount=-60,
            created_at=datetime.fromisoformat("2026-12-01T12:00:00+00:00"),
            job_id="5e0c4f1a9b8d4c3e2f1a0b9c8d7e6f5a",
            reason="",
        ),
        LedgerEntry(
            id="1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f",
            kind="purchase",
            amount=1000,
            created_at=datetime.fromisoformat("2026-11-30T09:30:00+00:00"),
            job_id=None,
            reason="1,000 credits",
        ),
    ],
)


@get(
    "/credits",
    summary="Credit balance",
    description="The balance, the credits running jobs hold, and the last ledger entries.",
    tags=["credits"],
    operation_class=ApiOperation,
    responses={
        HTTP_200_OK: ResponseSpec(
            Credits,
            description="The balance and the last entries, newest first.",
            examples=[Example(summary="A balance", value=msgspec.to_builtins(EXAMPLE))],
        ),
        **refusal_responses(),
        HTTP_422_UNPROCESSABLE_ENTITY: ResponseSpec(
            ProblemDetails,
            description=f"`limit` is not a number from 1 to {MAX_ENTRIES}.",
            media_type=PROBLEM_JSON,
            examples=[
                problem_example(
                    422,
                    "invalid-request",
                    "Invalid request",
                    "limit: Expected `int` >= 1",
                )
            ],
        ),
    },
)
async def get_credits(
    web: Web,
    principal: Principal,
    limit: Annotated[
        int,
        Parameter(
            ge=1,
            le=MAX_ENTRIES,
            description="How many of the last ledger entries.",
            examples=[Example(value=DEFAULT_ENTRIES)],
        ),
    ] = DEFAULT_ENTRIES,
) -> Credits:
    async with web.database.session_maker() as session:
        balance = await ledger.balance(session, principal.account_id)
        page = await ledger.history(session, principal.account_id, limit=limit)
    return Credits(
        balance=balance.balance,
        reserved=balance.reserved,
        entries=[
            LedgerEntry(
                id=entry.id,
                kind=entry.kind.value,
                amount=entry.amount,
                created_at=entry.created_at,
                job_id=entry.job_id,
                reason=entry.reason,
            )
            for entry in page.items
        ],
    )


ROUTES = [get_credits]

"""The public API's validation use cases (services/api_validation.py) on a migrated SQLite
file and the real engine over fake DNS and a scripted prober: the price of a check and its
refunds, the timeout, batches (order, duplicates, all-or-nothing), refusals, credits off,
and the exactness of concurrent spends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest

from mailvet.adapters.db.database import Database
from mailvet.domain.ports import ProbeResult
from mailvet.domain.verdict import Check, Reason, Status
from mailvet.pipeline.engine import Engine
from mailvet.services import api_validation as api
from mailvet.services.api_validation import (
    InvalidRequest,
    MayNotValidate,
    NotEnoughCredits,
    TooMany,
)
from tests.api_validation_helpers import (
    CALLS_EACH,
    CLIENTS,
    Ledger,
    ScriptedProber,
    account_with,
    ledger,
    many_clients,
)
from tests.fakes import FakeResolver, MovingClock
from tests.waiting import until

pytestmark = pytest.mark.unit

CLOCK = MovingClock()


@pytest.fixture
def prober() -> ScriptedProber:
    return ScriptedProber()


@pytest.fixture
async def engine(prober: ScriptedProber) -> AsyncIterator[Engine]:
    engine = Engine(FakeResolver(), prober)
    try:
        yield engine
    finally:
        prober.release.set()
        await engine.close()


async def one(
    db: Database,
    engine: Engine,
    account_id: str,
    email: str,
    checks: Check = Check.SMTP,
    *,
    within: float | None = None,
    charging: bool = True,
) -> api.ValidateResponse:
    return await api.validate_one(
        db,
        engine,
        account_id,
        email,
        checks=checks,
        within=within,
        charging=charging,
        clock=CLOCK,
    )


async def batch(
    db: Database,
    engine: Engine,
    account_id: str,
    emails: list[str],
    checks: Check = Check.SMTP,
    *,
    charging: bool = True,
) -> api.BatchResponse:
    return await api.validate_batch(
        db, engine, account_id, emails, checks=checks, charging=charging, clock=CLOCK
    )


# --- the single check ----------------------------------------------------------------------


async def test_a_deliverable_address_costs_one_credit_and_says_everything(
    db: Database, engine: Engine
) -> None:
    ann = await account_with(db, "ann@example.com", 10)

    got = await one(db, engine, ann.id, " Info@Example.com ")

    assert (got.status, got.reason) == (Status.DELIVERABLE, Reason.ACCEPTED)
    assert got.email == " Info@Example.com "  # as given
    assert got.normalized == "info@example.com"  # a role name, lowered
    assert got.ascii_email == "info@example.com"
    assert got.role is True
    assert got.mx == "mx.example.com"
    assert got.smtp_code == 250
    assert got.credits_remaining == 9
    assert await ledger(db, ann.id) == Ledger(balance=9, entries=2, spent=1, refunded=0, pending=0)


# (local part, checks, the verdict's reason, refunded?): the refund rule of every check,
# single or in a batch
REFUND_RULE = [
    ("tmo", Check.SMTP, Reason.TIMEOUT, True),
    ("conn", Check.SMTP, Reason.CONNECTION_FAILED, True),
    ("grey", Check.SMTP, Reason.GREYLISTED, True),
    ("err", Check.SMTP, Reason.SMTP_ERROR, True),
    ("nosupport", Check.SMTP, Reason.NOT_CHECKED, False),  # not the network's failure
    ("ann", Check.SYNTAX, Reason.NOT_CHECKED, False),  # the caller chose fewer checks
    ("ann", Check.DNS, Reason.NOT_CHECKED, False),
]


@pytest.mark.parametrize(
    ("local", "checks", "reason", "refunded"),
    [
        *REFUND_RULE,
        ("gone", Check.SMTP, Reason.MAILBOX_NOT_FOUND, False),
        ("ann@@", Check.SMTP, Reason.INVALID_SYNTAX, False),  # checked: its syntax
    ],
)
async def test_the_refund_rule_per_reason(
    db: Database,
    engine: Engine,
    local: str,
    checks: Check,
    reason: Reason,
    refunded: bool,
) -> None:
    ann = await account_with(db, "ann@example.com", 5)

    got = await one(db, engine, ann.id, f"{local}@example.org", checks)

    assert got.reason == reason
    assert got.credits_remaining == (5 if refunded else 4)
    assert await ledger(db, ann.id) == Ledger(
        balance=got.credits_remaining,
        entries=3 if refunded else 2,
        spent=1,
        refunded=int(refunded),
        pending=0,
    )


async def test_when_the_timeout_passes_first_the_answer_is_unknown_timeout_and_free(
    db: Database, engine: Engine, prober: ScriptedProber
) -> None:
    ann = await account_with(db, "ann@example.com", 5)

    got = await one(db, engine, ann.id, "slow@example.org", within=0.05)

    assert (got.status, got.reason) == (Status.UNKNOWN, Reason.TIMEOUT)
    assert got.normalized == "slow@example.org"
    assert got.credits_remaining == 5  # refunded
    # the probe goes on in the background, and its verdict is kept for the next call
    prober.release.set()
    await until(lambda: not engine._in_flight)
    later = await one(db, engine, ann.id, "slow@example.org", within=5)
    assert later.reason == Reason.ACCEPTED
    assert prober.asked("slow") == 1  # asked once: the second answer came from the cache
    assert later.credits_remaining == 4
    assert await ledger(db, ann.id) == Ledger(balance=4, entries=4, spent=2, refunded=1, pending=0)


@pytest.mark.parametrize("within", [0, -1, 30.5, float("inf"), float("nan")])
async def test_a_timeout_out_of_range_is_refused(
    db: Database, engine: Engine, within: float
) -> None:
    ann = await account_with(db, "ann@example.com", 5)
    with pytest.raises(InvalidRequest, match="timeout"):
        await one(db, engine, ann.id, "ann@example.org", within=within)
    assert (await ledger(db, ann.id)).spent == 0


@pytest.mark.parametrize("email", ["", "   ", "\t\n", "a" * 400 + "@example.org"])
async def test_a_blank_or_huge_address_is_refused_before_any_charge(
    db: Database, engine: Engine, email: str
) -> None:
    ann = await account_with(db, "ann@example.com", 5)
    with pytest.raises(InvalidRequest):
        await one(db, engine, ann.id, email)
    with pytest.raises(InvalidRequest):
        await batch(db, engine, ann.id, ["ann@example.org", email])
    assert (await ledger(db, ann.id)).spent == 0


@pytest.mark.parametrize(
    "email", ["ann@bücher.de", "jörg@example.org", "ann@exa\u200bmple.org", "\x00@example.org"]
)
async def test_non_ascii_and_control_characters_get_a_verdict_not_an_error(
    db: Database, engine: Engine, email: str
) -> None:
    ann = await account_with(db, "ann@example.com", 5)
    got = await one(db, engine, ann.id, email)
    assert got.email == email
    assert got.credits_remaining == 4


async def test_an_empty_balance_refuses_the_check_and_writes_nothing(
    db: Database, engine: Engine, prober: ScriptedProber
) -> None:
    ann = await account_with(db, "ann@example.com", 0)

    with pytest.raises(NotEnoughCredits) as refused:
        await one(db, engine, ann.id, "ann@example.org")

    assert (refused.value.short.needed, refused.value.short.available) == (1, 0)
    assert prober.recipients == []
    assert await ledger(db, ann.id) == Ledger(balance=0, entries=0, spent=0, refunded=0, pending=0)


async def test_an_unconfirmed_or_unknown_account_may_not_validate(
    db: Database, engine: Engine
) -> None:
    bob = await account_with(db, "bob@example.com", 5, confirmed=False)
    with pytest.raises(MayNotValidate):
        await one(db, engine, bob.id, "ann@example.org")
    with pytest.raises(MayNotValidate):
        await batch(db, engine, bob.id, ["ann@example.org"])
    with pytest.raises(MayNotValidate):
        await one(db, engine, "f" * 32, "ann@example.org")
    assert (await ledger(db, bob.id)).spent == 0


async def test_credits_off_charges_nothing_even_on_an_empty_balance(
    db: Database, engine: Engine
) -> None:
    ann = await account_with(db, "ann@example.com", 0)

    got = await one(db, engine, ann.id, "ann@example.org", charging=False)
    many = await batch(db, engine, ann.id, ["a@example.org", "b@example.org"], charging=False)

    assert got.reason == Reason.ACCEPTED
    assert got.credits_remaining is None
    assert [r.reason for r in many.results] == [Reason.ACCEPTED, Reason.ACCEPTED]
    assert many.credits_remaining is None
    assert await ledger(db, ann.id) == Ledger(balance=0, entries=0, spent=0, refunded=0, pending=0)


# --- batches -------------------------------------------------------------------------------


async def test_a_batch_answers_every_entry_in_order_and_charges_duplicates_once(
    db: Database, engine: Engine, prober: ScriptedProber
) -> None:
    ann = await account_with(db, "ann@example.com", 10)
    emails = [
        "ann@Example.org",
        "gone@example.org",
        " ann@example.org ",  # the first one again
        "not an address",
        "ann@example.org",
        "not an address",
        "tmo@example.org",
    ]

    got = await batch(db, engine, ann.id, emails)

    assert [r.email for r in got.results] == emails
    assert [r.reason for r in got.results] == [
        Reason.ACCEPTED,
        Reason.MAILBOX_NOT_FOUND,
        Reason.ACCEPTED,
        Reason.INVALID_SYNTAX,
        Reason.ACCEPTED,
        Reason.INVALID_SYNTAX,
        Reason.TIMEOUT,
    ]
    assert prober.asked("ann") == 1  # checked once
    # 4 distinct addresses charged, the timeout refunded
    assert got.credits_remaining == 7
    assert await ledger(db, ann.id) == Ledger(balance=7, entries=6, spent=4, refunded=1, pending=0)


@pytest.mark.parametrize(("local", "checks", "reason", "refunded"), REFUND_RULE)
async def test_a_batch_refunds_by_the_same_rule_as_a_single_check(
    db: Database,
    engine: Engine,
    local: str,
    checks: Check,
    reason: Reason,
    refunded: bool,
) -> None:
    ann = await account_with(db, "ann@example.com", 5)
    emails = [f"{local}@example.org", "bob@example.net", f"{local}@example.org"]

    got = await batch(db, engine, ann.id, emails, checks)

    other = Reason.ACCEPTED if checks is Check.SMTP else Reason.NOT_CHECKED
    assert [r.reason for r in got.results] == [reason, other, reason]
    # two distinct addresses charged (the duplicate once), the first refunded or not
    assert got.credits_remaining == (4 if refunded else 3)
    assert await ledger(db, ann.id) == Ledger(
        balance=got.credits_remaining,
        entries=4 if refunded else 3,
        spent=2,
        refunded=int(refunded),
        pending=0,
    )


async def test_a_batch_of_1000_is_taken_and_1001_refused_without_a_charge(
    db: Database, engine: Engine
) -> None:
    ann = await account_with(db, "ann@example.com", 2000)
    emails = [f"user{n}@example.org" for n in range(1001)]

    with pytest.raises(TooMany) as refused:
        await batch(db, engine, ann.id, emails, Check.SYNTAX)
    assert refused.value.count == 1001
    assert (await ledger(db, ann.id)).spent == 0

    got = await batch(db, engine, ann.id, emails[:1000], Check.SYNTAX)
    assert len(got.results) == 1000
    assert got.credits_remaining == 1000


async def test_an_empty_batch_is_refused(db: Database, engine: Engine) -> None:
    ann = await account_with(db, "ann@example.com", 5)
    with pytest.raises(InvalidRequest):
        await batch(db, engine, ann.id, [])


async def test_a_batch_is_all_or_nothing_on_credits(
    db: Database, engine: Engine, prober: ScriptedProber
) -> None:
    ann = await account_with(db, "ann@example.com", 3)

    with pytest.raises(NotEnoughCredits) as refused:
        await batch(db, engine, ann.id, ["a@example.org", "b@example.org", "c@x.org", "d@x.org"])
    assert (refused.value.short.needed, refused.value.short.available) == (4, 3)
    assert prober.recipients == []
    assert (await ledger(db, ann.id)).spent == 0

    # four entries, three addresses: exactly affordable
    got = await batch(db, engine, ann.id, ["a@example.org", "b@example.org", "a@example.org"])
    got2 = await batch(db, engine, ann.id, ["c@x.org"], Check.SYNTAX)
    assert len(got.results) == 3
    assert got2.credits_remaining == 0


# --- exactness under concurrency -------------------------------------------------------------


async def test_64_concurrent_clients_on_100_credits_get_exactly_100_answers(
    db: Database, engine: Engine
) -> None:
    ann = await account_with(db, "ann@example.com", 100)

    async def call(n: int) -> bool:
        try:
            await one(db, engine, ann.id, f"user{n}@example.org", Check.SYNTAX)
        except NotEnoughCredits:
            return False
        return True

    answered, refused = await many_clients(call)

    assert (answered, refused) == (100, CLIENTS * CALLS_EACH - 100)
    assert await ledger(db, ann.id) == Ledger(
        balance=0, entries=101, spent=100, refunded=0, pending=0
    )


async def test_concurrent_batches_and_singles_never_overdraw(db: Database, engine: Engine) -> None:
    ann = await account_with(db, "ann@example.com", 10)

    async def call(n: int) -> bool:
        try:
            if n % 2:
                await one(db, engine, ann.id, f"single{n}@example.org", Check.SYNTAX)
            else:
                emails = [f"b{n}-{k}@example.org" for k in range(3)]
                await batch(db, engine, ann.id, emails, Check.SYNTAX)
        except NotEnoughCredits:
            return False
        return True

    await many_clients(call, clients=8, calls_each=2)

    got = await ledger(db, ann.id)
    assert got.balance >= 0
    assert got.balance == 10 - got.spent
    assert got.pending == 0


async def test_a_batch_whose_check_fails_is_refunded_whole(db: Database) -> None:
    class Broken(ScriptedProber):
        async def probe(
            self, hosts: Sequence[str], recipients: Sequence[str], *, solo: bool = False
        ) -> list[ProbeResult]:
            raise RuntimeError("the prober broke")

    engine = Engine(FakeResolver(), Broken())
    ann = await account_with(db, "ann@example.com", 5)
    try:
        with pytest.raises(RuntimeError, match="broke"):
            await batch(db, engine, ann.id, ["a@example.org", "b@example.org", "not one"])
    finally:
        await engine.close()

    assert await ledger(db, ann.id) == Ledger(balance=5, entries=7, spent=3, refunded=3, pending=0)

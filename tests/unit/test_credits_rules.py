"""The ledger's rules (domain/credits.py): costs, charges, settlements, and the reference book
(tests/ledger_model.py) that drives them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailvet.domain.credits import (
    REFUNDED_REASONS,
    Balance,
    EntryKind,
    FreeLedger,
    Reservation,
    Shortfall,
    check_adjustment,
    is_refunded,
    job_charge,
    job_cost,
    settlement_refund,
    spend,
)
from mailvet.domain.job import FileInfo, Job
from mailvet.domain.verdict import STATUS_OF, Reason, Status
from tests.ledger_model import LedgerBook

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def test_refunded_reasons_are_the_unknowns_the_customer_did_not_choose() -> None:
    unknowns = {reason for reason, status in STATUS_OF.items() if status is Status.UNKNOWN}
    assert unknowns - REFUNDED_REASONS == {Reason.NOT_CHECKED}
    assert unknowns >= REFUNDED_REASONS
    assert is_refunded("greylisted") and is_refunded(Reason.TIMEOUT)
    assert not is_refunded("not_checked") and not is_refunded("mailbox_not_found")


def test_a_job_costs_its_distinct_valid_addresses_and_pays_for_the_unrefunded() -> None:
    assert job_cost(["a@x.com", "b@x.com", "a@x.com"]) == 2
    assert job_charge(5, ["a@x.com", "a@x.com", "b@x.com"]) == 3  # refunded once each
    assert job_charge(1, ["a@x.com", "b@x.com"]) == 0  # never below zero


def test_a_settlement_gives_back_what_was_not_charged() -> None:
    assert settlement_refund(10, 4) == 6
    assert settlement_refund(10, 12) == 0  # never costs more than reserved
    assert settlement_refund(0, 0) == 0
    with pytest.raises(ValueError):
        settlement_refund(3, -1)


def test_spending_needs_the_credits() -> None:
    assert spend(5, 5) is None
    short = spend(5, 8)
    assert short == Shortfall(needed=8, available=5) and short.missing == 3
    with pytest.raises(ValueError):
        spend(5, -1)


def test_an_adjustment_says_who_and_why_and_changes_the_balance() -> None:
    check_adjustment(-5, "admin", "goodwill")
    check_adjustment(5, "admin", "goodwill")
    for amount, actor, reason in ((0, "admin", "why"), (5, "", "why"), (5, "admin", "")):
        with pytest.raises(ValueError):
            check_adjustment(amount, actor, reason)


async def test_the_free_ledger_charges_nothing() -> None:
    ledger = FreeLedger()
    job = Job(id="j", file=FileInfo(filename="a.csv"), owner="someone")
    assert not ledger.charges(job)
    assert await ledger.reserve(job, 10**9) is None
    await ledger.settle(job, 10**9)


def test_the_book_settles_a_job_once_and_keeps_the_first_reservation() -> None:
    book = LedgerBook()
    assert book.grant("acc", 20, kind=EntryKind.SIGNUP_GRANT, now=T0, key="signup:acc")
    assert not book.grant("acc", 20, kind=EntryKind.SIGNUP_GRANT, now=T0, key="signup:acc")
    assert book.reserve_for_job("acc", "j", 15, T0) == Reservation("j", 15)
    assert book.reserve_for_job("acc", "j", 99, T0) == Reservation("j", 15)  # replay
    assert book.balance("acc") == Balance(5, 15)
    assert book.settle_job("j", charged=10, now=T0) == 5
    assert book.settle_job("j", charged=0, now=T0) is None
    assert book.balance("acc") == Balance(10, 0)


# --- property: any sequence of steps, replays included ---------------------------------------

ACCOUNTS = ("a", "b")
JOBS = tuple(f"job{n}" for n in range(6))
CHECKS = tuple(f"check{n}" for n in range(6))

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("grant"), st.sampled_from(ACCOUNTS), st.integers(1, 30), st.integers(0, 4)
        ),
        st.tuples(
            st.just("reserve"), st.sampled_from(ACCOUNTS), st.sampled_from(JOBS), st.integers(0, 40)
        ),
        st.tuples(st.just("settle"), st.sampled_from(JOBS), st.integers(0, 50)),
        st.tuples(st.just("single"), st.sampled_from(ACCOUNTS), st.sampled_from(CHECKS)),
        st.tuples(st.just("refund_single"), st.sampled_from(CHECKS)),
        st.tuples(st.just("adjust"), st.sampled_from(ACCOUNTS), st.integers(-30, 30)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_any_sequence_never_goes_negative_and_counts_nothing_twice(
    sequence: list[tuple[object, ...]],
) -> None:
    book = LedgerBook()
    # an independent account of what must have happened
    expected = dict.fromkeys(ACCOUNTS, 0)
    grant_keys: set[str] = set()
    reserved: dict[str, tuple[str, int]] = {}  # job -> (account, cost)
    settled: set[str] = set()
    charged_checks: dict[str, str] = {}  # check -> account
    refunded_checks: set[str] = set()
    for step in sequence:
        match step:
            case ("grant", str(account), int(amount), int(k)):
                key = f"pay{k}" if k else None
                added = book.grant(account, amount, kind=EntryKind.PURCHASE, now=T0, key=key)
                assert added == (key is None or key not in grant_keys)
                if added:
                    expected[account] += amount
                    if key:
                        grant_keys.add(key)
            case ("reserve", str(account), str(job), int(cost)):
                got = book.reserve_for_job(account, job, cost, T0)
                if job in reserved:
                    assert got == Reservation(job, reserved[job][1])
                elif cost <= expected[account]:
                    assert got == Reservation(job, cost)
                    reserved[job] = (account, cost)
                    expected[account] -= cost
                else:
                    assert got == Shortfall(cost, expected[account])
            case ("settle", str(job), int(charged)):
                refund = book.settle_job(job, charged=charged, now=T0)
                if job in reserved and job not in settled:
                    account, cost = reserved[job]
                    assert refund == max(0, cost - charged)
                    expected[account] += max(0, cost - charged)
                    settled.add(job)
                else:
                    assert refund is None
            case ("single", str(account), str(check)):
                short = book.charge_single(account, check, T0)
                if check in charged_checks:
                    assert short is None
                elif expected[account] >= 1:
                    assert short is None
                    charged_checks[check] = account
                    expected[account] -= 1
                else:
                    assert short == Shortfall(1, 0)
            case ("refund_single", str(check)):
                done = book.refund_single(check, T0)
                assert done == (check in charged_checks and check not in refunded_checks)
                if done:
                    refunded_checks.add(check)
                    expected[charged_checks[check]] += 1
            case ("adjust", str(account), int(amount)):
                if amount == 0:
                    with pytest.raises(ValueError):
                        book.adjust(account, 0, actor="admin", reason="r", now=T0)
                    continue
                short = book.adjust(account, amount, actor="admin", reason="r", now=T0)
                if amount < 0 and -amount > expected[account]:
                    assert short == Shortfall(-amount, expected[account])
                else:
                    assert short is None
                    expected[account] += amount
            case _:
                raise AssertionError(step)
        for account in ACCOUNTS:
            now = book.balance(account)
            assert now.balance >= 0
            assert now.balance == expected[account]
            held = sum(c for j, (a, c) in reserved.items() if a == account and j not in settled)
            assert now.reserved == held
    keys = [entry.key for entry in book.entries if entry.key is not None]
    assert len(keys) == len(set(keys))  # every job step and check once

"""The timing and format rules of accounts (domain/accounts.py), with time moved by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from mailvet.domain import accounts as rules
from mailvet.domain.accounts import CodeOutcome, CodeState, InvalidEmail

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def state(**changes: object) -> CodeState:
    fields: dict[str, object] = {
        "expires_at": T0 + rules.CODE_LIFETIME,
        "attempts": 0,
        "sends": 1,
        "last_sent_at": T0,
    }
    fields.update(changes)
    return CodeState(**fields)  # type: ignore[arg-type]


# --- addresses


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("ann@example.com", "ann@example.com"),
        ("  Ann.Smith@Example.COM\t", "ann.smith@example.com"),
        ("a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk"),
    ],
)
def test_an_address_is_stored_stripped_and_casefolded(raw: str, stored: str) -> None:
    assert rules.normalize_email(raw) == stored


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "ann",
        "ann@localhost",
        "ann@@example.com",
        "Ann <ann@example.com>",  # a display name is not an address
        '"ann"@example.com',
        "ann@example.com, bob@example.com",
        "ann@example.com\r\nBcc: x@evil.com",
        "ann\x00@example.com",
        "аnn@example.com",  # Cyrillic а: a look-alike of ann@example.com
        "ａnn@example.com",  # fullwidth a
        "straße@example.de",  # casefolds to strasse: another mailbox
        "ann@exämple.com",
        "a" * 250 + "@example.com",
    ],
)
def test_addresses_an_account_cannot_have(raw: str) -> None:
    with pytest.raises(InvalidEmail):
        rules.normalize_email(raw)


def test_names_are_kept_printable_and_bounded() -> None:
    assert rules.clean_name("  Ann\x00 <b>\n ") == "Ann <b>"  # escaping is the template's job
    assert len(rules.clean_name("x" * 5000)) == rules.MAX_NAME_LENGTH


# --- the e-mailed code


def test_codes_are_six_digits() -> None:
    codes = {rules.new_code() for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert len(codes) > 150
    assert rules.clean_code(" 123 456 ") == "123456"
    assert rules.clean_code("012-345") == "012345"
    for bad in ("12345", "1234567", "abcdef", "١٢٣٤٥٦", "12345\x00", ""):  # Arabic-Indic digits too
        assert rules.clean_code(bad) is None


def test_the_right_code_is_accepted_until_it_expires() -> None:
    assert rules.judge_code(state(), matches=True, now=T0).outcome is CodeOutcome.ACCEPTED
    just_before = T0 + rules.CODE_LIFETIME - timedelta(seconds=1)
    assert rules.judge_code(state(), matches=True, now=just_before).outcome is CodeOutcome.ACCEPTED
    at_expiry = T0 + rules.CODE_LIFETIME
    assert rules.judge_code(state(), matches=True, now=at_expiry).outcome is CodeOutcome.EXPIRED


def test_the_fifth_wrong_entry_voids_the_code() -> None:
    lefts = []
    for attempts in range(4):
        verdict = rules.judge_code(state(attempts=attempts), matches=False, now=T0)
        assert verdict.outcome is CodeOutcome.WRONG
        lefts.append(verdict.attempts_left)
    assert lefts == [4, 3, 2, 1]
    fifth = rules.judge_code(state(attempts=4), matches=False, now=T0)
    assert (fifth.outcome, fifth.attempts_left) == (CodeOutcome.VOIDED, 0)
    # once voided, even the right code does nothing
    assert rules.judge_code(state(attempts=5), matches=True, now=T0).outcome is CodeOutcome.VOIDED


def test_a_code_is_resent_at_least_60_seconds_apart() -> None:
    assert rules.judge_resend(None, now=T0).allowed
    soon = rules.judge_resend(state(), now=T0 + timedelta(seconds=20))
    assert (soon.allowed, soon.retry_after, soon.spent) == (False, 40, False)
    almost = rules.judge_resend(state(), now=T0 + timedelta(seconds=59, milliseconds=500))
    assert (almost.allowed, almost.retry_after) == (False, 1)
    later = rules.judge_resend(state(), now=T0 + timedelta(seconds=60))
    assert (later.allowed, later.sends) == (True, 2)


def test_a_code_is_resent_at_most_five_times() -> None:
    now, current = T0, state()
    for resend in range(1, 6):
        now += timedelta(minutes=1)
        verdict = rules.judge_resend(current, now=now)
        assert verdict.allowed, resend
        current = state(sends=verdict.sends, last_sent_at=now)
    assert current.sends == 6  # the first mail and five resends
    now += timedelta(minutes=10)
    refused = rules.judge_resend(current, now=now)
    assert not refused.allowed and refused.spent
    assert refused.retry_after == int(
        (rules.CODE_SENDS_RESET - timedelta(minutes=10)).total_seconds()
    )
    # a quiet day later the allowance starts again
    fresh = rules.judge_resend(current, now=now - timedelta(minutes=10) + rules.CODE_SENDS_RESET)
    assert (fresh.allowed, fresh.sends) == (True, 1)


# --- TOTP


def test_a_totp_code_is_matched_to_its_step_within_one_step_of_drift() -> None:
    secret = rules.new_totp_secret()
    totp = pyotp.TOTP(secret)
    step = totp.timecode(T0)
    assert rules.totp_step(secret, totp.at(T0), now=T0) == step
    assert rules.totp_step(secret, totp.at(T0 - timedelta(seconds=30)), now=T0) == step - 1
    assert rules.totp_step(secret, totp.at(T0 + timedelta(seconds=30)), now=T0) == step + 1
    assert rules.totp_step(secret, totp.at(T0 - timedelta(seconds=90)), now=T0) is None
    assert rules.totp_step(secret, "12345", now=T0) is None
    assert rules.totp_step(secret, "abcdef", now=T0) is None
    spaced = totp.at(T0)
    assert rules.totp_step(secret, f" {spaced[:3]} {spaced[3:]} ", now=T0) == step
    assert rules.totp_step(secret, f"{spaced[:3]}-{spaced[3:]}", now=T0) == step  # as mailed codes


def test_a_step_used_once_or_older_is_a_replay() -> None:
    assert not rules.replayed(100, None)
    assert not rules.replayed(101, 100)
    assert rules.replayed(100, 100)
    assert rules.replayed(99, 100)


def test_the_provisioning_uri_names_the_issuer_and_the_account() -> None:
    secret = rules.new_totp_secret()
    uri = rules.totp_uri(secret, "ann@example.com")
    assert uri.startswith("otpauth://totp/mailvet:ann%40example.com?")
    assert f"secret={secret}" in uri and "issuer=mailvet" in uri


# --- recovery codes


def test_ten_distinct_recovery_codes_in_groups_of_four() -> None:
    codes = rules.new_recovery_codes()
    assert len(codes) == len(set(codes)) == 10
    for code in codes:
        groups = code.split("-")
        assert [len(g) for g in groups] == [4, 4, 4]
        assert set("".join(groups)) <= set(rules.RECOVERY_ALPHABET)


def test_a_recovery_code_is_read_whatever_its_case_and_spacing() -> None:
    code = rules.new_recovery_codes()[0]
    bare = code.replace("-", "")
    assert rules.normalize_recovery_code(code) == bare
    assert rules.normalize_recovery_code(f"  {code.upper()} ") == bare
    assert rules.normalize_recovery_code(" ".join(code.split("-"))) == bare
    for bad in ("", "abcd-efgh", "abcd-efgh-jkmn-pqrs", "abcd-efgh-jkm0", "ab\x00d-efgh-jkmn"):
        assert rules.normalize_recovery_code(bad) is None
    assert rules.normalize_recovery_code("123456") is None


# --- resets


def test_a_reset_link_lives_at_most_a_day_and_once() -> None:
    assert timedelta(0) < rules.RESET_LIFETIME <= timedelta(hours=24)
    expires = T0 + rules.RESET_LIFETIME
    assert rules.reset_usable(expires_at=expires, used_at=None, now=T0)
    assert not rules.reset_usable(expires_at=expires, used_at=T0, now=T0)
    assert not rules.reset_usable(expires_at=expires, used_at=None, now=expires)

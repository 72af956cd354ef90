"""The rules of API keys (domain/api_keys.py): the key's text and its parsing of hostile
input, the stored digest, scopes, expiry, and the order of the refusals."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from mailvet.domain import api_keys as rules
from mailvet.domain.api_keys import ALL_SCOPES, InvalidApiKeyInput, KeyState, Refusal, Scope

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def stored(made: rules.NewKey, **changes: object) -> KeyState:
    fields: dict[str, object] = {
        "key_id": made.key_id,
        "secret_digest": made.digest,
        "expires_at": None,
        "revoked_at": None,
    }
    fields.update(changes)
    return KeyState(**fields)  # type: ignore[arg-type]


def parsed(made: rules.NewKey) -> rules.ParsedKey:
    key = rules.parse_key(made.text)
    assert key is not None
    return key


# --- the key's text ------------------------------------------------------------------------


def test_a_new_key_reads_mv_id_secret_and_round_trips() -> None:
    made = rules.new_key()
    assert re.fullmatch(r"mv_[A-Za-z0-9]{16}_[A-Za-z0-9]{43}", made.text)
    key = parsed(made)
    assert key.key_id == made.key_id
    assert made.text == f"mv_{key.key_id}_{key.secret}"
    assert rules.secret_matches(key, made.digest)
    assert key.secret not in made.digest


def test_keys_are_unique_and_the_digest_is_hex_sha256() -> None:
    keys = {rules.new_key().text for _ in range(200)}
    assert len(keys) == 200
    made = rules.new_key()
    assert re.fullmatch(r"[0-9a-f]{64}", made.digest)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "mv_",
        "mv__",
        "mv_abc_def",
        "xx_" + "a" * 16 + "_" + "b" * 43,  # wrong prefix
        "MV_" + "a" * 16 + "_" + "b" * 43,
        "mv_" + "a" * 16 + "b" * 43,  # a separator missing
        "mv_" + "a" * 15 + "_" + "b" * 43,  # id too short
        "mv_" + "a" * 16 + "_" + "b" * 42,  # secret too short
        "mv_" + "a" * 16 + "_" + "b" * 44,
        "mv_" + "a" * 16 + "_" + "b" * 42 + "-",  # outside the alphabet
        "mv_" + "a" * 15 + "é" + "_" + "b" * 43,  # non-ASCII
        "mv_" + "a" * 16 + "_" + "b" * 42 + "\u0663",  # an Arabic-Indic digit
        "mv_" + "a" * 16 + "_" + "b" * 43 + "\n" + "x",
        "mv_" + "a" * 16 + "_" + "b" * 43 + "_extra",
        "mv_" + "a" * 16 + "_" + "b" * 10**6,  # megabytes
        "\x00" * 63,
        "Bearer mv_" + "a" * 16 + "_" + "b" * 43,
    ],
)
def test_hostile_text_is_not_a_key(text: str) -> None:
    assert rules.parse_key(text) is None


def test_non_text_is_not_a_key() -> None:
    assert rules.parse_key(None) is None
    assert rules.parse_key(b"mv_" + b"a" * 16 + b"_" + b"b" * 43) is None


def test_surrounding_spaces_are_dropped() -> None:
    made = rules.new_key()
    assert rules.parse_key(f"  {made.text}\t") == parsed(made)


def test_a_digest_belongs_to_its_key_id() -> None:
    one, other = rules.new_key(), rules.new_key()
    moved = rules.ParsedKey(key_id=other.key_id, secret=parsed(one).secret)
    assert not rules.secret_matches(moved, one.digest)
    assert not rules.secret_matches(parsed(one), other.digest)
    assert not rules.secret_matches(parsed(one), "not hex é")


def test_key_ids() -> None:
    assert rules.is_key_id(rules.new_key().key_id)
    for text in ("", "a" * 15, "a" * 17, "a" * 15 + "_", "a" * 15 + "é"):
        assert not rules.is_key_id(text)


# --- label, scopes, expiry ---------------------------------------------------------------------


def test_labels() -> None:
    assert rules.clean_label("  CRM   sync\n") == "CRM sync"
    assert rules.clean_label("<script>") == "<script>"  # kept; the page escapes it
    for bad in ("", "   ", "x" * 101, "a\x00b"):
        with pytest.raises(InvalidApiKeyInput):
            rules.clean_label(bad)


def test_scopes_default_to_all_and_unknown_ones_are_refused() -> None:
    assert rules.parse_scopes([]) == ALL_SCOPES
    assert rules.parse_scopes(["validate"]) == {Scope.VALIDATE}
    assert rules.parse_scopes(["jobs:read", " jobs:write "]) == {Scope.JOBS_READ, Scope.JOBS_WRITE}
    with pytest.raises(InvalidApiKeyInput, match="admin"):
        rules.parse_scopes(["validate", "admin"])
    text = rules.scopes_text(ALL_SCOPES)
    assert text == "jobs:read jobs:write validate"
    assert rules.scopes_of(text) == ALL_SCOPES
    assert rules.scopes_of("validate future:scope") == {Scope.VALIDATE}


def test_a_date_expires_at_the_end_of_that_day_utc() -> None:
    assert rules.parse_expiry("2027-01-31") == datetime(2027, 1, 31, 23, 59, 59, tzinfo=UTC)
    assert rules.end_of_day(date(2027, 1, 31)) == rules.parse_expiry(" 2027-01-31 ")


def test_an_iso_time_is_taken_as_given_utc_without_offset() -> None:
    assert rules.parse_expiry("2027-01-31T12:00:00Z") == datetime(2027, 1, 31, 12, tzinfo=UTC)
    assert rules.parse_expiry("2027-01-31T12:00:00+02:00") == datetime(2027, 1, 31, 10, tzinfo=UTC)
    assert rules.parse_expiry("2027-01-31T12:00") == datetime(2027, 1, 31, 12, tzinfo=UTC)
    past = rules.parse_expiry("2001-01-01T00:00:00Z")  # accepted: an expired key
    assert rules.is_expired(past, T0)


@pytest.mark.parametrize(
    "text",
    ["", "tomorrow", "2027-02-30", "2027-13-01", "31/01/2027", "2027-01-31T25:00", "9" * 100]
    + ["\uff12\uff10\uff12\uff17-01-31"],  # full-width digits
)
def test_bad_expiries_are_refused(text: str) -> None:
    with pytest.raises(InvalidApiKeyInput):
        rules.parse_expiry(text)


# --- may it be used ------------------------------------------------------------------------------


def test_a_good_key_is_accepted() -> None:
    made = rules.new_key()
    assert rules.refusal(stored(made), parsed(made), account_disabled=False, now=T0) is None


def test_refusals_in_order() -> None:
    made = rules.new_key()
    key = parsed(made)
    wrong = rules.ParsedKey(key_id=made.key_id, secret="x" * 43)
    revoked_and_expired = stored(made, revoked_at=T0, expires_at=T0 - timedelta(days=1))
    # without the secret, nothing about the key is told
    assert rules.refusal(revoked_and_expired, wrong, account_disabled=True, now=T0) == "invalid"
    assert rules.refusal(None, key, account_disabled=False, now=T0) == Refusal.INVALID
    assert rules.refusal(revoked_and_expired, key, account_disabled=True, now=T0) == "revoked"
    expired = stored(made, expires_at=T0 - timedelta(seconds=1))
    assert rules.refusal(expired, key, account_disabled=True, now=T0) == Refusal.EXPIRED
    assert rules.refusal(stored(made), key, account_disabled=True, now=T0) == "disabled account"


def test_expiry_is_exclusive_of_the_instant_after() -> None:
    made = rules.new_key()
    key = stored(made, expires_at=T0)
    assert rules.refusal(key, parsed(made), account_disabled=False, now=T0) is None
    later = T0 + timedelta(microseconds=1)
    assert rules.refusal(key, parsed(made), account_disabled=False, now=later) == "expired"


def test_last_used_is_written_at_most_once_a_minute() -> None:
    assert rules.touch_due(None, T0)
    assert not rules.touch_due(T0, T0 + timedelta(seconds=59))
    assert rules.touch_due(T0, T0 + timedelta(seconds=60))


def test_a_principal_allows_its_scopes_only() -> None:
    principal = rules.ApiPrincipal(account_id="a", key_id="k", scopes=frozenset({Scope.VALIDATE}))
    assert principal.allows(Scope.VALIDATE)
    assert not principal.allows(Scope.JOBS_WRITE)

"""The /signup form itself refuses a weak password: one of the 10,000 common ones (read from
the shipped list, 10 characters or more so only its commonness refuses it, in another case
too) and a 9-character one. Each answer is 400 with the rule's message on the password
field, the other fields kept, the password never echoed back, and no account made; a
10-character uncommon one is taken."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest

from mailvet.domain.passwords import COMMON_LIST
from tests.web.auth_helpers import auth_app, browser, sign_up

pytestmark = pytest.mark.pipeline

EMAIL = "ann.lee@example.com"
COMMON_MESSAGE = "This password is one of the most common ones: choose another."
SHORT_MESSAGE = "Use at least 10 characters."


def long_common_passwords() -> list[str]:
    text = files("mailvet.domain").joinpath("data", COMMON_LIST).read_text(encoding="utf-8")
    found = [
        line for line in text.splitlines() if line and not line.startswith("#") and len(line) >= 10
    ]
    assert len(found) > 10
    return found


@pytest.mark.parametrize(
    ("password", "message"),
    [
        (long_common_passwords()[0], COMMON_MESSAGE),
        (long_common_passwords()[-1].upper(), COMMON_MESSAGE),
        ("kq7#vLm2x", SHORT_MESSAGE),  # 9 characters
    ],
)
async def test_a_weak_password_is_refused_on_the_form(
    tmp_path: Path, password: str, message: str
) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        answer = await sign_up(b, EMAIL, password=password, first_name="Ann", last_name="Lee")
        assert answer.status_code == 400, answer.status_code
        assert message in answer.text
        assert 'aria-invalid="true"' in answer.text
        assert password not in answer.text and password.lower() not in answer.text
        assert f'value="{EMAIL}"' in answer.text and 'value="Ann"' in answer.text
        assert await s.account_row(EMAIL) is None
        assert await s.deliver() == []  # no code mailed


async def test_a_ten_character_uncommon_password_is_taken(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        answer = await sign_up(b, EMAIL, password="kq7#vLm2xZ")
        assert answer.status_code == 303 and answer.headers["location"] == "/confirm"
        assert await s.account_row(EMAIL) is not None

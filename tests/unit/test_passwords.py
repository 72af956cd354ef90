"""The password policy (domain/passwords.py): NIST SP 800-63B, no composition rules."""

from __future__ import annotations

from importlib.resources import files

import pytest

from mailvet.domain.passwords import (
    MAX_BYTES,
    MIN_LENGTH,
    PasswordProblem,
    common_passwords,
    normalize_password,
    password_problem,
)

pytestmark = pytest.mark.unit


def test_the_shipped_list_holds_ten_thousand_passwords_and_names_its_source() -> None:
    text = files("mailvet.domain").joinpath("data", "common-passwords.txt").read_text("utf-8")
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert any("zxcvbn" in line for line in header)
    assert any("MIT License" in line for line in header)
    assert len(common_passwords()) == 10_000
    assert {"123456", "password", "qwertyuiop", "1q2w3e4r5t"} <= common_passwords()


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",
        "aaaaaaaaaa",  # ten characters, nothing more asked (no composition rules)
        "tr0ub4dor&3x",
        "пароль-надёжный",  # any script
        "🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑",  # ten code points, 40 bytes
        "x" * MAX_BYTES,
    ],
)
def test_acceptable_passwords(password: str) -> None:
    assert password_problem(password, email="ann@example.com") is None


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("", PasswordProblem.TOO_SHORT),
        ("a" * (MIN_LENGTH - 1), PasswordProblem.TOO_SHORT),
        ("🔑" * (MIN_LENGTH - 1), PasswordProblem.TOO_SHORT),  # code points, not bytes
        ("x" * (MAX_BYTES + 1), PasswordProblem.TOO_LONG),
        ("é" * (MAX_BYTES // 2 + 1), PasswordProblem.TOO_LONG),  # bytes, not characters
        ("x" * 10_000_000, PasswordProblem.TOO_LONG),
        ("abcdefghij\x00klm", PasswordProblem.CONTROL_CHARACTER),
        ("abcdefghij\nklm", PasswordProblem.CONTROL_CHARACTER),
        ("abcdefghij\ud800", PasswordProblem.CONTROL_CHARACTER),  # a lone surrogate
        ("qwertyuiop", PasswordProblem.COMMON),
        ("QWERTYUIOP", PasswordProblem.COMMON),  # case-insensitive
        ("Password123", PasswordProblem.COMMON),
        ("ｑｗｅｒｔｙｕｉｏｐ", PasswordProblem.COMMON),  # fullwidth: NFKC first
        ("annabelle.smith@example.com", PasswordProblem.LIKE_EMAIL),
        ("ANNABELLE.SMITH", PasswordProblem.LIKE_EMAIL),
    ],
)
def test_refused_passwords(password: str, problem: PasswordProblem) -> None:
    assert password_problem(password, email="Annabelle.Smith@example.com") is problem


def test_every_problem_has_a_sentence_for_the_form() -> None:
    for problem in PasswordProblem:
        assert problem.message.endswith(".")
    assert "10" in PasswordProblem.TOO_SHORT.message


def test_the_hashed_form_is_nfkc() -> None:
    assert normalize_password("ｐａｓｓ") == "pass"
    assert normalize_password("e\u0301") == "é"  # composed

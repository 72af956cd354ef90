"""`mailvet users create|grant|balance` as a shell user runs them: on the embedded SQLite file
of a data folder of the test's own, and once on PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import select
from typer.testing import CliRunner

from mailvet.adapters.db import migrate
from mailvet.adapters.db.account_models import AccountRow
from mailvet.adapters.db.database import make_database
from mailvet.adapters.db.ledger_models import LedgerEntryRow
from mailvet.cli import app
from tests.pg import scratch_database, url_of

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


def mailvet(env: Mapping[str, str], *args: str, stdin: str = "") -> Result:
    return CliRunner().invoke(app, ["users", *args], input=stdin, env=dict(env))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"MAILVET_DATA_DIR": str(tmp_path / "data"), "MAILVET_DATABASE_URL": ""}


def rows(url: str) -> tuple[list[AccountRow], list[LedgerEntryRow]]:
    async def read() -> tuple[list[AccountRow], list[LedgerEntryRow]]:
        db = make_database(url)
        try:
            async with db.session_maker() as session:
                accounts = list((await session.execute(select(AccountRow))).scalars())
                entries = list((await session.execute(select(LedgerEntryRow))).scalars())
                return accounts, entries
        finally:
            await db.dispose()

    return asyncio.run(read())


def sqlite_url(env: Mapping[str, str]) -> str:
    return f"sqlite+aiosqlite:///{env['MAILVET_DATA_DIR']}/mailvet.db"


def test_create_prints_only_the_id_and_starts_with_exactly_the_credits(env: dict[str, str]) -> None:
    made = mailvet(
        env, "create", " Ann@Example.com ", "--admin", "--confirmed", "--credits", "7",
        stdin=PASSWORD + "\n",
    )  # fmt: skip

    assert made.exit_code == 0, made.output
    assert re.fullmatch(r"[0-9a-f]{32}\n", made.stdout)
    [account], entries = rows(sqlite_url(env))
    assert account.id == made.stdout.strip()
    assert (account.email, account.role) == ("ann@example.com", "admin")
    assert account.confirmed_at is not None
    assert account.password_hash is not None and account.password_hash.startswith("$argon2id$")
    assert [(e.kind, e.amount) for e in entries] == [("admin_adjustment", 7)]  # no sign-up grant
    assert mailvet(env, "balance", "ann@example.com").stdout == "7\n"


def test_the_default_is_zero_credits_and_an_unconfirmed_user(env: dict[str, str]) -> None:
    made = mailvet(env, "create", "bob@example.com", stdin=PASSWORD)  # no newline at the end
    assert made.exit_code == 0, made.output
    [account], entries = rows(sqlite_url(env))
    assert (account.role, account.confirmed_at, entries) == ("user", None, [])
    assert mailvet(env, "balance", "BOB@example.com").stdout == "0\n"


def test_the_password_is_the_whole_line(env: dict[str, str]) -> None:
    spaced = "  spaces count too  "
    assert mailvet(env, "create", "c@example.com", stdin=spaced + "\r\nignored\n").exit_code == 0
    from argon2 import PasswordHasher

    [account], _ = rows(sqlite_url(env))
    assert account.password_hash is not None
    assert PasswordHasher().verify(account.password_hash, spaced)


def test_grant_adds_with_a_reason_and_balance_prints_the_number(env: dict[str, str]) -> None:
    mailvet(env, "create", "ann@example.com", "--credits", "3", stdin=PASSWORD)

    granted = mailvet(env, "grant", "ann@example.com", "40", "--reason", "support ticket 12")

    assert granted.exit_code == 0 and granted.stdout == ""
    assert mailvet(env, "balance", "ann@example.com").stdout == "43\n"
    _, entries = rows(sqlite_url(env))
    last = max(entries, key=lambda e: e.seq)
    assert (last.amount, last.reason, last.actor) == (40, "support ticket 12", "cli")
    taken = mailvet(env, "grant", "--reason", "too much", "ann@example.com", "--", "-100")
    assert taken.exit_code == 1 and "43" in taken.stderr
    assert mailvet(env, "grant", "--reason", "fix", "ann@example.com", "--", "-3").exit_code == 0
    assert mailvet(env, "balance", "ann@example.com").stdout == "40\n"


@pytest.mark.parametrize(
    ("args", "stdin", "code", "says"),
    [
        (["create", "ann@example.com"], "password123\n", 2, "most common"),
        (["create", "ann@example.com"], "short\n", 2, "at least 10"),
        (["create", "ann@example.com"], "", 2, "no password"),
        (["create", "not an address"], PASSWORD, 2, "address"),
        (["create", "аnn@example.com"], PASSWORD, 2, "ASCII"),  # Cyrillic а
        (["create", "ann@example.com", "--credits", "-1"], PASSWORD, 2, "-1"),
        (["balance", "nobody@example.com"], "", 1, "no account"),
        (["grant", "nobody@example.com", "5", "--reason", "x"], "", 1, "no account"),
        (["grant", "nobody@example.com", "5"], "", 2, "--reason"),
        (["grant", "nobody@example.com", "5", "--reason", "  "], "", 2, "--reason"),
    ],
)
def test_refusals_say_why_on_stderr_and_change_nothing(
    env: dict[str, str], args: list[str], stdin: str, code: int, says: str
) -> None:
    got = mailvet(env, *args, stdin=stdin)
    assert got.exit_code == code, got.output
    assert got.stdout == ""
    assert says in got.stderr
    if Path(env["MAILVET_DATA_DIR"], "mailvet.db").exists():
        assert rows(sqlite_url(env))[0] == []


def test_an_address_has_one_account(env: dict[str, str]) -> None:
    assert mailvet(env, "create", "ann@example.com", stdin=PASSWORD).exit_code == 0
    again = mailvet(env, "create", "ANN@example.com", stdin="another password 1")
    assert again.exit_code == 1 and "exists" in again.stderr and again.stdout == ""
    assert len(rows(sqlite_url(env))[0]) == 1


def test_the_commands_on_postgresql(tmp_path: Path) -> None:
    with scratch_database("mailvet_cli_users") as name:
        url = url_of(name)
        migrate.upgrade(url)
        env = {"MAILVET_DATA_DIR": str(tmp_path / "data"), "MAILVET_DATABASE_URL": url}
        made = mailvet(env, "create", "ann@example.com", "--credits", "2", stdin=PASSWORD)
        assert made.exit_code == 0, made.output
        assert mailvet(env, "grant", "ann@example.com", "8", "--reason", "pg").exit_code == 0
        assert mailvet(env, "balance", "ann@example.com").stdout == "10\n"
        [account], _ = rows(url)
        assert account.id == made.stdout.strip()


def test_importing_the_cli_imports_neither_sqlalchemy_nor_argon2() -> None:
    code = (
        "import sys, mailvet.cli;"
        " print(sorted(m for m in ('sqlalchemy', 'argon2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""`mailvet apikeys create|list|revoke` as a shell user runs them: on the embedded SQLite file
of a data folder of the test's own, and once on PostgreSQL; the key they print works (and
stops working once revoked or expired) through services.api_keys.authenticate."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import select
from typer.testing import CliRunner

from mailvet.adapters.db import migrate
from mailvet.adapters.db.api_key_models import ApiKeyRow
from mailvet.adapters.db.database import make_database
from mailvet.cli import app
from mailvet.domain.api_keys import ApiPrincipal, Refusal, Scope
from mailvet.services import api_keys
from tests.integration.test_cli_users import PASSWORD, sqlite_url
from tests.pg import scratch_database, url_of

pytestmark = pytest.mark.integration

KEY = re.compile(r"mv_[A-Za-z0-9]{16}_[A-Za-z0-9]{43}")


def mailvet(env: Mapping[str, str], *args: str, stdin: str = "") -> Result:
    return CliRunner().invoke(app, list(args), input=stdin, env=dict(env))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    made = {"MAILVET_DATA_DIR": str(tmp_path / "data"), "MAILVET_DATABASE_URL": ""}
    assert mailvet(made, "users", "create", "ann@example.com", stdin=PASSWORD).exit_code == 0
    return made


def check(url: str, key: str, now: datetime | None = None) -> ApiPrincipal | Refusal:
    async def run() -> ApiPrincipal | Refusal:
        db = make_database(url)
        try:
            return await api_keys.authenticate(db, key, now=now or datetime.now(UTC))
        finally:
            await db.dispose()

    return asyncio.run(run())


def stored(url: str) -> list[ApiKeyRow]:
    async def read() -> list[ApiKeyRow]:
        db = make_database(url)
        try:
            async with db.session_maker() as session:
                return list((await session.execute(select(ApiKeyRow))).scalars())
        finally:
            await db.dispose()

    return asyncio.run(read())


def test_create_prints_only_the_key_and_it_works(env: dict[str, str]) -> None:
    made = mailvet(
        env, "apikeys", "create", "ANN@example.com", "--label", "CRM", "--scope", "validate",
        "--scope", "jobs:read",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert KEY.fullmatch(made.stdout.removesuffix("\n")), made.stdout
    key = made.stdout.strip()
    [row] = stored(sqlite_url(env))
    assert key not in row.secret_hash and key.split("_")[2] not in row.secret_hash
    principal = check(sqlite_url(env), key)
    assert isinstance(principal, ApiPrincipal)
    assert principal.scopes == {Scope.VALIDATE, Scope.JOBS_READ}


def test_list_as_json_and_revoke(env: dict[str, str]) -> None:
    first = mailvet(env, "apikeys", "create", "ann@example.com", "--label", "one")
    second = mailvet(
        env, "apikeys", "create", "ann@example.com", "--label", "two", "--expires", "2031-05-06"
    )
    assert first.exit_code == 0 and second.exit_code == 0
    key_id = first.stdout.split("_")[1]

    listed = mailvet(env, "apikeys", "list", "ann@example.com", "--json")
    assert listed.exit_code == 0, listed.output
    keys = json.loads(listed.stdout)
    assert [set(k) for k in keys] == [
        {"id", "label", "scopes", "created_at", "expires_at", "last_used_at", "revoked"}
    ] * 2
    by_label = {k["label"]: k for k in keys}
    assert by_label["one"]["id"] == key_id
    assert by_label["one"]["scopes"] == ["jobs:read", "jobs:write", "validate"]
    assert by_label["one"]["expires_at"] is None and by_label["one"]["revoked"] is False
    assert by_label["two"]["expires_at"] == "2031-05-06T23:59:59Z"
    assert by_label["one"]["created_at"].endswith("Z") and by_label["one"]["last_used_at"] is None
    assert "mv_" not in listed.stdout  # no key in the list

    revoked = mailvet(env, "apikeys", "revoke", key_id)
    assert revoked.exit_code == 0 and revoked.stdout == "", revoked.output
    assert check(sqlite_url(env), first.stdout.strip()) == Refusal.REVOKED
    again = json.loads(mailvet(env, "apikeys", "list", "ann@example.com", "--json").stdout)
    assert {k["label"]: k["revoked"] for k in again} == {"one": True, "two": False}
    text = mailvet(env, "apikeys", "list", "ann@example.com")
    assert text.exit_code == 0 and len(text.stdout.splitlines()) == 2
    assert f"{key_id}\tone\t" in text.stdout and "revoked 20" in text.stdout


def test_a_past_time_makes_an_expired_key(env: dict[str, str]) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    made = mailvet(env, "apikeys", "create", "ann@example.com", "--label", "old", "--expires", past)
    assert made.exit_code == 0, made.output
    assert check(sqlite_url(env), made.stdout.strip()) == Refusal.EXPIRED
    today = datetime.now(UTC).date().isoformat()  # a date: valid to the end of that day
    made = mailvet(env, "apikeys", "create", "ann@example.com", "--label", "t", "--expires", today)
    assert isinstance(check(sqlite_url(env), made.stdout.strip()), ApiPrincipal)


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["create", "ann@example.com", "--label", "  "], 2, "label"),
        (["create", "ann@example.com", "--label", "x", "--scope", "admin"], 2, "no scope"),
        (["create", "ann@example.com", "--label", "x", "--expires", "tomorrow"], 2, "expiry"),
        (["create", "ann@example.com", "--label", "x", "--expires", "2027-02-30"], 2, "not a date"),
        (["create", "nobody@example.com", "--label", "x"], 1, "no account"),
        (["create", "not an address", "--label", "x"], 1, "no account"),
        (["list", "nobody@example.com"], 1, "no account"),
        (["revoke", "mv_short"], 2, "16 letters"),
        (["revoke", "é" * 16], 2, "16 letters"),
        (["revoke", "A" * 16], 1, "no key"),
    ],
)
def test_refusals_say_why_on_stderr_and_change_nothing(
    env: dict[str, str], args: list[str], code: int, says: str
) -> None:
    got = mailvet(env, "apikeys", *args)
    assert got.exit_code == code, got.output
    assert got.stdout == ""
    assert got.stderr.startswith("mailvet: error: ") and says in got.stderr, got.stderr
    assert stored(sqlite_url(env)) == []


def test_the_commands_on_postgresql(tmp_path: Path) -> None:
    with scratch_database("mailvet_cli_apikeys") as name:
        url = url_of(name)
        migrate.upgrade(url)
        env = {"MAILVET_DATA_DIR": str(tmp_path / "data"), "MAILVET_DATABASE_URL": url}
        assert mailvet(env, "users", "create", "ann@example.com", stdin=PASSWORD).exit_code == 0
        made = mailvet(env, "apikeys", "create", "ann@example.com", "--label", "pg")
        assert made.exit_code == 0, made.output
        key = made.stdout.strip()
        assert isinstance(check(url, key), ApiPrincipal)
        [listed] = json.loads(mailvet(env, "apikeys", "list", "ann@example.com", "--json").stdout)
        assert mailvet(env, "apikeys", "revoke", listed["id"]).exit_code == 0
        assert check(url, key) == Refusal.REVOKED

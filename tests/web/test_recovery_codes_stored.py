"""Recovery codes are stored hashed: after turning TOTP on through the pages, the database
(every file of the data directory, the SQLite file and its journal) holds none of the ten
codes shown, in any spelling, nor an unkeyed SHA-256 of one; the recovery_codes rows are
ten keyed digests; and each code signs in once, then never again."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import select

from mailvet.adapters.db.account_models import AccountRow, RecoveryCodeRow
from tests.web.auth_helpers import auth_app, browser, confirmed_account, log_in, turn_on_totp
from tests.web.shell_helpers import look

pytestmark = pytest.mark.pipeline

EMAIL = "ann.lee@example.com"


def spellings(code: str) -> set[str]:
    bare = code.replace("-", "")
    return {code, bare, code.upper(), bare.upper()}


def unkeyed_digests(code: str) -> set[str]:
    return {hashlib.sha256(s.encode()).hexdigest() for s in spellings(code)}


async def test_recovery_codes_are_kept_only_as_digests_and_work_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with auth_app(data_dir) as s, browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        await log_in(b, EMAIL)
        _, codes = await turn_on_totp(s, b)
        assert len(set(codes)) == 10

        async with look(s.url) as database, database.session_maker() as session:
            account = (
                await session.execute(select(AccountRow).where(AccountRow.email == EMAIL))
            ).scalar_one()
            rows = list((await session.execute(select(RecoveryCodeRow))).scalars())
        assert len(rows) == 10 and {row.account_id for row in rows} == {account.id}
        stored = {row.code_hash for row in rows}
        assert len(stored) == 10
        for code in codes:
            assert not stored & spellings(code), "a plain code is stored"
            assert not stored & unkeyed_digests(code), "an unkeyed hash of a code is stored"
            assert all(code.replace("-", "") not in value for value in stored)
        files = [path for path in data_dir.rglob("*") if path.is_file()]
        assert any(path.suffix in (".db", ".sqlite", ".sqlite3") for path in files), files
        for path in files:
            content = path.read_bytes().lower()
            for code in codes:
                for spelling in spellings(code):
                    assert spelling.lower().encode() not in content, (path.name, "plain code")

        for n, code in enumerate(codes[:3]):
            assert (await b.post("/logout")).status_code == 303
            first = await log_in(b, EMAIL)
            assert first.headers["location"] == "/login/two-factor"
            used = await b.post("/login/two-factor", {"code": code})
            assert used.status_code == 303, used.text
            assert f"recovery code; {9 - n} left" in (await b.follow(used)).text
        assert (await b.post("/logout")).status_code == 303
        await log_in(b, EMAIL)
        again = await b.post("/login/two-factor", {"code": codes[0]})
        assert again.status_code == 400
        assert await b.whoami() is None
        async with look(s.url) as database, database.session_maker() as session:
            left = {
                row.code_hash for row in (await session.execute(select(RecoveryCodeRow))).scalars()
            }
        assert len(left) == 7 and left < stored

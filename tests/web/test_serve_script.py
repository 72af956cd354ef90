"""scripts/serve.py (`make serve`): the defaults under the caller's variables, and the
administrator made once with a password that signs in (later starts make none)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from mailvet.adapters.db.account_models import AccountRow
from mailvet.services import credits
from tests.web.shell_helpers import look

pytestmark = pytest.mark.pipeline

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "serve.py"


def serve_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mailvet_serve_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_defaults_stay_under_the_callers_variables() -> None:
    script = serve_script()
    env = script.environment({})
    assert env["MAILVET_MAILER"] == "log"
    assert env["MAILVET_WEB_HOST"] == "127.0.0.1" and env["MAILVET_WEB_PORT"] == "8000"
    assert env["MAILVET_PUBLIC_URL"] == "http://127.0.0.1:8000"
    mine = script.environment({"MAILVET_WEB_PORT": "8080", "MAILVET_MAILER": "smtp"})
    assert mine["MAILVET_MAILER"] == "smtp"
    assert mine["MAILVET_PUBLIC_URL"] == "http://127.0.0.1:8080"
    given = script.environment({"MAILVET_PUBLIC_URL": "https://mail.example.com"})
    assert given["MAILVET_PUBLIC_URL"] == "https://mail.example.com"


async def test_the_administrator_is_made_once(tmp_path: Path) -> None:
    script = serve_script()
    env = script.environment({"MAILVET_DATA_DIR": str(tmp_path)})
    password = await script.ensure_admin(env, "boss@example.com")
    assert isinstance(password, str) and len(password) >= 20
    assert await script.ensure_admin(env, "boss@example.com") is None
    assert await script.ensure_admin(env, "other@example.com") is None  # one admin exists
    url = f"sqlite+aiosqlite:///{tmp_path.resolve()}/mailvet.db"
    async with look(url) as database, database.session_maker() as session:
        rows = list((await session.execute(select(AccountRow))).scalars())
        assert [(row.email, row.role) for row in rows] == [("boss@example.com", "admin")]
        assert rows[0].confirmed_at is not None and rows[0].password_hash is not None
        assert PasswordHasher().verify(rows[0].password_hash, password)
        assert (await credits.balance(session, rows[0].id)).balance == 100

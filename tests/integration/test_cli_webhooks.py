"""`mailvet webhooks secret EMAIL` as a shell user runs it, on the embedded SQLite file of a
data folder of the test's own: the secret alone on stdout, the same each time, the one that
signs the account's deliveries (checked on a real receiver with hmac, from the printed
text); an unknown address is exit 1 with a message on stderr."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from mailvet.adapters.db.database import make_database
from mailvet.adapters.db.models import JobRow
from mailvet.cli import app
from mailvet.services import webhooks
from mailvet.services.accounts import find_account
from mailvet.settings import load_settings
from tests.integration.test_cli_users import PASSWORD, sqlite_url
from tests.webhook_helpers import TableResolver, receiving

pytestmark = pytest.mark.integration

SECRET = re.compile(r"whsec_[A-Za-z0-9_-]{43}")


def mailvet(env: Mapping[str, str], *args: str, stdin: str = "") -> Result:
    return CliRunner().invoke(app, list(args), input=stdin, env=dict(env))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    made = {"MAILVET_DATA_DIR": str(tmp_path / "data"), "MAILVET_DATABASE_URL": ""}
    assert mailvet(made, "users", "create", "ann@example.com", stdin=PASSWORD).exit_code == 0
    return made


def test_secret_prints_the_secret_alone_and_keeps_it(env: dict[str, str]) -> None:
    first = mailvet(env, "webhooks", "secret", "ANN@example.com")
    assert first.exit_code == 0, first.output
    assert SECRET.fullmatch(first.stdout.strip()) and first.stdout.endswith("\n")
    assert first.stdout.count("\n") == 1
    again = mailvet(env, "webhooks", "secret", "ann@example.com")
    assert again.stdout == first.stdout


def test_an_unknown_address_is_exit_1_on_stderr(env: dict[str, str]) -> None:
    got = mailvet(env, "webhooks", "secret", "nobody@example.com")
    assert got.exit_code == 1
    assert got.stdout == ""
    assert got.stderr.startswith("mailvet: error: ") and "no account" in got.stderr


def test_the_printed_secret_signs_the_deliveries(env: dict[str, str], tmp_path: Path) -> None:
    printed = mailvet(env, "webhooks", "secret", "ann@example.com").stdout.strip()
    url = sqlite_url(env)
    now = datetime.now(UTC)
    settings = load_settings({**env, "MAILVET_WEBHOOK_ALLOW_PRIVATE": "true"})

    async def deliver() -> tuple[dict[str, str], bytes]:
        db = make_database(url)
        try:
            async with receiving([200]) as receiver:
                async with db.unit_of_work(write=True) as session:
                    account = await find_account(session, "ann@example.com")
                    assert account is not None
                    await webhooks.set_default_url(
                        session,
                        account.id,
                        receiver.url,
                        TableResolver(),
                        allow_private=True,
                        now=now,
                    )
                    job_id = uuid.uuid4().hex
                    session.add(
                        JobRow(
                            id=job_id,
                            filename="a.csv",
                            checks="smtp",
                            status="file_completed",
                            owner=account.id,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                    await session.flush()
                    await webhooks.queue_job_event(session, job_id, now=now)
                sender = webhooks.WebhookSender(db, TableResolver(), settings, lambda: now)
                assert await sender.run_once() == 1
                [got] = receiver.received
                return got.headers, got.body
        finally:
            await db.dispose()

    headers, body = asyncio.run(deliver())
    parts = dict(item.split("=", 1) for item in headers["mailvet-signature"].split(","))
    expected = hmac.new(printed.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(parts["v1"], expected.hexdigest())

"""The mailer down does not fail a request and loses no mail: the site as `mailvet run web`
builds it, its SMTP mailer (MAILVET_MAILER=smtp) pointed at the mail catcher's port while
nothing listens there. A sign-up answers as usual (303 to /confirm, the account made), the
site's own outbox sender fails to connect and keeps the mail; once the server is back on
the same port the mail goes out with its retry, and its code confirms the account."""

from __future__ import annotations

import asyncio
import datetime
import re
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from mailvet.adapters.db.account_models import AccountRow
from mailvet.adapters.db.outbox_models import OutboxRow
from mailvet.adapters.mail.smtp import SmtpMailer
from mailvet.domain.mail import Mailer
from tests.mailcatcher import MailCatcher, mail_catcher
from tests.waiting import until
from tests.web.auth_helpers import Browser, sign_up, text_of
from tests.web.shell_helpers import HTTPS, Clock, look
from tests.web.site_helpers import SiteUnderTest, site_under_test

__all__ = ["mail_catcher"]  # the fixture

pytestmark = pytest.mark.pipeline

EMAIL = "ann.lee@example.com"


@dataclass
class Watched:
    """The site's mailer, passed through, counting what it sent and what failed."""

    mailer: Mailer
    sent: int = 0
    failed: list[str] = field(default_factory=list)

    async def send(self, message: EmailMessage) -> None:
        try:
            await self.mailer.send(message)
        except Exception as exc:
            self.failed.append(type(exc).__name__)
            raise
        self.sent += 1


async def outbox_rows(url: str) -> list[OutboxRow]:
    async with look(url) as database, database.session_maker() as session:
        return list((await session.execute(select(OutboxRow))).scalars())


async def test_a_sign_up_answers_while_smtp_is_down_and_its_mail_goes_later(
    tmp_path: Path, mail_catcher: MailCatcher
) -> None:
    mail_catcher.stop()  # nothing listens on its port now
    env = {
        "MAILVET_MAILER": "smtp",
        "MAILVET_MAILER_HOST": "127.0.0.1",
        "MAILVET_MAILER_PORT": str(mail_catcher.port),
    }
    clock = Clock()
    async with site_under_test(tmp_path, env, mailer_from_settings=True, clock=clock) as s:
        assert isinstance(s.site.mailer, SmtpMailer)  # built from MAILVET_MAILER
        watched = Watched(s.site.mailer)
        s.site.mailer = watched  # before the app starts its sender
        async with AsyncTestClient(s.site.app, base_url=HTTPS) as client:
            await down_then_back(s, watched, mail_catcher, clock, Browser(client))


async def down_then_back(
    s: SiteUnderTest, watched: Watched, mail_catcher: MailCatcher, clock: Clock, b: Browser
) -> None:
    answer = await sign_up(b, EMAIL)
    assert answer.status_code == 303 and answer.headers["location"] == "/confirm"
    assert (await b.get("/confirm")).status_code == 200

    await until(lambda: watched.failed, timeout=20)
    # the sender writes the failure into the row after the mailer raised: wait for that write
    async with asyncio.timeout(20):
        while not (await outbox_rows(s.url))[0].last_error:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    (row,) = await outbox_rows(s.url)
    assert row.to == EMAIL and row.sent_at is None and row.given_up_at is None
    assert row.last_error  # the connection was refused
    assert mail_catcher.messages == []

    mail_catcher.start()  # back, on the same port
    clock.now += datetime.timedelta(minutes=2)  # past the first retry delay, within the code life
    (mail,) = await mail_catcher.wait_for(1)
    await until(lambda: watched.sent == 1)  # the catcher has it before the SMTP QUIT
    assert mail["To"] == EMAIL and "confirmation code" in mail["Subject"]

    code = re.search(r"\b(\d{6})\b", text_of(mail))
    assert code is not None
    confirmed = await b.post("/confirm", {"code": code.group(1)})
    assert confirmed.status_code == 303, confirmed.text
    async with look(s.url) as database, database.session_maker() as session:
        account = (
            await session.execute(select(AccountRow).where(AccountRow.email == EMAIL))
        ).scalar_one()
    assert account.confirmed_at is not None

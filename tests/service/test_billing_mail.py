"""Billing's mails (services/billing_mail.py) on the migrated embedded database: once per key,
even after the outbox purged the sent row; what the rendered mail says (the tier, the date a
cancellation takes effect, the amount, the link to the billing page); nothing for a deleted
account; a hostile tier label escaped in the HTML."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from email.message import EmailMessage

import argon2
import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute

from mailvet.adapters.db.account_models import AccountRow
from mailvet.adapters.db.billing_models import BillingMailKeyRow
from mailvet.adapters.db.database import Database
from mailvet.adapters.db.outbox_models import OutboxRow
from mailvet.adapters.mail.log import plain_text
from mailvet.adapters.mail.memory import MemoryMailer
from mailvet.domain.billing import MailKind
from mailvet.services.accounts import create_account
from mailvet.services.billing_mail import BillingMailError, queue_billing_mail
from mailvet.services.outbox import OutboxSender, purge_finished
from mailvet.settings import MailerSettings, Settings, WebSettings
from tests.fakes import T0, MovingClock

pytestmark = pytest.mark.unit

HASHER = PasswordHasher.from_parameters(argon2.profiles.CHEAPEST)
SETTINGS = Settings(
    web=WebSettings(public_url="https://app.mailvet.example/"),
    mailer=MailerSettings(backend="memory", sender="mailvet <no-reply@mailvet.example>"),
)
ANN = "ann.lee@example.com"
ENDS_AT = int(datetime.datetime(2027, 1, 15, 9, 30, tzinfo=datetime.UTC).timestamp())


async def account(db: Database, email: str = ANN) -> str:
    async with db.unit_of_work(write=True) as session:
        made = await create_account(
            session, email=email, password=None, confirmed=True, hasher=HASHER, now=T0
        )
    return made.id


async def queue(
    db: Database, account_id: str, kind: MailKind, key: str, data: Mapping[str, str]
) -> bool:
    async with db.unit_of_work(write=True) as session:
        return await queue_billing_mail(session, account_id, kind, key, data, now=T0)


async def deliver(db: Database) -> MemoryMailer:
    """The outbox's due mail sent through a memory mailer (what the web role's sender does)."""
    mailer = MemoryMailer()
    await OutboxSender(db, mailer, SETTINGS, MovingClock(T0)).run_once()
    return mailer


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content


async def count(db: Database, column: InstrumentedAttribute[str]) -> int:
    async with db.session_maker() as session:
        return int(await session.scalar(select(func.count(column))) or 0)


async def test_a_mail_goes_once_per_key_even_after_the_outbox_purged_it(db: Database) -> None:
    ann = await account(db)
    key = "subscription-confirmed:sub_1:pro"
    data = {"tier": "Pro"}

    assert await queue(db, ann, MailKind.SUBSCRIPTION_CONFIRMED, key, data) is True
    assert await queue(db, ann, MailKind.SUBSCRIPTION_CONFIRMED, key, data) is False
    assert len((await deliver(db)).to(ANN)) == 1
    async with db.unit_of_work(write=True) as session:
        purged = await purge_finished(session, before=T0 + datetime.timedelta(days=60))
    assert purged == 1
    assert await count(db, OutboxRow.id) == 0  # the outbox forgot it ...

    # ... the event replayed a month later mails nobody again
    assert await queue(db, ann, MailKind.SUBSCRIPTION_CONFIRMED, key, data) is False
    assert await count(db, OutboxRow.id) == 0
    assert (await deliver(db)).sent == []
    # another key is another mail
    other = "subscription-confirmed:sub_1:business"
    assert await queue(db, ann, MailKind.SUBSCRIPTION_CONFIRMED, other, {"tier": "Business"})
    assert len((await deliver(db)).to(ANN)) == 1


async def test_the_confirmation_says_the_tier_and_links_to_the_billing_page(db: Database) -> None:
    ann = await account(db)
    await queue(db, ann, MailKind.SUBSCRIPTION_CONFIRMED, "c:1", {"tier": "Pro 50k"})

    (message,) = (await deliver(db)).to(ANN)
    assert message["Subject"] == "Your mailvet subscription is active"
    text, html = plain_text(message), html_of(message)
    assert "Pro 50k plan is active" in text
    assert "https://app.mailvet.example/app/billing" in text
    assert "Pro 50k" in html
    assert 'href="https://app.mailvet.example/app/billing"' in html


async def test_the_cancellation_says_the_day_it_ends(db: Database) -> None:
    ann = await account(db)
    data = {"tier": "Pro", "ends_at": str(ENDS_AT)}
    await queue(db, ann, MailKind.SUBSCRIPTION_CANCELLED, f"x:sub_1:{ENDS_AT}", data)

    (message,) = (await deliver(db)).to(ANN)
    assert message["Subject"] == "Your mailvet subscription is cancelled"
    text = " ".join(plain_text(message).split())
    assert "Pro plan is cancelled. It stays active until 15 January 2027" in text
    assert "until 15 January 2027" in html_of(message)


async def test_the_failed_payment_says_the_amount_and_the_invoice(db: Database) -> None:
    ann = await account(db)
    data = {"invoice": "in_1Qx", "amount": "1234", "currency": "usd"}
    await queue(db, ann, MailKind.PAYMENT_FAILED, "payment-failed:in_1Qx", data)

    (message,) = (await deliver(db)).to(ANN)
    assert message["Subject"] == "A mailvet payment failed"
    text = " ".join(plain_text(message).split())
    assert "the payment of $12.34 USD for your mailvet subscription (invoice in_1Qx)" in text
    assert "$12.34 USD" in html_of(message)


async def test_the_ended_and_the_low_credits_mails(db: Database) -> None:
    ann = await account(db)
    await queue(db, ann, MailKind.SUBSCRIPTION_ENDED, "subscription-ended:sub_1", {})
    low = {"balance": "99", "last_topup": "10000"}
    await queue(db, ann, MailKind.LOW_CREDITS, "low-credits:a:3", low)

    sent = {m["Subject"]: m for m in (await deliver(db)).to(ANN)}
    assert set(sent) == {
        "Your mailvet subscription has ended",
        "Your mailvet credits are running low",
    }
    text = " ".join(plain_text(sent["Your mailvet credits are running low"]).split())
    assert "down to 99 credits, under a tenth of the 10,000 credits" in text
    assert "https://app.mailvet.example/app/billing" in plain_text(
        sent["Your mailvet subscription has ended"]
    )


async def test_a_deleted_account_gets_nothing(db: Database) -> None:
    ann = await account(db)
    async with db.unit_of_work(write=True) as session:
        row = await session.get(AccountRow, ann)
        assert row is not None
        await session.delete(row)

    assert await queue(db, ann, MailKind.SUBSCRIPTION_ENDED, "subscription-ended:s", {}) is False
    assert await count(db, OutboxRow.id) == 0
    assert await count(db, BillingMailKeyRow.key) == 0
    assert await queue(db, "0" * 32, MailKind.SUBSCRIPTION_ENDED, "e:nobody", {}) is False


async def test_nothing_is_queued_when_the_callers_transaction_rolls_back(db: Database) -> None:
    ann = await account(db)

    class Abandon(Exception):
        pass

    with pytest.raises(Abandon):
        async with db.unit_of_work(write=True) as session:
            await queue_billing_mail(
                session, ann, MailKind.SUBSCRIPTION_ENDED, "subscription-ended:s", {}, now=T0
            )
            raise Abandon  # the event's effects failed: its mail must not go, nor its key stay
    assert await queue(db, ann, MailKind.SUBSCRIPTION_ENDED, "subscription-ended:s", {}) is True


async def test_a_hostile_tier_label_is_escaped_in_html_and_kept_to_one_line(
    db: Database,
) -> None:
    ann = await account(db)
    hostile = '"><img src=x onerror=alert(1)><script>alert(2)</script>\r\nBcc: eve@evil.example'
    await queue(db, ann, MailKind.SUBSCRIPTION_CONFIRMED, "c:hostile", {"tier": hostile})

    (message,) = (await deliver(db)).to(ANN)
    html = html_of(message)
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html
    assert message["Bcc"] is None
    assert "alert(2)</script> Bcc: eve@evil.example plan is active" in plain_text(message)


async def test_data_that_is_not_what_the_kind_needs_queues_nothing(db: Database) -> None:
    ann = await account(db)
    with pytest.raises(BillingMailError):
        await queue(db, ann, MailKind.SUBSCRIPTION_CANCELLED, "x:1", {"tier": "Pro"})
    with pytest.raises(BillingMailError):
        await queue(db, ann, MailKind.PAYMENT_FAILED, "p:1", {"invoice": "in_1", "amount": "1e3"})
    assert await count(db, BillingMailKeyRow.key) == 0
    assert await count(db, OutboxRow.id) == 0

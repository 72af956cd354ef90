"""Billing's mails (issue 10): subscription confirmed, cancelled (with the date it ends),
ended, a payment failed, credits running low. Each goes once per key.

`queue_billing_mail` is called in the transaction that applies what decided the mail (a
Stripe event's effects, services/billing_events.py; a low balance, services/low_credits.py):
it records the key in `billing_mail_keys` (an existing key: nothing more), and puts the mail
in the outbox under the same key. The outbox purges its sent rows after the retention; the
key row stays, so an event replayed later still mails nobody twice.

`data` is what domain/billing.py put in `SendMail.data` (machine values: a Unix time, an
amount in cents); it is turned here into what the templates show: "15 January 2027",
"$12.34 USD", "1,234" (domain/money.py's `day` and `money`, which the pages use too). A
value from Stripe (a tier's label) is cut to a sane length and its control characters
replaced, so that it can never stop the mail (OutgoingMail refuses them); the HTML
templates are autoescaped (adapters/mail/render.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.account_models import AccountRow
from mailvet.adapters.db.billing_models import BillingMailKeyRow
from mailvet.adapters.db.database import dialect_insert
from mailvet.domain.billing import MailKind
from mailvet.domain.mail import OutgoingMail
from mailvet.domain.money import day, money
from mailvet.logs import logger
from mailvet.services import outbox

__all__ = ["BillingMailError", "mail_context", "queue_billing_mail"]

MAX_KEY = 200  # billing_mail_keys.key, the outbox's key too
MAX_LABEL = 200  # a tier's label as shown
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


class BillingMailError(ValueError):
    """`data` lacks what the mail of its kind shows, or holds a value that is not one."""


async def queue_billing_mail(
    session: AsyncSession,
    account_id: str,
    kind: MailKind,
    key: str,
    data: Mapping[str, str],
    *,
    now: datetime,
) -> bool:
    """Queue the mail of `kind` to the account in the caller's transaction (not committed
    here), once per `key`: True when queued; False when the key was used already or the
    account is gone (nothing queued then). Raises BillingMailError when `data` is not what
    the kind needs (see domain/billing.py's SendMail), ValueError for a key over 200
    characters."""
    if not key or len(key) > MAX_KEY:
        raise ValueError(f"a billing mail key is 1 to {MAX_KEY} characters")
    context = mail_context(kind, data)  # a bad `data` fails before anything is written
    email = await session.scalar(select(AccountRow.email).where(AccountRow.id == account_id))
    if email is None:
        return False
    added = await session.execute(
        dialect_insert(session, BillingMailKeyRow)
        .values(key=key, account_id=account_id, created_at=now)
        .on_conflict_do_nothing(index_elements=[BillingMailKeyRow.key])
        .returning(BillingMailKeyRow.key)
    )
    if added.scalar_one_or_none() is None:
        return False
    await outbox.enqueue(session, OutgoingMail(email, kind.value, context), now=now, key=key)
    logger(__name__).info("billing_mail_queued", kind=kind.value, account_id=account_id)
    return True


def mail_context(kind: MailKind, data: Mapping[str, str]) -> dict[str, str]:
    """The template's context of a mail of `kind` made from domain/billing's `data`."""
    if kind is MailKind.SUBSCRIPTION_CONFIRMED:
        return {"tier": _label(_get(data, "tier"))}
    if kind is MailKind.SUBSCRIPTION_CANCELLED:
        return {"tier": _label(_get(data, "tier")), "ends_on": day(_int(data, "ends_at"))}
    if kind is MailKind.SUBSCRIPTION_ENDED:
        return {}
    if kind is MailKind.PAYMENT_FAILED:
        currency = data.get("currency") or "usd"
        return {
            "invoice": _label(_get(data, "invoice")),
            "amount": money(_int(data, "amount"), currency),
        }
    return {
        "balance": f"{_int(data, 'balance'):,}",
        "last_topup": f"{_int(data, 'last_topup'):,}",
    }


def _get(data: Mapping[str, str], name: str) -> str:
    value = data.get(name)
    if value is None:
        raise BillingMailError(f"the mail needs {name!r}")
    return value


def _int(data: Mapping[str, str], name: str) -> int:
    value = _get(data, name)
    text = value.removeprefix("-")
    if not text.isascii() or not text.isdigit():
        raise BillingMailError(f"{name!r} is not a whole number")
    return int(value)


def _label(value: str) -> str:
    """A value from Stripe as the mail shows it: one line, at most MAX_LABEL characters."""
    return " ".join(_CONTROL.sub(" ", value).split())[:MAX_LABEL]

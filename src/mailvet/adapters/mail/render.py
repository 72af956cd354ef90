"""Mail templates to messages: `render(mail, settings)` builds the multipart/alternative
`EmailMessage` (plain text first, then HTML) of an `OutgoingMail`.

Templates are Jinja2 files in `mailvet/mail_templates/` (`<name>.txt`, `<name>.html`); HTML
is autoescaped, and a key a template needs but the context lacks is an error
(StrictUndefined), never an empty hole. Besides the mail's context the templates get
`public_url` (MAILVET_PUBLIC_URL, without a trailing slash) and empty defaults for the
optional `first_name`, `filename` and `reason`. The subject is fixed per template: no user
data reaches a header but the recipient, which `OutgoingMail` has checked.
"""

from __future__ import annotations

import datetime
import email.policy
import email.utils
import functools
from email.message import EmailMessage
from pathlib import Path

import jinja2

from mailvet.domain.mail import OutgoingMail
from mailvet.settings import Settings

TEMPLATES = Path(__file__).resolve().parent.parent.parent / "mail_templates"

SUBJECTS: dict[str, str] = {
    "confirm_code": "Your mailvet confirmation code",
    "password_reset": "Reset your mailvet password",
    "password_changed": "Your mailvet password was changed",
    "account_exists": "You already have a mailvet account",
    "two_factor_enabled": "Two-factor authentication is on for your mailvet account",
    "two_factor_disabled": "Two-factor authentication is off for your mailvet account",
    "job_completed": "Your list is validated",
    "sessions_ended": "You were signed out of mailvet everywhere",
    "subscription_confirmed": "Your mailvet subscription is active",
    "subscription_cancelled": "Your mailvet subscription is cancelled",
    "subscription_ended": "Your mailvet subscription has ended",
    "payment_failed": "A mailvet payment failed",
    "low_credits": "Your mailvet credits are running low",
}

OPTIONAL: dict[str, str] = {"filename": ""}  # job_completed without a file name


@functools.cache
def _environment() -> jinja2.Environment:
    """The Jinja environment, made on first use (not at import)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def sender_domain(sender: str) -> str:
    """The domain of the From: address (for Message-IDs), `localhost` if it has none."""
    _name, address = email.utils.parseaddr(sender)
    return address.rpartition("@")[2] or "localhost"


def render(
    mail: OutgoingMail,
    settings: Settings,
    *,
    message_id: str | None = None,
    now: datetime.datetime | None = None,
) -> EmailMessage:
    """The message of `mail`, From MAILVET_MAILER_FROM, with a Date and a Message-ID.

    `message_id`: a stable id (the outbox passes its row's, so a message sent again after a
    crash carries the same Message-ID and a receiving system can drop the copy); default a
    fresh one. Raises jinja2.TemplateError if a template cannot be rendered.
    """
    context = {
        **OPTIONAL,
        **mail.context,
        "public_url": settings.web.public_url.rstrip("/"),
    }
    environment = _environment()
    text = environment.get_template(f"{mail.template}.txt").render(context)
    html = environment.get_template(f"{mail.template}.html").render(context)

    message = EmailMessage(policy=email.policy.SMTP)
    message["Subject"] = SUBJECTS[mail.template]
    message["From"] = settings.mailer.sender
    message["To"] = mail.to  # one plain address (OutgoingMail); the header refuses CR/LF too
    message["Date"] = email.utils.format_datetime(now or datetime.datetime.now(datetime.UTC))
    domain = sender_domain(settings.mailer.sender)
    message["Message-ID"] = (
        f"<{message_id}@{domain}>" if message_id else email.utils.make_msgid(domain=domain)
    )
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message

"""The log mailer of the embedded default: each message goes to the log instead of a mail
server, so a self-hoster can sign up and confirm without one.

It writes the recipient, the subject and the plain-text body (which holds the confirmation
code or the reset link) at WARNING level under the event `mail.logged`. This is the one place
where a code or an address reaches the log, and only because the log is the delivery channel
the operator chose (MAILVET_MAILER=log); every other log line keeps them out.
"""

from __future__ import annotations

from email.message import EmailMessage

from mailvet.domain.mail import MailDeliveryError
from mailvet.logs import logger


def plain_text(message: EmailMessage) -> str:
    """The text/plain part of `message`, decoded ('' if it has none)."""
    part = message.get_body(preferencelist=("plain",))
    if not isinstance(part, EmailMessage):
        return ""
    content = part.get_content()
    return content if isinstance(content, str) else ""


class LogMailer:
    async def send(self, message: EmailMessage) -> None:
        try:
            body = plain_text(message)
        except (KeyError, LookupError, ValueError) as exc:  # an undecodable part
            raise MailDeliveryError(f"cannot read the text part: {exc}", temporary=False) from exc
        logger("mailvet.mail").warning(
            "mail.logged",
            to=str(message["To"]),
            subject=str(message["Subject"]),
            message_id=str(message["Message-ID"]),
            body=body,
        )

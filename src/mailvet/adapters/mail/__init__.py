"""Mailers, picked by MAILVET_MAILER: `smtp` (a mail server, aiosmtplib), `log` (the message
goes to the log: the embedded default) and `memory` (kept in a list: tests).

Nothing here imports aiosmtplib or Jinja until a message is sent or rendered.
"""

from __future__ import annotations

from mailvet.domain.mail import Mailer
from mailvet.settings import MailerSettings


def build_mailer(settings: MailerSettings) -> Mailer:
    """The mailer `settings.backend` names, configured from `settings`."""
    if settings.backend == "smtp":
        from mailvet.adapters.mail.smtp import SmtpMailer

        return SmtpMailer.from_settings(settings)
    if settings.backend == "log":
        from mailvet.adapters.mail.log import LogMailer

        return LogMailer()
    from mailvet.adapters.mail.memory import MemoryMailer

    return MemoryMailer()

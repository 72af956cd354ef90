"""The SMTP mailer: hands each message to the configured mail server with aiosmtplib.

One connection per message (the outbox sends few, and a connection kept open would need its
own health checks). TLS:
- MAILVET_MAILER_STARTTLS on: STARTTLS is required and the server's certificate is checked
  against the system's trust store (or `cert_bundle`); a server that does not offer it, or
  whose certificate does not check out, fails the attempt, temporarily: the mail stays in the
  outbox. Port 465 means TLS from the first byte, checked the same way.
- off: opportunistic (RFC 7435): STARTTLS whenever the server offers it, without checking the
  certificate (it keeps a passive listener out; an active one could strip STARTTLS anyway,
  which is what "required" is for), so a local relay with a self-made certificate works.
AUTH is used when a user name is set, and only over TLS whose certificate is checked:
STARTTLS on, or port 465. A user name with STARTTLS off is refused with the settings
(`MailerSettings.__post_init__`, a SettingsError at start-up): opportunistic TLS would hand
MAILVET_MAILER_PASSWORD to anyone who strips STARTTLS or shows any certificate.

Every failure is a MailDeliveryError: permanent only when the server refuses the recipient
with a 5xx reply (that address cannot receive mail as it is); everything else (no route,
timeout, 4xx, refused sender or credentials: a configuration the operator can fix) is
temporary, so the outbox keeps the message and tries again.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage

from mailvet.domain.mail import MailDeliveryError
from mailvet.settings import IMPLICIT_TLS_PORT, MailerSettings


@dataclass(frozen=True)
class SmtpMailer:
    host: str
    port: int
    username: str = ""
    password: str = ""
    starttls: bool = False
    timeout: float = 30.0
    # a PEM bundle to trust instead of the system's (a private mail server; the tests)
    cert_bundle: str | None = None

    @classmethod
    def from_settings(cls, settings: MailerSettings) -> SmtpMailer:
        return cls(
            host=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password,
            starttls=settings.starttls,
            timeout=settings.timeout,
        )

    async def send(self, message: EmailMessage) -> None:
        import aiosmtplib  # imported by the sender's process only

        implicit = self.port == IMPLICIT_TLS_PORT
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                username=self.username or None,
                password=self.password if self.username else None,
                use_tls=implicit,
                start_tls=False if implicit else (True if self.starttls else None),
                validate_certs=implicit or self.starttls,
                timeout=self.timeout,
                cert_bundle=self.cert_bundle,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients]
            permanent = bool(codes) and all(500 <= code < 600 for code in codes)
            raise MailDeliveryError(
                f"recipient refused ({', '.join(map(str, codes))})", temporary=not permanent
            ) from exc
        except aiosmtplib.SMTPRecipientRefused as exc:
            raise MailDeliveryError(
                f"recipient refused ({exc.code})", temporary=not 500 <= exc.code < 600
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise MailDeliveryError(
                f"{type(exc).__name__} {exc.code}: {exc.message}", temporary=True
            ) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailDeliveryError(f"{type(exc).__name__}: {exc}", temporary=True) from exc

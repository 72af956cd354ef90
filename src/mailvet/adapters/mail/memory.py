"""The in-memory mailer of the tests: keeps what it was given in `sent`, and can be told to
fail its next attempts."""

from __future__ import annotations

from email.message import EmailMessage

from mailvet.domain.mail import MailDeliveryError


class MemoryMailer:
    """`sent`: the messages delivered, in order. `fail(n, temporary=...)`: the next `n`
    attempts raise MailDeliveryError instead (counted in `attempts`, kept out of `sent`)."""

    def __init__(self, *, fail_times: int = 0, temporary: bool = True) -> None:
        self.sent: list[EmailMessage] = []
        self.attempts = 0
        self._failures = fail_times
        self._temporary = temporary

    def fail(self, times: int, *, temporary: bool = True) -> None:
        self._failures = times
        self._temporary = temporary

    async def send(self, message: EmailMessage) -> None:
        self.attempts += 1
        if self._failures > 0:
            self._failures -= 1
            kind = "temporary" if self._temporary else "permanent"
            raise MailDeliveryError(
                f"memory mailer told to fail ({kind})", temporary=self._temporary
            )
        self.sent.append(message)

    def to(self, address: str) -> list[EmailMessage]:
        """The messages sent to `address`, in order."""
        return [message for message in self.sent if message["To"] == address]

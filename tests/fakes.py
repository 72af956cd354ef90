"""Fakes for the DNS and SMTP ports that take a function (httpx MockTransport style)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from mailvet.domain.ports import MailRoute, ProbeResult, RouteKind
from mailvet.domain.smtp_reply import Reply


class FakeResolver:
    def __init__(self, route: Callable[[str], MailRoute] | None = None) -> None:
        self._route = route or (lambda domain: MailRoute(RouteKind.MX, (f"mx.{domain}",)))
        self.asked: list[str] = []

    async def mail_route(self, domain: str) -> MailRoute:
        self.asked.append(domain)
        return self._route(domain)

    async def host_addresses(self, host: str) -> list[str]:
        return ["192.0.2.1"]


ACCEPT = Reply(250, "2.1.5", "OK")
UNKNOWN = Reply(550, "5.1.1", "User unknown")


class FakeProber:
    """Answers every recipient with `answer(recipient)` after `delay` seconds."""

    def __init__(
        self,
        answer: Callable[[str], Reply] = lambda rcpt: UNKNOWN if rcpt.startswith("mailvet-") else ACCEPT,
        delay: float = 0.0,
    ) -> None:
        self._answer = answer
        self._delay = delay
        self.recipients: list[str] = []

    async def probe(
        self, hosts: Sequence[str], recipients: Sequence[str], *, solo: bool = False
    ) -> list[ProbeResult]:
        self.recipients.extend(recipients)
        if self._delay:
            await asyncio.sleep(self._delay)
        return [ProbeResult(mx=hosts[0], reply=self._answer(r)) for r in recipients]

    async def close(self) -> None:
        pass

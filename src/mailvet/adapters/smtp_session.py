"""One SMTP client conversation (RFC 5321), as far as RCPT TO: we never send DATA.

Reads the greeting before anything else, EHLO with HELO fallback, then transactions of
MAIL FROM + several RCPT TO + RSET. With PIPELINING (RFC 2920) a whole transaction is one
write and one round trip. Every socket operation runs under the configured timeout.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

from mailvet.domain.smtp_reply import Reply, parse_reply

_REPLY_LINE = re.compile(rb"^([2-5][0-9][0-9])([ -]?)(.*?)\r?\n?$", re.S)
MAX_REPLY_LINES = 100


class SessionError(Exception):
    """The session cannot go on."""


class SessionTimeout(SessionError):
    pass


class SessionLost(SessionError):
    """Connection refused, reset or closed by the server."""


class SessionRefused(SessionError):
    """The server said no at greeting or EHLO/HELO (e.g. 421, 554)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"{reply.code} {reply.enhanced} {reply.text}".strip())
        self.reply = reply


class BadReply(SessionError):
    """The server's reply is not SMTP."""


class Transaction:
    """Replies of one MAIL FROM + RCPT TO... transaction.

    `rcpts` may be shorter than the recipients sent when the server ended the session
    (421 or a closed connection) part-way; `alive` is then False.
    """

    __slots__ = ("alive", "mail", "rcpts")

    def __init__(self, mail: Reply, rcpts: list[Reply], alive: bool) -> None:
        self.mail = mail
        self.rcpts = rcpts
        self.alive = alive


class SmtpSession:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float):
        self._reader = reader
        self._writer = writer
        self._timeout = timeout
        self.extensions: set[str] = set()

    @classmethod
    async def open(
        cls, host: str, port: int, helo_name: str, timeout: float
    ) -> SmtpSession:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise SessionTimeout(f"connect to {host}:{port} timed out") from exc
        except OSError as exc:
            raise SessionLost(f"connect to {host}:{port}: {exc.strerror or exc}") from exc
        session = cls(reader, writer, timeout)
        try:
            greeting = await session.read_reply()
            if greeting.code != 220:
                raise SessionRefused(greeting)
            await session._hello(helo_name)
        except BaseException:
            await session.close(quit=False)
            raise
        return session

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.extensions

    async def _hello(self, helo_name: str) -> None:
        ehlo = await self.command(f"EHLO {helo_name}")
        if ehlo.code == 250:
            self.extensions = {
                line.split()[0].upper() for line in ehlo.text.split("\n")[1:] if line.strip()
            }
            return
        if ehlo.code == 421:
            raise SessionRefused(ehlo)
        helo = await self.command(f"HELO {helo_name}")
        if helo.code != 250:
            raise SessionRefused(helo)
        self.extensions = set()

    async def command(self, line: str) -> Reply:
        await self._write(line.encode("utf-8") + b"\r\n")
        return await self.read_reply()

    async def transaction(self, mail_from: str, recipients: Sequence[str]) -> Transaction:
        """MAIL FROM, one RCPT TO per recipient, then RSET; pipelined when offered."""
        commands = [f"MAIL FROM:<{mail_from}>"]
        commands += [f"RCPT TO:<{rcpt}>" for rcpt in recipients]
        commands.append("RSET")
        replies: list[Reply] = []
        alive = True
        try:
            if self.pipelining:
                await self._write("".join(f"{c}\r\n" for c in commands).encode("utf-8"))
                for _ in commands:
                    replies.append(await self.read_reply())
                    if replies[-1].code == 421:
                        alive = False
                        break
            else:
                for command in commands:
                    replies.append(await self.command(command))
                    if replies[-1].code == 421:
                        alive = False
                        break
                    if len(replies) == 1 and replies[0].code >= 400:
                        await self.command("RSET")
                        break
        except SessionLost:
            if not replies:
                raise
            alive = False
        mail = replies[0]
        rcpts = replies[1 : 1 + len(recipients)] if mail.code < 400 else []
        if rcpts and rcpts[-1].code == 421:
            rcpts.pop()
        return Transaction(mail, rcpts, alive)

    async def _write(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            await asyncio.wait_for(self._writer.drain(), self._timeout)
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise SessionTimeout("write timed out") from exc
        except OSError as exc:
            raise SessionLost(str(exc)) from exc

    async def _readline(self) -> bytes:
        try:
            line = await asyncio.wait_for(self._reader.readline(), self._timeout)
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise SessionTimeout("no reply within the timeout") from exc
        except (OSError, asyncio.LimitOverrunError, ValueError) as exc:
            raise SessionLost(str(exc)) from exc
        if not line:
            raise SessionLost("connection closed by the server")
        return line

    async def read_reply(self) -> Reply:
        """Read one (possibly multi-line) reply."""
        texts: list[str] = []
        code = 0
        for _ in range(MAX_REPLY_LINES):
            line = await self._readline()
            match = _REPLY_LINE.match(line)
            if match is None:
                raise BadReply(f"not an SMTP reply: {line[:80]!r}")
            this_code = int(match.group(1))
            if code and this_code != code:
                raise BadReply("reply code changed inside a multi-line reply")
            code = this_code
            texts.append(match.group(3).decode("utf-8", "replace"))
            if match.group(2) != b"-":
                reply = parse_reply(code, texts[:1])
                # keep every line (EHLO keywords) but classify on the first line's status
                return Reply(reply.code, reply.enhanced, "\n".join([reply.text, *texts[1:]]))
        raise BadReply("reply has too many lines")

    async def close(self, *, quit: bool = True) -> None:
        """Say QUIT (briefly) and close; the socket is closed even if we are cancelled."""
        try:
            if quit and not self._writer.is_closing():
                try:
                    self._writer.write(b"QUIT\r\n")
                    await asyncio.wait_for(self._writer.drain(), min(self._timeout, 2.0))
                    await asyncio.wait_for(self._reader.readline(), min(self._timeout, 2.0))
                except (OSError, TimeoutError, asyncio.TimeoutError, ValueError):
                    pass
        finally:
            self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 2.0)
        except (OSError, TimeoutError, asyncio.TimeoutError):
            pass

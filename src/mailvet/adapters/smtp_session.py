"""One SMTP client conversation (RFC 5321), as far as RCPT TO: we never send DATA.

Reads the greeting before anything else, EHLO with HELO fallback, STARTTLS when offered
(RFC 3207, opportunistic: the certificate is not verified unless asked) and EHLO again, then
transactions of MAIL FROM + several RCPT TO + RSET. With PIPELINING (RFC 2920) a whole
transaction is one write and one round trip, and so are several (`transactions`: a group of
pipelined commands may go on after RSET).

Time: every reply must be complete within `timeout` in total, however many lines it has
(a server trickling a 100-line banner one line at a time costs one timeout, not 100).

What the server says is checked before it is believed:

- a line cut off at the end of the stream (no CRLF, connection closed) is a lost session
  (`SessionLost`), never a reply;
- a line that is not SMTP (no 3-digit code, code changing inside a multi-line reply, a line
  over `MAX_LINE_BYTES`, more than `MAX_REPLY_LINES` lines) is a `BadReply`;
- in a transaction, a garbled reply to a RCPT ends the session: `Transaction.garbled` is the
  index of that recipient and `Transaction.rcpts` holds exactly the replies before it, so no
  reply is ever shifted onto the wrong address. We do not try to resynchronise: after one
  garbage reply nothing tells which command the next line answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Sequence

from mailvet import metrics
from mailvet.domain.smtp_reply import Reply, parse_reply

_REPLY_LINE = re.compile(rb"^([2-5][0-9][0-9])([ -]|(?=\r?\n$))(.*?)\r?\n$", re.DOTALL)
MAX_REPLY_LINES = 100
MAX_LINE_BYTES = 4096  # RFC 5321 4.5.3.1.5 allows 512; real servers stay far below this
_STREAM_LIMIT = 64 * 1024  # the StreamReader buffer limit (a longer line is a BadReply)


class SessionError(Exception):
    """The session cannot go on."""


class SessionTimeout(SessionError):
    pass


class SessionLost(SessionError):
    """Connection refused, reset or closed by the server (a reply cut off included)."""


class TlsFailed(SessionLost):
    """The TLS handshake after STARTTLS failed; the server may still be probed without TLS."""


class SessionRefused(SessionError):
    """The server said no at greeting or EHLO/HELO (e.g. 421, 554)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"{reply.code} {reply.enhanced} {reply.text}".strip())
        self.reply = reply


class BadReply(SessionError):
    """The server's reply is not SMTP."""


class Transaction:
    """Replies of one MAIL FROM + RCPT TO... transaction.

    `rcpts` is in step with the recipients sent: `rcpts[i]` answers `recipients[i]`. It is
    shorter than the recipients when the session ended part-way; `alive` is then False:

    - the server said 421 (the 421 is not in `rcpts`) or the connection was lost or timed
      out after the MAIL FROM reply: `lost` is the SessionError when there was one;
    - the reply to `recipients[garbled]` was not valid SMTP: `garbled` is that index,
      `rcpts` holds exactly the replies before it and the session has been closed.
    """

    __slots__ = ("alive", "garbled", "lost", "mail", "rcpts")

    def __init__(
        self,
        mail: Reply,
        rcpts: list[Reply],
        alive: bool,
        garbled: int | None = None,
        lost: SessionError | None = None,
    ) -> None:
        self.mail = mail
        self.rcpts = rcpts
        self.alive = alive
        self.garbled = garbled
        self.lost = lost


class SmtpSession:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float):
        self._reader = reader
        self._writer = writer
        self._timeout = timeout
        self._closed = False
        self.extensions: set[str] = set()
        self.tls = False

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        helo_name: str,
        timeout: float,  # noqa: ASYNC109 - the limit of each reply, kept for the session
        *,
        starttls: bool = True,
        tls_verify: bool = False,
        tls_server_name: str | None = None,
    ) -> SmtpSession:
        """Connect, read the greeting, EHLO (HELO fallback), STARTTLS when offered.

        `tls_server_name` (the MX host name) is sent as SNI and, with `tls_verify`, checked
        against the certificate (the connected address when None). Raises SessionTimeout,
        SessionLost (TlsFailed when the TLS handshake failed: retry with starttls=False),
        SessionRefused or BadReply.
        """
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=_STREAM_LIMIT), timeout
            )
        except TimeoutError as exc:
            metrics.smtp_session("connect_timeout")
            raise SessionTimeout(f"connect to {host}:{port} timed out") from exc
        except OSError as exc:
            metrics.smtp_session("connect_failed")
            raise SessionLost(f"connect to {host}:{port}: {exc.strerror or exc}") from exc
        session = cls(reader, writer, timeout)
        try:
            greeting = await session.read_reply()
            if greeting.code != 220:
                raise SessionRefused(greeting)
            await session._hello(helo_name)
            if starttls and "STARTTLS" in session.extensions:
                await session._starttls(
                    _tls_context(tls_verify), tls_server_name or (host if tls_verify else None)
                )
                await session._hello(helo_name)
        except BaseException:
            metrics.smtp_session("failed")
            await session.close(quit=False)
            raise
        metrics.smtp_session("open")
        return session

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.extensions

    @property
    def smtputf8(self) -> bool:
        """The server takes non-ASCII addresses (RFC 6531) with MAIL FROM ... SMTPUTF8."""
        return "SMTPUTF8" in self.extensions

    async def _hello(self, helo_name: str) -> None:
        ehlo, lines = await self._command_lines(f"EHLO {helo_name}")
        if ehlo.code == 250:
            # keywords from the raw lines: independent of how parse_reply joins the text
            self.extensions = {line.split()[0].upper() for line in lines[1:] if line.strip()}
            return
        if ehlo.code == 421:
            raise SessionRefused(ehlo)
        helo = await self.command(f"HELO {helo_name}")
        if helo.code != 250:
            raise SessionRefused(helo)
        self.extensions = set()

    async def _starttls(self, context: ssl.SSLContext, server_name: str | None) -> None:
        reply = await self.command("STARTTLS")
        if reply.code == 421:
            raise SessionRefused(reply)
        if reply.code != 220:
            return  # e.g. 454 TLS not available: go on in the clear, as MTAs do
        if buffered(self._reader):
            # bytes after the 220 were sent in the clear, yet would be read as if they came
            # over TLS (the STARTTLS injection flaw, CVE-2011-0411 from the client side)
            raise TlsFailed("data after the reply to STARTTLS")
        try:
            await asyncio.wait_for(
                self._writer.start_tls(
                    context, server_hostname=server_name, ssl_handshake_timeout=self._timeout
                ),
                self._timeout,
            )
        except TimeoutError as exc:
            raise TlsFailed("TLS handshake timed out") from exc
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            raise TlsFailed(f"TLS handshake failed: {exc}") from exc
        self.tls = True
        self.extensions = set()  # RFC 3207 4.2: forget what was said in the clear

    async def command(self, line: str) -> Reply:
        return (await self._command_lines(line))[0]

    async def _command_lines(self, line: str) -> tuple[Reply, list[str]]:
        await self._write(line.encode("utf-8") + b"\r\n")
        return await self._read_reply_lines()

    async def transaction(
        self, mail_from: str, recipients: Sequence[str], *, smtputf8: bool = False
    ) -> Transaction:
        """MAIL FROM, one RCPT TO per recipient, then RSET; pipelined when offered.

        `mail_from` "" is the null reverse-path `MAIL FROM:<>`; `smtputf8` adds the SMTPUTF8
        parameter (send non-ASCII recipients only when `self.smtputf8`). Raises BadReply when
        the reply to MAIL FROM is garbage (the session is closed) and SessionError when the
        session ends before the MAIL FROM reply; see Transaction for the other endings.
        """
        done, error = await self.transactions(mail_from, [(recipients, smtputf8)])
        if error is not None:
            raise error
        return done[0]

    async def transactions(
        self, mail_from: str, groups: Sequence[tuple[Sequence[str], bool]]
    ) -> tuple[list[Transaction], SessionError | None]:
        """Several transactions (each `(recipients, smtputf8)` as for `transaction`), in one
        write with PIPELINING, so in one round trip: RFC 2920 3.1 lets a group of pipelined
        commands go on after RSET. Each is its own transaction: nothing of one is seen by
        the next.

        Returns the transactions answered, in order, and the error that ended the session
        before the MAIL FROM reply of the next one (None when every group got its
        Transaction). A Transaction that is not alive ends the list: the groups after it
        were not answered.
        """
        commands = [self._commands(mail_from, recipients, utf8) for recipients, utf8 in groups]
        done: list[Transaction] = []
        if self.pipelining:
            try:
                await self._write(
                    "".join(f"{c}\r\n" for group in commands for c in group).encode("utf-8")
                )
            except SessionError as exc:
                await self.close(quit=False)
                return done, exc
        for group, (recipients, _) in zip(commands, groups, strict=True):
            replies: list[Reply] = []
            alive = True
            garbled: int | None = None
            lost: SessionError | None = None
            try:
                if self.pipelining:
                    for _ in group:
                        replies.append(await self.read_reply())
                        if replies[-1].code == 421:
                            alive = False
                            break
                else:
                    for command in group:
                        replies.append(await self.command(command))
                        if replies[-1].code == 421:
                            alive = False
                            break
                        if len(replies) == 1 and replies[0].code >= 400:
                            await self.command("RSET")
                            break
            except BadReply as exc:
                await self.close(quit=False)
                if not replies:
                    return done, exc
                alive = False
                if len(replies) <= len(recipients):  # a RCPT reply, not the RSET's
                    garbled = len(replies) - 1
            except (SessionLost, SessionTimeout) as exc:
                await self.close(quit=False)
                if not replies:
                    return done, exc
                alive, lost = False, exc
            done.append(_transaction_of(replies, len(recipients), alive, garbled, lost))
            if not alive:
                break
        return done, None

    @staticmethod
    def _commands(mail_from: str, recipients: Sequence[str], smtputf8: bool) -> list[str]:
        mail = f"MAIL FROM:<{mail_from}>" + (" SMTPUTF8" if smtputf8 else "")
        return [mail, *(f"RCPT TO:<{rcpt}>" for rcpt in recipients), "RSET"]

    async def _write(self, data: bytes) -> None:
        if self._closed:
            raise SessionLost("session already closed")
        metrics.smtp_commands(data)
        try:
            self._writer.write(data)
            if self._writer.transport.get_write_buffer_size():
                await asyncio.wait_for(self._writer.drain(), self._timeout)
            else:  # all sent: drain cannot block (it still reports a lost connection)
                await self._writer.drain()
        except TimeoutError as exc:
            raise SessionTimeout("write timed out") from exc
        except (OSError, RuntimeError) as exc:  # RuntimeError: write on a closed SSL transport
            raise SessionLost(str(exc) or type(exc).__name__) from exc

    async def _readline(self) -> bytes:
        """One line with its line end; the caller bounds the time."""
        try:
            line = await self._reader.readline()
        except ValueError as exc:  # LimitOverrunError turned into ValueError by readline
            raise BadReply("reply line too long") from exc
        except OSError as exc:
            raise SessionLost(str(exc) or type(exc).__name__) from exc
        if not line:
            raise SessionLost("connection closed by the server")
        if not line.endswith(b"\n"):
            raise SessionLost(f"reply cut off by the end of the stream: {line[:80]!r}")
        if len(line) > MAX_LINE_BYTES:
            raise BadReply(f"reply line of {len(line)} bytes")
        return line

    async def read_reply(self) -> Reply:
        """Read one (possibly multi-line) reply, within one timeout in total."""
        return (await self._read_reply_lines())[0]

    async def _read_reply_lines(self) -> tuple[Reply, list[str]]:
        """The reply and its text lines (without the code), within one timeout in total.

        The timeout starts at the first line that is not here yet: the replies to a
        pipelined transaction mostly come in one segment, and a line already buffered is
        read without a timer (one per reply was a good part of a big job's CPU)."""
        if self._closed:
            raise SessionLost("session already closed")
        texts: list[str] = []
        code = 0
        deadline: float | None = None
        for _ in range(MAX_REPLY_LINES):
            if b"\n" in buffered(self._reader):
                line = await self._readline()  # returns without waiting
            else:
                if deadline is None:
                    deadline = asyncio.get_running_loop().time() + self._timeout
                try:
                    async with asyncio.timeout_at(deadline):
                        line = await self._readline()
                except TimeoutError as exc:
                    raise SessionTimeout("no complete reply within the timeout") from exc
            match = _REPLY_LINE.match(line)
            if match is None:
                raise BadReply(f"not an SMTP reply: {line[:80]!r}")
            this_code = int(match.group(1))
            if code and this_code != code:
                raise BadReply("reply code changed inside a multi-line reply")
            code = this_code
            texts.append(match.group(3).decode("utf-8", "replace"))
            if match.group(2) != b"-":
                metrics.smtp_reply(code)
                return parse_reply(code, texts), texts
        raise BadReply(f"reply has more than {MAX_REPLY_LINES} lines")

    async def close(self, *, quit: bool = True) -> None:
        """Say QUIT (briefly) and close; idempotent; the socket is closed even if cancelled."""
        if self._closed:
            return
        self._closed = True
        try:
            if quit and not self._writer.is_closing():
                try:
                    self._writer.write(b"QUIT\r\n")
                    await asyncio.wait_for(self._writer.drain(), min(self._timeout, 2.0))
                    await asyncio.wait_for(self._reader.readline(), min(self._timeout, 2.0))
                except (OSError, RuntimeError, TimeoutError, ValueError):
                    pass
        finally:
            self._writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self._writer.wait_closed(), 2.0)


def _transaction_of(
    replies: list[Reply],
    recipients: int,
    alive: bool,
    garbled: int | None,
    lost: SessionError | None,
) -> Transaction:
    """The Transaction of a transaction's replies (MAIL FROM's first)."""
    mail_reply = replies[0]
    rcpts = replies[1 : 1 + recipients] if mail_reply.code < 400 else []
    if rcpts and rcpts[-1].code == 421:
        rcpts.pop()
    if mail_reply.code >= 400:
        garbled = None  # the RCPTs were not considered: none is garbled
    return Transaction(mail_reply, rcpts, alive, garbled, lost)


def _tls_context(verify: bool) -> ssl.SSLContext:
    """Opportunistic TLS as MTAs do it: encryption without authentication unless `verify`."""
    if verify:
        return ssl.create_default_context()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def buffered(reader: asyncio.StreamReader) -> bytes | bytearray:
    """What `reader` has received and not yet handed out. asyncio has no public accessor:
    this reads CPython's private `StreamReader._buffer` (a bytearray in 3.11 to 3.13, the
    versions checked; tests/unit/test_smtp_timers.py fails if it goes). Without it the
    STARTTLS check would see no data after the 220, and every reply line would be timed."""
    return getattr(reader, "_buffer", b"")

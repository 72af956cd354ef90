"""A local SMTP server that keeps what it receives: the tests' mail catcher.

`MailCatcher` runs aiosmtpd in its own thread on 127.0.0.1 with an ephemeral port (kept
across `stop()`/`start()`, so a test can take the server down and bring it back on the same
address). Options: AUTH with one user name and password, STARTTLS offered (with a
certificate for 127.0.0.1 and localhost whose PEM is `cert_file`, so a client can be told
to trust it) or not, recipients refused with a given reply.

Use the `mail_catcher` fixture (register it with `from tests.mailcatcher import
mail_catcher` in a conftest or test module): `.messages` is the list of EmailMessage
received, in order, and `await catcher.wait_for(2)` or
`await catcher.wait_for(lambda m: m["To"] == "ann@example.com")` waits without polling.
"""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import ipaddress
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True)
class Received:
    """One message as the server saw it: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    tls: bool  # the session had switched to TLS (STARTTLS) before the message


class _Handler:
    def __init__(self, catcher: MailCatcher) -> None:
        self._catcher = catcher

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        reply = self._catcher.refuse.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        assert isinstance(raw, bytes)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self._catcher._receive(
            Received(
                str(envelope.mail_from),
                tuple(envelope.rcpt_tos),
                message,
                tls=session.ssl is not None,
            )
        )
        return "250 OK: queued"


class _EphemeralController(Controller):
    """aiosmtpd's controller, able to bind port 0 (its readiness probe would connect to
    port 0: take the bound port first)."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


@dataclass(eq=False)
class MailCatcher:
    """See the module docstring. `credentials`: (user, password) turns AUTH on (allowed
    without TLS, as a test server); `starttls`: offer STARTTLS; `refuse`: lower-cased
    recipient -> the reply to RCPT TO (e.g. "550 5.1.1 no such user")."""

    credentials: tuple[str, str] | None = None
    starttls: bool = False
    refuse: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 0
    received: list[Received] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._controller: _EphemeralController | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self.cert_file: Path | None = None
        self._tls: ssl.SSLContext | None = None

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return [item.message for item in self.received]

    def start(self) -> None:
        if self._controller is not None:
            return
        if self.starttls and self._tls is None:
            self._tls = self._server_context()
        kwargs: dict[str, Any] = {}
        if self.credentials is not None:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        if self._tls is not None:
            kwargs.update(tls_context=self._tls)
        controller = _EphemeralController(
            _Handler(self), hostname=self.host, port=self.port, ready_timeout=10, **kwargs
        )
        controller.start()
        self.port = controller.port
        self._controller = controller

    def stop(self) -> None:
        """Stop listening (the port is kept for the next `start()`)."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def close(self) -> None:
        self.stop()
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    # a deadline of its own, as tests/waiting.until has: every caller wants one
    async def wait_for(
        self,
        what: int | Callable[[EmailMessage], bool],
        *,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[EmailMessage]:
        """Wait until `what` messages have come (an int), or one that `what(message)` likes;
        returns those messages (all of them, or the liked ones). TimeoutError after
        `timeout` seconds."""

        def ready() -> list[EmailMessage] | None:
            messages = self.messages
            if isinstance(what, int):
                return messages if len(messages) >= what else None
            liked = [message for message in messages if what(message)]
            return liked or None

        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while True:
                event = asyncio.Event()
                with self._lock:
                    self._waiters.append((loop, event))
                try:
                    found = ready()
                    if found is not None:
                        return found
                    await event.wait()
                finally:
                    with self._lock:
                        self._waiters.remove((loop, event))

    def _receive(self, item: Received) -> None:
        with self._lock:
            self.received.append(item)
            waiters = list(self._waiters)
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert self.credentials is not None
        if isinstance(data, LoginPassword):
            user, password = data.login.decode(), data.password.decode()
            if (user, password) == self.credentials:
                self.logins.append(user)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def _server_context(self) -> ssl.SSLContext:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._folder = tempfile.TemporaryDirectory(prefix="mailcatcher-")
        folder = Path(self._folder.name)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = datetime.datetime.now(datetime.UTC)
        names: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address(self.host)),
        ]
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        self.cert_file = folder / "cert.pem"
        key_file = folder / "key.pem"
        self.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, key_file)
        return context


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (for a server that is down)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def mail_catcher() -> Iterator[MailCatcher]:
    """A started catcher (no AUTH, no TLS), stopped after the test."""
    catcher = MailCatcher()
    catcher.start()
    try:
        yield catcher
    finally:
        catcher.close()

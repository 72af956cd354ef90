"""A webhook receiver for the tests (a plain asyncio HTTP/1.1 server on 127.0.0.1, an
ephemeral port, in the test's own loop) that records every request and answers what the
test scripts, and a resolver that answers from a table the test can change between two
calls (DNS rebinding)."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes


@dataclass
class Receiver:
    """Answers each request with the next of `answers` (the last one again once they run
    out); an answer of 0 never answers (the sender's timeout ends the attempt)."""

    answers: list[int] = field(default_factory=lambda: [200])
    received: list[Received] = field(default_factory=list)
    url: str = ""
    host: str = "127.0.0.1"
    port: int = 0
    _never: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _version = lines[0].split(" ", 2)
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append(Received(method, path, headers, body))
            status = self.answers[min(len(self.received) - 1, len(self.answers) - 1)]
            if status == 0:
                await self._never.wait()  # a receiver that hangs; set when the test ends
                return
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".encode()
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def receiving(
    answers: list[int] | None = None, *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[Receiver]:
    """A receiver on 127.0.0.1 (HTTPS with the server context `tls`)."""
    receiver = Receiver(answers=answers or [200])
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0, ssl=tls)
    receiver.port = server.sockets[0].getsockname()[1]
    receiver.url = f"{'https' if tls else 'http'}://127.0.0.1:{receiver.port}"
    try:
        yield receiver
    finally:
        receiver._never.set()
        server.close()
        await server.wait_closed()


class TableResolver:
    """host -> addresses, from `table` (changeable); [] for a host not in it."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = dict(table or {})
        self.asked: list[str] = []

    async def host_addresses(self, host: str) -> list[str]:
        self.asked.append(host)
        return list(self.table.get(host, []))


# an async twin of tests/waiting.py `until`, for a condition only a query can tell (the
# database of another task's writes); ASYNC109/110 as there: there is no event to wait on
async def eventually(probe: Callable[[], Awaitable[T]], *, timeout: float = 30.0) -> T:  # noqa: ASYNC109
    """The first truthy value of `probe()`, asked every few milliseconds; TimeoutError
    after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not (value := await probe()):  # noqa: ASYNC110
            await asyncio.sleep(0.005)
    return value


def certificate_for(name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for the host `name`: (the server's context, a client
    context that trusts it and checks host names)."""
    import tempfile
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert_file.write_bytes(pem)
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=pem.decode())
    return server, client

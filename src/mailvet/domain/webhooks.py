"""Completion webhooks, the rules (issue 9 §3): the event, its signature, when to try again,
which URLs may be called.

- The event: `{"id", "type": "job.completed"|"job.failed", "created", "version", "data":
  {"job": ...}}`, JSON, made once when the event is queued: every attempt sends the same
  bytes, and `id` (`evt_...`) lets a receiver drop a second delivery.
- The signature, as Stripe signs its webhooks: `Mailvet-Signature: t=UNIX_TIME,v1=HEX`,
  HEX = HMAC-SHA256 keyed with the account's secret exactly as shown (`whsec_...`, its UTF-8
  bytes) over `f"{t}.{body}"`. `verify` checks it in constant time, and refuses a `t` further
  than the tolerance (5 minutes) from now, so a captured request cannot be replayed later.
- Retries (`RetrySchedule`): the n-th failed attempt waits 30 s * 2**(n-1), at most an
  hour, and no attempt is made past 24 hours after the event: the last one is at that
  moment, then the delivery is given up (on record).
- URLs (`parse_url`): http or https, no user name or password in it, at most 2,048
  characters, a host name or an IP address. A host written as a number in another form
  (`http://2130706433/`, `http://0x7f.1/`, `http://0177.0.0.1/`, what inet_aton and the
  WHATWG URL parser take for 127.0.0.1) is read as the IPv4 address it is, so the address
  rule sees it. Whatever the host resolves to must pass `domain.network.is_public_ip`
  (server-side request forgery) unless MAILVET_WEBHOOK_ALLOW_PRIVATE.

Pure: no I/O. The use cases are in services/webhooks.py.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import msgspec

from mailvet.domain.network import IpAddress, is_public_ip, parse_ip

SIGNATURE_HEADER = "Mailvet-Signature"
EVENT_VERSION = 1
EventType = Literal["job.completed", "job.failed"]
JOB_COMPLETED: Final = "job.completed"
JOB_FAILED: Final = "job.failed"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix, not a secret
SECRET_BYTES = 32  # 256 bits of randomness
SECRET_LENGTH = 64  # the column: whsec_ + 43 characters of base64url, with room
TOLERANCE = 300  # seconds a signature's time may be from now
MAX_URL = 2048
GIVE_UP_AFTER = datetime.timedelta(hours=24)
_HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}$")


class InvalidWebhookUrl(ValueError):
    """A URL that may not be a webhook's destination (the message says why, for the page)."""


# --- the event ---------------------------------------------------------------------------


class EventData(msgspec.Struct, frozen=True):
    job: Any  # the job as GET /api/v1/jobs/{id} shows it (services.api_jobs.JobView)


class WebhookEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: EventType
    created: int  # UNIX time of the event
    version: int = EVENT_VERSION
    data: EventData


def new_event_id() -> str:
    return f"evt_{secrets.token_hex(16)}"


def event_key(event_type: EventType, job_id: str) -> str:
    """The idempotency key of a job's event: one event of each type per job."""
    return f"{event_type}:{job_id}"


def event_body(
    event_type: EventType, job: Any, *, created: datetime.datetime, event_id: str
) -> bytes:
    """The JSON body of the event (`job`: any msgspec-encodable value)."""
    event = WebhookEvent(
        id=event_id, type=event_type, created=int(created.timestamp()), data=EventData(job)
    )
    return msgspec.json.encode(event)


# --- the signature -----------------------------------------------------------------------


def new_secret() -> str:
    """A new signing secret, `whsec_` and 43 characters (256 random bits)."""
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, timestamp: int) -> str:
    """The `Mailvet-Signature` header's value for `body` sent at `timestamp`."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify(secret: str, body: bytes, header: str, *, now: int, tolerance: int = TOLERANCE) -> bool:
    """Is `header` a valid signature of `body` by `secret`, made within `tolerance` seconds
    of `now`? Any of several `v1` values may match (constant-time comparison each)."""
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance:
        return False
    expected = _digest(secret, timestamp, body)
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    return matched


# --- when to try again -------------------------------------------------------------------


@dataclass(frozen=True)
class RetrySchedule:
    """Exponential backoff until `give_up_after` past the event (see the module docstring)."""

    first_delay: datetime.timedelta = datetime.timedelta(seconds=30)
    max_delay: datetime.timedelta = datetime.timedelta(hours=1)
    give_up_after: datetime.timedelta = GIVE_UP_AFTER

    def delay(self, attempts: int) -> datetime.timedelta:
        """The wait after the `attempts`-th failed attempt (attempts >= 1)."""
        if attempts < 1:
            raise ValueError("attempts starts at 1")
        return min(self.first_delay * (1 << min(attempts - 1, 40)), self.max_delay)

    def next_attempt(
        self, *, attempts: int, created: datetime.datetime, now: datetime.datetime
    ) -> datetime.datetime | None:
        """When to try again after the `attempts`-th attempt failed at `now`, for an event
        made at `created`; None: give up (its 24 hours are over)."""
        deadline = created + self.give_up_after
        if now >= deadline:
            return None
        return min(now + self.delay(attempts), deadline)


# --- which URLs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookUrl:
    """A destination checked for its form: `host` a lower-case name, or the canonical text
    of `ip` when the URL names an address."""

    url: str
    scheme: str  # http | https
    host: str
    ip: IpAddress | None
    port: int
    target: str  # the path and query, at least "/"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        shown = f"[{self.host}]" if isinstance(self.ip, ipaddress.IPv6Address) else self.host
        return shown if self.port == default else f"{shown}:{self.port}"

    def pinned(self, address: IpAddress) -> str:
        """The URL with its host replaced by `address` (the one checked)."""
        literal = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
        return f"{self.scheme}://{literal}:{self.port}{self.target}"


def _ipv4_number(part: str) -> int | None:
    """A part of a numeric IPv4 host as the WHATWG URL parser reads it (0x hex, 0 octal,
    decimal); None when it is not a number."""
    try:
        if part[:2].lower() == "0x":
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part.startswith("0"):
            return int(part[1:], 8)
        return int(part, 10) if part.isdigit() else None
    except ValueError:
        return None


def numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a host written as numbers means (`2130706433`, `0x7f.1`, `127.1`,
    `0177.0.0.1`); None when the host is a name. InvalidWebhookUrl for numbers that make no
    address (a resolver or browser would still try something)."""
    parts = host.split(".")
    if parts and parts[-1] == "":
        parts.pop()
    if not parts or _ipv4_number(parts[-1]) is None:
        return None  # a name: its last label is not a number
    numbers = [_ipv4_number(part) for part in parts]
    if len(parts) > 4 or any(n is None for n in numbers):
        raise InvalidWebhookUrl("The host is neither a name nor an IP address.")
    values = [n for n in numbers if n is not None]
    *head, last = values
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(values)):
        raise InvalidWebhookUrl("The host is neither a name nor an IP address.")
    number = last
    for index, n in enumerate(head):
        number += n << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def parse_url(text: str) -> WebhookUrl:
    """`text` as a webhook's destination, or InvalidWebhookUrl (see the module docstring).
    Says nothing of where the host points: that is `allowed` after resolving it."""
    url = text.strip()
    if not url:
        raise InvalidWebhookUrl("Enter a URL.")
    if len(url) > MAX_URL:
        raise InvalidWebhookUrl(f"A URL is at most {MAX_URL} characters.")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise InvalidWebhookUrl("A URL has no spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidWebhookUrl("This is not a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidWebhookUrl("The URL must start with https:// or http://.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidWebhookUrl("A webhook URL may not hold a user name or password.")
    if parts.fragment:
        raise InvalidWebhookUrl("A webhook URL has no #fragment.")
    raw_host = parts.hostname or ""
    if not raw_host:
        raise InvalidWebhookUrl("The URL has no host.")
    ip: IpAddress | None
    if parts.netloc.split(":")[0].startswith("["):
        ip = parse_ip(raw_host)
        if ip is None or "%" in raw_host:
            raise InvalidWebhookUrl("The host is not a valid IPv6 address.")
        host = str(ip)
    else:
        try:
            host = raw_host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise InvalidWebhookUrl("The host is not a valid name.") from None
        ip = numeric_ipv4(host)
        if ip is not None:
            host = str(ip)
        elif not _HOST_NAME.match(host):
            raise InvalidWebhookUrl("The host is not a valid name.")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return WebhookUrl(
        url=url,
        scheme=scheme,
        host=host,
        ip=ip,
        port=port if port is not None else (443 if scheme == "https" else 80),
        target=target,
    )


def allowed(address: IpAddress, *, allow_private: bool) -> bool:
    """May a webhook connect to `address`?"""
    return allow_private or is_public_ip(address)


def checked_addresses(
    addresses: list[str], *, allow_private: bool
) -> tuple[list[IpAddress], list[IpAddress]]:
    """The (allowed, refused) addresses among those a host resolved to (text that is not an
    address is dropped)."""
    ok: list[IpAddress] = []
    refused: list[IpAddress] = []
    for text in addresses:
        ip = parse_ip(text)
        if ip is None:
            continue
        (ok if allowed(ip, allow_private=allow_private) else refused).append(ip)
    return ok, refused

"""Completion webhooks, the use cases (issue 9 §3; the rules are domain/webhooks.py).

Settings of an account: its signing secret (`secret`: made on first need, `rotate_secret`)
and its default URL (`set_default_url`, checked by `check_url`: the form, then every address
the host resolves to must be allowed). A job started through the API with a `callback_url`
has it stored by `set_job_callback` (call it before the job is submitted); it replaces the
default for that job.

Queueing. When a job of an account ends, `queue_job_event` adds its event (`job.completed`
or `job.failed`) to `webhook_deliveries` under the key `<type>:<job id>`, in the caller's
transaction, with `ON CONFLICT DO NOTHING`: a completion reported twice queues one event.
`WebhookEvents` is the `JobEvents` port's part for this (bootstrap's LazyJobEvents calls it
beside the completion mail). `queue_missing`, swept every minute by the web role
(services.jobs.run_retention), queues what a crash between the job's end and the queueing
left out, and the failures of jobs, which the pipeline reports in places that do not go
through the port (intake's unreadable file or missing credits, an interrupted run).

Delivery (`WebhookSender`, a task of the web role beside the mail outbox's sender): due rows
are claimed as the outbox claims them (a lease, `FOR UPDATE SKIP LOCKED` on PostgreSQL), then
each is POSTed outside any transaction: the host is resolved now, every address it gives is
checked, and the request goes to the first allowed one — pinned, so a DNS answer changed
after the check (rebinding) cannot send it elsewhere — with the original Host header and TLS
name. No redirect is followed, no proxy from the environment is used, the answer's body is
not read. 2xx: delivered. Anything else, a refused address, a timeout
(MAILVET_WEBHOOK_TIMEOUT): tried again on `RetrySchedule` until 24 hours after the event,
then given up. Each attempt is on record (`attempt_log`, shown on /app/webhooks). At least
once: a sender that dies after the receiver's answer sends it again when the lease ends;
the event id lets the receiver drop the copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from sqlalchemy import String, and_, delete, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.account_models import AccountRow
from mailvet.adapters.db.database import Database, dialect_insert, rowcount
from mailvet.adapters.db.models import JobRow
from mailvet.adapters.db.webhook_models import (
    JobCallbackRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
)
from mailvet.clock import Clock, utc_now
from mailvet.domain import webhooks as rules
from mailvet.domain.job import Job, JobStatus
from mailvet.domain.network import IpAddress
from mailvet.logs import logger
from mailvet.settings import Settings

PENDING = "pending"
DELIVERED = "delivered"
GIVEN_UP = "given_up"
LEASE_MARGIN = datetime.timedelta(minutes=1)
PURGE_EVERY = datetime.timedelta(hours=1)
MAX_ERROR = 500
MAX_LOG = 60  # attempts kept on record per delivery (the first and the latest)
USER_AGENT = "mailvet-webhooks/1"
# the result generator queues a completion's event at once: the sweep gives it this long
SWEEP_GRACE = datetime.timedelta(minutes=2)
SWEEP_WINDOW = datetime.timedelta(days=2)  # jobs created this long ago at most
SWEEP_BATCH = 100


class HostResolver(Protocol):
    """The host's addresses (the DNS resolver of the pipeline, domain.ports.Resolver, is
    one); [] when it has none."""

    async def host_addresses(self, host: str) -> list[str]: ...


# --- an account's settings ------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    secret: str
    url: str  # "" when none


async def _endpoint_row(
    session: AsyncSession, account_id: str, *, now: datetime.datetime
) -> WebhookEndpointRow:
    """The account's row, made with a new secret when it has none (two racing makers: the
    insert of the second does nothing, both read the first's)."""
    row = await session.get(WebhookEndpointRow, account_id)
    if row is not None:
        return row
    await session.execute(
        dialect_insert(session, WebhookEndpointRow)
        .values(
            account_id=account_id, secret=rules.new_secret(), url="", url_set_at=now, created_at=now
        )
        .on_conflict_do_nothing(index_elements=[WebhookEndpointRow.account_id])
    )
    made = await session.get(WebhookEndpointRow, account_id, populate_existing=True)
    if made is None:  # the account is gone
        raise LookupError("no such account")
    return made


async def endpoint(session: AsyncSession, account_id: str, *, now: datetime.datetime) -> Endpoint:
    """The account's secret (made now if it has none) and default URL."""
    row = await _endpoint_row(session, account_id, now=now)
    return Endpoint(secret=row.secret, url=row.url)


async def secret(session: AsyncSession, account_id: str, *, now: datetime.datetime) -> str:
    """The account's signing secret, made on first need."""
    return (await endpoint(session, account_id, now=now)).secret


async def rotate_secret(session: AsyncSession, account_id: str, *, now: datetime.datetime) -> str:
    """A new secret for the account (the old one signs nothing from now on); the new one."""
    row = await _endpoint_row(session, account_id, now=now)
    row.secret = rules.new_secret()
    await session.flush()
    logger(__name__).info("webhook_secret_rotated", account_id=account_id)
    return row.secret


async def _addresses(url: rules.WebhookUrl, resolver: HostResolver) -> list[str]:
    if url.ip is not None:
        return [str(url.ip)]
    return await resolver.host_addresses(url.host)


async def check_url(text: str, resolver: HostResolver, *, allow_private: bool) -> rules.WebhookUrl:
    """`text` as a webhook URL that may be called now, or InvalidWebhookUrl (a ValueError)
    saying why: its form (domain/webhooks.py `parse_url`), a host that does not resolve, or
    one that resolves to any address that is not allowed."""
    url = rules.parse_url(text)
    found = await _addresses(url, resolver)
    ok, refused = rules.checked_addresses(found, allow_private=allow_private)
    if refused:
        raise rules.InvalidWebhookUrl(
            "The host points at a private, loopback or reserved address: webhooks go only"
            " to public addresses."
        )
    if not ok:
        raise rules.InvalidWebhookUrl("The host does not resolve to any address.")
    return url


async def set_default_url(
    session: AsyncSession,
    account_id: str,
    text: str,
    resolver: HostResolver,
    *,
    allow_private: bool,
    now: datetime.datetime,
) -> str:
    """Set (or, with an empty `text`, remove) the account's default URL; the URL stored.
    InvalidWebhookUrl, nothing changed, for a URL `check_url` refuses."""
    url = (await check_url(text, resolver, allow_private=allow_private)).url if text.strip() else ""
    row = await _endpoint_row(session, account_id, now=now)
    row.url = url
    row.url_set_at = now
    await session.flush()
    logger(__name__).info("webhook_url_set", account_id=account_id, removed=not url)
    return url


async def set_job_callback(
    session: AsyncSession, job_id: str, url: str, *, now: datetime.datetime | None = None
) -> None:
    """Store the `callback_url` of a job started through the API (checked beforehand with
    `check_url`), in the caller's transaction. Call it before the job is submitted: a job
    that ends at once must find it. Setting it again replaces it."""
    clean = rules.parse_url(url).url  # the form once more: a stored URL is always valid
    at = now or utc_now()
    await session.execute(
        dialect_insert(session, JobCallbackRow)
        .values(job_id=job_id, url=clean, created_at=at)
        .on_conflict_do_update(index_elements=[JobCallbackRow.job_id], set_={"url": clean})
    )


# --- queueing ----------------------------------------------------------------------------------


def _event_type(status: JobStatus) -> rules.EventType | None:
    if status is JobStatus.COMPLETED:
        return rules.JOB_COMPLETED
    if status.is_error:
        return rules.JOB_FAILED
    return None


async def queue_job_event(
    session: AsyncSession, job_id: str, *, now: datetime.datetime
) -> str | None:
    """Queue the event of a job that has ended (completed: job.completed; failed:
    job.failed) to its callback URL, else its owner's default URL, in `session`'s
    transaction; the event's id, or None when there is nothing to send (no owner, no URL,
    not ended). Once per job and type: a second call returns the first event's id."""
    from mailvet.services import api_jobs

    job = await session.get(JobRow, job_id)
    if job is None or not job.owner:
        return None
    event_type = _event_type(JobStatus(job.status))
    if event_type is None:
        return None
    key = rules.event_key(event_type, job_id)
    existing = await session.scalar(
        select(WebhookDeliveryRow.id).where(WebhookDeliveryRow.key == key)
    )
    if existing is not None:
        return str(existing)
    callback = await session.get(JobCallbackRow, job_id)
    url = callback.url if callback is not None else ""
    if not url:
        hook = await session.get(WebhookEndpointRow, job.owner)
        url = hook.url if hook is not None and hook.url_set_at <= job.updated_at else ""
    if not url:
        return None
    # the job as GET /api/v1/jobs/{id} shows it; its cost is the same whether validation
    # is charged or not once the job has ended (the charge of a free job is 0)
    view = await api_jobs.job_view(session, job.owner, job_id, charging=True)
    event_id = rules.new_event_id()
    body = rules.event_body(event_type, view, created=now, event_id=event_id)
    added = await session.execute(
        dialect_insert(session, WebhookDeliveryRow)
        .values(
            id=event_id,
            key=key,
            account_id=job.owner,
            job_id=job_id,
            type=event_type,
            url=url,
            body=body.decode(),
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            claim=None,
            last_status_code=None,
            last_error="",
            attempt_log=[],
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[WebhookDeliveryRow.key])
        .returning(WebhookDeliveryRow.id)
    )
    if added.scalar_one_or_none() is None:
        return str(
            await session.scalar(select(WebhookDeliveryRow.id).where(WebhookDeliveryRow.key == key))
        )
    logger(__name__).info(
        "webhook_queued", job_id=job_id, account_id=job.owner, event_id=event_id, type=event_type
    )
    return event_id


async def queue_missing(
    session: AsyncSession,
    *,
    now: datetime.datetime,
    retention_days: float,
    grace: datetime.timedelta = SWEEP_GRACE,
    limit: int = SWEEP_BATCH,
) -> int:
    """Queue the events of up to `limit` ended jobs that should have one and have none: jobs
    of an existing account, created within SWEEP_WINDOW (and the retention), with a callback
    URL or ended after their owner's default URL was set; completions ended more than
    `grace` ago (the result generator queues them itself), failures at once. Also deletes
    the callbacks of jobs that are gone. How many were queued."""
    window = min(SWEEP_WINDOW, datetime.timedelta(days=retention_days))
    queued = 0
    for due, type_name in (
        (
            and_(JobRow.status == JobStatus.COMPLETED.value, JobRow.updated_at < now - grace),
            rules.JOB_COMPLETED,
        ),
        (JobRow.status.like("error\\_%", escape="\\"), rules.JOB_FAILED),
    ):
        key = literal(f"{type_name}:", String) + JobRow.id
        rows = (
            await session.execute(
                select(JobRow.id)
                .join(AccountRow, AccountRow.id == JobRow.owner)
                .outerjoin(JobCallbackRow, JobCallbackRow.job_id == JobRow.id)
                .outerjoin(WebhookEndpointRow, WebhookEndpointRow.account_id == JobRow.owner)
                .outerjoin(WebhookDeliveryRow, WebhookDeliveryRow.key == key)
                .where(
                    due,
                    JobRow.created_at >= now - window,
                    WebhookDeliveryRow.id.is_(None),
                    or_(
                        JobCallbackRow.job_id.is_not(None),
                        and_(
                            WebhookEndpointRow.url != "",
                            WebhookEndpointRow.url_set_at <= JobRow.updated_at,
                        ),
                    ),
                )
                .order_by(JobRow.created_at, JobRow.id)
                .limit(limit)
            )
        ).all()
        for (job_id,) in rows:
            if await queue_job_event(session, job_id, now=now) is not None:
                queued += 1
                logger(__name__).info("webhook_recovered", job_id=job_id, type=type_name)
    await session.execute(
        delete(JobCallbackRow)
        .where(
            JobCallbackRow.created_at < now - datetime.timedelta(hours=1),
            ~select(JobRow.id).where(JobRow.id == JobCallbackRow.job_id).exists(),
        )
        .execution_options(synchronize_session=False)
    )
    return queued


class WebhookEvents:
    """The webhook part of the `JobEvents` port (domain/job_events.py) on `database`."""

    def __init__(self, database: Database, *, clock: Clock = utc_now) -> None:
        self._database = database  # disposed by whoever made it
        self._clock = clock

    async def _ended(self, job: Job) -> None:
        async with self._database.unit_of_work(write=True) as session:
            await queue_job_event(session, job.id, now=self._clock())

    async def job_completed(self, job: Job) -> None:
        await self._ended(job)

    async def job_failed(self, job: Job) -> None:
        await self._ended(job)


# --- what the page shows ----------------------------------------------------------------------


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime.datetime
    status_code: int | None = None
    error: str = ""


@dataclass(frozen=True)
class Delivery:
    id: str
    type: str
    job_id: str
    url: str
    status: str  # pending | delivered | given_up
    created_at: datetime.datetime
    delivered_at: datetime.datetime | None
    given_up_at: datetime.datetime | None
    next_attempt_at: datetime.datetime | None
    attempts: list[Attempt]


def _attempt(entry: dict[str, Any]) -> Attempt:
    return msgspec.convert(entry, Attempt, strict=False)


async def recent_deliveries(
    session: AsyncSession, account_id: str, *, limit: int = 20
) -> list[Delivery]:
    """The account's latest deliveries, newest first, with their attempts."""
    rows = (
        await session.scalars(
            select(WebhookDeliveryRow)
            .where(WebhookDeliveryRow.account_id == account_id)
            .order_by(WebhookDeliveryRow.created_at.desc(), WebhookDeliveryRow.id)
            .limit(limit)
        )
    ).all()
    return [
        Delivery(
            id=row.id,
            type=row.type,
            job_id=row.job_id,
            url=row.url,
            status=row.status,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
            given_up_at=row.given_up_at,
            next_attempt_at=row.next_attempt_at,
            attempts=[_attempt(entry) for entry in row.attempt_log],
        )
        for row in rows
    ]


# --- delivery --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Claimed:
    id: str
    claim: str
    attempts: int  # this attempt included
    url: str
    body: bytes
    secret: str
    created_at: datetime.datetime
    log: list[dict[str, Any]]


@dataclass(frozen=True)
class Outcome:
    status_code: int | None = None
    error: str = ""

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender:
    """Delivers the due webhook events (see the module docstring). `run_once()` claims and
    delivers one batch and returns how many were delivered; `run_forever(stop)` does so every
    `poll_interval` seconds, and deletes finished rows older than the retention hourly."""

    def __init__(
        self,
        database: Database,
        resolver: HostResolver,
        settings: Settings,
        clock: Callable[[], datetime.datetime] = utc_now,
        *,
        schedule: rules.RetrySchedule | None = None,
        batch_size: int = 10,
        poll_interval: float = 0.5,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._database = database
        self._resolver = resolver
        # the certificates trusted (None: httpx's default, certifi's; tests: their own CA)
        self._tls: ssl.SSLContext | bool = tls if tls is not None else True
        self._settings = settings
        self._clock = clock
        self._schedule = schedule or rules.RetrySchedule()
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._timeout = settings.webhooks.timeout
        self._allow_private = settings.webhooks.allow_private
        self.lease = datetime.timedelta(seconds=self._timeout) + LEASE_MARGIN
        self._log = logger("mailvet.webhooks")

    async def run_once(self) -> int:
        batch = await self._claim()
        if not batch:
            return 0
        return sum(await asyncio.gather(*(self._deliver(item) for item in batch)))

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        next_purge = self._clock()
        while stop is None or not stop.is_set():
            try:
                await self.run_once()
                if self._clock() >= next_purge:
                    await self._purge()
                    next_purge = self._clock() + PURGE_EVERY
            except Exception as exc:
                self._log.error("webhooks.round_failed", error=type(exc).__name__)
            if stop is None:
                await asyncio.sleep(self._poll_interval)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._poll_interval)

    async def _claim(self) -> list[_Claimed]:
        now = self._clock()
        due = WebhookDeliveryRow.next_attempt_at <= now
        async with self._database.unit_of_work() as session:
            if (await session.scalar(select(WebhookDeliveryRow.id).where(due).limit(1))) is None:
                return []
        claim = uuid.uuid4().hex
        async with self._database.unit_of_work(write=True) as session:
            rows = (
                await session.scalars(
                    select(WebhookDeliveryRow)
                    .where(due)
                    .order_by(WebhookDeliveryRow.next_attempt_at)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            claimed: list[_Claimed] = []
            for row in rows:
                row.attempts += 1
                row.claim = claim
                row.next_attempt_at = now + self.lease
                hook_secret = await secret(session, row.account_id, now=now)
                claimed.append(
                    _Claimed(
                        id=row.id,
                        claim=claim,
                        attempts=row.attempts,
                        url=row.url,
                        body=row.body.encode(),
                        secret=hook_secret,
                        created_at=row.created_at,
                        log=list(row.attempt_log),
                    )
                )
            return claimed

    async def _target(self, url: rules.WebhookUrl) -> IpAddress | str:
        """The address to connect to, or why there is none."""
        try:
            found = await _addresses(url, self._resolver)
        except Exception as exc:  # a resolver that raises: try again later
            return f"the host could not be resolved ({type(exc).__name__})"
        ok, refused = rules.checked_addresses(found, allow_private=self._allow_private)
        if ok:
            return ok[0]
        if refused:
            return "refused: the host points at a private, loopback or reserved address"
        return "the host does not resolve to any address"

    async def post(self, item: _Claimed) -> Outcome:
        """One attempt of `item` (never raises)."""
        try:
            url = rules.parse_url(item.url)
        except rules.InvalidWebhookUrl as exc:
            return Outcome(error=f"invalid URL: {exc}")
        target = await self._target(url)
        if isinstance(target, str):
            return Outcome(error=target)
        import httpx

        headers = {
            "Host": url.host_header,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Mailvet-Event-Id": item.id,
            rules.SIGNATURE_HEADER: rules.sign(
                item.secret, item.body, timestamp=int(self._clock().timestamp())
            ),
        }
        extensions = {"sni_hostname": url.host} if url.scheme == "https" and url.ip is None else {}
        try:
            async with asyncio.timeout(self._timeout):
                # a client per attempt: a pooled TLS connection made for another host name
                # on the same address must never carry this request
                async with (
                    httpx.AsyncClient(
                        timeout=self._timeout,
                        follow_redirects=False,
                        trust_env=False,
                        verify=self._tls,
                    ) as client,
                    client.stream(
                        "POST",
                        url.pinned(target),
                        content=item.body,
                        headers=headers,
                        extensions=extensions,
                    ) as response,
                ):
                    return Outcome(status_code=response.status_code)
        except (TimeoutError, httpx.TimeoutException):
            return Outcome(error=f"no answer in {self._timeout:g} s")
        except httpx.HTTPError as exc:
            return Outcome(error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR])
        except Exception as exc:  # a bug of ours or the library's: on record, tried again
            return Outcome(error=f"{type(exc).__name__}"[:MAX_ERROR])

    async def _deliver(self, item: _Claimed) -> int:
        started = time.monotonic()
        outcome = await self.post(item)
        now = self._clock()
        entry = {
            "at": now.isoformat(),
            "status_code": outcome.status_code,
            "error": outcome.error,
            "ms": round((time.monotonic() - started) * 1000),
        }
        log = [*item.log, entry]
        if len(log) > MAX_LOG:
            log = [log[0], *log[-(MAX_LOG - 1) :]]
        fields: dict[str, Any] = {
            "attempt_log": log,
            "last_status_code": outcome.status_code,
            "last_error": outcome.error
            or (f"HTTP {outcome.status_code}" if not outcome.delivered else ""),
        }
        if outcome.delivered:
            fields.update(status=DELIVERED, delivered_at=now, next_attempt_at=None)
        else:
            retry_at = self._schedule.next_attempt(
                attempts=item.attempts, created=item.created_at, now=now
            )
            fields["next_attempt_at"] = retry_at
            if retry_at is None:
                fields.update(status=GIVEN_UP, given_up_at=now)
        async with self._database.unit_of_work(write=True) as session:
            result = await session.execute(
                update(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.id == item.id, WebhookDeliveryRow.claim == item.claim)
                .values(claim=None, **fields)
            )
        if not rowcount(result):
            self._log.warning("webhooks.claim_lost", event_id=item.id)
        event = (
            "webhook.delivered"
            if outcome.delivered
            else (
                "webhook.given_up"
                if fields.get("status") == GIVEN_UP
                else "webhook.retry_scheduled"
            )
        )
        self._log.info(
            event, event_id=item.id, attempt=item.attempts, status_code=outcome.status_code
        )
        return 1 if outcome.delivered else 0

    async def _purge(self) -> None:
        before = self._clock() - datetime.timedelta(days=self._settings.web.retention_days)
        async with self._database.unit_of_work(write=True) as session:
            result = await session.execute(
                delete(WebhookDeliveryRow).where(
                    or_(
                        WebhookDeliveryRow.delivered_at < before,
                        WebhookDeliveryRow.given_up_at < before,
                    )
                )
            )
        if rowcount(result):
            self._log.info("webhooks.purged", rows=rowcount(result))

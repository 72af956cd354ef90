"""Completion webhooks (issue 9 §3), services/webhooks.py on a migrated SQLite database:
one event per job and type however often its end is reported, delivered signed with the
account's secret to a real HTTP receiver on 127.0.0.1, retried after a 500 or a timeout
with each attempt on record, given up after 24 hours, and never sent to a loopback address
unless MAILVET_WEBHOOK_ALLOW_PRIVATE — neither when the URL is set nor when the host's
address changes afterwards (DNS rebinding)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import argon2
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from mailvet.adapters.db.database import Database
from mailvet.adapters.db.models import JobRow
from mailvet.adapters.db.repositories import SqlJobRepository
from mailvet.adapters.db.webhook_models import WebhookDeliveryRow
from mailvet.domain import webhooks as rules
from mailvet.domain.job import JobStatus
from mailvet.services import webhooks
from mailvet.services.accounts import create_account
from mailvet.settings import Settings, load_settings
from tests.fakes import T0, MovingClock
from tests.webhook_helpers import (
    Receiver,
    TableResolver,
    certificate_for,
    eventually,
    receiving,
)

pytestmark = pytest.mark.pipeline

HASHER = PasswordHasher.from_parameters(argon2.profiles.CHEAPEST)
PUBLIC = "93.184.216.34"


def settings_for(tmp_path: Path, *, allow_private: bool = True, timeout: float = 5) -> Settings:
    return load_settings(
        {
            "MAILVET_DATA_DIR": str(tmp_path / "data"),
            "MAILVET_WEBHOOK_ALLOW_PRIVATE": "true" if allow_private else "false",
            "MAILVET_WEBHOOK_TIMEOUT": str(timeout),
        }
    )


async def account(db: Database, email: str = "ann.lee@example.com") -> str:
    async with db.unit_of_work(write=True) as session:
        made = await create_account(
            session, email=email, password=None, confirmed=True, hasher=HASHER, now=T0
        )
    return made.id


async def ended_job(
    db: Database, owner: str, *, at: datetime, status: JobStatus = JobStatus.COMPLETED
) -> str:
    job_id = uuid.uuid4().hex
    async with db.unit_of_work(write=True) as session:
        session.add(
            JobRow(
                id=job_id,
                filename="list.csv",
                checks="smtp",
                status=status.value,
                owner=owner,
                rows_total=2,
                rows_done=2,
                created_at=at - timedelta(minutes=10),
                updated_at=at,
            )
        )
    return job_id


async def set_url(
    db: Database,
    owner: str,
    url: str,
    *,
    resolver: TableResolver | None = None,
    allow_private: bool = True,
    now: datetime = T0 - timedelta(hours=1),
) -> str:
    async with db.unit_of_work(write=True) as session:
        return await webhooks.set_default_url(
            session, owner, url, resolver or TableResolver(), allow_private=allow_private, now=now
        )


async def deliveries(db: Database) -> list[WebhookDeliveryRow]:
    async with db.session_maker() as session:
        return list((await session.scalars(select(WebhookDeliveryRow))).all())


async def secret_of(db: Database, owner: str) -> str:
    async with db.unit_of_work(write=True) as session:
        return await webhooks.secret(session, owner, now=T0)


def sender(
    db: Database, settings: Settings, clock: MovingClock, resolver: TableResolver | None = None
) -> webhooks.WebhookSender:
    return webhooks.WebhookSender(db, resolver or TableResolver(), settings, clock)


async def test_a_job_end_reported_twice_queues_one_event(db: Database) -> None:
    ann = await account(db)
    await set_url(
        db,
        ann,
        "https://hooks.example/mailvet",
        resolver=TableResolver({"hooks.example": [PUBLIC]}),
    )
    done = await ended_job(db, ann, at=T0)
    failed = await ended_job(db, ann, at=T0, status=JobStatus.ERROR_FILE)
    running = await ended_job(db, ann, at=T0, status=JobStatus.IN_PROGRESS)
    jobs = SqlJobRepository(db)
    events = webhooks.WebhookEvents(db, clock=lambda: T0)

    await events.job_completed(await jobs.get(done))
    await events.job_completed(await jobs.get(done))  # a redelivered completion
    await events.job_failed(await jobs.get(failed))
    await events.job_completed(await jobs.get(running))  # not ended: nothing
    async with db.unit_of_work(write=True) as session:  # the sweep finds nothing more
        assert (
            await webhooks.queue_missing(session, now=T0 + timedelta(hours=1), retention_days=30)
            == 0
        )

    rows = {row.key: row for row in await deliveries(db)}
    assert set(rows) == {f"job.completed:{done}", f"job.failed:{failed}"}
    event = json.loads(rows[f"job.completed:{done}"].body)
    assert set(event) == {"id", "type", "created", "version", "data"}
    assert event["id"] == rows[f"job.completed:{done}"].id and event["id"].startswith("evt_")
    assert (event["type"], event["created"], event["version"]) == (
        "job.completed",
        int(T0.timestamp()),
        1,
    )
    assert event["data"]["job"]["id"] == done
    assert event["data"]["job"]["status"] == "file_completed"
    assert json.loads(rows[f"job.failed:{failed}"].body)["type"] == "job.failed"
    assert all(row.url == "https://hooks.example/mailvet" for row in rows.values())


async def test_no_url_no_owner_or_an_url_set_after_the_job_queue_nothing(db: Database) -> None:
    ann = await account(db)
    before = await ended_job(db, ann, at=T0)
    orphan = await ended_job(db, "", at=T0)
    events = webhooks.WebhookEvents(db, clock=lambda: T0)
    jobs = SqlJobRepository(db)
    await events.job_completed(await jobs.get(before))  # no URL yet
    await set_url(db, ann, "http://127.0.0.1:9/", now=T0 + timedelta(minutes=1))
    await events.job_completed(await jobs.get(before))  # ended before the URL was set
    await events.job_completed(await jobs.get(orphan))
    assert await deliveries(db) == []


async def test_a_jobs_callback_url_replaces_the_default(db: Database) -> None:
    ann = await account(db)
    await set_url(db, ann, "http://127.0.0.1:9/default")
    job_id = uuid.uuid4().hex
    async with db.unit_of_work(write=True) as session:  # before the job exists, as the API does
        await webhooks.set_job_callback(session, job_id, "http://127.0.0.1:9/mine", now=T0)
    async with db.unit_of_work(write=True) as session:
        session.add(
            JobRow(
                id=job_id,
                filename="a.csv",
                checks="smtp",
                status="file_completed",
                owner=ann,
                created_at=T0,
                updated_at=T0,
            )
        )
    await webhooks.WebhookEvents(db, clock=lambda: T0).job_completed(
        await SqlJobRepository(db).get(job_id)
    )
    [row] = await deliveries(db)
    assert row.url == "http://127.0.0.1:9/mine"


async def test_the_sweep_queues_what_a_crash_left_and_the_failures(db: Database) -> None:
    ann = await account(db)
    await set_url(db, ann, "http://127.0.0.1:9/")
    now = T0 + timedelta(hours=1)
    lost = await ended_job(db, ann, at=now - webhooks.SWEEP_GRACE - timedelta(seconds=1))
    fresh = await ended_job(db, ann, at=now)  # the result generator may be queueing it
    failed = await ended_job(db, ann, at=now, status=JobStatus.ERROR_INSUFFICIENT_CREDITS)
    await ended_job(db, ann, at=now - timedelta(hours=3))  # ended before the URL was set
    await ended_job(db, "f" * 32, at=now - timedelta(minutes=5))  # its account is gone
    async with db.unit_of_work(write=True) as session:
        assert await webhooks.queue_missing(session, now=now, retention_days=30) == 2
    async with db.unit_of_work(write=True) as session:
        assert await webhooks.queue_missing(session, now=now, retention_days=30) == 0
    assert {row.key for row in await deliveries(db)} == {
        f"job.completed:{lost}",
        f"job.failed:{failed}",
    }
    assert fresh not in {row.job_id for row in await deliveries(db)}


def check_signature(secret: str, received_headers: dict[str, str], body: bytes, now: int) -> None:
    """The receiver's check, written here from the issue's words, not with our code."""
    parts = dict(item.split("=", 1) for item in received_headers["mailvet-signature"].split(","))
    expected = hmac.new(
        secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert abs(now - int(parts["t"])) <= 300


async def queued_to(db: Database, receiver: Receiver, path: str = "/hook") -> tuple[str, str]:
    ann = await account(db)
    await set_url(db, ann, receiver.url + path)
    job_id = await ended_job(db, ann, at=T0)
    await webhooks.WebhookEvents(db, clock=lambda: T0).job_completed(
        await SqlJobRepository(db).get(job_id)
    )
    return ann, job_id


async def test_delivered_signed_with_the_accounts_secret(db: Database, tmp_path: Path) -> None:
    clock = MovingClock(T0)
    async with receiving([200]) as receiver:
        ann, job_id = await queued_to(db, receiver, "/hook?source=mailvet")
        assert await sender(db, settings_for(tmp_path), clock).run_once() == 1
        assert await sender(db, settings_for(tmp_path), clock).run_once() == 0
    [got] = receiver.received
    assert (got.method, got.path) == ("POST", "/hook?source=mailvet")
    assert got.headers["content-type"] == "application/json"
    assert got.headers["host"] == f"127.0.0.1:{receiver.port}"
    secret = await secret_of(db, ann)
    assert secret.startswith("whsec_") and len(secret) >= 40
    check_signature(secret, got.headers, got.body, int(T0.timestamp()))
    assert rules.verify(secret, got.body, got.headers["mailvet-signature"], now=int(T0.timestamp()))
    event = json.loads(got.body)
    assert event["data"]["job"]["id"] == job_id
    assert got.headers["mailvet-event-id"] == event["id"]
    [row] = await deliveries(db)
    assert (row.status, row.attempts, row.last_status_code, row.next_attempt_at) == (
        "delivered",
        1,
        200,
        None,
    )
    assert row.delivered_at == T0
    assert [(a["status_code"], a["error"]) for a in row.attempt_log] == [(200, "")]


async def test_a_500_then_a_200_is_two_attempts_one_delivery(db: Database, tmp_path: Path) -> None:
    clock = MovingClock(T0)
    async with receiving([500, 200]) as receiver:
        await queued_to(db, receiver)
        send = sender(db, settings_for(tmp_path), clock)
        assert await send.run_once() == 0
        [row] = await deliveries(db)
        assert (row.status, row.last_status_code, row.last_error) == ("pending", 500, "HTTP 500")
        assert row.next_attempt_at == T0 + timedelta(seconds=30)
        assert await send.run_once() == 0  # not due yet: nothing sent
        assert len(receiver.received) == 1
        clock.advance(seconds=30)
        assert await send.run_once() == 1
        clock.advance(hours=2)
        assert await send.run_once() == 0
    first, second = receiver.received
    assert first.body == second.body  # the same event, id and all: receivers drop copies
    [row] = await deliveries(db)
    assert (row.status, row.attempts) == ("delivered", 2)
    assert [a["status_code"] for a in row.attempt_log] == [500, 200]
    assert row.attempt_log[1]["at"] == (T0 + timedelta(seconds=30)).isoformat()


async def test_a_receiver_that_does_not_answer_is_tried_again(db: Database, tmp_path: Path) -> None:
    clock = MovingClock(T0)
    async with receiving([0, 204]) as receiver:
        await queued_to(db, receiver)
        send = sender(db, settings_for(tmp_path, timeout=0.3), clock)
        assert await send.run_once() == 0
        [row] = await deliveries(db)
        assert row.status == "pending" and row.last_status_code is None
        assert row.last_error == "no answer in 0.3 s"
        clock.advance(seconds=30)
        assert await send.run_once() == 1
    [row] = await deliveries(db)
    assert [(a["status_code"], a["error"]) for a in row.attempt_log] == [
        (None, "no answer in 0.3 s"),
        (204, ""),
    ]


async def test_given_up_24_hours_after_the_event(db: Database, tmp_path: Path) -> None:
    clock = MovingClock(T0)
    async with receiving([503]) as receiver:
        ann, _job = await queued_to(db, receiver)
        send = sender(db, settings_for(tmp_path), clock)
        for _ in range(200):
            await send.run_once()
            [row] = await deliveries(db)
            if row.status != "pending":
                break
            assert row.next_attempt_at is not None
            clock.now = row.next_attempt_at
    assert row.status == "given_up"
    assert row.given_up_at == T0 + timedelta(hours=24)  # the last try at the 24th hour
    assert row.next_attempt_at is None
    assert len(receiver.received) == row.attempts == len(row.attempt_log)
    delays = [
        datetime.fromisoformat(b["at"]) - datetime.fromisoformat(a["at"])
        for a, b in zip(row.attempt_log, row.attempt_log[1:], strict=False)
    ]
    assert delays[:3] == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]
    assert max(delays) == timedelta(hours=1)  # the backoff's cap
    async with db.session_maker() as session:
        [shown] = await webhooks.recent_deliveries(session, ann)
    assert shown.status == "given_up" and len(shown.attempts) == row.attempts


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example/",  # resolves to 127.0.0.1
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://mixed.example/",  # one public address and one private
    ],
)
async def test_a_url_reaching_a_private_address_is_refused_when_set(db: Database, url: str) -> None:
    ann = await account(db)
    resolver = TableResolver(
        {"hooks.example": ["127.0.0.1"], "mixed.example": [PUBLIC, "10.0.0.7"]}
    )
    with pytest.raises(rules.InvalidWebhookUrl, match="private, loopback or reserved"):
        await set_url(db, ann, url, resolver=resolver, allow_private=False)
    async with db.unit_of_work(write=True) as session:
        assert (await webhooks.endpoint(session, ann, now=T0)).url == ""
    # with MAILVET_WEBHOOK_ALLOW_PRIVATE (the tests' setting) it is taken
    assert await set_url(db, ann, url, resolver=resolver, allow_private=True) == url


async def test_a_host_that_does_not_resolve_is_refused(db: Database) -> None:
    ann = await account(db)
    with pytest.raises(rules.InvalidWebhookUrl, match="does not resolve"):
        await set_url(db, ann, "https://nowhere.example/", allow_private=True)


async def test_dns_rebinding_after_the_check_reaches_nothing(db: Database, tmp_path: Path) -> None:
    clock = MovingClock(T0)
    async with receiving([200]) as receiver:
        resolver = TableResolver({"hooks.example": [PUBLIC]})
        ann = await account(db)
        url = f"http://hooks.example:{receiver.port}/hook"
        await set_url(db, ann, url, resolver=resolver, allow_private=False)  # public: taken
        job_id = await ended_job(db, ann, at=T0)
        await webhooks.WebhookEvents(db, clock=lambda: T0).job_completed(
            await SqlJobRepository(db).get(job_id)
        )
        resolver.table["hooks.example"] = ["127.0.0.1"]  # the attacker's DNS answers anew
        send = sender(db, settings_for(tmp_path, allow_private=False), clock, resolver)
        assert await send.run_once() == 0
        assert receiver.received == []  # the receiver on 127.0.0.1 heard nothing
        [row] = await deliveries(db)
        assert row.status == "pending" and row.last_status_code is None
        assert row.last_error.startswith("refused: the host points at a private")
        # where private addresses are allowed, the checked address is the one connected to,
        # under the URL's own host name
        allowed = sender(db, settings_for(tmp_path, allow_private=True), clock, resolver)
        clock.advance(minutes=1)
        assert await allowed.run_once() == 1
    [got] = receiver.received
    assert got.headers["host"] == f"hooks.example:{receiver.port}"


async def test_rotating_the_secret_signs_the_next_attempt_with_the_new_one(
    db: Database, tmp_path: Path
) -> None:
    clock = MovingClock(T0)
    async with receiving([500, 200]) as receiver:
        ann, _job = await queued_to(db, receiver)
        old = await secret_of(db, ann)
        send = sender(db, settings_for(tmp_path), clock)
        await send.run_once()
        async with db.unit_of_work(write=True) as session:
            new = await webhooks.rotate_secret(session, ann, now=T0)
        assert new != old and new == await secret_of(db, ann)
        clock.advance(minutes=1)
        assert await send.run_once() == 1
    first, second = receiver.received
    at = int(clock.now.timestamp())
    assert rules.verify(
        old, first.body, first.headers["mailvet-signature"], now=int(T0.timestamp())
    )
    assert rules.verify(new, second.body, second.headers["mailvet-signature"], now=at)
    assert not rules.verify(old, second.body, second.headers["mailvet-signature"], now=at)


async def test_the_web_roles_sweep_queues_a_failed_jobs_event(db: Database) -> None:
    """services.jobs.sweep_unsent_webhooks, a round of run_retention: intake's failures
    (error_df, error_insufficient_credits) do not go through the JobEvents port."""
    from mailvet.services.jobs import sweep_unsent_webhooks

    ann = await account(db)
    await set_url(db, ann, "http://127.0.0.1:9/")
    failed = await ended_job(db, ann, at=T0, status=JobStatus.ERROR_FILE)
    assert await sweep_unsent_webhooks(db, now=T0, retention_days=30) == 1
    assert await sweep_unsent_webhooks(db, now=T0, retention_days=30) == 0
    [row] = await deliveries(db)
    assert (row.key, row.type, row.status) == (f"job.failed:{failed}", "job.failed", "pending")


async def _through_the_pipeline(
    db: Database, tmp_path: Path, name: str, content: str
) -> tuple[str, list[WebhookDeliveryRow]]:
    """A list `content` of an account with a default URL, run by the whole pipeline (its
    JobEvents: bootstrap's LazyJobEvents on the process's database) until a delivery is
    queued; the job's id and the deliveries. No sweep of the web role runs."""
    from mailvet.adapters.storage.memory import MemoryStorage
    from mailvet.bootstrap import build_deps
    from mailvet.pipeline.runner import Pipeline
    from mailvet.pipeline.submit import submit_file
    from tests.fakes import FakeProber, FakeResolver, RecordingBus

    settings = load_settings(
        {"MAILVET_DATA_DIR": str(tmp_path), "MAILVET_CREDITS": "off", "MAILVET_MAILER": "memory"}
    )
    assert settings.database == f"sqlite+aiosqlite:///{tmp_path.resolve()}/mailvet.db"
    ann = await account(db)
    await set_url(db, ann, "http://127.0.0.1:9/hook", now=T0 - timedelta(days=1))
    deps = await build_deps(
        settings,
        jobs=SqlJobRepository(db),
        storage=MemoryStorage(),
        bus=RecordingBus(),
        resolver=FakeResolver(),
        prober=FakeProber(),
        syntax_pool=None,
    )
    source = tmp_path / name
    source.write_text(content)
    pipeline = Pipeline(deps)
    await pipeline.start()
    try:
        job_id = await submit_file(deps.jobs, deps.storage, deps.bus, source, owner=ann)
        rows = await eventually(lambda: deliveries(db))
    finally:
        await pipeline.stop()
        await deps.close()
    return job_id, rows


async def test_a_job_completed_by_the_pipeline_queues_its_event(
    db: Database, tmp_path: Path
) -> None:
    """The whole way: the result generator tells bootstrap's LazyJobEvents, which queues the
    event beside the mail, on the process's database."""
    content = "email\na@x-corp.com\nb@x-corp.com\n"
    job_id, [row] = await _through_the_pipeline(db, tmp_path, "customers.csv", content)
    assert (row.key, row.url) == (f"job.completed:{job_id}", "http://127.0.0.1:9/hook")
    job = json.loads(row.body)["data"]["job"]
    assert (job["id"], job["status"], job["rows_total"]) == (job_id, "file_completed", 2)


async def test_a_job_intake_refuses_queues_its_failed_event_at_once(
    db: Database, tmp_path: Path
) -> None:
    """Intake ends a list without an address column as error_df and tells LazyJobEvents at
    once: the job.failed event is queued without the web role's sweep."""
    content = "name,city\nAnn,Oslo\nBob,Rome\n"
    job_id, [row] = await _through_the_pipeline(db, tmp_path, "names.csv", content)
    assert (row.key, row.type) == (f"job.failed:{job_id}", "job.failed")
    job = json.loads(row.body)["data"]["job"]
    assert (job["id"], job["status"]) == (job_id, "error_df")


async def test_an_accounts_webhooks_go_with_it(db: Database) -> None:
    """The endpoint (its secret) and the deliveries are deleted with their account (ON
    DELETE CASCADE, as services.accounts deletes the account row)."""
    from mailvet.adapters.db.account_models import AccountRow
    from mailvet.adapters.db.webhook_models import WebhookEndpointRow

    ann = await account(db)
    await set_url(db, ann, "http://127.0.0.1:9/")
    job_id = await ended_job(db, ann, at=T0)
    await webhooks.WebhookEvents(db, clock=lambda: T0).job_completed(
        await SqlJobRepository(db).get(job_id)
    )
    assert len(await deliveries(db)) == 1
    async with db.unit_of_work(write=True) as session:
        row = await session.get(AccountRow, ann)
        assert row is not None
        await session.delete(row)
    assert await deliveries(db) == []
    async with db.session_maker() as session:
        assert (await session.scalars(select(WebhookEndpointRow))).all() == []


async def test_https_to_the_pinned_address_checks_the_urls_host_name(
    db: Database, tmp_path: Path
) -> None:
    """Pinned to 127.0.0.1, the TLS handshake still names (SNI) and verifies the URL's host:
    a certificate for hooks.example is taken, the same server reached as other.example is
    refused (its certificate does not name it)."""
    server, trusted = certificate_for("hooks.example")
    clock = MovingClock(T0)
    resolver = TableResolver({"hooks.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]})
    async with receiving([200], tls=server) as receiver:
        ann = await account(db)
        await set_url(db, ann, f"https://hooks.example:{receiver.port}/in", resolver=resolver)
        good = await ended_job(db, ann, at=T0)
        events = webhooks.WebhookEvents(db, clock=lambda: T0)
        await events.job_completed(await SqlJobRepository(db).get(good))
        send = webhooks.WebhookSender(db, resolver, settings_for(tmp_path), clock, tls=trusted)
        assert await send.run_once() == 1
        [got] = receiver.received
        assert got.headers["host"] == f"hooks.example:{receiver.port}"
        await set_url(
            db, ann, f"https://other.example:{receiver.port}/in", resolver=resolver, now=T0
        )
        bad = await ended_job(db, ann, at=T0 + timedelta(seconds=1))
        await events.job_completed(await SqlJobRepository(db).get(bad))
        assert await send.run_once() == 0
        assert len(receiver.received) == 1
    rows = {row.job_id: row for row in await deliveries(db)}
    assert rows[good].status == "delivered"
    assert rows[bad].status == "pending" and "ConnectError" in rows[bad].last_error

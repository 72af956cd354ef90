"""Mail through real SMTP: the outbox sender and the SMTP mailer against the local mail
catcher (aiosmtpd on 127.0.0.1): plain, AUTH, STARTTLS required, refusals, an outage."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterator

import pytest

from mailvet.adapters.db.database import Database
from mailvet.adapters.mail import build_mailer
from mailvet.adapters.mail.log import plain_text
from mailvet.adapters.mail.render import render
from mailvet.adapters.mail.smtp import SmtpMailer
from mailvet.domain.mail import MailDeliveryError, OutgoingMail
from mailvet.services.outbox import OutboxSender
from mailvet.settings import MailerSettings, Settings, SettingsError, WebSettings, load_settings
from tests import mailcatcher, outbox_helpers
from tests.fakes import T0, MovingClock
from tests.mailcatcher import MailCatcher, free_port
from tests.outbox_helpers import put, row

pytestmark = pytest.mark.integration
mail_catcher = mailcatcher.mail_catcher  # the shared fixture, used here as others will

CODE = OutgoingMail(to="ann@example.com", template="confirm_code", context={"code": "481516"})


def settings_for(port: int, **mailer: object) -> Settings:
    return Settings(
        web=WebSettings(public_url="https://mailvet.example"),
        mailer=MailerSettings(
            backend="smtp",
            host="127.0.0.1",
            port=port,
            sender="mailvet <no-reply@mailvet.example>",
            timeout=5.0,
            **mailer,  # type: ignore[arg-type]
        ),
    )


database = outbox_helpers.database


@pytest.fixture
def catcher_factory() -> Iterator[list[MailCatcher]]:
    made: list[MailCatcher] = []
    yield made
    for catcher in made:
        catcher.close()


def started(made: list[MailCatcher], **options: object) -> MailCatcher:
    catcher = MailCatcher(**options)  # type: ignore[arg-type]
    made.append(catcher)
    catcher.start()
    return catcher


def sender(
    database: Database, settings: Settings, clock: MovingClock, *, cert_bundle: str | None = None
) -> OutboxSender:
    smtp = dataclasses.replace(SmtpMailer.from_settings(settings.mailer), cert_bundle=cert_bundle)
    return OutboxSender(database, smtp, settings, clock)


async def test_mail_goes_through_plain_smtp(database: Database, mail_catcher: MailCatcher) -> None:
    clock = MovingClock()
    row_id = await put(database, CODE, clock)

    assert await sender(database, settings_for(mail_catcher.port), clock).run_once() == 1

    [message] = await mail_catcher.wait_for(lambda m: m["To"] == "ann@example.com")
    [received] = mail_catcher.received
    assert not received.tls  # the catcher offers no STARTTLS
    assert received.rcpt_tos == ("ann@example.com",)
    assert received.mail_from == "no-reply@mailvet.example"
    assert message["To"] == "ann@example.com"
    assert message["Message-ID"] == f"<{row_id}@mailvet.example>"
    assert message.get_content_type() == "multipart/alternative"
    assert "481516" in plain_text(message)
    assert (await row(database, row_id)).sent_at == T0


async def test_auth_is_used_when_a_user_is_set(
    database: Database, catcher_factory: list[MailCatcher]
) -> None:
    catcher = started(catcher_factory, credentials=("mailvet", "s3cret"), starttls=True)
    clock = MovingClock()
    await put(database, CODE, clock)
    good = settings_for(catcher.port, username="mailvet", password="s3cret", starttls=True)

    bundle = str(catcher.cert_file)
    assert await sender(database, good, clock, cert_bundle=bundle).run_once() == 1
    await catcher.wait_for(1)
    assert catcher.logins == ["mailvet"]
    assert [item.tls for item in catcher.received] == [True]


def test_credentials_without_verified_tls_are_refused_at_start() -> None:
    for port in (25, 587, 2525):
        env = {"MAILVET_MAILER_PORT": str(port), "MAILVET_MAILER_USERNAME": "mailvet"}
        with pytest.raises(SettingsError, match="MAILVET_MAILER_USERNAME: .*STARTTLS"):
            load_settings(env)
        with pytest.raises(SettingsError, match="STARTTLS"):
            load_settings({**env, "MAILVET_MAILER_PASSWORD": "s3cret"})
        with pytest.raises(ValueError, match="STARTTLS"):  # the settings made in code too
            settings_for(port, username="mailvet")
    # verified TLS: STARTTLS required, or TLS from the first byte
    assert SmtpMailer.from_settings(settings_for(587, username="u", starttls=True).mailer)
    assert SmtpMailer.from_settings(settings_for(465, username="u").mailer)
    assert isinstance(
        build_mailer(settings_for(465, username="u", password="p").mailer), SmtpMailer
    )
    assert SmtpMailer.from_settings(settings_for(25).mailer)  # no credentials to protect


async def test_wrong_credentials_keep_the_mail_for_later(
    database: Database, catcher_factory: list[MailCatcher]
) -> None:
    catcher = started(catcher_factory, credentials=("mailvet", "s3cret"), starttls=True)
    clock = MovingClock()
    row_id = await put(database, CODE, clock)
    bad = settings_for(catcher.port, username="mailvet", password="wrong", starttls=True)

    bundle = str(catcher.cert_file)
    assert await sender(database, bad, clock, cert_bundle=bundle).run_once() == 0

    stored = await row(database, row_id)
    assert "SMTPAuthenticationError 535" in stored.last_error
    assert stored.given_up_at is None and stored.next_attempt_at is not None
    assert catcher.messages == []


async def test_starttls_required_but_not_offered_keeps_the_mail(
    database: Database, mail_catcher: MailCatcher
) -> None:
    clock = MovingClock()
    row_id = await put(database, CODE, clock)
    strict = settings_for(mail_catcher.port, starttls=True)

    assert await sender(database, strict, clock).run_once() == 0

    stored = await row(database, row_id)
    assert "STARTTLS" in stored.last_error
    assert (stored.attempts, stored.given_up_at, stored.sent_at) == (1, None, None)
    assert stored.next_attempt_at == T0 + datetime.timedelta(seconds=30)
    assert stored.context == {"code": "481516"}  # still there to send later
    assert mail_catcher.messages == []


async def test_starttls_required_and_offered_encrypts(
    database: Database, catcher_factory: list[MailCatcher]
) -> None:
    catcher = started(catcher_factory, starttls=True)
    assert catcher.cert_file is not None
    clock = MovingClock()
    await put(database, CODE, clock)
    strict = settings_for(catcher.port, starttls=True)

    # an untrusted certificate is a failure (kept for later), not a silent downgrade
    assert await sender(database, strict, clock).run_once() == 0
    assert catcher.messages == []

    clock.now += datetime.timedelta(minutes=1)
    trusting = sender(database, strict, clock, cert_bundle=str(catcher.cert_file))
    assert await trusting.run_once() == 1
    await catcher.wait_for(1)
    assert [item.tls for item in catcher.received] == [True]


async def test_starttls_is_used_when_offered_if_not_required(
    database: Database, catcher_factory: list[MailCatcher]
) -> None:
    """Opportunistic: encrypted whenever offered, a self-made certificate accepted."""
    offering = started(catcher_factory, starttls=True)
    clock = MovingClock()
    await put(database, CODE, clock)

    assert await sender(database, settings_for(offering.port), clock).run_once() == 1

    await offering.wait_for(1)
    assert [item.tls for item in offering.received] == [True]


async def test_an_outage_loses_nothing_and_the_mail_goes_when_the_server_is_back(
    database: Database, catcher_factory: list[MailCatcher]
) -> None:
    catcher = started(catcher_factory)
    catcher.stop()  # down: nothing listens on its port
    clock = MovingClock()
    ids = [await put(database, CODE, clock) for _ in range(3)]
    outbox = sender(database, settings_for(catcher.port), clock)

    assert await outbox.run_once() == 0
    for row_id in ids:
        stored = await row(database, row_id)
        assert stored.attempts == 1 and stored.given_up_at is None
        assert "SMTPConnectError" in stored.last_error

    catcher.start()  # back, on the same port
    assert await outbox.run_once() == 0  # not due yet: the retry waits its delay
    clock.now += datetime.timedelta(seconds=30)
    assert await outbox.run_once() == 3

    messages = await catcher.wait_for(3)
    assert sorted(str(m["Message-ID"]) for m in messages) == sorted(
        f"<{row_id}@mailvet.example>" for row_id in ids
    )


async def test_a_refused_recipient_is_given_up_and_a_deferred_one_kept(
    database: Database, catcher_factory: list[MailCatcher]
) -> None:
    catcher = started(
        catcher_factory,
        refuse={
            "gone@example.com": "550 5.1.1 <gone@example.com>: no such user",
            "busy@example.com": "450 4.2.1 try again later",
        },
    )
    clock = MovingClock()
    gone = await put(database, OutgoingMail("gone@example.com", "password_changed", {}), clock)
    busy = await put(database, OutgoingMail("busy@example.com", "password_changed", {}), clock)

    assert await sender(database, settings_for(catcher.port), clock).run_once() == 0

    refused, deferred = await row(database, gone), await row(database, busy)
    assert refused.given_up_at == T0 and "550" in refused.last_error
    assert deferred.given_up_at is None and "450" in deferred.last_error
    assert deferred.next_attempt_at == T0 + datetime.timedelta(seconds=30)


async def test_the_smtp_mailer_reports_a_down_server_as_temporary() -> None:
    mailer = SmtpMailer(host="127.0.0.1", port=free_port(), timeout=2.0)
    message = render(CODE, settings_for(25))

    with pytest.raises(MailDeliveryError) as failure:
        await mailer.send(message)

    assert failure.value.temporary


async def test_the_catcher_waits_for_what_it_is_told_and_times_out(
    mail_catcher: MailCatcher,
) -> None:
    mailer = SmtpMailer(host="127.0.0.1", port=mail_catcher.port)
    settings = settings_for(mail_catcher.port)
    for to in ("ann@example.com", "bob@example.com"):
        await mailer.send(render(OutgoingMail(to, "password_changed", {}), settings))

    [bob] = await mail_catcher.wait_for(lambda m: m["To"] == "bob@example.com")
    assert bob["To"] == "bob@example.com"
    assert len(await mail_catcher.wait_for(2)) == 2
    with pytest.raises(TimeoutError):
        await mail_catcher.wait_for(3, timeout=0.05)

"""Outgoing mail: the rules of domain/mail.py, the templates, and the log and memory mailers."""

from __future__ import annotations

import datetime
import email.utils
import logging
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
import structlog

from mailvet.adapters.mail import build_mailer
from mailvet.adapters.mail.log import LogMailer, plain_text
from mailvet.adapters.mail.memory import MemoryMailer
from mailvet.adapters.mail.render import SUBJECTS, render
from mailvet.adapters.mail.smtp import SmtpMailer
from mailvet.domain.mail import (
    TEMPLATE_FIELDS,
    MailDeliveryError,
    OutgoingMail,
    RetryPolicy,
    is_plain_address,
)
from mailvet.settings import MailerSettings, Settings, WebSettings

pytestmark = pytest.mark.unit

T0 = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
SETTINGS = Settings(
    web=WebSettings(public_url="https://mailvet.example/"),
    mailer=MailerSettings(sender="mailvet <no-reply@mailvet.example>"),
)
CONTEXTS: dict[str, dict[str, str]] = {
    "confirm_code": {"code": "481516"},
    "password_reset": {"link": "https://mailvet.example/reset-password?token=t0k3n"},
    "job_completed": {"job_id": "0123abcd", "filename": "list.csv"},
    "subscription_confirmed": {"tier": "Pro"},
    "subscription_cancelled": {"tier": "Pro", "ends_on": "15 January 2027"},
    "payment_failed": {"invoice": "in_1", "amount": "$12.34 USD"},
    "low_credits": {"balance": "99", "last_topup": "1,000"},
}


def mail(template: str = "confirm_code", **context: str) -> OutgoingMail:
    return OutgoingMail(
        to="ann@example.com", template=template, context=context or CONTEXTS.get(template, {})
    )


@pytest.mark.parametrize(
    "to",
    [
        "ann@example.com\r\nBcc: eve@evil.example",
        "ann@example.com\nBcc: eve@evil.example",
        "ann@example.com\r",
        "Ann <ann@example.com>",
        "ann@example.com, eve@evil.example",
        "ann@example.com;eve@evil.example",
        '"ann"@example.com',
        "ann",
        "@example.com",
        "ann@",
        "ann@@example.com",
        "ann @example.com",
        "ann@example.com\x00",
        "ann@example.com\u2028Bcc: eve@evil.example",
        "a" * 250 + "@example.com",
    ],
)
def test_a_recipient_that_is_not_one_plain_address_is_refused(to: str) -> None:
    assert not is_plain_address(to)
    with pytest.raises(ValueError, match="recipient"):
        OutgoingMail(to=to, template="confirm_code", context={"code": "1"})


@pytest.mark.parametrize(
    "to", ["ann@example.com", "ann.lee+tag@mail.example.org", "jöhn@exämple.com"]
)
def test_a_plain_address_is_taken(to: str) -> None:
    assert OutgoingMail(to=to, template="confirm_code", context={"code": "1"}).to == to


@pytest.mark.parametrize(
    "name", ["Ann\r\nBcc: eve@evil.example", "Ann\nX", "Ann\rX", "Ann\tX", "Ann\x1bX", "A\x85B"]
)
def test_a_context_value_with_a_line_break_or_control_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="control character"):
        OutgoingMail(
            to="ann@example.com",
            template="confirm_code",
            context={"code": "1", "first_name": name},
        )


def test_unknown_templates_missing_keys_and_huge_values_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown mail template"):
        OutgoingMail(to="ann@example.com", template="../../etc/passwd", context={})
    with pytest.raises(ValueError, match="needs code"):
        OutgoingMail(to="ann@example.com", template="confirm_code", context={})
    with pytest.raises(ValueError, match="4 KiB"):
        OutgoingMail(to="ann@example.com", template="confirm_code", context={"code": "1" * 5000})


def test_the_delay_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy()
    delays = [policy.delay(n).total_seconds() for n in range(1, 10)]
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert policy.delay(10_000) == policy.max_delay
    with pytest.raises(ValueError):
        policy.delay(0)


def test_a_temporary_failure_is_retried_without_end_and_a_permanent_one_given_up() -> None:
    policy = RetryPolicy()
    assert policy.next_attempt(attempts=1, now=T0, temporary=True) == T0 + datetime.timedelta(
        seconds=30
    )
    # a week into an outage: still tried again, an hour later (the cap)
    late = T0 + datetime.timedelta(days=7)
    assert policy.next_attempt(attempts=200, now=late, temporary=True) == (
        late + datetime.timedelta(hours=1)
    )
    assert policy.next_attempt(attempts=1, now=T0, temporary=False) is None


def test_a_long_outage_is_ridden_out_hourly() -> None:
    policy = RetryPolicy()
    now, attempts = T0, 0
    while now - T0 < datetime.timedelta(days=3):
        attempts += 1
        at = policy.next_attempt(attempts=attempts, now=now, temporary=True)
        assert at is not None
        assert at - now <= datetime.timedelta(hours=1)
        now = at
    assert 70 < attempts < 80  # 7 doublings (about an hour), then once an hour


@pytest.mark.parametrize("template", sorted(TEMPLATE_FIELDS))
def test_every_template_renders_text_and_html(template: str) -> None:
    message = render(mail(template), SETTINGS, message_id="row1", now=T0)

    assert message.get_content_type() == "multipart/alternative"
    text, html = (part.get_content() for part in message.iter_parts())
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    assert message["Subject"] == SUBJECTS[template]
    assert message["From"] == "mailvet <no-reply@mailvet.example>"
    assert message["To"] == "ann@example.com"
    assert message["Message-ID"] == "<row1@mailvet.example>"
    assert email.utils.parsedate_to_datetime(message["Date"]) == T0
    assert "https://mailvet.example" in text and "https://mailvet.example" in html
    assert "https://mailvet.example//" not in text  # the trailing slash is not doubled
    assert html.lstrip().startswith("<!DOCTYPE html>")
    for value in CONTEXTS.get(template, {}).values():
        assert value in text


def test_the_code_and_the_job_link_are_in_the_mail() -> None:
    text = plain_text(render(mail("confirm_code"), SETTINGS))
    assert "481516" in text
    job = render(mail("job_completed"), SETTINGS)
    assert "https://mailvet.example/app/jobs/0123abcd" in plain_text(job)
    html = job.get_body(preferencelist=("html",))
    assert isinstance(html, EmailMessage)
    assert 'href="https://mailvet.example/app/jobs/0123abcd"' in html.get_content()


def test_user_strings_are_escaped_in_html_and_never_reach_a_header() -> None:
    hostile = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
    message = render(mail("job_completed", job_id="j1", filename=hostile), SETTINGS)
    html = message.get_body(preferencelist=("html",))
    assert isinstance(html, EmailMessage)
    content = html.get_content()
    assert "<script>" not in content and "<img" not in content
    assert "&lt;script&gt;" in content
    assert hostile in plain_text(message)  # plain text is not HTML: shown as typed
    headers = "".join(f"{key}: {value}\n" for key, value in message.items())
    assert "onerror" not in headers


def test_a_message_id_is_fresh_without_a_row_id() -> None:
    first, second = render(mail(), SETTINGS), render(mail(), SETTINGS)
    assert first["Message-ID"] != second["Message-ID"]
    assert first["Message-ID"].endswith("@mailvet.example>")


def test_build_mailer_picks_by_the_setting() -> None:
    assert isinstance(build_mailer(MailerSettings(backend="log")), LogMailer)
    assert isinstance(build_mailer(MailerSettings(backend="memory")), MemoryMailer)
    smtp = build_mailer(
        MailerSettings(backend="smtp", host="mx.example", port=2525, username="u", starttls=True)
    )
    assert smtp == SmtpMailer(host="mx.example", port=2525, username="u", starttls=True)


async def test_the_memory_mailer_keeps_what_it_sent_and_fails_when_told() -> None:
    mailer = MemoryMailer(fail_times=1)
    message = render(mail(), SETTINGS)
    with pytest.raises(MailDeliveryError) as failure:
        await mailer.send(message)
    assert failure.value.temporary
    await mailer.send(message)
    mailer.fail(1, temporary=False)
    with pytest.raises(MailDeliveryError) as permanent:
        await mailer.send(message)
    assert not permanent.value.temporary
    assert (mailer.sent, mailer.attempts) == ([message], 3)
    assert mailer.to("ann@example.com") == [message]


@pytest.fixture
def every_level() -> Iterator[None]:
    """Every level reaches capture_logs, whatever an earlier test configured; restored."""
    config = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        yield
    finally:
        structlog.configure(**config)


@pytest.mark.usefixtures("every_level")
async def test_the_log_mailer_writes_the_code_at_warning() -> None:
    with structlog.testing.capture_logs() as logs:
        await LogMailer().send(render(mail(), SETTINGS, message_id="r1"))
    [entry] = logs
    assert (entry["event"], entry["log_level"]) == ("mail.logged", "warning")
    assert entry["to"] == "ann@example.com"
    assert entry["subject"] == SUBJECTS["confirm_code"]
    assert entry["message_id"] == "<r1@mailvet.example>"
    assert "481516" in entry["body"]

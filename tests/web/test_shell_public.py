"""The public pages: home and its demo (5 a day per IP, DNS level at most), pricing, the
documentation generated from the verdict and job enums, privacy and terms; escaping."""

from __future__ import annotations

from pathlib import Path

import pytest
from markupsafe import escape

from mailvet.domain.job import JobStatus
from mailvet.domain.verdict import RESULT_COLUMNS, Check, Reason, Status
from mailvet.web.jobs.labels import status_label
from mailvet.web.public.texts import (
    JOB_STATUS_TEXT,
    REASON_TEXT,
    STATUS_TEXT,
    STEPS,
    docs_statuses,
)
from tests.web.shell_helpers import client, csrf_token, shell

pytestmark = pytest.mark.pipeline

HTML = {"accept": "text/html"}
PAYLOADS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')


@pytest.mark.unit
def test_every_status_reason_and_job_state_has_its_text() -> None:
    assert set(STATUS_TEXT) == set(Status)
    assert set(REASON_TEXT) == set(Reason)
    assert set(JOB_STATUS_TEXT) == set(JobStatus)
    listed = [reason.name for group in docs_statuses() for reason in group.reasons]
    assert sorted(listed) == sorted(reason.value for reason in Reason)


async def test_the_docs_page_lists_every_status_reason_column_and_job_state(
    tmp_path: Path,
) -> None:
    async with shell(tmp_path) as s, client(s.app) as c:
        page = (await c.get("/docs", headers=HTML)).text
    for status in Status:
        assert f'id="status-{status.value}"' in page
    for reason in Reason:
        assert f'id="reason-{reason.value}"' in page
    for column in RESULT_COLUMNS:
        assert f"<code>{column}</code>" in page
    for state in JobStatus:
        assert f"<td>{status_label(state)}</td><td><code>{state.value}</code></td>" in page
    # how a verdict is reached, step by step, and where the API is
    for name, text in STEPS:
        assert f"<li><strong>{escape(name)}</strong>: {escape(text)}</li>" in page
    assert "<code>/api/v1</code>" in page and 'href="/schema"' in page
    assert 'href="/app/api-keys"' in page


async def test_the_demo_checks_at_the_dns_level_five_times_a_day(tmp_path: Path) -> None:
    async with shell(tmp_path) as s, client(s.app) as c:
        token = await csrf_token(c)
        for _ in range(5):
            answer = await c.post(
                "/demo",
                data={"email": "Ann@Example.com", "_csrf_token": token},
                headers={"hx-request": "true"},
            )
            assert answer.status_code == 200
            assert answer.text.lstrip().startswith('<div id="demo-result"')  # the fragment
            assert "mx.example.com" in answer.text  # DNS was asked
        # never the SMTP probe from an anonymous form
        assert s.deps.prober.recipients == []  # type: ignore[attr-defined]
        assert s.deps.resolver.asked == ["example.com"]  # type: ignore[attr-defined]
        refused = await c.post("/demo", data={"email": "b@example.com", "_csrf_token": token})
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 0
        assert "5 free checks of today" in refused.text
        assert "or try again in " in refused.text  # the wait in words (auth.common.wait_text)
        s.clock.advance(days=1)
        again = await c.post("/demo", data={"email": "b@example.com", "_csrf_token": token})
        assert again.status_code == 200


async def test_the_demo_judges_syntax_without_the_network(tmp_path: Path) -> None:
    async with shell(tmp_path) as s, client(s.app) as c:
        token = await csrf_token(c)
        page = await c.post("/demo", data={"email": "not an address", "_csrf_token": token})
        assert page.status_code == 200
        assert "invalid_syntax" in page.text
        empty = await c.post("/demo", data={"email": "  ", "_csrf_token": token})
        assert "Enter an email address." in empty.text
        assert s.deps.resolver.asked == []  # type: ignore[attr-defined]


async def test_the_demo_stays_at_syntax_when_the_installation_checks_syntax_only(
    tmp_path: Path,
) -> None:
    async with shell(tmp_path, {"MAILVET_CHECKS": Check.SYNTAX.value}) as s, client(s.app) as c:
        token = await csrf_token(c)
        answer = await c.post("/demo", data={"email": "ann@example.com", "_csrf_token": token})
        assert answer.status_code == 200
        assert s.deps.resolver.asked == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("payload", PAYLOADS)
async def test_a_payload_in_a_page_parameter_or_a_demo_address_is_escaped(
    tmp_path: Path, payload: str
) -> None:
    async with shell(tmp_path) as s, client(s.app) as c:
        home = await c.get("/", params={"email": payload}, headers=HTML)
        assert payload not in home.text
        assert f'value="{escape(payload)}"' in home.text
        token = await csrf_token(c)
        checked = await c.post("/demo", data={"email": payload, "_csrf_token": token})
        assert payload not in checked.text
        assert escape(payload) in checked.text


async def test_privacy_and_terms_show_the_configured_text_escaped(tmp_path: Path) -> None:
    env = {
        "MAILVET_PRIVACY_TEXT": "We keep lists 30 days.\n\nContact <script>x()</script>",
        "MAILVET_TERMS_TEXT": "",
    }
    async with shell(tmp_path, env) as s, client(s.app) as c:
        privacy = (await c.get("/privacy", headers=HTML)).text
        assert "<p>We keep lists 30 days.</p>" in privacy
        assert "<p>Contact &lt;script&gt;x()&lt;/script&gt;</p>" in privacy
        terms = (await c.get("/terms", headers=HTML)).text
        assert "has not published its terms of service yet" in terms


async def test_pricing_shows_the_free_credits_and_no_fake_buy_button(tmp_path: Path) -> None:
    # billing off (the default): no buy button, an administrator adds credits
    async with shell(tmp_path, {"MAILVET_FREE_CREDITS": "250"}) as s, client(s.app) as c:
        page = (await c.get("/pricing", headers=HTML)).text
        assert "250 credits" in page
        assert "$10 per 1,000 credits" in page
        assert "not available on this installation" in page
        assert "/billing" not in page


async def test_pricing_says_free_when_credits_are_off(tmp_path: Path) -> None:
    async with shell(tmp_path, {"MAILVET_CREDITS": "off"}) as s, client(s.app) as c:
        page = (await c.get("/pricing", headers=HTML)).text
        assert "every check is free" in page
        assert "$10" not in page


async def test_the_nav_shows_sign_in_or_the_account(tmp_path: Path) -> None:
    async with shell(tmp_path) as s, client(s.app) as c:
        anonymous = (await c.get("/", headers=HTML)).text
        assert 'href="/login"' in anonymous and 'action="/logout"' not in anonymous
        token = await csrf_token(c)
        await c.post("/t/sign-in/" + "d" * 32, headers={"x-csrftoken": token})
        signed = (await c.get("/", headers=HTML)).text
        assert 'action="/logout"' in signed and 'href="/app"' in signed
        assert 'href="/login"' not in signed

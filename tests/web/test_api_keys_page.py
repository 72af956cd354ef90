"""The API keys page (/app/api-keys) of the SaaS as `mailvet run web` serves it: the list,
a new key shown once (a recent sign-in, or the password again after 10 minutes, counted as
a failed sign-in when wrong), revoking (only one's own keys), every field labelled, the
label escaped, and the form's refusals."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailvet.domain.api_keys import ApiPrincipal, Refusal, Scope
from mailvet.services import api_keys
from tests.web.account_helpers import writing
from tests.web.auth_helpers import PASSWORD, Browser, browser, log_in
from tests.web.shell_helpers import Clock, look
from tests.web.site_helpers import SiteUnderTest, site_under_test

pytestmark = pytest.mark.pipeline

ANN = "ann.lee@example.com"
BOB = "bob@example.com"
SHOWN_KEY = re.compile(
    r'id="new-key-text" type="text" value="(mv_[A-Za-z0-9]{16}_[A-Za-z0-9]{43})"'
)
ALL_TICKED = {"scope_validate": "on", "scope_jobs_read": "on", "scope_jobs_write": "on"}
XSS = '<script>alert("key")</script>'


async def keys_of(s: SiteUnderTest, account_id: str) -> list[api_keys.ApiKeyInfo]:
    async with look(s.url) as database, database.session_maker() as session:
        return await api_keys.list_keys(session, account_id)


async def authenticate(s: SiteUnderTest, key: str, now: datetime) -> ApiPrincipal | Refusal:
    async with look(s.url) as database:
        return await api_keys.authenticate(database, key, now=now)


async def create(b: Browser, **fields: str) -> str:
    """Post the form (all scopes ticked unless said); the key the page shows."""
    await b.get("/app/api-keys")
    made = await b.post("/app/api-keys", {**ALL_TICKED, **fields})
    assert made.status_code == 200, made.text
    found = SHOWN_KEY.search(made.text)
    assert found is not None, made.text
    return found.group(1)


async def test_make_a_key_see_it_once_use_it_and_revoke_it(tmp_path: Path) -> None:
    clock = Clock()
    async with site_under_test(tmp_path, clock=clock) as s, browser(s.site.app) as b:
        anonymous = await b.get("/app/api-keys")
        assert anonymous.status_code in (302, 303) and "/login" in anonymous.headers["location"]
        ann = await s.account(ANN)
        assert (await log_in(b, ANN)).status_code == 303
        page = await b.get("/app/api-keys")
        assert page.status_code == 200
        assert 'id="no-keys"' in page.text
        for field in ("key-label", "key-expires", *(f"key-{name}" for name in ALL_TICKED)):
            assert f'<label for="{field}">' in page.text
        assert "<legend>Scopes</legend>" in page.text
        assert 'name="password"' not in page.text  # signed in just now: no password asked

        await b.get("/app/api-keys")
        made = await b.post(
            "/app/api-keys", {"label": XSS, "expires": "2031-05-06", "scope_validate": "on"}
        )
        assert made.status_code == 200, made.text
        assert made.headers["cache-control"] == "no-store"
        found = SHOWN_KEY.search(made.text)
        assert found is not None
        key = found.group(1)
        assert XSS not in made.text and "&lt;script&gt;alert(" in made.text
        [info] = await keys_of(s, ann.id)
        assert info.label == XSS and info.scopes == ["validate"]
        assert info.expires_at == datetime(2031, 5, 6, 23, 59, 59, tzinfo=UTC)
        principal = await authenticate(s, key, clock.now)
        assert isinstance(principal, ApiPrincipal) and principal.scopes == {Scope.VALIDATE}

        again = await b.get("/app/api-keys")  # listed, never shown again
        assert key not in again.text and info.id in again.text
        assert "2031-05-06 23:59 UTC" in again.text and ">active<" in again.text
        used = clock.now.strftime("%Y-%m-%d %H:%M")  # the use just now is listed
        assert "<td>validate</td>" in again.text and f"<td>{used} UTC</td>" in again.text

        revoked = await b.post(f"/app/api-keys/{info.id}/revoke")
        assert revoked.status_code == 303 and revoked.headers["location"] == "/app/api-keys"
        after = await b.follow(revoked)
        assert "is revoked" in after.text and ">revoked 20" in after.text
        assert f'action="/app/api-keys/{info.id}/revoke"' not in after.text
        assert await authenticate(s, key, clock.now) == Refusal.REVOKED


async def test_an_old_sign_in_asks_for_the_password_again(tmp_path: Path) -> None:
    clock = Clock()
    async with site_under_test(tmp_path, clock=clock) as s, browser(s.site.app) as b:
        ann = await s.account(ANN)
        assert (await log_in(b, ANN)).status_code == 303
        clock.advance(minutes=11)
        page = await b.get("/app/api-keys")
        assert 'name="password"' in page.text and '<label for="key-password">' in page.text

        refused = await b.post("/app/api-keys", {"label": "CRM", **ALL_TICKED})
        assert refused.status_code == 400
        assert "The password is not right." in refused.text
        wrong = await b.post("/app/api-keys", {"label": "CRM", "password": "nope", **ALL_TICKED})
        assert wrong.status_code == 400 and SHOWN_KEY.search(wrong.text) is None
        assert 'value="CRM"' in wrong.text  # the form is kept
        assert await keys_of(s, ann.id) == []

        key = await create(b, label="CRM", password=PASSWORD)
        assert isinstance(await authenticate(s, key, clock.now), ApiPrincipal)
        # the sign-in's time is renewed: the next key needs no password
        assert isinstance(
            await authenticate(s, await create(b, label="two"), clock.now), ApiPrincipal
        )


async def test_wrong_passwords_are_throttled_like_sign_ins(tmp_path: Path) -> None:
    clock = Clock()
    async with site_under_test(tmp_path, clock=clock) as s, browser(s.site.app) as b:
        ann = await s.account(ANN)
        assert (await log_in(b, ANN)).status_code == 303
        clock.advance(minutes=11)
        await b.get("/app/api-keys")
        codes = []
        for _ in range(6):
            answer = await b.post(
                "/app/api-keys", {"label": "CRM", "password": "wrong one", **ALL_TICKED}
            )
            codes.append(answer.status_code)
        assert codes[-1] == 429 and int(answer.headers["retry-after"]) > 0
        assert "Too many wrong passwords" in answer.text
        # spent: even the right password is refused for now
        right = await b.post("/app/api-keys", {"label": "CRM", "password": PASSWORD, **ALL_TICKED})
        assert right.status_code == 429
        assert await keys_of(s, ann.id) == []


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"label": "   ", **ALL_TICKED}, "Give the key a label"),
        ({"label": "x" * 101, **ALL_TICKED}, "longer than 100"),
        ({"label": "CRM", "expires": "2027-02-30", **ALL_TICKED}, "not a date"),
        ({"label": "CRM", "expires": "next week", **ALL_TICKED}, "The expiry is a date"),
        ({"label": "CRM"}, "Tick at least one scope."),
    ],
)
async def test_the_form_refuses_bad_input(
    tmp_path: Path, fields: dict[str, str], says: str
) -> None:
    async with site_under_test(tmp_path) as s, browser(s.site.app) as b:
        ann = await s.account(ANN)
        assert (await log_in(b, ANN)).status_code == 303
        await b.get("/app/api-keys")
        refused = await b.post("/app/api-keys", fields)
        assert refused.status_code == 400
        assert says in refused.text and 'role="alert"' in refused.text
        assert await keys_of(s, ann.id) == []


async def test_another_accounts_key_cannot_be_revoked_or_seen(tmp_path: Path) -> None:
    async with site_under_test(tmp_path) as s, browser(s.site.app) as b:
        await s.account(ANN)
        bob = await s.account(BOB)
        async with writing(s.url) as session:
            bobs = await api_keys.create_key(session, bob.id, label="bob's", now=datetime.now(UTC))
        assert (await log_in(b, ANN)).status_code == 303
        page = await b.get("/app/api-keys")
        assert bobs.info.id not in page.text and "bob&#39;s" not in page.text
        answer = await b.post(f"/app/api-keys/{bobs.info.id}/revoke")
        assert answer.status_code == 303
        assert "There is no such key." in (await b.follow(answer)).text
        assert (await b.post("/app/api-keys/..%2F..%2Fx/revoke")).status_code in (303, 404)
        [still] = await keys_of(s, bob.id)
        assert not still.revoked


async def test_the_forms_need_the_csrf_token(tmp_path: Path) -> None:
    async with site_under_test(tmp_path) as s, browser(s.site.app) as b:
        ann = await s.account(ANN)
        async with writing(s.url) as session:
            kept = await api_keys.create_key(session, ann.id, label="kept", now=datetime.now(UTC))
        assert (await log_in(b, ANN)).status_code == 303
        made = await b.post("/app/api-keys", {"label": "forged", **ALL_TICKED}, csrf=False)
        assert made.status_code == 403
        revoke = await b.post(f"/app/api-keys/{kept.info.id}/revoke", csrf=False)
        assert revoke.status_code == 403
        [still] = await keys_of(s, ann.id)
        assert still.label == "kept" and not still.revoked
